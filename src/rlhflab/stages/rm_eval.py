"""`rm_eval` stage: how good are the reward models, in and out of distribution (kirk2024 §6, J.3; ivison2024 §3.3).

For the RM and the proxy RM, on the ID validation pairs and every ID/OOD preference test set:
pairwise accuracy against the annotators' labels; where the task has a gold reward, agreement
with the gold ordering (and the annotators' own gold agreement, the ceiling a perfect annotator
model would reach); the drop from ID to each OOD set; a RewardBench-style score, the weighted mean
over subsets with "prior" subsets weighted 0.5 (ivison2024 table 13). The proxy RM learns from
the validation pairs too, so its "validation" accuracy is in sample; its test accuracies are not.

With `rm_eval.rewardbench`, each RM is also scored on RewardBench itself (its core set and prior
sets, from the hub or local files in their schema): per-subset accuracy, the four sections, Prior
Sets and the overall score computed as RewardBench does (rlhflab.evaluation.rewardbench).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from rlhflab.config.benchmarks import RewardBench
from rlhflab.data.chat import render
from rlhflab.data.records import PreferenceRecord, read_records, write_json
from rlhflab.data.sources import SourceError, load_source
from rlhflab.data.sources.registry import PREF_TEST_SETS
from rlhflab.evaluation.reward_model import load_scorer, pairwise_accuracy, rewardbench_score, score_pairs
from rlhflab.evaluation.rewardbench import rewardbench_result, subset_accuracies
from rlhflab.inputs import gold_reward_of, layout, preference_needs, read_set
from rlhflab.layout import roles
from rlhflab.pipeline import Stage, StageContext


def run(ctx: StageContext) -> dict:
    gold = gold_reward_of(ctx)
    data = layout(ctx)
    tests = sorted(data.tests("preference"), key=lambda ds: ds.name)
    subsets = {"validation": read_set(ctx, data.require("preference", "validation"))}
    subsets.update({f"test_{ds.name}": read_set(ctx, ds) for ds in tests})
    subsets.update({k: read_records(v, PreferenceRecord) for k, v in ctx.cfg.rm_eval.extra_preference_files.items()})
    sets = {f"test_{k}": {**v, "compare_to": v["compare_to"] and f"test_{v['compare_to']}"}
            for k, v in roles(tests).items()}
    prior = set(ctx.cfg.rm_eval.rewardbench_prior)
    bench = rewardbench_records(ctx.cfg.rm_eval.rewardbench, ctx.seed) if ctx.cfg.rm_eval.rewardbench else None
    table: dict = {"subsets": {k: len(v) for k, v in subsets.items()}, "sets": sets, "models": {}}
    if gold:
        table["annotator_gold_agreement"] = {
            k: sum(gold(r.prompt, r.chosen) > gold(r.prompt, r.rejected) for r in recs) / len(recs)
            for k, recs in subsets.items()}
    for rm_name in [n for n in ("rm", "rm_proxy") if ctx.has_input(n)]:
        rm, tok = load_scorer(ctx.input(rm_name), ctx.cfg.model.dtype)
        row: dict = {"accuracy": {}, "gold_agreement": {}}
        for k, recs in subsets.items():
            prompts = [r.prompt for r in recs]
            rc, rr = score_pairs(rm, tok, prompts, [r.chosen for r in recs], [r.rejected for r in recs])
            row["accuracy"][k] = pairwise_accuracy(rc, rr)
            if gold:
                gc = torch.tensor([gold(r.prompt, r.chosen) for r in recs])
                gr = torch.tensor([gold(r.prompt, r.rejected) for r in recs])
                # RM ordering vs gold ordering, over pairs the gold reward separates
                sep = gc != gr
                rm_says = (rc > rr)[sep]
                gold_says = (gc > gr)[sep]
                row["gold_agreement"][k] = (rm_says == gold_says).float().mean().item()
            ctx.progress(f"rm_eval: {rm_name}", list(subsets).index(k) + 1, len(subsets))
        drops = {k: row["accuracy"][v["compare_to"]] - row["accuracy"][k] for k, v in sets.items()
                 if v["distribution"] == "ood" and v["compare_to"]}
        if drops:
            row["ood_drop"] = drops
        scored = {k: a for k, a in row["accuracy"].items() if k != "validation"}
        row["rewardbench_score"] = rewardbench_score(scored, prior & set(scored)) if scored else None
        if bench is not None:
            for r in bench:  # each RM reads the conversation through its own tokenizer's chat template
                r.prompt = render(r.meta["messages"], tok, "auto")
            row["rewardbench"] = rewardbench_result(
                subset_accuracies(bench, lambda p, c, r: score_pairs(rm, tok, p, c, r)),
                ctx.cfg.rm_eval.rewardbench.prior_subsets)
        table["models"][rm_name] = row
    if ctx.is_main:
        write_json(ctx.out / "table.json", table)
    id_tests = [k for k, v in sets.items() if v["distribution"] == "id"]
    headline = {}
    for rm_name, row in table["models"].items():
        headline[f"{rm_name}/accuracy_id"] = row["accuracy"][id_tests[0] if id_tests else "validation"]
        if "ood_drop" in row:
            headline[f"{rm_name}/mean_ood_drop"] = sum(row["ood_drop"].values()) / max(1, len(row["ood_drop"]))
        headline[f"{rm_name}/rewardbench_score"] = row["rewardbench_score"]
        if "rewardbench" in row:
            headline[f"{rm_name}/rewardbench"] = row["rewardbench"]["score"]
    return headline


def _local(source: str) -> bool:
    return Path(source).exists() or Path(source).suffix in (".json", ".jsonl", ".parquet")


def rewardbench_records(cfg: RewardBench, seed: int) -> list[PreferenceRecord]:
    """RewardBench's core set and prior sets as preference records, subset in `meta["category"]`."""
    records = []
    if cfg.core:
        records += load_source("rewardbench", "preference", "filtered", path=cfg.core if _local(cfg.core) else None)
    if cfg.prior_sets and _local(cfg.prior_sets):
        prior = load_source("rewardbench_prior_sets", "preference", path=cfg.prior_sets)
        if any(r.meta.get("category") is None for r in prior):
            raise SourceError(f"{cfg.prior_sets}: every row needs a `subset` field (anthropic_helpful, shp, ...) "
                              "naming the prior set it belongs to")
        records += prior
    elif cfg.prior_sets:
        for subset in PREF_TEST_SETS:
            part = load_source("rewardbench_prior_sets", "preference", subset)
            for r in part:
                r.meta["category"] = subset
            records += part
    if cfg.max_per_subset is not None:
        rng, kept, by_subset = random.Random(seed), [], {}
        for r in records:
            by_subset.setdefault(r.meta["category"], []).append(r)
        for subset in sorted(by_subset):
            group = by_subset[subset]
            kept += group if len(group) <= cfg.max_per_subset else rng.sample(group, cfg.max_per_subset)
        records = kept
    return records


def _files(cfg) -> list[str]:
    """Local files the stage reads that the config only names (their stamps join the cache key)."""
    bench = cfg.rm_eval.rewardbench
    named = [str(p) for p in cfg.rm_eval.extra_preference_files.values()]
    return named + ([s for s in (bench.core, bench.prior_sets) if s and _local(s)] if bench else [])


STAGE = Stage(name="rm_eval", needs=lambda cfg: preference_needs(cfg) + ["rm"], wants=lambda cfg: ["rm_proxy"],
              reads=("seed", "rm_eval", "model.dtype"), run=run, files=_files,
              headline=("rm/accuracy_id", "rm/mean_ood_drop", "rm_proxy/accuracy_id"))
