"""The `rlhflab` command line: thin wrappers that parse, call the pipeline and print."""

from __future__ import annotations

import os
import time
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rlhflab.config import ConfigError, dump_config, load_config
from rlhflab.data.records import RecordError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learning from preference feedback: SFT, reward models, PPO, DPO, best-of-N.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect experiment configs.")
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()


def _load(config: Optional[str], overrides: list[str]):
    try:
        return load_config(config, overrides)
    except ConfigError as e:
        console.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(2)


@app.command()
def run(
    config: Optional[str] = typer.Argument(None, help="YAML file or built-in name (default: quickstart)"),
    set_: list[str] = typer.Option([], "--set", help="override a key, e.g. --set sft.optim.lr=1e-4"),
    until: Optional[str] = typer.Option(None, help="stop after this stage"),
    force: list[str] = typer.Option([], help="rerun this stage even if its artefact is current"),
) -> None:
    """Run the experiment's pipeline; stages whose inputs are unchanged are skipped. With `seeds`
    in the config, one run per seed (`<name>-s<seed>`), then `rlhflab aggregate` over them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = _load(config, set_)
    if not cfg.seeds:
        _run_one(cfg, until, force)
        return
    runs = []
    for seed in cfg.seeds:
        sub = _load(config, set_ + [f"seed={seed}", f"name={cfg.name}-s{seed}", "seeds=null"])
        _run_one(sub, until, force)
        runs.append(sub.run_dir)
    if all((r / "report" / "findings.json").exists() for r in runs) and len(runs) > 1:
        from rlhflab.aggregate import aggregate_runs

        target = cfg.output_dir / f"{cfg.name}-aggregate"
        aggregate_runs(runs, target)
        out.print(f"across {len(runs)} seeds: {target / 'aggregate.md'}")


def _run_one(cfg, until: Optional[str], force: list[str]) -> None:
    from rlhflab.pipeline import PipelineError, run_pipeline
    from rlhflab.stages import REGISTRY

    started = time.time()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=console, disable=not cfg.pipeline.progress)
    tasks: dict[str, int] = {}

    def on_stage(name: str, status: str) -> None:
        if status == "cached":
            console.print(f"[dim]{name}: up to date, skipped[/dim]")
        elif status == "running":
            console.print(f"[bold]{name}[/bold]: running")

    def on_progress(desc: str, done: int, total: int) -> None:
        if not total:  # a step without a count: say it once
            if desc not in tasks:
                tasks[desc] = -1
                console.print(f"  [dim]{desc}[/dim]")
            return
        if desc not in tasks:
            tasks[desc] = progress.add_task(desc, total=total or None)
        progress.update(tasks[desc], completed=done, total=total or None)

    try:
        with progress:
            results = run_pipeline(cfg, REGISTRY, until=until, force=set(force),
                                   on_stage=on_stage, on_progress=on_progress)
    except (PipelineError, RecordError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1)

    table = Table(title=f"{cfg.name}: {time.time() - started:.0f} s")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("headline")
    for r in results:
        table.add_row(r.name, r.status, f"{r.seconds:.1f}", _headline(r.metrics))
    out.print(table)
    out.print(f"artefacts: {cfg.run_dir}")
    report = cfg.run_dir / "report" / "index.html"
    if report.exists():
        out.print(f"report: {report}  (and report.md beside it)")


def _headline(metrics: dict) -> str:
    keys = ("best_val_loss", "gold_reward_base", "gold_reward_sft", "params", "best_val_accuracy",
            "rm/accuracy_id", "rm/mean_ood_drop", "rm_proxy/accuracy_id", "id/gold_bon", "id/gold_gain",
            "train_pairs", "annotator_gold_agreement_train", "final_val_rm_score", "final_val_kl",
            "final_val_gold", "best_step")
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), (int, float)))


@config_app.command("show")
def config_show(
    config: Optional[str] = typer.Argument(None, help="YAML file or built-in name (default: quickstart)"),
    set_: list[str] = typer.Option([], "--set", help="override a key, e.g. --set seed=3"),
) -> None:
    """Print the fully resolved config (every default filled in)."""
    out.print(dump_config(_load(config, set_)), end="", highlight=False, markup=False)


def main() -> None:  # pragma: no cover
    app()


@app.command()
def aggregate(
    runs: list[str] = typer.Argument(..., help="finished run folders, one per seed (runs/study-s0 ...)"),
    out_dir: str = typer.Option("runs/aggregate", "--out", help="where to write aggregate.md/.json and figures"),
) -> None:
    """Mean ± SE over seeds of the win rates, gaps and diversity of several finished runs, and how
    many seeds reproduce each finding."""
    from pathlib import Path

    from rlhflab.aggregate import aggregate_runs

    try:
        result = aggregate_runs([Path(r) for r in runs], Path(out_dir))
    except (FileNotFoundError, ValueError, KeyError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)  # paths stay whole
        raise typer.Exit(1)
    for claim, v in result["findings"].items():
        out.print(f"{v['reproduced_in']}/{v['checked_in']} seeds: {claim}")
    out.print(f"aggregate: {Path(out_dir) / 'aggregate.md'}")


@app.command()
def winrate(files: list[str] = typer.Argument(..., help="annotation files in AlpacaEval's format")) -> None:
    """Win rate, standard error and counts per generator from AlpacaEval-style annotation files
    (rlhflab's or alpaca_eval's own; preferences in [1, 2], draws 0 or 1.5)."""
    from rlhflab.evaluation.winrate import AnnotationFileError, read_annotations, win_rates_by_generator

    rows: list[dict] = []
    for f in files:
        try:
            rows += read_annotations(f)
        except FileNotFoundError:
            console.print(f"[red]error:[/red] {f}: no such file")
            raise typer.Exit(1)
        except AnnotationFileError as e:
            console.print(f"[red]error:[/red] {e}", highlight=False)
            raise typer.Exit(1)
    table = Table(title="win rate of generator_2 against generator_1")
    for col in ("generator", "win rate", "SE", "n", "draws", "invalid"):
        table.add_column(col)
    for g, w in win_rates_by_generator(rows).items():
        table.add_row(g, f"{w.win_rate:.1f}", f"{w.standard_error:.1f}", str(w.n), str(w.n_draws), str(w.n_invalid))
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
