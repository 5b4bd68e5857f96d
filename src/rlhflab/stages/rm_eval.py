"""`rm_eval` stage: how good are the reward models, in and out of distribution (kirk2024 §6, J.3; ivison2024 §3.3).

For the RM and the proxy RM, on the ID validation pairs and every ID/OOD preference test set:
pairwise accuracy against the annotators' labels; where the task has a gold reward, agreement
with the gold ordering (and the annotators' own gold agreement, the ceiling a perfect annotator
model would reach); the drop from ID to each OOD set; a RewardBench-style score, the weighted mean
over subsets with "prior" subsets weighted 0.5 (ivison2024 table 13). The proxy RM learns from
the validation pairs too, so its "validation" accuracy is in sample; its test accuracies are not.
"""

from __future__ import annotations

import torch

from rlhflab.data.records import PreferenceRecord, read_records, write_json
from rlhflab.evaluation.reward_model import pairwise_accuracy, rewardbench_score, score_pairs
from rlhflab.inputs import gold_reward_of, layout, preference_needs, read_set
from rlhflab.layout import roles
from rlhflab.models import load_reward_model, load_tokenizer
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
    table: dict = {"subsets": {k: len(v) for k, v in subsets.items()}, "sets": sets, "models": {}}
    if gold:
        table["annotator_gold_agreement"] = {
            k: sum(gold(r.prompt, r.chosen) > gold(r.prompt, r.rejected) for r in recs) / len(recs)
            for k, recs in subsets.items()}
    for rm_name in [n for n in ("rm", "rm_proxy") if ctx.has_input(n)]:
        folder = ctx.input(rm_name)
        tok = load_tokenizer(folder)
        rm = load_reward_model(folder, tok, ctx.cfg.model.dtype)
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
    return headline


STAGE = Stage(name="rm_eval", needs=lambda cfg: preference_needs(cfg) + ["rm"], wants=lambda cfg: ["rm_proxy"],
              reads=("rm_eval", "model.dtype"), run=run,
              headline=("rm/accuracy_id", "rm/mean_ood_drop", "rm_proxy/accuracy_id"))
