"""How `rlhflab run` stops on a signal: SIGTERM (a scheduler's kill, `timeout`, `kill PID`) as
Ctrl-C does, and the one line that says where the run stopped and how to go on."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading

from rich.console import Console
from rich.markup import escape


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt, so both stop a run the same way: the
    stage's temporary folder removed, the run lock released."""

    signal_name = "SIGTERM"


@contextlib.contextmanager
def sigterm_interrupts():
    """Inside the block SIGTERM raises `Terminated` (signals reach the main thread only)."""
    def stop(signum, frame):
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def say_interrupted(console: Console, e: KeyboardInterrupt, signal_name: str) -> int:
    """Print one line on what was stopped where and how to go on; returns the exit status, 128 +
    the signal's number. `e` is a pipeline.RunInterrupted when a stage was running, else a plain
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while the line is printed changes nothing
    if os.environ.get("RANK", "0") == "0":  # under torchrun every process is stopped; one of them says so
        where, goes_on = "between stages", "stages that finished are kept and skipped"
        if hasattr(e, "stage"):
            where = f"in stage {e.stage} of {e.run_dir}"
            if e.reached is not None:
                desc, done, total = e.reached
                where += f", at {desc} {done}/{total}" if total else f", at {desc}"
            goes_on += (f"; {e.stage} resumes from its last checkpoint ({e.checkpoint})" if e.checkpoint is not None
                        else f"; {e.stage} starts again")
        command = shlex.join(["rlhflab", *sys.argv[1:]])
        console.print(f"[yellow]interrupted[/yellow] ({signal_name}) {escape(where)}; rerun to go on: "
                      f"{escape(command)} ({escape(goes_on)})", highlight=False, soft_wrap=True)
    return 128 + (signal.SIGTERM if signal_name == "SIGTERM" else signal.SIGINT)
