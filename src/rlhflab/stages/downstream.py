"""`downstream` stage: every policy on the second paper's benchmark suite through lm-evaluation-harness
(ivison2024 §3, table 1, appendix D).

Each policy's saved model (SFT, PPO, DPO: best-of-N has no model of its own) is wrapped in lm-eval's
`HFLM` and evaluated on each configured task with its few-shot count and metric, the tokenizer's
chat template applied where it has one. Writes `table.json` (score and standard error per policy
and task, category averages, the overall average, the change against SFT, seconds per task) and
`items.json` (per-item metric values, for the report's paired comparisons).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rlhflab.config.benchmarks import DownstreamStage
from rlhflab.data.records import write_json
from rlhflab.evaluation.downstream import averages, changes_vs_sft, run_task, task_manager
from rlhflab.inputs import available_policies
from rlhflab.models import load_causal_lm, load_tokenizer
from rlhflab.pipeline import Stage, StageContext


def policy_lm(folder, dtype: str, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    model = load_causal_lm(folder, dtype).eval()
    tokenizer = load_tokenizer(folder)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=model.to(device), tokenizer=tokenizer, batch_size=batch_size, device=device), tokenizer


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.downstream
    manager = task_manager(cfg.task_dirs, cfg.builtin_tasks)
    policies = available_policies(ctx, cfg.policies)
    table: dict = {"tasks": [t.model_dump() for t in cfg.tasks], "limit": cfg.limit, "policies": {},
                   "categories": {}, "average": {}, "seconds": {}}
    items: dict = {}
    steps, done = len(policies) * len(cfg.tasks), 0
    for policy in policies:
        lm, tokenizer = policy_lm(ctx.input(policy), ctx.cfg.model.dtype, cfg.batch_size)
        chat = cfg.chat_template == "on" or (cfg.chat_template == "auto" and bool(tokenizer.chat_template))
        rows, items[policy], table["seconds"][policy] = {}, {}, {}
        for task in cfg.tasks:
            ctx.progress(f"downstream: {policy} {task.name}", done, steps)
            start = time.perf_counter()
            result = run_task(lm, task, manager, limit=cfg.limit, chat_template=chat, seed=ctx.seed,
                              allow_code_execution=cfg.allow_code_execution)
            table["seconds"][policy][task.name] = round(time.perf_counter() - start, 2)
            items[policy][task.name] = result.pop("items", None)
            rows[task.name] = result
            done += 1
        table["policies"][policy] = rows
        summary = averages({k: r.get("score") for k, r in rows.items()}, cfg.tasks)
        table["categories"][policy], table["average"][policy] = summary["categories"], summary["average"]
        del lm
    ctx.progress("downstream", steps, steps)
    table["delta_vs_sft"] = changes_vs_sft(table["policies"])
    if ctx.is_main:
        write_json(ctx.out / "table.json", table)
        write_json(ctx.out / "items.json", items)
    return {f"{p}/average": a for p, a in table["average"].items()}


def _task_files(cfg) -> list[str]:
    """The local task definitions (their stamps join the cache key; data files they name do not)."""
    return sorted(str(f) for d in cfg.downstream.task_dirs for f in Path(d).rglob("*.yaml"))


STAGE = Stage(name="downstream", needs=lambda cfg: ["sft"],
              wants=lambda cfg: [p for p in cfg.downstream.policies if p != "sft"],
              # every downstream key but alpaca_eval_sets, which only the report reads (no rerun of lm-eval)
              reads=("seed", "model.dtype", *(f"downstream.{k}" for k in DownstreamStage.model_fields
                                               if k != "alpaca_eval_sets")),
              run=run, enabled=lambda cfg: cfg.downstream.enabled,
              files=_task_files,
              headline=("sft/average", "ppo/average", "dpo/average"))
