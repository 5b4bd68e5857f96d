"""The run folder around the stage folders: its config (and whose it is), the atomic swap that
publishes a finished stage, and the leftovers of stages killed mid-write."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import yaml

from rlhflab.config import ExperimentConfig
from rlhflab.data.records import flatten


def clean_leftovers(run_dir: Path) -> None:
    """Remove temporary folders of stages killed mid-write."""
    for p in run_dir.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in run_dir.glob(".old-*"):
        shutil.rmtree(p, ignore_errors=True)


def publish(tmp: Path, final: Path) -> None:
    """Swap the finished temporary folder into place (rename is atomic on one filesystem)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def other_config_problem(cfg: ExperimentConfig, run_dir: Path) -> str | None:
    """Why the run folder must be refused, or None: it holds a run of another config file (a small
    override file or an unnamed config would otherwise write over another experiment's artefacts)."""
    path = run_dir / "config.yaml"
    source = getattr(cfg, "_source", None)
    if source is None or not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    previous = first.removeprefix("# source: ") if first.startswith("# source: ") else None
    if previous is None or previous == source:
        return None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        loaded = None
    old = flatten(loaded) if isinstance(loaded, dict) else {}
    new = flatten(cfg.model_dump(mode="json"))
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
    return (f"{run_dir} holds a run of {previous}, not of {source}" + (f" (they differ in {shown})" if differ else "")
            + "; pass --overwrite to replace it, or give this run another name (--set name=...)")
