"""`data` stage: write the task's sets as JSONL records in the data layout (rlhflab.layout), and
`task.json`: the layout with each set's distribution, sizes, and the task's gold reward if any.

The synthetic task is generated from the seed; a `datasets` task converts public datasets through
their adapters, renders chat prompts and applies its OOD split; a `files` task is validated record
by record and copied in (rlhflab.tasks). Every later stage reads the same layout and none knows
where the data came from.
"""

from __future__ import annotations

from rlhflab.pipeline import Stage, StageContext
from rlhflab.tasks import build_task, local_files


def run(ctx: StageContext) -> dict:
    if not ctx.is_main:
        return {}
    return build_task(ctx.cfg.task, ctx.seed, ctx.out, _chat_tokenizer(ctx),
                      lambda s: ctx.progress(f"data: {s}", 0, 0))


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


STAGE = Stage(name="data", needs=_needs, reads=("seed", "task", "model.name_or_path"), run=run,
              files=lambda cfg: local_files(cfg.task))
