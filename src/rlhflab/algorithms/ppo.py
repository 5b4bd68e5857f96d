"""PPO's pure parts for RLHF: KL-penalised token rewards, GAE, whitening, clipped losses.

Notation follows ivison2024 appendix F.2 (eq. 4–6) and table 9. Every tensor is [B, T] over response
tokens, right-padded, with `mask` 1 on real tokens (EOS included) and 0 on padding; masks are
contiguous prefixes. Numeric tests against hand-computed values are in tests/test_ppo_losses.py.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the valid entries."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    return ((x - mean) ** 2 * mask).sum() / (n - 1).clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over valid entries; padding stays 0. shift_mean=False only rescales
    (used for rewards, whose sign carries meaning)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(π‖π_ref) from tokens sampled from π.

    k1 = log π − log π_ref (unbiased, can be negative; ivison2024 eq. 4);
    k3 = (ρ − 1) − log ρ with ρ = π_ref / π (unbiased, always ≥ 0, lower variance; Schulman 2020).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use k1 or k3")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] index of the last valid token of each row (0 for an empty row)."""
    return (mask.sum(dim=1).long() - 1).clamp(min=0)


def token_rewards(score: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                  mask: torch.Tensor, beta: float, estimator: str = "k1",
                  kl_clamp_min: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ivison2024 eq. 4: r_t = −β·KL_t on every token, plus the sequence score on the last token.

    score: [B] reward-model score (after any EOS penalty / normalisation). Returns (rewards, kl)
    with kl the per-token estimate (clamped from below when kl_clamp_min is set, as AlpacaFarm).
    """
    kl = kl_per_token(logprobs, ref_logprobs, estimator)
    if kl_clamp_min is not None:
        kl = kl.clamp(min=kl_clamp_min)
    kl = kl * mask
    rewards = -beta * kl
    idx = last_token_index(mask).unsqueeze(1)
    has_tokens = (mask.sum(dim=1) > 0).to(rewards.dtype)
    rewards = rewards.scatter_add(1, idx, (score * has_tokens).unsqueeze(1).to(rewards.dtype))
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016).

    δ_t = r_t + γ V_{t+1} − V_t (V past the last token is 0), A_t = δ_t + γλ A_{t+1};
    returns G_t = A_t + V_t are the value targets (ivison2024 eq. 6). Padding gets 0.
    """
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    returns = adv + values
    return adv, returns * mask


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate −E[min(ν·A, clip(ν, 1−ε, 1+ε)·A)], ν = π_θ / π_old (ivison2024 footnote 16).

    Also returns the clip fraction and approx-KL(π_old‖π_θ) ≈ E[(ν − 1) − log ν].
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
                 "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss ½·E[max((V − G)², (V_old + clip(V − V_old, ±ε) − G)²)] (ivison2024 eq. 6 + clipping)."""
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    err, err_clipped = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((err_clipped > err).float(), mask)}
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy −Σ p log p of the categorical given by `logits` [..., V]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def eos_trick(score: torch.Tensor, finished: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """ivison2024 appendix F.2: a completion truncated without EOS gets the fixed `penalty` as its score."""
    if penalty is None:
        return score
    return torch.where(finished, score, torch.full_like(score, penalty))


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` covering range(n)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def kl_objective(scores: torch.Tensor, kl: torch.Tensor, beta: float) -> float:
    """Mean KL-penalised score, score − β·KL(π‖π_ref) per sequence ([B] each): PPO's objective and
    its checkpoint-selection score on validation prompts, with β the coefficient in force (the
    adapted one under an adaptive controller, not the configured start)."""
    return (scores - beta * kl).mean().item()


class AdaptiveKLController:
    """Ziegler et al. (2019): β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)."""

    def __init__(self, beta: float, target: float, horizon: int):
        self.value, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        error = max(-0.2, min(0.2, kl / self.target - 1.0))
        self.value *= 1.0 + error * n_samples / self.horizon

