"""Stage registry order, artefact cache, manifests and atomic artefact writes.

Each stage writes one folder `runs/<experiment>/<stage>/` holding its artefacts, `metrics.jsonl`
and `manifest.json`. A stage's key (rlhflab.cache_key) hashes the config keys it may read, the
code it runs, the artefact ids of the stages it reads and the local files it names; a rerun
skips a stage whose key matches its manifest. The folder is built under a temporary name and
renamed into place only once complete, so a killed run never leaves a stage that looks finished.

Stages talk only through artefacts: a stage reads another stage's folder with `ctx.input(name)`,
which works only for stages it declares (`needs`, or `wants` when that stage is active).

Multi-process runs (`accelerate launch -m rlhflab.cli run ...`): every process runs every stage
(trainers shard their batches); only the main process touches the filesystem, between barriers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from accelerate import PartialState

from rlhflab.artefacts import check_files, donated_folder, file_table, link_tree, manifest_problem, read_manifest
from rlhflab.cache_key import ConfigView, config_digest, config_value, jsonable, stage_key
from rlhflab.config import ExperimentConfig, dump_config
from rlhflab.data.records import write_json
from rlhflab.provenance import machine, package_versions
from rlhflab.memory import peak, reset_peak
from rlhflab.precision import inference_mode
from rlhflab.run_folder import clean_leftovers, other_config_problem, publish
from rlhflab.run_lock import LOCK, run_lock
from rlhflab.sweep import key_reads, run_sweep, sweep_of, sweeps_problem
from rlhflab.tracking import StageTracker, require_backend


class PipelineError(RuntimeError):
    pass


class RunInterrupted(KeyboardInterrupt):
    """A stage stopped by SIGINT or SIGTERM: its temporary folder is gone, finished stages are kept.
    `reached`: the stage's last progress event (desc, done, total); `checkpoint`: the folder a rerun
    resumes from, if the stage keeps one. A KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, stage: str, run_dir: Path, reached: tuple[str, int, int] | None, checkpoint: Path | None,
                 signal_name: str = "SIGINT"):
        super().__init__(stage)
        self.stage, self.run_dir, self.reached, self.checkpoint = stage, run_dir, reached, checkpoint
        self.signal_name = signal_name


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    name:     folder name and CLI name.
    needs:    stages whose artefacts this one reads (given the config, since some are optional).
    reads:    config keys (dotted) the stage may read; they feed the cache key, and the stage sees
              the config through a view that refuses any other key.
    run:      does the work into `ctx.out`; returns summary metrics for the manifest.
    enabled:  whether the stage takes part under this config.
    files:    local files the stage reads that the config only names (e.g. a task's JSONL files):
              their size and modification time join the cache key.
    wants:    stages read only when they are active under the config (`ctx.has_input(name)` says).
    headline: the summary metrics the CLI shows for this stage.
    select:   (metric, "min" | "max"): the summary metric a sweep of this stage selects on (its ID
              validation metric); None for stages that cannot be swept.
    """

    name: str
    needs: Callable[[ExperimentConfig], list[str]]
    reads: tuple[str, ...]
    run: Callable[["StageContext"], dict]
    enabled: Callable[[ExperimentConfig], bool] = lambda cfg: True
    files: Callable[[ExperimentConfig], list[str]] = lambda cfg: []
    wants: Callable[[ExperimentConfig], list[str]] = lambda cfg: []
    headline: tuple[str, ...] = ()
    select: tuple[str, str] | None = None

    @property
    def module(self) -> str:
        return self.run.__module__


@dataclass
class StageContext:
    cfg: ConfigView  # only the keys in stage.reads
    stage: Stage
    out: Path  # temporary folder; becomes runs/<experiment>/<stage> when the stage completes
    run_dir: Path
    state: PartialState
    inputs: tuple[str, ...] = ()
    on_progress: Callable[[str, int, int], None] = lambda desc, done, total: None
    key: str = ""
    forced: bool = False  # --force: redo work a stage would otherwise reuse (cached judgements)
    tracker: StageTracker | None = None  # tracking.backend's run for this stage (main process only)
    on_log: Callable[[str, int, dict], None] = lambda stage, step, row: None  # the display's live metrics

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def checkpoint_dir(self) -> Path:
        """Where a long stage keeps resumable checkpoints. Unlike `out` it survives a crash, and is
        keyed like the artefact, so a rerun with the same inputs resumes and any change starts over.
        Removed once the stage completes."""
        return self.run_dir / ".checkpoints" / f"{self.stage.name}-{self.key}"

    @property
    def checkpoint_dirs(self) -> list[Path]:
        """`checkpoint_dir` and those of a sweep's points (`<checkpoint_dir>-p<i>`), which exist or not."""
        return [self.checkpoint_dir, *self.checkpoint_dir.parent.glob(f"{self.checkpoint_dir.name}-p*")]

    @property
    def metrics_file(self) -> Path:
        return self.out / "metrics.jsonl"

    def input(self, stage: str) -> Path:
        """Folder of a completed upstream stage."""
        if stage not in self.inputs:
            raise PipelineError(f"stage {self.stage.name!r} reads {stage!r} without declaring it in needs")
        return self.run_dir / stage

    def has_input(self, stage: str) -> bool:
        """Whether a wanted stage is active (and so readable) under this config."""
        return stage in self.inputs

    def log(self, step: int, metrics: dict, file: Path | None = None) -> None:
        """Append one row of per-step metrics to metrics.jsonl (or to `file`, for a sub-run)."""
        if not self.is_main:
            return
        path = file or self.metrics_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.tracker is not None:
            self.tracker.log(step, metrics, prefix="" if file is None else f"{path.parent.name}/")
        if file is None:
            self.on_log(self.stage.name, step, metrics)

    def progress(self, desc: str, done: int, total: int) -> None:
        self.on_progress(desc, done, total)


def stage_inputs(stage: Stage, cfg: ExperimentConfig, active: set[str]) -> list[str]:
    needs = stage.needs(cfg)
    return list(dict.fromkeys(needs + [w for w in stage.wants(cfg) if w in active]))


def active_stages(cfg: ExperimentConfig, registry: list[Stage]) -> list[Stage]:
    """Enabled stages in registry order, checked to be a valid topological order."""
    stages = [s for s in registry if s.enabled(cfg)]
    names = {s.name for s in stages}
    seen: set[str] = set()
    for s in stages:
        for dep in stage_inputs(s, cfg, names):
            if dep not in seen:
                raise PipelineError(f"stage {s.name!r} needs {dep!r}, which is disabled or comes later")
        seen.add(s.name)
    return stages


def select(stages: list[Stage], cfg: ExperimentConfig, until: str | None) -> list[Stage]:
    """`until` and everything it depends on; all stages when None."""
    if until is None:
        return stages
    by_name = {s.name: s for s in stages}
    if until not in by_name:
        raise PipelineError(f"--until {until}: no such active stage; active: {', '.join(by_name)}")
    wanted, todo = set(), [until]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(stage_inputs(by_name[name], cfg, set(by_name)))
    return [s for s in stages if s.name in wanted]


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "cached"
    seconds: float
    metrics: dict
    headline: tuple[str, ...] = ()
    memory: dict | None = None  # peak_rss_mb (and peak_cuda_mb) while the stage ran


def process_state() -> PartialState:
    """This process's place in the run. Under torchrun on a machine without CUDA, accelerate sets
    up the gloo process group only when told the run is on CPUs (as `accelerate launch --cpu` tells
    it); without that each process would think it ran alone and both would write every artefact."""
    import torch

    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    on_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or (
        several and not torch.cuda.is_available())
    return PartialState(cpu=on_cpu)


def run_pipeline(cfg: ExperimentConfig, registry: list[Stage], *, until: str | None = None,
                 force: set[str] = frozenset(), overwrite: bool = False, donors: tuple[Path, ...] = (),
                 on_stage: Callable[[str, str], None] = lambda name, status: None,
                 on_progress: Callable[[str, int, int], None] = lambda d, i, n: None,
                 on_log: Callable[[str, int, dict], None] = lambda s, i, r: None) -> list[StageResult]:
    state = process_state()
    active = active_stages(cfg, registry)
    active_names = {s.name for s in active}
    stages = select(active, cfg, until)
    if (problem := sweeps_problem(cfg, active)) is not None:
        raise PipelineError(problem)
    require_backend(cfg.tracking)
    unknown = set(force) - active_names
    if unknown:
        raise PipelineError(f"--force {', '.join(sorted(unknown))}: no such active stage")
    run_dir = cfg.run_dir
    if state.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir) if state.is_main_process else contextlib.nullcontext():
        state.wait_for_everyone()
        if state.is_main_process:
            if not overwrite and (problem := other_config_problem(cfg, run_dir)) is not None:
                raise PipelineError(problem)
            clean_leftovers(run_dir)
            source = getattr(cfg, "_source", None)
            header = f"# source: {source}\n" if source else ""
            (run_dir / "config.yaml").write_text(header + dump_config(cfg), encoding="utf-8")
        state.wait_for_everyone()
        # temporary folders carry the run's pid (the lock holder's, so every process agrees)
        owner = json.loads((run_dir / LOCK).read_text(encoding="utf-8"))["pid"]
        return _run_stages(cfg, stages, active_names, force, state, run_dir, owner, on_stage, on_progress, donors,
                           on_log)


def _run_stages(cfg, stages, active_names, force, state, run_dir, owner, on_stage, on_progress,
                donors=(), on_log=lambda s, i, r: None) -> list[StageResult]:
    results: list[StageResult] = []
    for stage in stages:
        final = run_dir / stage.name
        inputs = stage_inputs(stage, cfg, active_names)
        upstream = {}
        for dep in inputs:
            m = read_manifest(run_dir / dep)
            if m is None:
                raise PipelineError(f"stage {stage.name!r}: upstream {dep!r} has no manifest")
            upstream[dep] = m["artefact_id"]
        reads = key_reads(stage)
        key = stage_key(stage.name, stage.module, cfg, reads, upstream, stage.files(cfg))
        manifest = read_manifest(final)
        if manifest and manifest.get("key") == key and stage.name not in force:
            problem = check_files(final, manifest)
            if problem is None:
                on_stage(stage.name, "cached")
                results.append(StageResult(stage.name, "cached", 0.0, manifest.get("metrics", {}), stage.headline,
                                           manifest.get("memory")))
                continue
            on_stage(stage.name, f"rerun: {problem}")
        elif (problem := manifest_problem(final)) is not None:
            on_stage(stage.name, f"rerun: {problem}")
        tmp = run_dir / f".tmp-{stage.name}-{key}-{owner}"
        if stage.name not in force and (donated := donated_folder(stage.name, key, donors)) is not None:
            donor, m = donated
            if state.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
                link_tree(donor, tmp)
                publish(tmp, final)
            state.wait_for_everyone()
            on_stage(stage.name, f"shared with {donor.parent.name}")
            results.append(StageResult(stage.name, "shared", 0.0, m.get("metrics", {}), stage.headline,
                                       m.get("memory")))
            continue

        on_stage(stage.name, "running")
        if state.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        state.wait_for_everyone()
        tracker = StageTracker(cfg.tracking, run_dir, cfg.name, stage.name) \
            if cfg.tracking.backend != "none" and state.is_main_process else None
        reached: list[tuple[str, int, int]] = []  # the last progress event: where an interrupt stopped the stage

        def progress(desc: str, done: int, total: int) -> None:
            reached[:] = [(desc, done, total)]
            on_progress(desc, done, total)

        ctx = StageContext(ConfigView(cfg, stage.reads, stage.name), stage, tmp, run_dir, state, tuple(inputs),
                           progress, key, forced=stage.name in force, tracker=tracker, on_log=on_log)
        started = time.time()
        reset_peak()
        spec = sweep_of(cfg, stage)
        metrics = {}
        try:
            with inference_mode(cfg.model.inference_autocast):
                metrics = (run_sweep(ctx, cfg, spec) if spec else stage.run(ctx)) or {}
        except BaseException as e:  # no half-written stage folder stays behind, whatever stopped the stage
            if state.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, KeyboardInterrupt) and not isinstance(e, RunInterrupted):
                kept = [d for d in ctx.checkpoint_dirs if (d / "state").exists()]
                checkpoint = kept[0] if kept else None
                raise RunInterrupted(stage.name, run_dir, reached[0] if reached else None, checkpoint,
                                     getattr(e, "signal_name", "SIGINT")) from None
            raise
        finally:
            if tracker is not None:
                tracker.finish(metrics)
        seconds, memory = time.time() - started, peak()
        state.wait_for_everyone()
        if state.is_main_process:
            write_json(tmp / "manifest.json", {
                "stage": stage.name,
                "key": key,
                "artefact_id": uuid.uuid4().hex,
                "inputs": upstream,
                "seed": cfg.seed,
                "config": {k: json.loads(json.dumps(jsonable(config_value(cfg, k)), default=str))
                           for k in reads},
                "config_hash": config_digest(cfg, reads),
                "versions": package_versions(),
                "machine": machine(),
                "num_processes": state.num_processes,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "seconds": round(seconds, 3),
                "memory": memory,
                "metrics": metrics,
                "files": file_table(tmp),
            })
            publish(tmp, final)
            for folder in ctx.checkpoint_dirs:
                shutil.rmtree(folder, ignore_errors=True)
        state.wait_for_everyone()
        on_stage(stage.name, "done")
        results.append(StageResult(stage.name, "ran", seconds, metrics, stage.headline, memory))
    return results
