"""Hyper-parameter sweeps of one stage with selection on validation (kirk2024 appendix E.3/E.4).

The paper sweeps 3–5 learning rates per model type and keeps the run that is best on an
in-distribution validation set: loss for SFT, accuracy for RMs, reward for RL. A config's
`sweep.<stage>` names a grid of dotted config keys; the pipeline runs the stage once per grid
point (same seed, so points differ only in the swept values), keeps every point's metrics and
publishes the selected point's artefacts as the stage's own, so downstream stages read it as
they would an unswept stage. Ablations (kirk2024 table 14's freezing, appendix G's best-of-N
temperature) are sweeps with `select: config`: the table lists every point and the configured
value feeds downstream.

Grid expansion, naming, config variants and selection are pure functions; `run_sweep` is what
the pipeline calls in place of `stage.run` for a swept stage.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list
from pydantic import ValidationError

from rlhflab.cache_key import ConfigView, config_value
from rlhflab.data.records import write_json


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def format_value(v: Any) -> str:
    """A grid value as point names and tables print it."""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_name(point: dict[str, Any]) -> str:
    """A folder-safe name for a grid point: `optim.lr=0.0003,freeze_fraction=0.8`."""
    text = ",".join(f"{k}={format_value(v)}" for k, v in point.items())
    return "".join(c if c.isalnum() or c in "._=,+-" else "_" for c in text)


def with_values(cfg, point: dict[str, Any]):
    """A copy of the config with the point's dotted keys set, validated like a loaded config."""
    data = cfg.model_dump(mode="python")
    for key, value in point.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    new = type(cfg).model_validate(data)
    new._source = getattr(cfg, "_source", None)
    return new


def configured_point(cfg, grid: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: config_value(cfg, k) for k in grid}


def select_point(rows: list[dict], metric: str, mode: str) -> int:
    """Index of the best row by `metric` ("min" or "max"); rows without a finite value never win;
    ties go to the earlier point (the grid's order)."""
    best, best_value = None, None
    for i, row in enumerate(rows):
        v = row.get(metric)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        if best is None or (v < best_value if mode == "min" else v > best_value):
            best, best_value = i, v
    if best is None:
        raise ValueError(f"no sweep point reported a finite {metric!r}")
    return best


def sweep_of(cfg, stage):
    """The stage's sweep spec under this config, or None."""
    return getattr(cfg.sweep, stage.name, None) if stage.select else None


def key_reads(stage) -> tuple[str, ...]:
    """The config keys a stage's cache key covers: what it reads, its sweep when it can be swept,
    and the inference precision every stage's forward passes follow (rlhflab.precision)."""
    return stage.reads + ((f"sweep.{stage.name}",) if stage.select else ()) + ("model.inference_autocast",)


def sweeps_problem(cfg, stages) -> str | None:
    """The first sweep of the config that the active stages cannot honour, or None; checked before
    any stage runs."""
    by_name = {s.name: s for s in stages}
    for name in type(cfg.sweep).model_fields:
        spec = getattr(cfg.sweep, name)
        if spec is not None and (problem := sweep_problem(cfg, name, spec, by_name.get(name), stages)):
            return problem
    return None


def _covers(reads, key: str) -> bool:
    """Whether a stage reading `reads` sees `key` (the key itself, a section above it, or a key under it)."""
    return any(key == r or key.startswith(r + ".") or r.startswith(key + ".") for r in reads)


def sweep_problem(cfg, stage_name: str, spec, stage, stages=()) -> str | None:
    """Why the stage cannot honour this sweep (naming the key and the fix), or None."""
    where = f"sweep.{stage_name}"
    if stage is None:
        return f"{where}: no active stage {stage_name!r} (is it enabled?)"
    if stage.select is None:
        return (f"{where}: stage {stage_name!r} has no validation metric to select on; "
                "sweeps run sft, rm, rm_proxy, ppo, dpo and bon")
    for key in spec.grid:
        if not any(key == r or key.startswith(r + ".") for r in stage.reads):
            return (f"{where}: {key!r} is not a setting stage {stage_name!r} reads, so sweeping it would change "
                    f"nothing; it reads {', '.join(r for r in stage.reads if r != 'seed')}")
        try:
            config_value(cfg, key)
        except AttributeError:
            return f"{where}: no config key {key!r} (`rlhflab config show` lists them)"
    if spec.select == "best":
        # a selected value must reach everything downstream; a stage that reads the key itself would
        # keep the configured value (eval and diversity draw best-of-N with bon.* themselves)
        for key in spec.grid:
            others = [s.name for s in stages if s.name != stage_name and _covers(s.reads, key)
                      and key not in getattr(getattr(cfg.sweep, s.name, None), "grid", {})]  # unless swept too
            if others:
                return (f"{where}: {key!r} is also read by {', '.join(others)}, which would keep the configured "
                        "value, not the selected one; sweep the key in those stages too where they can be swept, use "
                        "select: config (an "
                        "ablation: every point is reported, the configured value feeds downstream), or turn "
                        "those stages off")
    points = grid_points(spec.grid)
    names = [point_name(p) for p in points]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        return f"{where}: two points share the folder name {twice!r}; give values that differ when printed"
    for point in points:
        try:
            with_values(cfg, point)
        except ValidationError as err:
            first = err.errors()[0]
            return (f"{where}: the point {point_name(point)} is not a valid config: "
                    f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    configured = configured_point(cfg, spec.grid)
    if spec.select == "config" and configured not in points:
        return (f"{where}: select: config keeps the configured values ({point_name(configured)}),"
                " which are not a point of the grid; add them to the grid")
    return None


WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def _drop_weights(folder: Path) -> None:
    """A point that was not selected keeps its curves, tables and outputs; its weights go."""
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix in WEIGHTS:
            p.unlink()


def run_sweep(ctx, cfg, spec) -> dict:
    """Run the stage once per grid point into `<stage>/grid/<point>/`, then publish the selected
    point's artefacts as the stage's own (kirk2024 appendix E.3)."""
    stage, state = ctx.stage, ctx.state
    metric, mode = stage.select
    points = grid_points(spec.grid)
    rows = []
    for i, point in enumerate(points):
        name = point_name(point)
        out = ctx.out / "grid" / name
        if ctx.is_main:
            out.mkdir(parents=True)
        state.wait_for_everyone()
        tag = f" [{i + 1}/{len(points)} {name}]"
        sub = dataclasses.replace(ctx, cfg=ConfigView(with_values(cfg, point), stage.reads, stage.name), out=out,
                                  on_progress=lambda d, done, n, tag=tag: ctx.on_progress(d + tag, done, n),
                                  key=f"{ctx.key}-p{i}")
        rows.append({"name": name, "values": point, "metrics": stage.run(sub) or {}})
        state.wait_for_everyone()
    if spec.select == "config":
        chosen = points.index(configured_point(cfg, spec.grid))
    else:  # decided once, so every process publishes the same point
        chosen = [select_point([r["metrics"] for r in rows], metric, mode) if ctx.is_main else None]
        if state.num_processes > 1:
            broadcast_object_list(chosen)
        chosen = chosen[0]
    if ctx.is_main:
        picked = ctx.out / "grid" / rows[chosen]["name"]
        for entry in list(picked.iterdir()):
            shutil.move(str(entry), str(ctx.out / entry.name))
        if (ctx.out / "metrics.jsonl").exists():
            shutil.copy2(ctx.out / "metrics.jsonl", picked / "metrics.jsonl")
        for i, row in enumerate(rows):
            if i != chosen:
                _drop_weights(ctx.out / "grid" / row["name"])
        write_json(ctx.out / "grid.json", {
            "stage": stage.name, "metric": metric, "mode": mode, "select": spec.select, "keys": list(spec.grid),
            "headline": list(stage.headline),
            "selected": rows[chosen]["name"],
            "points": [{**r, "selected": i == chosen} for i, r in enumerate(rows)]})
    state.wait_for_everyone()
    return {**rows[chosen]["metrics"],
            "sweep": {"selected": rows[chosen]["name"], "metric": metric,
                      "points": {r["name"]: r["metrics"].get(metric) for r in rows}}}
