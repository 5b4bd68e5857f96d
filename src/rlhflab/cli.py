"""The `rlhflab` command line: thin wrappers that parse, call the pipeline and print."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhflab.cli_data import data_app, prompts_app
from rlhflab.config import ConfigError, dump_config, load_config
from rlhflab.data.records import RecordError
from rlhflab.display import RunDisplay, quiet_libraries
from rlhflab.interrupts import say_interrupted, sigterm_interrupts
from rlhflab.memory import describe

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learning from preference feedback: SFT, reward models, PPO, DPO, best-of-N.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect experiment configs.")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(prompts_app, name="prompts")
console = Console(stderr=True)
out = Console()
# peft imports bitsandbytes wherever it is installed (transformers imports peft), and bitsandbytes warns
# at import about optional kernels: its records reach a run's log file (display.quiet_libraries), never
# the screen of a command that builds no 4-bit model
logging.getLogger("bitsandbytes").addHandler(logging.NullHandler())


def _error(message: object) -> None:
    """One line on stderr; the message is escaped, since "[relationships]" would read as markup."""
    console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)


def _fail(e: Exception) -> None:
    _error(e)
    raise typer.Exit(1)


def _load(config: Optional[str], overrides: list[str]):
    try:
        return load_config(config, overrides)
    except ConfigError as e:
        _error(e)
        raise typer.Exit(2)


@app.command()
def run(
    config: Optional[str] = typer.Argument(None, help="YAML file or built-in name (default: quickstart)"),
    set_: list[str] = typer.Option([], "--set", help="override a key, e.g. --set sft.optim.lr=1e-4"),
    until: Optional[str] = typer.Option(None, help="run this stage and the stages it needs, nothing else"),
    force: list[str] = typer.Option([], help="rerun this stage even if its artefact is current (for eval: "
                                    "judge everything anew instead of reusing cached judgements)"),
    overwrite: bool = typer.Option(False, help="run even if runs/<name> holds a run of another config file"),
    debug: bool = typer.Option(False, help="show the full traceback of an error instead of one line"),
    yes: bool = typer.Option(False, "--yes", help="run even when the data would take most of the memory or hours"),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="how many seeds (default: the config's; "
                                        "the quickstart runs 3); 1 runs one seed, without the aggregate"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say which stages would run, be skipped (up to date) "
                                 "or be shared from another run of this experiment, and run nothing"),
) -> None:
    """Run the experiment's pipeline; stages whose inputs are unchanged are skipped. With several
    seeds, one run per seed (`<name>-s<seed>`), then the aggregate over them."""
    from rlhflab.experiment import seed_configs, with_seed_count

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = _load(config, set_)
    cfg = cfg if seeds is None else with_seed_count(cfg, seeds)
    from rlhflab.model_sources import model_source_problems

    if problems := model_source_problems(cfg):  # in seconds, not after a stage's retries
        console.print("[red]error:[/red] " + escape("; ".join(problems)) if len(problems) == 1 else
                      "[red]error:[/red] models the config names cannot be loaded:\n  "
                      + "\n  ".join(escape(p) for p in problems), highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if dry_run:
        _print_plan(cfg, until, set(force))
        return
    from rlhflab.tasks import preflight

    if not yes and (problem := preflight(cfg.task)):
        _error(problem)
        raise typer.Exit(1)
    # library noise (bitsandbytes' import-time warnings among it) to <output_dir>/<name>.log from here on
    with quiet_libraries(Path(cfg.output_dir) / f"{cfg.name}.log"), sigterm_interrupts():
        try:
            from rlhflab.evaluation.annotations import JudgeUnavailable
            from rlhflab.experiment import run_experiment
            from rlhflab.pipeline import PipelineError, active_stages, select
            from rlhflab.run_lock import RunInUse
            from rlhflab.stages import REGISTRY
            from rlhflab.training import NonFiniteError

            # a live display on a terminal, plain lines elsewhere
            stages = sum(len(select(active_stages(sub, REGISTRY), sub, until)) for sub in seed_configs(cfg))
            display = RunDisplay(console, live=console.is_terminal and cfg.pipeline.progress,
                                 steps=10 if cfg.pipeline.progress else 0, stages=stages)
            with display:
                target = run_experiment(cfg, REGISTRY, until=until, force=set(force), overwrite=overwrite,
                                        on_done=_print_run, on_stage=display.on_stage,
                                        on_progress=display.on_progress, on_log=display.on_log)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM from a scheduler: one line, no traceback
            raise typer.Exit(say_interrupted(console, e, getattr(e, "signal_name", "SIGINT")))
        except (PipelineError, RecordError, RunInUse, NonFiniteError, JudgeUnavailable) as e:
            if debug:
                raise
            _error(e)
            raise typer.Exit(1)
        except OSError as e:  # the environment: a folder that is a file, not writable, a full disk, ...
            if debug:
                raise
            where = e.filename or cfg.run_dir
            _error(f"{where}: {e.strerror or e}; choose another output_dir (--set output_dir=...) or fix that path "
                   "(--debug shows the traceback)")
            raise typer.Exit(1)
        except ValueError as e:  # a setting or a data set a stage cannot use
            if debug:
                raise
            _error(f"{e} (--debug shows the traceback)")
            raise typer.Exit(1)
    if target is not None:
        out.print(f"across {len(cfg.seeds)} seeds: {target / 'aggregate.md'}")
    elif cfg.seeds and len(cfg.seeds) > 1:  # say why the aggregate over seeds is not there
        why = (f"--until {until} stops before the seeds' reports" if until not in (None, "report")
               else "not every seed's run has a report")
        out.print(f"no aggregate over seeds: {why}; a run through the report stage writes it", highlight=False)


def _print_plan(cfg, until: str | None, force: set[str]) -> None:
    from rlhflab.experiment import plan_experiment
    from rlhflab.pipeline import PipelineError
    from rlhflab.stages import REGISTRY

    try:
        plans = plan_experiment(cfg, REGISTRY, until=until, force=force)
    except PipelineError as e:
        _fail(e)
    for run_dir, rows in plans:
        table = Table(title=f"{run_dir} (dry run: nothing is run)")
        table.add_column("stage")
        table.add_column("would")
        for name, status in rows:
            table.add_row(name, status)
        out.print(table)


def _print_run(cfg, results, seconds: float) -> None:
    table = Table(title=f"{cfg.name}: {seconds:.0f} s")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("peak MB", justify="right")
    table.add_column("headline")
    for r in results:
        shown = ", ".join(f"{k}={r.metrics[k]:.4g}" for k in r.headline if isinstance(r.metrics.get(k), (int, float)))
        table.add_row(r.name, r.status, f"{r.seconds:.1f}", describe(r.memory), shown)
    out.print(table)
    out.print(f"artefacts: {cfg.run_dir}")
    if any(r.name == "report" for r in results):  # not an older run's report after --until
        out.print(f"report: {cfg.run_dir / 'report' / 'index.html'}  (and report.md beside it)")


@config_app.command("list")
def config_list() -> None:
    """The built-in configs, one line each (run one with `rlhflab run NAME`)."""
    from rlhflab.config.loading import builtin_path

    for path in sorted(builtin_path("quickstart").parent.glob("*.yaml")):
        out.print(f"{path.stem:<18} {_summary(path)}", highlight=False, markup=False, soft_wrap=True)


def _summary(path: Path, width: int = 100) -> str:
    """The first sentence of a config file's leading comment, cut to `width` characters."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(t for t in lines if t)
    end = text.find(". ")
    text = text if end < 0 else text[:end + 1]
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


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
    """Mean ± SE over seeds of the win rates, gaps and diversity of several finished runs (one config,
    distinct seeds), and each finding over seeds: the random-effects combination of the seeds'
    estimates with the findings' multiplicity control (Holm per family, primary gating secondary), and how many
    seeds reproduce it on their own."""
    from pathlib import Path

    from rlhflab.aggregate import aggregate_runs

    try:
        result = aggregate_runs([Path(r) for r in runs], Path(out_dir))
    except (FileNotFoundError, ValueError, KeyError) as e:
        _error(e)
        raise typer.Exit(1)
    for claim, v in result["findings"].items():
        combined = (f"{v['estimate']:+.3g} [{v['ci_low']:+.3g}, {v['ci_high']:+.3g}], adj. p {v['p_holm']:.2g}; "
                    if "ci_low" in v else "")
        out.print(f"{v['verdict']} over seeds ({combined}{v['reproduced_in']}/{v['checked_in']} seeds reproduce): "
                  f"{claim}", markup=False)
    out.print(f"aggregate: {Path(out_dir) / 'aggregate.md'}")


@app.command()
def export(
    run_dir: str = typer.Argument(..., help="a finished run folder, e.g. runs/quickstart"),
    fmt: str = typer.Option("csv", "--format", help="csv or latex (booktabs)"),
    out_dir: Optional[str] = typer.Option(None, "--out", help="default: RUN/export"),
) -> None:
    """The run's findings, win rates (PvR, head-to-head), diversity and reward-model tables with their
    intervals, as CSV or LaTeX files; the report's figures are beside their PNGs as PDFs."""
    from pathlib import Path

    from rlhflab.report.export import export_run

    try:
        written = export_run(Path(run_dir), Path(out_dir or Path(run_dir) / "export"), fmt)
    except (ValueError, OSError, KeyError) as e:
        _fail(e)
    for path in written:
        out.print(str(path), highlight=False)


@app.command()
def compare(
    run_a: str = typer.Argument(..., help="a finished run folder (A)"),
    run_b: str = typer.Argument(..., help="another, of the same task and test sets (B)"),
    out_dir: Optional[str] = typer.Option(None, "--out", help="where to write compare.md/.json (default: none)"),
) -> None:
    """Is A's policy better than B's? Each shared policy on each shared test set, paired input by
    input (same inputs, references and judge), with a bootstrap interval and Holm's correction."""
    from pathlib import Path

    from rlhflab.data.records import write_json, write_text
    from rlhflab.report.compare import compare_markdown, compare_runs

    try:
        result = compare_runs(Path(run_a), Path(run_b))
        if out_dir:
            write_json(Path(out_dir) / "compare.json", result)
            write_text(Path(out_dir) / "compare.md", compare_markdown(result))
    except (ValueError, OSError, KeyError) as e:
        _fail(e)
    out.print(compare_markdown(result), markup=False, highlight=False, soft_wrap=True)


@app.command()
def verify(run_dir: str = typer.Argument(..., help="a run folder, e.g. runs/quickstart")) -> None:
    """Check every stage folder of a run against the sizes and SHA-256 hashes its manifest records."""
    from pathlib import Path

    from rlhflab.artefacts import MANIFEST, check_files, manifest_problem
    from rlhflab.data.records import read_json

    folders = sorted(p.parent for p in Path(run_dir).glob(f"*/{MANIFEST}"))
    if not folders:
        _error(f"{run_dir}: no stage folders with a manifest")
        raise typer.Exit(1)
    bad = 0
    for folder in folders:
        problem = manifest_problem(folder) or check_files(folder, read_json(folder / MANIFEST), hashes=True)
        bad += problem is not None
        out.print(f"{folder.name}: {problem or 'ok'}", highlight=False, soft_wrap=True)
    if bad:
        console.print(f"{bad} stage(s) changed since they were written; `rlhflab run` reruns them", soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def winrate(
    files: list[str] = typer.Argument(..., help="annotation files in AlpacaEval's format"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON, for scripts"),
) -> None:
    """Win rate, standard error and counts per file, judge and generator from AlpacaEval-style
    annotation files (rlhflab's or alpaca_eval's own; preferences in [1, 2], draws 0 or 1.5), with
    each kind of invalid record counted."""
    import json

    from rlhflab.evaluation.winrate import AnnotationFileError, read_annotations, summarise_annotation_file

    rows: list[dict] = []
    for f in files:
        try:
            annotations = read_annotations(f)
        except FileNotFoundError:
            _fail(ValueError(f"{f}: no such file"))
        except (AnnotationFileError, UnicodeDecodeError, IsADirectoryError) as e:
            _fail(e if isinstance(e, AnnotationFileError) else ValueError(f"{f}: not a JSON annotation file ({e})"))
        if not annotations:
            _fail(ValueError(f"{f}: holds no annotations"))
        rows += summarise_annotation_file(f, annotations)
    if as_json:
        out.print(json.dumps(rows, indent=2), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table(title="win rate of generator_2 against generator_1 (%)")
    for col in ("file", "judge", "generator", "win rate", "SE", "n", "draws", "invalid"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["file"], r["judge"], r["generator"], f"{r['win_rate']:.2f}", f"{r['standard_error']:.2f}",
                      str(r["n"]), str(r["draws"]), str(r["invalid"]))
    out.print(table)
    for r in rows:
        for kind, v in r["invalid_kinds"].items():
            out.print(f"{r['file']} ({r['generator']}): {v['count']} invalid ({kind}), first at record "
                      f"{v['first_index']}", highlight=False, soft_wrap=True)


if __name__ == "__main__":  # pragma: no cover
    app()
