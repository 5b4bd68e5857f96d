"""What `rlhflab run` shows: one display per stage with its live headline metrics, and nothing else.

On a terminal, a rich progress display: the run's line (stages done, elapsed) and one line per
running stage (its step, bar, the latest values of its headline metrics, elapsed and estimated
time left). Anywhere else (CI logs, `| tee`, a notebook), plain lines: one when a stage starts, one
about every tenth of its steps, one when it ends. Third-party progress bars are switched off and
library warnings (transformers' "Removed shared tensor" on save, deprecations) go to the run's
log file instead of the screen (`quiet_libraries`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# the per-step values worth watching, in the order shown (at most three per stage)
HEADLINE = ("train_loss", "loss", "val_loss", "val_accuracy", "rm_score", "kl", "val_rm_score", "val_gold")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class RunDisplay:
    """Receives the pipeline's stage, progress and metric events; prints them for a person."""

    def __init__(self, console: Console, live: bool, steps: int = 10, stages: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """`steps`: plain lines per stage (0: none); `stages`: how many the run has (for its estimate)."""
        self.console, self.live, self.steps, self.stages, self.clock = console, live, steps, stages, clock
        self.started = clock()
        self.stage: str | None = None
        self.stage_started = self.started
        self.values: dict[str, dict[str, float]] = {}
        self.printed_at: dict[str, int] = {}
        self.done = 0
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                                 TextColumn("{task.fields[count]}"), TextColumn("{task.fields[shown]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not live,
                                 transient=True)  # at the end only the printed lines and the summary stay
        self.run_task: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "RunDisplay":
        if self.live:
            self.progress.start()
            self.run_task = self.progress.add_task("run", total=self.stages, count="", shown="")
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    # ------------------------------------------------------------------ events ---

    def on_stage(self, name: str, status: str) -> None:
        if status == "running":
            self.stage, self.stage_started = name, self.clock()
            self.values[name] = {}
            self._line(f"[bold]{name}[/bold]: running")
        elif status == "done":
            self.done += 1
            seconds = self.clock() - self.stage_started
            shown = self._shown(name)
            self._line(f"{name}: done in {seconds:.1f} s" + (f" ({shown})" if shown else ""))
            for desc, task in list(self.tasks.items()):
                if desc == name or desc.startswith(f"{name}:"):
                    self.progress.remove_task(task)
                    del self.tasks[desc]
            self._update_run()
        elif status == "cached" or status.startswith("shared"):
            self.done += 1
            self._line(f"[dim]{name}: {'up to date, skipped' if status == 'cached' else status}[/dim]")
            self._update_run()
        elif status.startswith("rerun: "):
            self._line(f"[yellow]{name}: {escape(status.removeprefix('rerun: '))}; running it again[/yellow]")

    def on_progress(self, desc: str, done: int, total: int) -> None:
        stage = self.stage or desc.split(":")[0]
        if not total:  # a step without a count: say it once
            if desc not in self.printed_at:
                self.printed_at[desc] = 0
                self._line(f"  [dim]{escape(desc)}[/dim]")
            return
        if self.live:
            if desc not in self.tasks:
                self.tasks[desc] = self.progress.add_task(desc, total=total, count="", shown="")
            self.progress.update(self.tasks[desc], completed=done, total=total, count=f"{done}/{total}",
                                 shown=self._shown(stage))
            return
        if not self.steps:  # pipeline.progress: false
            return
        every = max(1, total // self.steps)
        if done == total or done - self.printed_at.get(desc, 0) >= every:
            self.printed_at[desc] = done
            shown = self._shown(stage)
            self.console.print(f"{desc}: {done}/{total}" + (f" {shown}" if shown else "")
                               + f" ({self.clock() - self.stage_started:.0f} s)", highlight=False, soft_wrap=True)

    def on_log(self, stage: str, step: int, row: dict) -> None:
        """A stage's metrics row (the same that goes to its metrics.jsonl)."""
        values = self.values.setdefault(stage, {})
        for key in HEADLINE:
            if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool):
                values[key] = float(row[key])

    # ------------------------------------------------------------------ output ---

    def _shown(self, stage: str) -> str:
        values = self.values.get(stage, {})
        return " ".join([f"{k}={_fmt(values[k])}" for k in HEADLINE if k in values][:3])

    def _line(self, text: str) -> None:
        elapsed = self.clock() - self.started
        self.console.print(f"[dim][{elapsed:6.0f} s][/dim] {text}", highlight=False, soft_wrap=True)

    def _update_run(self) -> None:
        if self.live and self.run_task is not None:
            count = f"{self.done}/{self.stages} stages" if self.stages else f"{self.done} stages"
            self.progress.update(self.run_task, completed=self.done, count=count)


@contextlib.contextmanager
def quiet_libraries(log_file: Path) -> Iterator[None]:
    """Third-party progress bars off; warnings and library log records to `log_file` only."""
    from transformers.utils import logging as hf_logging

    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError:  # an unusable output_dir: the pipeline reports it, naming the path and the fix
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger()
    saved = (root.level, os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"), hf_logging.is_progress_bar_enabled())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    hf_logging.disable_progress_bar()
    hf_logging.disable_default_handler()  # transformers' records reach the file through the root logger
    hf_logging.enable_propagation()
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield
    finally:
        logging.captureWarnings(False)
        hf_logging.disable_propagation()
        hf_logging.enable_default_handler()
        if saved[2]:
            hf_logging.enable_progress_bar()
        if saved[1] is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        root.removeHandler(handler)
        root.setLevel(saved[0])
        handler.close()
