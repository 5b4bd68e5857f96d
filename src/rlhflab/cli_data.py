"""`rlhflab data` and `rlhflab prompts`: public datasets into records, and prompt sets by task tag."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhflab.data.records import RecordError

console = Console(stderr=True)
out = Console()


def _fail(e: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


data_app = typer.Typer(no_args_is_help=True, help="Public datasets: list adapters, convert rows to records.")
prompts_app = typer.Typer(no_args_is_help=True, help="Tag policy-training prompts and build prompt sets (ivison2024 J).")


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
            from rlhflab.config.base import http_url_problem

            if (problem := http_url_problem(base_url)) is not None:
                raise ValueError(f"--base-url: {problem}")
            tagger = ChatTagger(base_url=base_url, model=model, api_key_env=api_key_env)
        tagged, summary = tag_prompts(records, tagger)
        if summary["n"] and summary["unreadable"] == summary["n"] and getattr(tagger, "last_error", None):
            raise ValueError(f"no prompt was tagged: {tagger.last_error}")  # the endpoint, not the prompts
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
