"""`sft` stage: supervised fine-tuning on reference completions (kirk2024 §3, appendix E).

Cross-entropy on completion tokens only; the first `freeze_fraction` of layers plus embeddings
are frozen (kirk2024 table 2: 80%); model selection on ID validation loss (kirk2024 appendix E.3). When the
task has a gold reward, one sample per validation prompt from the base and the SFT model is
scored, so the manifest shows what SFT bought.
"""

from __future__ import annotations

from accelerate.utils import set_seed

from rlhflab.data.tokenize import encode_completion
from rlhflab.inputs import base_model_dir, base_model_needs, gold_reward_of, layout, mean_gold_of_samples, read_set
from rlhflab.lora import prepare_trainable, saves_adapter
from rlhflab.models import load_causal_lm, load_tokenizer, save_model
from rlhflab.pipeline import Stage, StageContext
from rlhflab.training import make_accelerator, train_lm, unfreeze, use_gradient_checkpointing


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.sft
    set_seed(ctx.seed)
    source = base_model_dir(ctx)
    tokenizer = load_tokenizer(source)
    model = load_causal_lm(source, ctx.cfg.model.dtype)
    data = layout(ctx)
    train_recs = read_set(ctx, data.require("sft", "train"))
    val_recs = read_set(ctx, data.require("sft", "validation"))
    train = [encode_completion(tokenizer, r.prompt, r.completion, cfg.max_length) for r in train_recs]
    val = [encode_completion(tokenizer, r.prompt, r.completion, cfg.max_length) for r in val_recs]

    gold = gold_reward_of(ctx)
    check_prompts = [r.prompt for r in val_recs[: cfg.n_sample_check]]
    metrics: dict = {}
    if gold and check_prompts:
        metrics["gold_reward_base"] = mean_gold_of_samples(ctx, model, tokenizer, check_prompts, gold)

    model, counts = prepare_trainable(model, ctx.cfg.model.lora, cfg.freeze_fraction)
    metrics.update(counts)
    use_gradient_checkpointing(model, ctx.cfg.train)
    accelerator = make_accelerator(ctx.cfg.train)
    metrics.update(train_lm(model, train, val, cfg.optim, accelerator=accelerator,
                            pad_id=tokenizer.pad_token_id, seed=ctx.seed, eval_every=cfg.eval_every,
                            log=ctx.log, progress=lambda i, n: ctx.progress("sft", i, n), name="sft"))
    model = accelerator.unwrap_model(model)
    unfreeze(model)
    if gold and check_prompts:
        metrics["gold_reward_sft"] = mean_gold_of_samples(ctx, model, tokenizer, check_prompts, gold)
    if ctx.is_main:
        save_model(model, tokenizer, ctx.out, adapter_only=saves_adapter(ctx.cfg.model.lora))
    return metrics


def _needs(cfg) -> list[str]:
    return ["data"] + base_model_needs(cfg)


STAGE = Stage(name="sft", needs=_needs, reads=("seed", "model.name_or_path", "model.dtype", "model.lora", "train", "sft",
                                                    "generation"),
              run=run, select=("best_val_loss", "min"),
              headline=("best_val_loss", "gold_reward_base", "gold_reward_sft"))
