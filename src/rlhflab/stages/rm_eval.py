"""`rm_eval` stage: how good are the reward models, in and out of distribution (000 §6, J.3; 004 §3.3).

For the RM and the proxy RM, on the ID validation pairs and every ID/OOD preference test set:
pairwise accuracy against the annotators' labels; where the task has a gold reward, agreement
with the gold ordering (and the annotators' own gold agreement, the ceiling a perfect annotator
model would reach); the drop from ID to each OOD set; a RewardBench-style score, the weighted mean
over subsets with "prior" subsets weighted 0.5 (004 table 13).
"""

from __future__ import annotations

import torch

from rlhflab.data.records import PreferenceRecord, read_records, write_json
from rlhflab.evaluation.reward_model import pairwise_accuracy, rewardbench_score, score
from rlhflab.models import load_tokenizer
from rlhflab.pipeline import Stage, StageContext
from rlhflab.stages.common import gold_reward_of, preference_file, preference_files, preference_needs, task_info
from rlhflab.stages.rm import load_reward_model


def _subsets(ctx: StageContext) -> dict[str, str]:
    files = {name: str(preference_file(ctx, rel)) for name, rel in preference_files(task_info(ctx)).items()
             if name != "train"}
    files.update({k: str(v) for k, v in ctx.cfg.rm_eval.extra_preference_files.items()})
    return files


def run(ctx: StageContext) -> dict:
    gold = gold_reward_of(ctx)
    subsets = {name: read_records(path, PreferenceRecord) for name, path in _subsets(ctx).items()}
    prior = set(ctx.cfg.rm_eval.rewardbench_prior)
    table: dict = {"subsets": {k: len(v) for k, v in subsets.items()}, "models": {}}
    if gold:
        table["annotator_gold_agreement"] = {
            k: sum(gold(r.prompt, r.chosen) > gold(r.prompt, r.rejected) for r in recs) / len(recs)
            for k, recs in subsets.items()}
    for rm_name in _reward_models(ctx.cfg):
        folder = ctx.input(rm_name)
        tok = load_tokenizer(folder)
        rm = load_reward_model(str(folder), tok)
        row: dict = {"accuracy": {}, "gold_agreement": {}}
        for k, recs in subsets.items():
            prompts = [r.prompt for r in recs]
            rc = score(rm, tok, prompts, [r.chosen for r in recs])
            rr = score(rm, tok, prompts, [r.rejected for r in recs])
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
        if "test_id" in row["accuracy"]:
            row["ood_drop"] = {k: row["accuracy"]["test_id"] - a for k, a in row["accuracy"].items()
                               if k.startswith("test_ood")}
        scored = {k: a for k, a in row["accuracy"].items() if k != "validation"}
        row["rewardbench_score"] = rewardbench_score(scored, prior & set(scored)) if scored else None
        table["models"][rm_name] = row
    if ctx.is_main:
        write_json(ctx.out / "table.json", table)
    headline = {}
    for rm_name, row in table["models"].items():
        headline[f"{rm_name}/accuracy_id"] = row["accuracy"].get("test_id", row["accuracy"]["validation"])
        if "ood_drop" in row:
            headline[f"{rm_name}/mean_ood_drop"] = sum(row["ood_drop"].values()) / max(1, len(row["ood_drop"]))
        headline[f"{rm_name}/rewardbench_score"] = row["rewardbench_score"]
    return headline


def _reward_models(cfg) -> list[str]:
    return ["rm"] + (["rm_proxy"] if cfg.rm.proxy else [])


STAGE = Stage(name="rm_eval", needs=lambda cfg: preference_needs(cfg) + _reward_models(cfg),
              reads=("rm_eval",), run=run)
