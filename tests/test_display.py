"""What `rlhflab run` prints: plain lines off a terminal (exactly), one display on a terminal."""

import io
import logging
import os
import pty
import subprocess
import sys
import warnings

import pytest
from rich.console import Console

from rlhflab.display import RunDisplay, quiet_libraries


def _plain_run(steps=4):
    buf = io.StringIO()
    now = [0.0]
    display = RunDisplay(Console(file=buf, width=200, color_system=None, force_terminal=False), live=False,
                         steps=steps, clock=lambda: now[0])
    with display:
        display.on_stage("data", "shared with quickstart-s0")
        now[0] = 1.0
        display.on_stage("sft", "running")
        display.on_log("sft", 0, {"val_loss": 2.0})
        for i in range(1, 9):
            now[0] = 1.0 + i
            display.on_log("sft", i, {"train_loss": 2.0 - i / 10, "lr": 0.1, "flag": True})
            display.on_progress("sft", i, 8)
        display.on_progress("sft: sampling", 0, 0)
        display.on_stage("sft", "done")
        display.on_stage("rm", "rerun: its manifest is unreadable")
    return buf.getvalue()


def test_off_a_terminal_each_stage_prints_plain_lines_every_quarter():
    assert _plain_run() == (
        "[     0 s] data: shared with quickstart-s0\n"
        "[     1 s] sft: running\n"
        "sft: 2/8 train_loss=1.8 val_loss=2 (2 s)\n"
        "sft: 4/8 train_loss=1.6 val_loss=2 (4 s)\n"
        "sft: 6/8 train_loss=1.4 val_loss=2 (6 s)\n"
        "sft: 8/8 train_loss=1.2 val_loss=2 (8 s)\n"
        "[     9 s]   sft: sampling\n"
        "[     9 s] sft: done in 8.0 s (train_loss=1.2 val_loss=2)\n"
        "[     9 s] rm: its manifest is unreadable; running it again\n")


def test_library_warnings_and_bars_go_to_the_log_file(tmp_path, capsys):
    from transformers.utils import logging as hf_logging

    log = tmp_path / "run.log"
    with quiet_libraries(log):
        warnings.warn("a deprecation nobody asked to see", DeprecationWarning)
        hf_logging.get_logger("transformers.modeling_utils").warning("Removed shared tensor {'lm_head.weight'}")
        assert not hf_logging.is_progress_bar_enabled()
    err = capsys.readouterr().err
    assert "deprecation" not in err and "Removed shared tensor" not in err
    text = log.read_text()
    assert "a deprecation nobody asked to see" in text and "Removed shared tensor" in text
    assert hf_logging.is_progress_bar_enabled() and not any(
        getattr(h, "baseFilename", None) == str(log) for h in logging.getLogger().handlers)


def test_bitsandbytes_import_warnings_reach_the_run_log_never_the_screen(tmp_path, capsys):
    """bitsandbytes warns at import on AVX512-BF16 CPUs ("Failed to load CPU gemm_4bit_forward from
    kernels-community"), and transformers imports it through peft in every command that loads a model."""
    warn = ("import logging; logging.getLogger('bitsandbytes.backends.cpu.ops')"  # where that warning comes from
            ".warning('Failed to load CPU gemm_4bit_forward from kernels-community')")
    # in a fresh process (pytest's own log handlers would hide Python's last-resort printing to stderr)
    plain = subprocess.run([sys.executable, "-c", warn], capture_output=True, text=True)
    assert "kernels-community" in plain.stderr  # what a library user sees: rlhflab leaves their logging alone
    cli = subprocess.run([sys.executable, "-c", "import rlhflab.cli; " + warn], capture_output=True, text=True)
    assert cli.returncode == 0 and "kernels-community" not in cli.stderr  # any rlhflab command: not on screen
    bnb_log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    log = tmp_path / "run.log"
    with quiet_libraries(log):
        bnb_log.warning("Failed to load CPU gemm_4bit_forward from kernels-community")
    assert "kernels-community" not in capsys.readouterr().err
    assert "bitsandbytes.backends.cpu.ops WARNING: Failed to load CPU gemm_4bit_forward" in log.read_text()


def test_the_gguf_stage_silences_transformers_conversion_bar(capsys):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from rlhflab.stages.gguf import quiet_gguf_conversion

    with quiet_gguf_conversion():
        list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
    assert "Converting" not in capsys.readouterr().err
    list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))  # put back afterwards
    assert "Converting" in capsys.readouterr().err


@pytest.mark.slow
def test_a_terminal_sees_rlhflabs_display_only(tmp_path):
    """Under a pseudo-terminal, through SFT on a tiny config: no third-party bars or warnings."""
    from conftest import TINY

    sets = [s for s in TINY if not s.startswith("pipeline.progress")] + [
        f"output_dir={tmp_path}", "name=tty", "task.n_pretrain=300", "task.n_sft_train=64", "sft.optim.epochs=1"]
    args = [sys.executable, "-m", "rlhflab.cli", "run", "quickstart", "--until", "sft",
            *[a for s in sets for a in ("--set", s)]]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, close_fds=True,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "\x1b[" in screen  # rich drew a live display
    for noise in ("Loading weights", "Writing model shards", "Removed shared tensor", "Warning", "it/s]"):
        assert noise not in screen, noise
    assert "sft: done in" in screen and "pretrain: done in" in screen
    assert (tmp_path / "tty.log").exists()
