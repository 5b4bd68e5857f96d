"""`ppo` stage: RLHF with PPO from the SFT model against the reward model, on the task's policy
prompts (the trainer and its maths: rlhflab.ppo_trainer). Resumes from its last checkpoint after a
crash; saves the policy selected on validation RM score − β·KL."""

from __future__ import annotations

from rlhflab.inputs import gold_reward_of, layout, read_set
from rlhflab.lora import saves_adapter
from rlhflab.models import save_model
from rlhflab.pipeline import Stage, StageContext
from rlhflab.ppo_trainer import PPOTrainer


def run(ctx: StageContext) -> dict:
    data = layout(ctx)
    trainer = PPOTrainer(
        ctx.cfg.ppo, ctx.cfg.generation, sft_dir=ctx.input("sft"), rm_dir=ctx.input("rm"), seed=ctx.seed,
        dtype=ctx.cfg.model.dtype, lora=ctx.cfg.model.lora, train=ctx.cfg.train,
        prompts=[r.prompt for r in read_set(ctx, data.require("prompt", "train"))],
        val_prompts=[r.prompt for r in read_set(ctx, data.require("prompt", "validation"))],
        gold=gold_reward_of(ctx), log=ctx.log, progress=lambda i, n: ctx.progress("ppo", i, n),
        checkpoint_dir=ctx.checkpoint_dir, metrics_file=ctx.metrics_file)
    summary = trainer.train()
    # what a sweep of this stage selects on: the kept checkpoint's validation reward (kirk2024 E.3)
    summary["selected_val_rm_score"] = summary["selected"].get("val_rm_score")
    if ctx.is_main:
        save_model(trainer.policy, trainer.tokenizer, ctx.out, adapter_only=saves_adapter(ctx.cfg.model.lora))
    return summary


STAGE = Stage(name="ppo", needs=lambda cfg: ["data", "sft", "rm"], reads=("seed", "generation", "ppo", "model.dtype",
                                                                                  "model.lora", "train"),
              run=run, enabled=lambda cfg: cfg.ppo.enabled,
              select=("selected_val_rm_score", "max"),
              headline=("final_val_rm_score", "final_val_kl", "final_val_gold", "best_step"))
