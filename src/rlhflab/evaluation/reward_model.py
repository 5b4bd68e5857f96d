"""Scoring with a reward model, and reward-model metrics (pure functions over scores)."""

from __future__ import annotations

import torch

from rlhflab.data.tokenize import collate, encode_completion, leading_space
from rlhflab.models import position_ids


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 64,
          max_length: int = 512) -> torch.Tensor:
    """Reward of each (prompt, completion): the scalar head at the last token (EOS appended). [N]"""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        ex = [encode_completion(tokenizer, p, leading_space(p, c), max_length)
              for p, c in zip(prompts[i:i + batch_size], completions[i:i + batch_size])]
        b = collate(ex, tokenizer.pad_token_id)
        out.append(reward_forward(model, b["input_ids"].to(device), b["attention_mask"].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def reward_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar reward at the last non-pad token of each right-padded row. [B]

    Indexes by the attention mask rather than by the pad id, so tokenizers whose pad equals EOS
    still score at EOS.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids(attention_mask)).last_hidden_state
    last = attention_mask.sum(dim=1) - 1
    h = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    return model.score(h).squeeze(-1)


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Share of pairs where the chosen completion scores higher (ties count half)."""
    wins = (r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()
    return wins.mean().item()


def rewardbench_score(subset_accuracy: dict[str, float], prior: set[str] = frozenset()) -> float:
    """Weighted mean of subset accuracies, subsets in `prior` weighted 0.5 (ivison2024 table 13,
    following Lambert et al.'s RewardBench)."""
    unknown = set(prior) - set(subset_accuracy)
    if unknown:
        raise ValueError(f"prior subsets {sorted(unknown)} have no accuracy")
    weights = {k: (0.5 if k in prior else 1.0) for k in subset_accuracy}
    return sum(weights[k] * a for k, a in subset_accuracy.items()) / sum(weights.values())
