"""Experiment tracking: a stage's rows and summary land in TensorBoard event files under the run."""

import pytest

from rlhflab.config import load_config
from rlhflab.pipeline import Stage, run_pipeline


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _stage(ctx):
    ctx.log(0, {"val_loss": 2.0})
    ctx.log(1, {"train_loss": 1.5, "lr": 0.1, "note": "text is skipped", "flag": True})
    ctx.log(1, {"gold": 0.25}, file=ctx.out / "beta_0.1" / "metrics.jsonl")  # a sub-run's row
    return {"best_val_loss": 1.25, "nested": {"accuracy": 0.75}, "name": "x"}


def test_tensorboard_gets_every_row_and_the_summary_per_stage(tmp_path):
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "tracking.backend=tensorboard"])
    run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), _stage)])
    folder = cfg.run_dir / "tensorboard" / "a"
    assert any(p.name.startswith("events.out.tfevents") for p in folder.iterdir())
    assert _scalars(folder) == {
        "val_loss": [(0, 2.0)], "train_loss": [(1, 1.5)], "lr": [(1, pytest.approx(0.1))],
        "beta_0.1/gold": [(1, 0.25)], "summary/best_val_loss": [(0, 1.25)], "summary/nested/accuracy": [(0, 0.75)]}


def test_tracking_is_not_part_of_any_cache_key(tmp_path):
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp"])
    stages = [Stage("a", lambda c: [], ("seed",), _stage)]
    assert [r.status for r in run_pipeline(cfg, stages)] == ["ran"]
    tracked = cfg.model_copy(deep=True)
    tracked.tracking.backend = "tensorboard"
    assert [r.status for r in run_pipeline(tracked, stages)] == ["cached"]
    assert not (cfg.run_dir / "tensorboard").exists()  # a cached stage logs nothing new


def test_a_missing_tracking_package_is_named_with_the_fix(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "tracking.backend=wandb"])
    with pytest.raises(RuntimeError, match="pip install wandb"):
        run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), _stage)])
    assert not (cfg.run_dir / "a").exists()
