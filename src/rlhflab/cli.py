"""The `rlhflab` command line: thin wrappers that parse, call the pipeline and print."""

from __future__ import annotations

import os
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rlhflab.config import ConfigError, dump_config, load_config
from rlhflab.data.records import RecordError
from rlhflab.memory import describe

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Learning from preference feedback: SFT, reward models, PPO, DPO, best-of-N.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect experiment configs.")
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()


def _error(message: object) -> None:
    """One line on stderr; the message is escaped, since "[relationships]" would read as markup."""
    console.print(f"[red]error:[/red] {escape(str(message))}", highlight=False, soft_wrap=True)


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
    until: Optional[str] = typer.Option(None, help="stop after this stage"),
    force: list[str] = typer.Option([], help="rerun this stage even if its artefact is current (for eval: "
                                    "judge everything anew instead of reusing cached judgements)"),
    overwrite: bool = typer.Option(False, help="run even if runs/<name> holds a run of another config file"),
    debug: bool = typer.Option(False, help="show the full traceback of an error instead of one line"),
    yes: bool = typer.Option(False, "--yes", help="run even when the data would take most of the memory or hours"),
) -> None:
    """Run the experiment's pipeline; stages whose inputs are unchanged are skipped. With `seeds`
    in the config, one run per seed (`<name>-s<seed>`), then the aggregate over them."""
    from rlhflab.evaluation.annotations import JudgeUnavailable
    from rlhflab.experiment import run_experiment
    from rlhflab.pipeline import PipelineError
    from rlhflab.run_lock import RunInUse
    from rlhflab.stages import REGISTRY
    from rlhflab.training import NonFiniteError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = _load(config, set_)
    from rlhflab.tasks import preflight

    if not yes and (problem := preflight(cfg.task)):
        _error(problem)
        raise typer.Exit(1)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), console=console, disable=not cfg.pipeline.progress)
    tasks: dict[str, int] = {}

    def on_stage(name: str, status: str) -> None:
        if status == "cached" or status.startswith("shared"):  # shared: a multi-seed run's data / base model
            console.print(f"[dim]{name}: {'up to date, skipped' if status == 'cached' else status}[/dim]")
        elif status == "running":
            console.print(f"[bold]{name}[/bold]: running")
        elif status.startswith("rerun: "):
            console.print(f"[yellow]{name}: {status.removeprefix('rerun: ')}; running it again[/yellow]",
                          highlight=False, soft_wrap=True)

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
            target = run_experiment(cfg, REGISTRY, until=until, force=set(force), overwrite=overwrite,
                                    on_done=_print_run,
                                    on_stage=on_stage, on_progress=on_progress)
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
        _error(e)
        raise typer.Exit(1)
    for claim, v in result["findings"].items():
        out.print(f"{v['verdict']} over seeds ({v['reproduced_in']}/{v['checked_in']} seeds reproduce): {claim}",
                  markup=False)
    out.print(f"aggregate: {Path(out_dir) / 'aggregate.md'}")


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


data_app = typer.Typer(no_args_is_help=True, help="Public datasets: list adapters, convert rows to records.")
app.add_typer(data_app, name="data")
prompts_app = typer.Typer(no_args_is_help=True, help="Tag policy-training prompts and build prompt sets (ivison2024 J).")
app.add_typer(prompts_app, name="prompts")


def _fail(e: Exception) -> None:
    _error(e)
    raise typer.Exit(1)


@data_app.command("sources")
def data_sources() -> None:
    """The dataset adapters: name, hub id, record kinds, what it is."""
    from rlhflab.data.sources import ADAPTERS

    table = Table(title="dataset sources")
    for col in ("name", "hub id", "records", "what"):
        table.add_column(col)
    for a in ADAPTERS.values():
        table.add_row(a.name, a.hub[0] + (f" ({a.hub[1]})" if a.hub[1] else ""), ", ".join(a.kinds), a.description)
    out.print(table)


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="adapter name (rlhflab data sources)"),
    kind: str = typer.Argument(..., help="sft, preference or prompt"),
    out_file: str = typer.Option(..., "--out", help="JSONL file of records to write"),
    split: str = typer.Option("train", help="the source's split (hub only)"),
    path: Optional[str] = typer.Option(None, help="local rows in the source's schema instead of the hub"),
    limit: Optional[int] = typer.Option(None, help="seeded random sample of this many records"),
    seed: int = typer.Option(0),
    chat_template: str = typer.Option("tulu", help="tulu, none, or a model name/folder whose template to use"),
    split_by: Optional[str] = typer.Option(None, help="also write ID/OOD halves: length or sentiment (median of this file)"),
) -> None:
    """Convert a public dataset into rlhflab records (for `task: {kind: files}` or inspection)."""
    from pathlib import Path

    from rlhflab.data.chat import render_records
    from rlhflab.data.records import write_json, write_jsonl
    from rlhflab.data.sources import load_source
    from rlhflab.data.splits import apply_split, describe, fit_split

    try:
        records = load_source(source, kind, split, path, limit, seed)
        tokenizer, template = None, chat_template
        if chat_template not in ("tulu", "none"):
            from rlhflab.models import load_tokenizer

            tokenizer, template = load_tokenizer(chat_template), "auto"
        records = render_records(records, tokenizer, template)
        write_jsonl(out_file, records)
        out.print(f"{len(records)} {kind} records -> {out_file}")
        if split_by:
            rule = fit_split(records, split_by)
            ind, ood = apply_split(records, rule)
            stem = Path(out_file).with_suffix("")
            write_jsonl(f"{stem}.id.jsonl", ind)
            write_jsonl(f"{stem}.ood.jsonl", ood)
            write_json(f"{stem}.split.json", {"rule": rule.to_dict(), **describe(records, rule)})
            out.print(f"split by {split_by} at {rule.threshold:g}: {len(ind)} ID, {len(ood)} OOD")
    except (RecordError, ValueError, OSError) as e:
        _fail(e)


@prompts_app.command("tag")
def prompts_tag(
    in_file: str = typer.Argument(..., help="JSONL prompt records"),
    out_file: str = typer.Option(..., "--out"),
    model: str = typer.Option(..., help="chat model name at --base-url, or a local HF model with --local"),
    base_url: str = typer.Option("https://api.openai.com/v1", help="OpenAI-compatible endpoint"),
    local: bool = typer.Option(False, help="run `model` locally with transformers instead of over HTTP"),
    api_key_env: str = typer.Option("OPENAI_API_KEY"),
) -> None:
    """Tag each prompt with ivison2024 figure 5's task tags (Coding, Math, ..., Unclear)."""
    from rlhflab.prompt_tags import ChatTagger, LocalTagger, tag_prompts
    from rlhflab.data.records import PromptRecord, read_records, write_json, write_jsonl

    try:
        records = read_records(in_file, PromptRecord)
        if local:
            from rlhflab.models import load_causal_lm, load_tokenizer

            tagger = LocalTagger(load_causal_lm(model), load_tokenizer(model), model)
        else:
            tagger = ChatTagger(base_url=base_url, model=model, api_key_env=api_key_env)
        tagged, summary = tag_prompts(records, tagger)
        write_jsonl(out_file, tagged)
        write_json(f"{out_file}.summary.json", summary)
    except (RecordError, ValueError, OSError) as e:
        _fail(e)
    out.print(f"tagged {summary['n']} prompts ({summary['unreadable']} unreadable replies) -> {out_file}")
    for tag, n in sorted(summary["tag_counts"].items(), key=lambda kv: -kv[1]):
        out.print(f"  {n:6d}  {tag}")


@prompts_app.command("mix")
def prompts_mix(
    in_file: str = typer.Argument(..., help="tagged JSONL prompt records (rlhflab prompts tag)"),
    out_file: str = typer.Option(..., "--out"),
    mix: list[str] = typer.Option(..., help="TAG=COUNT, repeatable; TAG 'any' for untargeted prompts"),
    seed: int = typer.Option(0),
) -> None:
    """A prompt set mixing tagged prompts, e.g. --mix Math=10000 --mix any=10000 (ivison2024 §3.4)."""
    from rlhflab.prompt_tags import build_prompt_set
    from rlhflab.data.records import PromptRecord, read_records, write_jsonl

    try:
        wanted = {}
        for m in mix:
            tag, _, count = m.rpartition("=")
            if not tag or not count.isdigit():
                raise ValueError(f"--mix {m!r}: expected TAG=COUNT, e.g. --mix Math=1000")
            wanted[tag] = int(count)
        picked = build_prompt_set(read_records(in_file, PromptRecord), wanted, seed)
        write_jsonl(out_file, picked)
    except (RecordError, ValueError, OSError) as e:
        _fail(e)
    out.print(f"{len(picked)} prompts -> {out_file}")


if __name__ == "__main__":  # pragma: no cover
    app()
