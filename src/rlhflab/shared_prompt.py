"""Forward passes that encode each prompt once for all of its completions.

A best-of-N pool holds N completions of one prompt and a preference pair two; the quickstart's
prompts are ~4× longer than its completions, so running prompt ⧺ completion whole spends most of
the compute on the same prompt again and again. Here each distinct prompt runs once (left-padded,
its KV cache kept), the cache is indexed out to its completions, and the completions run over it
(right-padded). The result equals the whole forward's to float rounding, with gradients flowing
through the shared prompt as through the whole one (tests/test_shared_prompt.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from rlhflab.algorithms.losses import sequence_logprob_sum
from rlhflab.data.tokenize import IGNORE, LMExample, collate
from rlhflab.models import position_ids


class Member(NamedTuple):
    row: int  # the example's index in the caller's list
    ids: list[int]  # its tokens after the prompt
    labels: list[int]


Group = tuple[tuple[int, ...], list[Member]]  # (prompt tokens, the completions that follow them)


def group_by_prompt(examples: list[LMExample]) -> list[Group]:
    """Examples grouped by their prompt tokens (the unlabelled head), in first-seen order. At least
    one token always follows the prompt, so a completion is never empty."""
    groups: dict[tuple[int, ...], list[Member]] = {}
    for i, ex in enumerate(examples):
        cut = min(sum(1 for t in ex.labels if t == IGNORE), len(ex.input_ids) - 1)
        groups.setdefault(tuple(ex.input_ids[:cut]), []).append(Member(i, ex.input_ids[cut:], ex.labels[cut:]))
    return list(groups.items())


def worth_sharing(groups: list[Group]) -> bool:
    """Something is shared, and every prompt has a token to cache."""
    return all(prefix for prefix, _ in groups) and any(len(m) > 1 for _, m in groups)


def rows_of(groups: list[Group]) -> list[int]:
    return [m.row for _, members in groups for m in members]


def whole(groups: list[Group], pad_id: int) -> dict[str, torch.Tensor]:
    """The groups' examples collated whole (prompt ⧺ completion), in `rows_of` order."""
    return collate([LMExample(list(p) + m.ids, [IGNORE] * len(p) + m.labels) for p, ms in groups for m in ms], pad_id)


def run_shared(module, groups: list[Group], pad_id: int, device, **prompt_kwargs):
    """Each prompt through `module` once, then each completion over its prompt's cache.

    Returns (the prompts' output, the completions' output, the completions collated, the index of
    each completion's prompt); outputs and completions are in `rows_of(groups)` order.
    """
    width = max(len(p) for p, _ in groups)
    prompt_ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt_ids)
    for u, (p, _) in enumerate(groups):
        prompt_ids[u, width - len(p):] = torch.tensor(p)
        prompt_mask[u, width - len(p):] = 1
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    cache = DynamicCache()
    first = module(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids(prompt_mask),
                   past_key_values=cache, use_cache=True, **prompt_kwargs)
    owner = torch.tensor([u for u, (_, ms) in enumerate(groups) for _ in ms], device=device)
    cache.batch_select_indices(owner)
    completions = collate([LMExample(m.ids, m.labels) for _, ms in groups for m in ms], pad_id)
    completions = {k: v.to(device) for k, v in completions.items()}
    mask = torch.cat([prompt_mask[owner], completions["attention_mask"]], dim=1)
    second = module(input_ids=completions["input_ids"], attention_mask=mask, position_ids=position_ids(mask)[:, width:],
                    past_key_values=cache, use_cache=True)
    return first, second, completions, owner


def completion_logprob_sums_shared(model, groups: list[Group], pad_id: int, device) -> torch.Tensor:
    """Σ log π over each completion's labelled tokens, in `rows_of` order: [N]. The prompt's last
    position predicts a completion's first token; the completion's own positions the rest."""
    first, second, comp, owner = run_shared(model, groups, pad_id, device, logits_to_keep=1)
    logits = torch.cat([first.logits[owner], second.logits], dim=1)
    return sequence_logprob_sum(logits, F.pad(comp["labels"], (1, 0), value=IGNORE))


def in_caller_order(values: torch.Tensor, groups: list[Group]) -> torch.Tensor:
    """`values` in `rows_of(groups)` order, put back in the order of the caller's examples."""
    return values[torch.argsort(torch.tensor(rows_of(groups), device=values.device))]
