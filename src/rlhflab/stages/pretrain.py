"""`pretrain` stage: a tokenizer and a small Llama trained on the task's unlabelled text.

Runs only when `model.name_or_path` is empty; otherwise SFT starts from that Hugging Face model.
"""

from __future__ import annotations

import json
import random

from accelerate.utils import set_seed

from rlhflab.data.tokenize import encode_text
from rlhflab.inputs import layout
from rlhflab.layout import PRETRAIN_CORPUS
from rlhflab.models import build_llama, save_model, train_tokenizer
from rlhflab.pipeline import PipelineError, Stage, StageContext
from rlhflab.training import make_accelerator, train_lm, use_gradient_checkpointing


# what of `model` the base is built from (not model.lora, not inference settings: they do not change it)
ARCHITECTURE = tuple(f"model.{k}" for k in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                                            "intermediate_size", "max_position_embeddings", "dtype"))


def _texts(path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def run(ctx: StageContext) -> dict:
    cfg, spec = ctx.cfg.pretrain, ctx.cfg.model
    corpus_path = ctx.input("data") / PRETRAIN_CORPUS
    if not corpus_path.exists():
        raise PipelineError("pretrain: the task has no pretraining corpus; set task.pretrain_corpus "
                            "or start from a pretrained model with model.name_or_path")
    set_seed(ctx.cfg.data_seed)
    texts = _texts(corpus_path)
    # The tokenizer also sees the SFT completions so summary words are single tokens, as a
    # web-trained tokenizer's would be.
    with open(ctx.input("data") / layout(ctx).require("sft", "train").file, encoding="utf-8") as f:
        completions = [json.loads(line)["completion"] for line in f if line.strip()]
    tokenizer = train_tokenizer(texts + completions, spec.vocab_size, cfg.tokenizer_min_frequency)
    model = build_llama(spec, tokenizer)

    rng = random.Random(ctx.cfg.data_seed)
    rng.shuffle(texts)
    n_val = max(1, len(texts) // 20)
    val = [encode_text(tokenizer, t, cfg.max_length) for t in texts[:n_val]]
    train = [encode_text(tokenizer, t, cfg.max_length) for t in texts[n_val:]]

    use_gradient_checkpointing(model, ctx.cfg.train)
    accelerator = make_accelerator(ctx.cfg.train)
    summary = train_lm(model, train, val, cfg.optim, accelerator=accelerator,
                       pad_id=tokenizer.pad_token_id, seed=ctx.cfg.data_seed,
                       eval_every=max(1, len(train) // cfg.optim.batch_size // 4), log=ctx.log,
                       progress=lambda i, n: ctx.progress("pretrain", i, n), name="pretrain")
    if ctx.is_main:
        save_model(accelerator.unwrap_model(model), tokenizer, ctx.out)
    n_params = sum(p.numel() for p in model.parameters())
    return {**summary, "params": n_params, "vocab_size": len(tokenizer), "train_docs": len(train)}


STAGE = Stage(name="pretrain", needs=lambda cfg: ["data"], reads=("data_seed", *ARCHITECTURE, "train", "pretrain"),
              run=run, enabled=lambda cfg: cfg.model.name_or_path is None and cfg.model.gguf is None,
              headline=("best_val_loss", "params"))
