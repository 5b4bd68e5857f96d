"""`comparisons` stage: preference pairs sampled from the SFT policy (Stiennon et al.; kirk2024 §4).

For every prompt of every preference file of the task (train, validation, each ID/OOD test set),
two completions are sampled from the SFT model and the task's simulated annotators pick one
(Bradley–Terry on the gold-reward gap, recalibrated on these training pairs so annotators agree
with the gold ordering as often as `task.annotator_agreement` says). Pairs whose texts are equal,
empty, or tied under the gold reward carry no preference and are dropped (counted in the manifest).

Why: an RM learns the differences it is shown. Pairs of hand-corrupted references teach surface
cues (length, padding) that do not rank the SFT model's own samples, so best-of-N and PPO would
optimise the wrong thing; pairs of policy samples teach the errors the policy actually makes.
The files keep the data stage's layout, so downstream stages read either source the same way.

The proxy RM's own set, when the task has one, gets its two samples the same way but is labelled by
the gold ordering, not the annotators (kirk2024 J.3: other data than the RM's); it is sampled last,
so every other set's samples and labels are what they would be without it.
"""

from __future__ import annotations

import random

import torch

from rlhflab.data import synthetic as syn
from rlhflab.data.records import PreferenceRecord, read_records, write_json, write_jsonl
from rlhflab.generation import sample_texts
from rlhflab.inputs import gold_reward_of, layout
from rlhflab.models import load_causal_lm, load_tokenizer
from rlhflab.pipeline import Stage, StageContext


def preference_sets(data) -> dict:
    """name -> set of every preference file of the task: train, validation, test_<name>, and proxy (last) when the
    task has the proxy RM's own set."""
    sets = {"train": data.require("preference", "train"), "validation": data.require("preference", "validation")}
    sets.update({f"test_{ds.name}": ds for ds in sorted(data.tests("preference"), key=lambda ds: ds.name)})
    proxy = data.get("preference", "proxy")
    return {**sets, "proxy": proxy} if proxy else sets


def candidate_pairs(recs: list[PreferenceRecord], a: list[str], b: list[str], gold) -> tuple[list, dict]:
    """(record, text_a, text_b, gold_a, gold_b) for pairs that carry a preference; drop counts."""
    kept, dropped = [], {"empty": 0, "identical": 0, "gold_tie": 0}
    for r, x, y in zip(recs, a, b):
        if not x.strip() or not y.strip():
            dropped["empty"] += 1
        elif x == y:
            dropped["identical"] += 1
        else:
            gx, gy = gold(r.prompt, x), gold(r.prompt, y)
            if gx == gy:
                dropped["gold_tie"] += 1
            else:
                kept.append((r, x, y, gx, gy))
    return kept, dropped


def label(rng: random.Random, pairs: list, scale: float) -> tuple[list[PreferenceRecord], float]:
    """Simulated annotators choose; returns records and their agreement with the gold ordering."""
    out, agree = [], 0
    for r, x, y, gx, gy in pairs:
        prefers_x = syn.annotate(rng, gx, gy, scale)
        chosen, rejected = (x, y) if prefers_x else (y, x)
        agree += prefers_x == (gx > gy)
        out.append(PreferenceRecord(prompt=r.prompt, chosen=" " + chosen, rejected=" " + rejected,
                                    id=r.id, meta=r.meta))
    return out, agree / max(1, len(pairs))


def gold_label(pairs: list) -> list[PreferenceRecord]:
    """The proxy RM's pairs: chosen by the gold reward itself (pairs tied under it are dropped already)."""
    return [PreferenceRecord(prompt=r.prompt, chosen=" " + (x if gx > gy else y), rejected=" " + (y if gx > gy else x),
                             id=r.id, meta=r.meta) for r, x, y, gx, gy in pairs]


def run(ctx: StageContext) -> dict:
    cfg, g = ctx.cfg.comparisons, ctx.cfg.generation
    gold = gold_reward_of(ctx)
    if gold is None:
        raise ValueError("comparisons.source=sft_samples: the task has no gold reward to label pairs with")
    torch.manual_seed(ctx.seed + 17)
    policy_dir = ctx.input("sft")
    tokenizer = load_tokenizer(policy_dir)
    policy = load_causal_lm(policy_dir, ctx.cfg.model.dtype)

    files = preference_sets(layout(ctx))
    candidates, metrics = {}, {"dropped": {}, "pairs": {}, "annotator_gold_agreement": {}}
    for i, (name, ds) in enumerate(files.items()):
        ctx.progress("comparisons: sampling", i, len(files))
        recs = read_records(ctx.input("data") / ds.file, PreferenceRecord)
        two = sample_texts(policy, tokenizer, [r.prompt for r in recs], k=2, batch_size=g.batch_size * 4,
                           temperature=cfg.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens, decode_mode=g.decode)
        candidates[name], metrics["dropped"][name] = candidate_pairs(recs, two[0::2], two[1::2], gold)
        if len(candidates[name]) < 2:
            raise ValueError(f"{ds.file}: the SFT model's two samples differed in gold reward for only "
                             f"{len(candidates[name])} prompts; raise comparisons.temperature")
    ctx.progress("comparisons: sampling", len(files), len(files))

    scale = syn.annotator_scale([gx - gy for *_, gx, gy in candidates["train"]], ctx.cfg.task.annotator_agreement)
    rng = random.Random(ctx.seed + 23)
    for name, ds in files.items():
        recs, agreement = (gold_label(candidates[name]), 1.0) if name == "proxy" else label(rng, candidates[name], scale)
        metrics["pairs"][name] = len(recs)
        metrics["annotator_gold_agreement"][name] = agreement
        if ctx.is_main:
            write_jsonl(ctx.out / ds.file, recs)
    metrics["annotator_scale"] = scale
    if ctx.is_main:
        write_json(ctx.out / "comparisons.json", metrics)
    return {"train_pairs": metrics["pairs"]["train"],
            "annotator_gold_agreement_train": metrics["annotator_gold_agreement"]["train"]}


STAGE = Stage(name="comparisons", needs=lambda cfg: ["data", "sft"],
              reads=("seed", "generation", "comparisons", "model.dtype", "task.annotator_agreement"),
              run=run, enabled=lambda cfg: cfg.comparisons.source == "sft_samples",
              headline=("train_pairs", "annotator_gold_agreement_train"))
