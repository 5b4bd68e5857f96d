"""A run stopped by Ctrl-C or a scheduler's SIGTERM says where it stopped and how to go on, exits
128 + the signal's number without a traceback, and leaves no half-written stage folder."""

import os
import signal
import subprocess
import sys
import time

import pytest

from rlhflab.config import load_config
from rlhflab.pipeline import RunInterrupted, Stage, read_manifest, run_pipeline


def _stages(stop):
    def a(ctx):
        (ctx.out / "out.txt").write_text("a")

    def b(ctx):
        (ctx.out / "half.bin").write_bytes(b"x" * 100)
        ctx.progress("b: training", 3, 10)
        stop()

    return [Stage("a", lambda c: [], ("seed",), a), Stage("b", lambda c: ["a"], ("seed",), b)]


def test_an_interrupted_stage_says_where_and_leaves_no_temporary_folder(tmp_path):
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "seeds=null"])

    def ctrl_c():
        raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as stopped:
        run_pipeline(cfg, _stages(ctrl_c))
    e = stopped.value
    assert e.stage == "b" and e.reached == ("b: training", 3, 10) and e.checkpoint is None
    assert not list(cfg.run_dir.glob(".tmp-*")) and not (cfg.run_dir / "b").exists()
    assert read_manifest(cfg.run_dir / "a") is not None
    assert not (cfg.run_dir / ".lock").exists()  # the next run is not refused


def test_an_interrupted_stage_with_a_checkpoint_says_it_resumes_from_it(tmp_path):
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "seeds=null"])
    seen = {}

    def stop_after_a_checkpoint():
        seen["dir"] = next(cfg.run_dir.glob(".checkpoints/b-*"))
        raise KeyboardInterrupt

    stages = _stages(stop_after_a_checkpoint)
    run = stages[1].run

    def b(ctx):  # what an online trainer leaves every save_every steps
        (ctx.checkpoint_dir / "state").mkdir(parents=True)
        run(ctx)

    stages[1] = Stage("b", lambda c: ["a"], ("seed",), b)
    with pytest.raises(RunInterrupted) as stopped:
        run_pipeline(cfg, stages)
    assert stopped.value.checkpoint == seen["dir"]


def test_other_failures_leave_no_temporary_folder_either(tmp_path):
    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", "seeds=null"])

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(cfg, _stages(boom))
    assert not list(cfg.run_dir.glob(".tmp-*"))


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_rlhflab_run_under_a_real_signal_says_one_line_and_exits_128_plus_the_signal(tmp_path, sig, status):
    args = ["run", "quickstart", "--until", "pretrain", "--set", "seeds=null", "--set", f"output_dir={tmp_path}",
            "--set", "name=stopped", "--set", "task.n_pretrain=2000", "--set", "model.hidden_size=64",
            "--set", "model.num_layers=2", "--set", "pretrain.optim.epochs=2"]
    proc = subprocess.Popen([sys.executable, "-m", "rlhflab.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = []
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # plain progress lines off a terminal: "pretrain: 26/268 train_loss=..."
        lines.append(line)
        if line.startswith("pretrain: ") or time.monotonic() > deadline:
            break
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=120)
    err = "".join(lines) + rest
    assert proc.returncode == status, err
    said = [line for line in err.splitlines() if line.startswith("interrupted")]
    name = signal.Signals(sig).name
    assert len(said) == 1 and said[0].startswith(f"interrupted ({name}) in stage pretrain of "), err
    assert " at pretrain " in said[0] and "rerun to go on: rlhflab run quickstart --until pretrain" in said[0]
    assert "pretrain starts again" in said[0]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    run_dir = tmp_path / "stopped"
    assert not list(run_dir.glob(".tmp-*")) and not (run_dir / "pretrain").exists()
    assert read_manifest(run_dir / "data") is not None and not (run_dir / ".lock").exists()
    assert "bitsandbytes" not in err and "kernels-community" not in err  # library noise goes to the run's log
