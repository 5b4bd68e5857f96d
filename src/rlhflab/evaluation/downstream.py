"""Downstream benchmarks through lm-evaluation-harness, and the second paper's averages over them.

`run_task(lm, task, ...)` evaluates one policy (any lm-eval `LM`: the stage wraps a saved model in
lm-eval's `HFLM`) on one benchmark and returns its score in percent -- lm-eval's own aggregate of
the configured metric, so a group such as MMLU or BBH is aggregated as lm-eval does -- with the
per-item values behind it (items of a group pooled in subtask order) for paired comparisons
between policies. `averages` gives ivison2024's summary (appendix D): the mean of each category's
benchmarks, then the mean over categories.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from rlhflab.config.benchmarks import DownstreamTask
from rlhflab.stats import standard_error

# lm-eval tasks rlhflab ships (XSTest); always indexed, so the suite names them like lm-eval's own
PACKAGED_TASKS = Path(__file__).resolve().parent.parent / "lm_eval_tasks"
CODE_SKIP = "executes model-written code: set downstream.allow_code_execution: true to run it"


def task_manager(task_dirs: Sequence, builtin: bool):
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise RuntimeError("the downstream stage needs lm-evaluation-harness: pip install 'rlhflab[downstream]' "
                           "(or set downstream.enabled: false)") from None

    return TaskManager(include_path=[str(d) for d in task_dirs] + [str(PACKAGED_TASKS)], include_defaults=builtin)


def run_task(lm, task: DownstreamTask, manager, *, limit: float | None, chat_template: bool, seed: int,
             allow_code_execution: bool = False) -> dict:
    """{"score", "se", "n", "items"} in percent, or {"skipped": why} for a code task not allowed. The
    standard error is over items, so it is left out where the score is not a mean of them (F1)."""
    from lm_eval import simple_evaluate

    if task.code and not allow_code_execution:
        return {"skipped": CODE_SKIP}
    if task.code:
        os.environ["HF_ALLOW_CODE_EVAL"] = "1"  # HF evaluate's code_eval refuses to run without it
    out = simple_evaluate(model=lm, tasks=[task.name], num_fewshot=task.num_fewshot, limit=limit,
                          task_manager=manager, apply_chat_template=chat_template, log_samples=True,
                          bootstrap_iters=0, confirm_run_unsafe_code=task.code, random_seed=seed,
                          numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
    items = _items(out["samples"], task)
    row = {**(out.get("groups") or {}), **out["results"]}.get(task.name, {})
    key = _metric_key(row, task)
    mean_of_items = task.item_metric in (None, task.metric)
    if key is None and not mean_of_items:
        raise ValueError(f"downstream task {task.name!r}: lm-eval reports no {task.metric!r}; set the task's metric "
                         f"to one it reports")
    score = float(row[key]) if key is not None else (sum(items) / len(items) if items else math.nan)
    return {"score": 100 * score, "se": 100 * standard_error(items) if mean_of_items and len(items) > 1 else None,
            "n": len(items), "items": items}


def _metric_key(row: dict, task: DownstreamTask) -> str | None:
    if task.filter is not None:
        return f"{task.metric},{task.filter}" if f"{task.metric},{task.filter}" in row else None
    return next((k for k in row if k.startswith(f"{task.metric},") and "_stderr" not in k), None)


def _items(samples: dict, task: DownstreamTask) -> list[float]:
    """The per-item metric's value per item, the configured filter's (or each subtask's first filter's)."""
    metric = task.item_metric or task.metric
    values = []
    for subtask in sorted(samples):
        rows = samples[subtask]
        wanted = task.filter or (rows[0].get("filter") if rows else None)
        for s in sorted((r for r in rows if r.get("filter") == wanted), key=lambda r: r["doc_id"]):
            v = s.get(metric)
            if isinstance(v, (list, tuple)):  # pass@k over several samples of one item: the item's mean
                v = sum(v) / len(v) if v else None
            if isinstance(v, (int, float)):  # bools included
                values.append(float(v))
    if not values:
        raise ValueError(f"downstream task {task.name!r}: lm-eval's samples hold no {metric!r} values "
                         f"(filter {task.filter!r}); set the task's metric / filter to ones it reports")
    return values


def averages(scores: dict[str, float | None], tasks: Sequence[DownstreamTask]) -> dict:
    """{"categories": {category: mean of its scored tasks}, "average": mean over those categories}."""
    return category_averages(scores, {t.name: t.category for t in tasks})


def category_averages(scores: dict[str, float | None], category: dict[str, str]) -> dict:
    """`averages` with each benchmark's category given by name (benchmarks not in `category` are left out)."""
    by_cat: dict[str, list[float]] = {}
    for name, cat in category.items():
        if scores.get(name) is not None:
            by_cat.setdefault(cat, []).append(scores[name])
    cats = {c: sum(v) / len(v) for c, v in by_cat.items()}
    return {"categories": cats, "average": sum(cats.values()) / len(cats) if cats else None}


def changes_vs_sft(policies: dict[str, dict[str, dict]]) -> dict[str, dict[str, float]]:
    """Each policy's score minus SFT's, per benchmark both were scored on (policy -> benchmark -> row)."""
    sft = policies.get("sft", {})
    return {p: {k: r["score"] - sft[k]["score"] for k, r in rows.items()
                if r.get("score") is not None and sft.get(k, {}).get("score") is not None}
            for p, rows in policies.items() if p != "sft"}
