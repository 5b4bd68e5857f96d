"""`data` stage: write the task's sets as JSONL records in the data layout (rlhflab.layout), and
`task.json`: the layout with each set's distribution, sizes, and the task's gold reward if any.

The synthetic task is generated from `data_seed` (the run's seed unless a multi-seed run shares
one); a `datasets` task converts public datasets through their adapters, renders chat prompts and
applies its OOD split; a `files` task is validated record by record and copied in (rlhflab.tasks).
Every later stage reads the same layout and none knows where the data came from.

Then, whatever the task, no test input may be in the data a model trains or is selected on
(rlhflab.contamination): the counts go into task.json under "contamination", and an overlap above
`task.contamination_threshold` stops the run. The stage writes into a temporary folder that the
pipeline publishes only when the stage returns, so a stopped run leaves no data stage behind.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhflab.contamination import (ContaminationError, HeldOutSet, contamination_report, error_message,
                                   index, keyed, violations)
from rlhflab.data.records import RECORD_TYPES, read_json, read_records, write_json
from rlhflab.layout import PRETRAIN_CORPUS, TASK_INFO, Layout
from rlhflab.pipeline import Stage, StageContext
from rlhflab.tasks import build_task, local_files


def run(ctx: StageContext) -> dict:
    if not ctx.is_main:
        return {}
    task = ctx.cfg.task
    summary = build_task(task, ctx.cfg.data_seed, ctx.out, _chat_tokenizer(ctx),
                         lambda s: ctx.progress(f"data: {s}", 0, 0))
    ctx.progress("data: contamination check", 0, 0)
    # A datasets task's corpus is its SFT (or chosen) training texts, compared already.
    found = check_contamination(ctx.out, task.contamination_threshold, with_corpus=task.kind != "datasets")
    return {**summary, "contamination": found}


def check_contamination(out_dir: Path, threshold: float, with_corpus: bool = True) -> dict:
    """Compare the test inputs of the task built in out_dir with its other sets, add the counts to
    task.json, and raise ContaminationError above the threshold. Returns the worst overlap."""
    info = read_json(out_dir / TASK_INFO)
    layout = Layout.from_task_info(info)

    def records(ds):
        return read_records(out_dir / ds.file, RECORD_TYPES[ds.kind])

    def name(ds) -> str:
        return ds.file.removesuffix(".jsonl")

    tests = {name(ds): HeldOutSet(ds.kind, ds.distribution, keyed(records(ds))) for ds in layout.sets
             if ds.role == "test"}
    others = {name(ds): index(keyed(records(ds))) for ds in layout.sets if ds.role != "test"}
    corpus_file = out_dir / PRETRAIN_CORPUS
    corpus = _corpus_texts(corpus_file) if with_corpus and corpus_file.exists() else None
    report = contamination_report(tests, others, corpus)
    found = violations(report, threshold)
    info["contamination"] = {
        "threshold": threshold,
        "compared_by": "normalised input (rlhflab.contamination): chat messages, else meta.input, else the prompt",
        "corpus": "compared" if corpus is not None else
        "not compared (built from the training sets)" if corpus_file.exists() else "none",
        "tests": report}
    write_json(out_dir / TASK_INFO, info)
    if found:
        raise ContaminationError(error_message(report, found, threshold))
    worst = max(((n, o, e) for n, t in report.items() for o, e in t["against"].items()),
                key=lambda v: v[2]["fraction"], default=None)
    if worst is None or not worst[2]["count"]:
        return {"max_fraction": 0.0}
    return {"max_fraction": worst[2]["fraction"], "test_set": worst[0], "other": worst[1]}


def _corpus_texts(path: Path) -> list[str]:
    # Lines the pretrain stage would refuse are skipped here: that stage names them.
    texts = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                obj = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                obj = None
            texts.append(obj["text"] if isinstance(obj, dict) and isinstance(obj.get("text"), str) else "")
    return texts


def _chat_tokenizer(ctx: StageContext):
    """The base model's tokenizer, whose chat template renders chat prompts (None: Tulu's format,
    as a model pretrained here, after this stage, has no template of its own)."""
    task = ctx.cfg.task
    if task.kind != "datasets" or task.chat_template != "auto":
        return None
    from rlhflab.models import load_tokenizer

    if ctx.has_input("gguf"):
        return load_tokenizer(ctx.input("gguf"))
    name = ctx.cfg.model.name_or_path
    return load_tokenizer(name) if name else None


def _needs(cfg) -> list[str]:
    # The chat template comes from the base model's tokenizer, so a GGUF model is rebuilt first.
    uses_template = cfg.task.kind == "datasets" and cfg.task.chat_template == "auto"
    return ["gguf"] if uses_template and cfg.model.gguf is not None else []


STAGE = Stage(name="data", needs=_needs, reads=("data_seed", "task", "model.name_or_path"), run=run,
              files=lambda cfg: local_files(cfg.task))
