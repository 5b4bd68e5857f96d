"""Losses as pure tensor functions. Shapes and maths in each docstring; numeric tests in tests/."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhflab.data.tokenize import IGNORE


def lm_token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy over labelled positions, and the number of such positions.

    logits: [B, L, V]; labels: [B, L] with IGNORE (-100) where no loss is taken (prompt, padding).
    Position t predicts labels[t+1]. Returns (Σ_t −log p(labels[t+1] | x_≤t), n_tokens).

    Returning the sum lets a trainer divide by the token count of the whole effective batch, so
    gradient accumulation k × b gives exactly the gradient of one batch of k·b.
    """
    shift_logits = logits[:, :-1].reshape(-1, logits.size(-1)).float()
    shift_labels = labels[:, 1:].reshape(-1)
    loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
    return loss, (shift_labels != IGNORE).sum()


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over completion tokens only (kirk2024 appendix E: loss on output tokens)."""
    total, n = lm_token_loss_sum(logits, labels)
    return total / n.clamp(min=1)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: float | torch.Tensor = 0.0,
                       reduction: str = "mean") -> torch.Tensor:
    """Reward-model loss −log σ(r_c − r_r − m) (ivison2024 eq. 1; margin m as in Llama 2, 0 by default).

    r_chosen, r_rejected: [B] scalar rewards of the preferred and dispreferred completion.
    """
    losses = -F.logsigmoid(r_chosen - r_rejected - margin)
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    return losses.mean()


def sequence_logprob_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ_t log π(labels[t+1] | x_≤t) over labelled positions, per row: [B].

    logits: [B, L, V]; labels: [B, L] with IGNORE outside the completion.
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE
    logp = torch.gather(F.log_softmax(shift_logits, dim=-1), 2,
                        shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * valid).sum(dim=1)


def dpo(h: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """DPO (ivison2024 eq. 3): −log σ(β·h)."""
    return -F.logsigmoid(beta * h)


def cdpo(h: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Conservative DPO with label-noise rate ε: −(1−ε)·log σ(β·h) − ε·log σ(−β·h)."""
    return -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


def ipo(h: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """IPO (Azar et al. 2023), β playing τ: (h − 1/(2β))²."""
    return (h - 1 / (2 * beta)) ** 2


DPO_LOSSES = {"dpo": dpo, "cdpo": cdpo, "ipo": ipo}


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, kind: str = "dpo",
             label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO-family losses over summed sequence log-probs [B]; returns (losses, r_c, r_r).

    h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)) is passed to the loss
    `DPO_LOSSES[kind]`; implicit rewards r = β·(log π − log π_ref).
    """
    if kind not in DPO_LOSSES:
        raise ValueError(f"unknown DPO loss {kind!r}; choose from {', '.join(DPO_LOSSES)}")
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    losses = DPO_LOSSES[kind](chosen_ratio - rejected_ratio, beta, label_smoothing)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
