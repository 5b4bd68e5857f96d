"""The stage around an on-policy trainer (PPO, RLOO, GRPO, online DPO): the same inputs, outputs,
selection and headline for each, so the study treats them alike. The stage's name is its config
section's."""

from __future__ import annotations

from typing import Callable

from rlhflab.inputs import gold_reward_of, layout, read_set
from rlhflab.lora import saves_adapter
from rlhflab.models import save_model
from rlhflab.online_trainer import OnlineTrainer
from rlhflab.pipeline import Stage, StageContext


def train_policy(ctx: StageContext, trainer_class: type[OnlineTrainer], name: str) -> dict:
    """Train `name` from the SFT model against the RM on the task's policy prompts; resume from the
    last checkpoint after a crash; save the policy selected on validation RM score − β·KL."""
    data = layout(ctx)
    trainer = trainer_class(
        getattr(ctx.cfg, name), ctx.cfg.generation, sft_dir=ctx.input("sft"), rm_dir=ctx.input("rm"), seed=ctx.seed,
        dtype=ctx.cfg.model.dtype, lora=ctx.cfg.model.lora, train=ctx.cfg.train,
        prompts=[r.prompt for r in read_set(ctx, data.require("prompt", "train"))],
        val_prompts=[r.prompt for r in read_set(ctx, data.require("prompt", "validation"))],
        gold=gold_reward_of(ctx), log=ctx.log, progress=lambda i, n: ctx.progress(name, i, n),
        checkpoint_dir=ctx.checkpoint_dir, metrics_file=ctx.metrics_file,
        on_resume=lambda step, total: ctx.progress(f"{name}: resuming at step {step} of {total}", 0, 0))
    summary = trainer.train()
    # what a sweep of this stage selects on: the kept checkpoint's validation reward (kirk2024 E.3)
    for k in ("val_rm_score", "val_kl", "val_gold"):  # the kept weights' numbers, not the last step's
        summary[f"selected_{k}"] = summary["selected"].get(k)
    if ctx.is_main:
        save_model(trainer.policy, trainer.tokenizer, ctx.out, adapter_only=saves_adapter(ctx.cfg.model.lora))
    return summary


def online_stage(name: str, run: Callable[[StageContext], dict]) -> Stage:
    """The Stage of `run`, a function of the stage's own module that calls `train_policy` (so the
    stage's cache key covers its trainer's code)."""
    return Stage(name=name, needs=lambda cfg: ["data", "sft", "rm"],
                 reads=("seed", "generation", name, "model.dtype", "model.lora", "train"), run=run,
                 enabled=lambda cfg: getattr(cfg, name).enabled,
                 select=("selected_val_rm_score", "max"),
                 headline=("selected_val_rm_score", "selected_val_kl", "selected_val_gold", "best_step"))
