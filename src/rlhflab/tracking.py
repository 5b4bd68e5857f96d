"""Experiment tracking: each stage's per-step metrics and summary, sent to TensorBoard, trackio or
Weights & Biases through accelerate's trackers (`tracking.backend`).

A stage is one tracked run: TensorBoard writes `<run>/tensorboard/<stage>/events.*` (so
`tensorboard --logdir runs` lists every stage of every experiment); trackio and wandb get one run
per stage named `<experiment>/<stage>` in `tracking.project`, grouped by experiment (wandb honours
WANDB_MODE=offline). Rows a stage logs for a sub-run (a sweep point, a KL-sweep β) are prefixed
with the sub-run's folder name. Only the main process tracks.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from rlhflab.config import Tracking
from rlhflab.data.records import flatten

PACKAGE = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}


def require_backend(cfg: Tracking) -> None:
    """Fail before any stage runs when the backend's package is missing, naming the fix."""
    package = PACKAGE.get(cfg.backend)
    if package is not None and importlib.util.find_spec(package) is None:
        raise RuntimeError(f"tracking.backend {cfg.backend!r} needs the {package} package: pip install {package} "
                           f"(or set tracking.backend: none)")


class StageTracker:
    """One stage's tracked run."""

    def __init__(self, cfg: Tracking, run_dir: Path, experiment: str, stage: str):
        from accelerate import tracking

        require_backend(cfg)
        if cfg.backend == "tensorboard":
            self.tracker = tracking.TensorBoardTracker(stage, run_dir / "tensorboard")
        elif cfg.backend == "wandb":
            self.tracker = tracking.WandBTracker(cfg.project, name=f"{experiment}/{stage}", group=experiment,
                                                 dir=str(run_dir), reinit="finish_previous")
        else:
            self.tracker = tracking.TrackioTracker(cfg.project, name=f"{experiment}/{stage}", group=experiment)
        self.tracker.start()
        self.last_step = 0

    def log(self, step: int, row: dict, prefix: str = "") -> None:
        values = {f"{prefix}{k}": float(v) for k, v in row.items() if _scalar(v)}
        if values:
            self.tracker.log(values, step=step)
            self.last_step = max(self.last_step, step)

    def finish(self, summary: dict) -> None:
        """The stage's summary metrics (its manifest's), under `summary/` at the stage's last step
        (wandb drops a row whose step is below one it has seen), then close the run."""
        self.log(self.last_step, flatten(summary, sep="/"), prefix="summary/")
        self.tracker.finish()


def _scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
