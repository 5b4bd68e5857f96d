"""Hyper-parameter sweeps of one stage with selection on validation (kirk2024 appendix E.3/E.4).

The paper sweeps 3–5 learning rates per model type and keeps the run that is best on an
in-distribution validation set: loss for SFT, accuracy for RMs, reward for RL. A config's
`sweep.<stage>` names a grid of dotted config keys; the pipeline runs the stage once per grid
point (same seed, so points differ only in the swept values), keeps every point's metrics and
publishes the selected point's artefacts as the stage's own, so downstream stages read it as
they would an unswept stage. Ablations (kirk2024 table 14's freezing, appendix G's best-of-N
temperature) are sweeps with `select: config`: the table lists every point and the configured
value feeds downstream.

This module is pure (grid expansion, naming, config variants, selection); the pipeline runs it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from pydantic import ValidationError

from rlhflab.cache_key import config_value


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_name(point: dict[str, Any]) -> str:
    """A folder-safe name for a grid point: `optim.lr=0.0003,freeze_fraction=0.8`."""
    text = ",".join(f"{k}={_fmt(v)}" for k, v in point.items())
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


def check_sweep(cfg, stage_name: str, grid: dict[str, list[Any]], reads: tuple[str, ...] | None,
                selectable: bool) -> None:
    """Refuse a sweep the stage cannot honour, naming the key and the fix."""
    where = f"sweep.{stage_name}"
    if reads is None:
        raise ValueError(f"{where}: no active stage {stage_name!r} (is it enabled?)")
    if not selectable:
        raise ValueError(f"{where}: stage {stage_name!r} has no validation metric to select on; "
                         "sweeps run sft, rm, rm_proxy, ppo, dpo and bon")
    for key in grid:
        if not any(key == r or key.startswith(r + ".") for r in reads):
            raise ValueError(f"{where}: {key!r} is not a setting stage {stage_name!r} reads, so sweeping it "
                             f"would change nothing; it reads {', '.join(r for r in reads if r != 'seed')}")
        try:
            config_value(cfg, key)
        except AttributeError:
            raise ValueError(f"{where}: no config key {key!r} (`rlhflab config show` lists them)") from None
    for point in grid_points(grid):
        try:
            with_values(cfg, point)
        except ValidationError as err:
            first = err.errors()[0]
            raise ValueError(f"{where}: the point {point_name(point)} is not a valid config: "
                             f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
