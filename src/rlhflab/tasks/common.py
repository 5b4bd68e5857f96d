"""The rules every task builder applies to the sets a config leaves out (also in the README):

- a missing SFT or preference validation set is a seeded 5% of its training set (at least one
  record), carved out of it;
- policy prompts default to the SFT prompts (kirk2024 J.1: the RLHF split is the SFT split without
  the outputs), or to the preference prompts when there is no SFT data; the policy validation
  prompts likewise come from the SFT (or preference) validation set.
"""

from __future__ import annotations

import random
from typing import Callable

from rlhflab.data.sources import as_prompts


def carve_validation(records: list, seed: int, key: Callable | None = None) -> tuple[list, list]:
    """(train, validation): a seeded 5% (at least one record) moved out of `records`. With `key`,
    records of one key move together (whole groups until 5% is reached), so the two sides share no
    key; with a single key there is nothing to keep apart and records are carved one by one."""
    rng = random.Random(seed)
    want = max(1, len(records) // 20)
    groups: dict = {}
    for i, r in enumerate(records):
        groups.setdefault(key(r) if key is not None else i, []).append(i)
    if len(groups) < 2:
        groups = {i: [i] for i in range(len(records))}
    order = list(groups)
    rng.shuffle(order)
    val: set[int] = set()
    for g in order:
        if len(val) >= want:
            break
        val.update(groups[g])
    return [r for i, r in enumerate(records) if i not in val], [r for i, r in enumerate(records) if i in val]


def fill_missing(sets: dict[str, list | None], seed: int) -> dict[str, list | None]:
    """Apply the rules above to sets keyed sft_train, sft_validation, preference_train,
    preference_validation, policy_prompts, policy_validation (None = not given)."""
    s = dict(sets)
    for kind, offset in (("sft", 0), ("preference", 1)):
        if s[f"{kind}_train"] is not None and s[f"{kind}_validation"] is None:
            s[f"{kind}_train"], s[f"{kind}_validation"] = carve_validation(s[f"{kind}_train"], seed + offset)
    if not s["policy_prompts"]:
        s["policy_prompts"] = as_prompts(s["sft_train"] or s["preference_train"] or [])
    if not s["policy_validation"]:
        s["policy_validation"] = as_prompts(s["sft_validation"] or s["preference_validation"] or [])
    return s


def corpus_from_training(sft_train: list | None, preference_train: list | None) -> list[dict]:
    """The pretraining corpus a task without one of its own gets: its SFT texts (prompt + completion),
    else its preferred responses (prompt + chosen), so a small model can be pretrained on the task."""
    if sft_train:
        return [{"text": r.prompt + r.completion} for r in sft_train]
    return [{"text": r.prompt + r.chosen} for r in preference_train or []]
