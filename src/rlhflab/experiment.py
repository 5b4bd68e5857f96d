"""Running a whole experiment: one pipeline per seed (`seeds: [...]`), then the aggregate over seeds.

Kept apart from rlhflab.pipeline so the stages, which import the pipeline, do not depend on the
reporting code through it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rlhflab.config import ExperimentConfig
from rlhflab.pipeline import Stage, StageResult, run_pipeline


def seed_configs(cfg: ExperimentConfig) -> list[ExperimentConfig]:
    """The config of each seed's run: `<name>-s<seed>` per seed with `seeds`, else the config itself."""
    if not cfg.seeds:
        return [cfg]
    return [cfg.model_copy(update={"seed": s, "name": f"{cfg.name}-s{s}", "seeds": None}) for s in cfg.seeds]


def with_seed_count(cfg: ExperimentConfig, n: int) -> ExperimentConfig:
    """The config run with `n` seeds: the first n of its `seeds` (continued by consecutive seeds
    when it lists fewer), or with n = 1 a single run named as the config, with its first seed. The
    data seed stays the config's, so `--seeds 1` builds the same data as the multi-seed run."""
    if n < 1:
        raise ValueError(f"--seeds {n}: the number of seeds must be at least 1")
    listed = list(cfg.seeds or [cfg.seed])
    chosen = (listed + list(range(max(listed) + 1, max(listed) + 1 + n)))[:n]
    if n == 1:
        return cfg.model_copy(update={"seed": chosen[0], "seeds": None})
    return cfg.model_copy(update={"seeds": chosen})


def aggregate_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.output_dir) / f"{cfg.name}-aggregate"


def run_experiment(cfg: ExperimentConfig, registry: list[Stage], *, until: str | None = None,
                   force: set[str] = frozenset(), overwrite: bool = False,
                   on_done: Callable[[ExperimentConfig, list[StageResult], float], None] = lambda c, r, s: None,
                   **callbacks) -> Path | None:
    """Run every seed's pipeline; aggregate them when there are several and all have a report.
    Returns the aggregate folder, or None when nothing was aggregated."""
    runs = []
    for sub in seed_configs(cfg):
        started = time.time()
        # earlier seeds' runs lend the stages whose key is the same here (data and the base model)
        results = run_pipeline(sub, registry, until=until, force=force, overwrite=overwrite, donors=tuple(runs),
                               **callbacks)
        on_done(sub, results, time.time() - started)
        runs.append(sub.run_dir)
    if len(runs) < 2 or not all((r / "report" / "findings.json").exists() for r in runs):
        return None
    from rlhflab.aggregate import aggregate_runs

    target = aggregate_dir(cfg)
    aggregate_runs(runs, target)
    return target
