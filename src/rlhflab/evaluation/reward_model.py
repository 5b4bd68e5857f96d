"""Scoring with a reward model, and reward-model metrics (pure functions over scores)."""

from __future__ import annotations

import torch

from rlhflab.data.tokenize import LMExample, encode_completion, leading_space
from rlhflab.models import backbone, position_ids
from rlhflab.precision import inference_autocast
from rlhflab.shared_prompt import group_by_prompt, in_caller_order, rows_of, run_shared, whole, worth_sharing


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 64,
          max_length: int = 512) -> torch.Tensor:
    """Reward of each (prompt, completion): the scalar head at the last token (EOS appended). [N]

    Completions of the same prompt (a best-of-N pool, the two sides of a pair) share one encoding
    of it (rlhflab.shared_prompt): scoring a pool of 16 of the quickstart's completions costs about
    a third of scoring each (prompt, completion) whole, with the same rewards to float rounding.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    examples = [encode_completion(tokenizer, p, leading_space(p, c), max_length) for p, c in zip(prompts, completions)]
    out = torch.zeros(len(prompts))
    batch, rows = [], 0
    groups = group_by_prompt(examples)
    for j, group in enumerate(groups):
        batch.append(group)
        rows += len(group[1])
        if rows >= batch_size or j == len(groups) - 1:
            with inference_autocast(device):
                out[rows_of(batch)] = _group_rewards(model, batch, tokenizer.pad_token_id, device).float().cpu()
            batch, rows = [], 0
    model.train(was_training)
    return out


def score_pairs(model, tokenizer, prompts: list[str], first: list[str], second: list[str],
                **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of both sides of pairs, in one pass so each pair's prompt is encoded once."""
    r = score(model, tokenizer, prompts + prompts, first + second, **kw)
    return r[: len(prompts)], r[len(prompts):]


def example_rewards(model, examples: list[LMExample], pad_id: int, device) -> torch.Tensor:
    """Rewards of tokenised examples in their order, each prompt encoded once (differentiable:
    the RM's training forward). `model` is the RM, or a DDP-wrapped `RewardScorer` of it: then one
    forward over the whole padded batch goes through the wrapper, because DDP's gradient hooks see
    only passes made through it, and a shared prompt's two passes would upset them."""
    groups = group_by_prompt(examples)
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        b = whole(groups, pad_id)
        return in_caller_order(model(b["input_ids"].to(device), b["attention_mask"].to(device)), groups)
    return in_caller_order(_group_rewards(model, groups, pad_id, device), groups)


class RewardScorer(torch.nn.Module):
    """The RM's reward as a module's forward, for a data-parallel wrapper to wrap."""

    def __init__(self, rm: torch.nn.Module):
        super().__init__()
        self.rm = rm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return reward_forward(self.rm, input_ids, attention_mask)


def _group_rewards(model, groups, pad_id: int, device) -> torch.Tensor:
    """Rewards in `rows_of(groups)` order; whole when nothing would be shared."""
    if worth_sharing(groups):  # each prompt once, then its completions over its cache
        _, out, completions, _ = run_shared(backbone(model), groups, pad_id, device)
        return _head_at_last_token(model, out.last_hidden_state, completions["attention_mask"])
    b = whole(groups, pad_id)
    return reward_forward(model, b["input_ids"].to(device), b["attention_mask"].to(device))


def reward_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar reward at the last non-pad token of each right-padded row. [B]

    Indexes by the attention mask rather than by the pad id, so tokenizers whose pad equals EOS
    still score at EOS.
    """
    hidden = backbone(model)(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids(attention_mask)).last_hidden_state
    return _head_at_last_token(model, hidden, attention_mask)


def _head_at_last_token(model, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The scalar head on each right-padded row's last real position: [B]."""
    last = attention_mask.sum(dim=1) - 1
    return model.score(hidden[torch.arange(hidden.size(0), device=hidden.device), last]).squeeze(-1)


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
