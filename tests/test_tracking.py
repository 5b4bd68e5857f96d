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
        "beta_0.1/gold": [(1, 0.25)], "summary/best_val_loss": [(1, 1.25)], "summary/nested/accuracy": [(1, 0.75)]}


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


def _wandb_rows(run_file) -> tuple[list, list]:
    """(run names/groups, history rows) of an offline wandb run file: a ':W&B' header, then
    LevelDB-log records (crc, length, kind; 32 KiB blocks) each holding a protobuf Record."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, chunk, runs, rows = run_file.read_bytes(), 7, b"", [], []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7]) if left >= 7 else (0, 0)
        if kind == 0:
            pos += left
            continue
        chunk, pos = chunk + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            if record.HasField("run"):
                runs.append((record.run.display_name, record.run.run_group))
            if record.HasField("history"):
                items = {i.key or "/".join(i.nested_key): float(i.value_json) for i in record.history.item}
                rows.append({k: v for k, v in items.items() if not k.startswith("_")} | {"step": items.get("_step")})
    return runs, rows


def test_wandb_offline_gets_every_row_and_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "tracking.backend=wandb"])
    run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), _stage)])
    (run_file,) = (cfg.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    runs, rows = _wandb_rows(run_file)
    assert runs == [("exp/a", "exp")]
    # wandb merges the rows of one step into one
    assert rows == [{"val_loss": 2.0, "step": 0},
                    {"train_loss": 1.5, "lr": 0.1, "beta_0.1/gold": 0.25, "summary/best_val_loss": 1.25,
                     "summary/nested/accuracy": 0.75, "step": 1}]
