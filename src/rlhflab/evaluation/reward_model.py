"""Scoring with a reward model, and reward-model metrics (pure functions over scores)."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from rlhflab.data.tokenize import IGNORE, LMExample, collate, encode_completion, leading_space
from rlhflab.models import position_ids


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 64,
          max_length: int = 512) -> torch.Tensor:
    """Reward of each (prompt, completion): the scalar head at the last token (EOS appended). [N]

    Completions of the same prompt (a best-of-N pool, the two sides of a pair) share one encoding
    of it: the prompt's tokens run once and their KV cache serves each of its completions. The
    quickstart's prompts are ~4× longer than its completions, so scoring a pool of 16 costs about
    a fifth of scoring each (prompt, completion) whole; the rewards equal the whole forward's to
    float rounding (tests/test_reward_model.py).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ex = encode_completion(tokenizer, p, leading_space(p, c), max_length)
        cut = min(sum(1 for t in ex.labels if t == IGNORE), len(ex.input_ids) - 1)
        groups.setdefault(tuple(ex.input_ids[:cut]), []).append((i, ex.input_ids[cut:]))
    out = torch.zeros(len(prompts))
    batch: list[tuple[tuple[int, ...], list[tuple[int, list[int]]]]] = []
    items = list(groups.items())
    for j, group in enumerate(items):
        batch.append(group)
        if sum(len(g) for _, g in batch) >= batch_size or j == len(items) - 1:
            rows = [i for _, g in batch for i, _ in g]
            out[rows] = shared_prefix_rewards(model, batch, tokenizer.pad_token_id, device).float().cpu()
            batch = []
    model.train(was_training)
    return out


def score_pairs(model, tokenizer, prompts: list[str], first: list[str], second: list[str],
                **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of both sides of pairs, in one pass so each pair's prompt is encoded once."""
    r = score(model, tokenizer, prompts + prompts, first + second, **kw)
    return r[: len(prompts)], r[len(prompts):]


def shared_prefix_rewards(model, groups, pad_id: int, device) -> torch.Tensor:
    """Rewards of [(prefix ids, [(row, suffix ids), ...]), ...], row order: each prefix's forward once
    (left-padded, cached), then every suffix over its prefix's cache (right-padded). A batch where
    nothing is shared, or with an empty prefix (no prompt tokens), is scored whole."""
    if any(not prefix for prefix, _ in groups) or all(len(g) == 1 for _, g in groups):
        whole = [list(prefix) + suffix for prefix, g in groups for _, suffix in g]
        b = collate([LMExample(ids, ids) for ids in whole], pad_id)
        return reward_forward(model, b["input_ids"].to(device), b["attention_mask"].to(device))
    width = max(len(prefix) for prefix, _ in groups)
    prefix_ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    prefix_mask = torch.zeros_like(prefix_ids)
    for u, (prefix, _) in enumerate(groups):
        prefix_ids[u, width - len(prefix):] = torch.tensor(prefix)
        prefix_mask[u, width - len(prefix):] = 1
    cache = DynamicCache()
    model.base_model(input_ids=prefix_ids.to(device), attention_mask=prefix_mask.to(device),
                     position_ids=position_ids(prefix_mask).to(device), past_key_values=cache, use_cache=True)
    owner = torch.tensor([u for u, (_, g) in enumerate(groups) for _ in g], device=device)
    cache.batch_select_indices(owner)
    suffixes = collate([LMExample(s, s) for _, g in groups for _, s in g], pad_id)
    mask = torch.cat([prefix_mask.to(device)[owner], suffixes["attention_mask"].to(device)], dim=1)
    hidden = model.base_model(input_ids=suffixes["input_ids"].to(device), attention_mask=mask,
                              position_ids=position_ids(mask)[:, width:], past_key_values=cache,
                              use_cache=True).last_hidden_state
    last = suffixes["attention_mask"].sum(dim=1).to(device) - 1
    return model.score(hidden[torch.arange(hidden.size(0), device=device), last]).squeeze(-1)


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
