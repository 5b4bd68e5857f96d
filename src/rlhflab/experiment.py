"""Running a whole experiment: one pipeline per seed (`seeds: [...]`), then the aggregate over seeds.

Kept apart from rlhflab.pipeline so the stages, which import the pipeline, do not depend on the
reporting code through it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

from rlhflab.artefacts import check_files, donated_folder, read_manifest
from rlhflab.cache_key import stage_key
from rlhflab.config import ExperimentConfig
from rlhflab.pipeline import Stage, StageResult, active_stages, run_pipeline, select, stage_inputs
from rlhflab.sweep import key_reads


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


def sibling_runs(cfg: ExperimentConfig) -> list[Path]:
    """The existing run folders of this experiment under another seed count: `<name>/` (a one-seed
    run) and `<name>-s<seed>/` (a multi-seed run's). Their stages lend what this run would compute
    again (same key), so `--seeds 1` after a three-seed run reuses seed 0's folder, and back."""
    out = Path(cfg.output_dir)
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir()
                  and (p.name == cfg.name or re.fullmatch(rf"{re.escape(cfg.name)}-s\d+", p.name)))


def _donors(sub: ExperimentConfig, earlier: list[Path], siblings: list[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(p for p in [*earlier, *siblings] if p != sub.run_dir))


def run_experiment(cfg: ExperimentConfig, registry: list[Stage], *, until: str | None = None,
                   force: set[str] = frozenset(), overwrite: bool = False,
                   on_done: Callable[[ExperimentConfig, list[StageResult], float], None] = lambda c, r, s: None,
                   **callbacks) -> Path | None:
    """Run every seed's pipeline; aggregate them when there are several and all have a report.
    Returns the aggregate folder, or None when nothing was aggregated."""
    runs = []
    siblings = sibling_runs(cfg)
    for sub in seed_configs(cfg):
        started = time.time()
        # earlier seeds' runs (data and the base model) and this experiment's other runs lend the stages
        # whose key is the same here
        results = run_pipeline(sub, registry, until=until, force=force, overwrite=overwrite,
                               donors=_donors(sub, runs, siblings), **callbacks)
        on_done(sub, results, time.time() - started)
        runs.append(sub.run_dir)
    if len(runs) < 2 or not all((r / "report" / "findings.json").exists() for r in runs):
        return None
    from rlhflab.aggregate import aggregate_runs

    target = aggregate_dir(cfg)
    aggregate_runs(runs, target)
    return target


def plan_experiment(cfg: ExperimentConfig, registry: list[Stage], *, until: str | None = None,
                    force: set[str] = frozenset()) -> list[tuple[str, list[tuple[str, str]]]]:
    """What `rlhflab run` would do, without doing it: per seed's run folder, each selected stage with
    "up to date, skipped", "shared with <run>" or "runs (<why>)". A stage that would run gets a
    placeholder artefact id, so what depends on it runs too, and a later seed's stage with the same
    key (the data, the base model) is shared from the earlier seed's run, as `run_experiment` does."""
    plans, runs, siblings = [], [], sibling_runs(cfg)
    planned: dict[tuple[str, str], tuple[str, str]] = {}  # (stage, key) -> (run, placeholder id) to be made
    for sub in seed_configs(cfg):
        active = active_stages(sub, registry)
        names = {s.name for s in active}
        donors = _donors(sub, runs, siblings)
        ids: dict[str, str] = {}
        rows = []
        for stage in select(active, sub, until):
            inputs = stage_inputs(stage, sub, names)
            final = sub.run_dir / stage.name
            manifest = read_manifest(final)
            key = stage_key(stage.name, stage.module, sub, key_reads(stage), {d: ids[d] for d in inputs},
                            stage.files(sub))
            forced = stage.name in force
            donated = None if forced else donated_folder(stage.name, key, donors)
            if not forced and manifest and manifest.get("key") == key and check_files(final, manifest) is None:
                status, ids[stage.name] = "up to date, skipped", manifest["artefact_id"]
            elif donated is not None:
                status, ids[stage.name] = f"shared with {donated[0].parent.name}", donated[1]["artefact_id"]
            elif not forced and (stage.name, key) in planned:
                run, ids[stage.name] = planned[(stage.name, key)]
                status = f"shared with {run} (once it has run there)"
            else:
                fresh = [d for d in inputs if ids[d].startswith(f"planned:{sub.run_dir}/")]
                why = ("--force" if forced else f"after {', '.join(fresh)}" if fresh
                       else "its config, code or files changed" if manifest else "not run yet")
                status, ids[stage.name] = f"runs ({why})", f"planned:{sub.run_dir}/{stage.name}"
                planned[(stage.name, key)] = (sub.run_dir.name, ids[stage.name])
            rows.append((stage.name, status))
        plans.append((str(sub.run_dir), rows))
        runs.append(sub.run_dir)
    return plans
