"""Group-baseline policy gradients and online DPO's pairing: the pure parts of RLOO, GRPO and online DPO.

A prompt's k samples sit in consecutive rows, so a [B] tensor of per-sample values is a [B/k, k]
group tensor after `view(-1, k)`. Token tensors are [B, T], right-padded, `mask` 1 on response
tokens, as in rlhflab.algorithms.ppo. Numeric tests against hand-computed values are in
tests/test_group_losses.py.
"""

from __future__ import annotations

import torch

from rlhflab.algorithms.ppo import kl_per_token, masked_mean


def leave_one_out_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """RLOO (Ahmadian et al. 2024 eq. 6): A_i = R_i − (1/(k−1)) Σ_{j≠i} R_j within each group of k.

    rewards: [B] with B a multiple of k ≥ 2. Equal to k/(k−1)·(R_i − mean R), so a sample is
    judged against the other samples of its prompt and never against itself."""
    if k < 2:
        raise ValueError("a leave-one-out baseline needs at least 2 samples per prompt")
    g = rewards.view(-1, k)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (k - 1)
    return (g - baseline).reshape(-1)


def group_normalised_advantages(rewards: torch.Tensor, k: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO (Shao et al. 2024 §4.1.2, outcome supervision): Â_i = (r_i − mean(r)) / (std(r) + eps)
    within each group of k; `scale=False` drops the division (Liu et al. 2025, "Dr. GRPO").

    rewards: [B]; std is the sample (unbiased) standard deviation, as TRL's GRPOTrainer. A group
    whose samples all score the same gets 0: nothing to learn from it."""
    if k < 2:
        raise ValueError("a group baseline needs at least 2 samples per prompt")
    g = rewards.view(-1, k)
    adv = g - g.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (g.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1)


def sequence_kl_penalised(scores: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """RLOO's sequence reward R = r_RM − β·Σ_t KL_t ([B]; kl is the per-token estimate [B, T], 0 on padding)."""
    return scores - beta * kl.sum(dim=1)


def rloo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              clip_range: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RLOO's REINFORCE loss on whole sequences (Ahmadian et al. 2024), mean over the batch.

    The sequence ratio ν = π_θ(y|x) / π_old(y|x) = exp Σ_t (log π_θ − log π_old). Plain
    (`clip_range` None): −A·ν, whose gradient at ν = 1 is −A·∇log π_θ(y|x), REINFORCE with the
    leave-one-out baseline; clipped: −min(ν·A, clip(ν, 1±ε)·A), PPO's surrogate at the sequence
    level (TRL's RLOOTrainer) for more than one update per batch."""
    log_ratio = ((logprobs - old_logprobs) * mask).sum(dim=1)
    ratio = torch.exp(log_ratio)
    loss = unclipped = -advantages * ratio
    if clip_range is not None:
        loss = torch.maximum(unclipped, -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range))
    with torch.no_grad():
        stats = {"clipfrac": (loss > unclipped).float().mean(), "ratio": ratio.mean(),
                 "approx_kl": (torch.expm1(log_ratio) - log_ratio).mean()}
    return loss.mean(), stats


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
              advantages: torch.Tensor, mask: torch.Tensor, clip_range: float = 0.2, beta: float = 0.04,
              averaging: str = "sequence", estimator: str = "k3") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO's objective (Shao et al. 2024 eq. 3), negated: per token
    ℓ_t = −min(ν_t·Â, clip(ν_t, 1±ε)·Â) + β·KL_t, with ν_t = π_θ/π_old at token t, Â the sample's
    advantage [B] on every token, and KL_t to the reference by `estimator` (k3: π_ref/π − log(π_ref/π) − 1,
    the paper's unbiased non-negative estimate; differentiable through π_θ).

    averaging "sequence": (1/B) Σ_i (1/|y_i|) Σ_t ℓ_t, the paper's; "token": Σ_i Σ_t ℓ_t / Σ_i |y_i|
    (Yu et al. 2025, DAPO), so a long answer's tokens weigh as much as a short one's."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(1)
    unclipped, clipped = ratio * adv, ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * adv
    surrogate = torch.minimum(unclipped, clipped)
    kl = kl_per_token(logprobs, ref_logprobs, estimator)
    per_token = -surrogate + beta * kl
    if averaging == "sequence":
        loss = ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    elif averaging == "token":
        loss = masked_mean(per_token, mask)
    else:
        raise ValueError(f"unknown averaging {averaging!r}; use sequence or token")
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped < unclipped).float(), mask), "ratio": masked_mean(ratio, mask),
                 "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),
                 "kl_ref": masked_mean(kl, mask)}
    return loss, stats


def preference_pairs(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Online DPO's labels (Guo et al. 2024): rows (2i, 2i+1) are a prompt's two samples; the one the
    reward model scores higher is chosen. Returns [B/2] row indices of the chosen and the rejected
    sample and a 0/1 weight that is 0 for a tie (no preference to learn)."""
    s = scores.view(-1, 2)
    first_wins = s[:, 0] >= s[:, 1]
    base = torch.arange(s.shape[0], device=scores.device) * 2
    chosen = torch.where(first_wins, base, base + 1)
    rejected = torch.where(first_wins, base + 1, base)
    return chosen, rejected, (s[:, 0] != s[:, 1]).to(scores.dtype)
