"""Scoring with a reward model, and reward-model metrics (pure functions over scores).

A reward model scores at the length it was trained at (`rm.max_length`): the rm stage records it
in the RM folder (`reward_model.json`, and `rm_max_length` in its config.json, which any
`from_pretrained` restores); a folder without the record (a user's or hub RM) scores at
`DEFAULT_SCORING_LENGTH` tokens. Over-long inputs lose the start of their prompt
(`encode_completion`), so scoring shorter than training drops what the RM learnt to read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rlhflab.data.tokenize import LMExample, encode_completion, leading_space
from rlhflab.models import backbone, load_reward_model, load_tokenizer, position_ids
from rlhflab.precision import inference_autocast
from rlhflab.shared_prompt import group_by_prompt, in_caller_order, rows_of, run_shared, whole, worth_sharing


SCORING_FILE = "reward_model.json"
DEFAULT_SCORING_LENGTH = 512


def record_scoring_length(model, folder: Path, max_length: int) -> None:
    """Make the RM in `folder` score at `max_length` wherever it is loaded. Call before saving:
    the config attribute travels in a full model's config.json; an adapter-only folder has no
    config.json of its own, so the json beside it is what `load_scorer` reads."""
    model.config.rm_max_length = max_length
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / SCORING_FILE).write_text(json.dumps({"max_length": max_length}) + "\n", encoding="utf-8")


def recorded_scoring_length(folder: str | Path) -> int | None:
    """The length an RM folder records it was trained at, or None (a folder rlhflab did not train)."""
    path = Path(folder) / SCORING_FILE
    if not path.is_file():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("max_length")
    if not isinstance(value, int) or isinstance(value, bool) or value < 16:
        raise ValueError(f"{path}: max_length must be an integer >= 16 (the RM's training rm.max_length), "
                         f"got {value!r}; fix it or delete the file to score at {DEFAULT_SCORING_LENGTH}")
    return value


def scoring_length(model) -> int:
    return getattr(model.config, "rm_max_length", None) or DEFAULT_SCORING_LENGTH


def load_scorer(folder: str | Path, dtype: str = "float32"):
    """(reward model, tokenizer) of an RM folder, set to score at the length it was trained at."""
    tok = load_tokenizer(folder)
    model = load_reward_model(folder, tok, dtype)
    recorded = recorded_scoring_length(folder)
    if recorded is not None:
        model.config.rm_max_length = recorded
    return model, tok


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 64,
          max_length: int | None = None) -> torch.Tensor:
    """Reward of each (prompt, completion): the scalar head at the last token (EOS appended). [N]
    Truncated to `max_length` tokens, by default the model's `scoring_length`.

    Completions of the same prompt (a best-of-N pool, the two sides of a pair) share one encoding
    of it (rlhflab.shared_prompt): scoring a pool of 16 of the quickstart's completions costs about
    a third of scoring each (prompt, completion) whole, with the same rewards to float rounding.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    max_length = max_length or scoring_length(model)
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
