"""`kl_sweep` stage: PPO at several KL coefficients β, each scored by validation RM score, KL and
gold reward and by per-input Sentence-BERT diversity of its samples at τ = 1 (kirk2024 fig. 11–13:
does a stronger KL penalty bring back the SFT model's diversity?). The SFT model's diversity on
the same inputs is measured alongside, as the reference line."""

from __future__ import annotations

from statistics import mean

import torch

from rlhflab.data.records import write_json
from rlhflab.evaluation.diversity import cosine_diversity, load_sentence_encoder
from rlhflab.generation import sample_texts
from rlhflab.inputs import gold_reward_of, layout, read_set
from rlhflab.pipeline import Stage, StageContext
from rlhflab.ppo_trainer import PPOTrainer


def per_input_diversity(model, tokenizer, prompts: list[str], k: int, encoder, ctx: StageContext) -> list[float]:
    """Sentence-BERT diversity of k samples at τ = 1, one value per prompt."""
    g = ctx.cfg.generation
    torch.manual_seed(ctx.seed + 303)
    texts = sample_texts(model, tokenizer, [p for p in prompts for _ in range(k)], batch_size=g.batch_size * 4,
                         temperature=1.0, top_p=g.top_p, max_new_tokens=g.max_new_tokens)
    emb = encoder.encode(texts, batch_size=128, convert_to_numpy=True)
    return [float(cosine_diversity(emb[i * k:(i + 1) * k])) for i in range(len(prompts))]


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.kl_sweep
    data = layout(ctx)
    prompts = [r.prompt for r in read_set(ctx, data.require("prompt", "test", cfg.test_set))][: cfg.n_inputs]
    train_prompts = [r.prompt for r in read_set(ctx, data.require("prompt", "train"))]
    val_prompts = [r.prompt for r in read_set(ctx, data.require("prompt", "validation"))]
    encoder = load_sentence_encoder(ctx.cfg.diversity.sentence_encoder)
    gold = gold_reward_of(ctx)
    points, sft_div = [], None
    for i, beta in enumerate(cfg.kl_coefs):
        ctx.progress("kl_sweep", i, len(cfg.kl_coefs))
        ppo = ctx.cfg.ppo.model_copy(update={"kl_coef": beta, "max_steps": cfg.max_steps or ctx.cfg.ppo.max_steps})
        metrics_file = ctx.out / f"beta_{beta:g}" / "metrics.jsonl"  # each β's PPO curve beside the sweep
        trainer = PPOTrainer(ppo, ctx.cfg.generation, sft_dir=ctx.input("sft"), rm_dir=ctx.input("rm"),
                             seed=ctx.seed, dtype=ctx.cfg.model.dtype, prompts=train_prompts,
                             val_prompts=val_prompts, gold=gold,
                             log=lambda step, row, f=metrics_file: ctx.log(step, row, f))
        m = trainer.train()
        if sft_div is None:
            sft_div = per_input_diversity(trainer.ref, trainer.tokenizer, prompts, cfg.samples_per_input, encoder, ctx)
        div = per_input_diversity(trainer.policy, trainer.tokenizer, prompts, cfg.samples_per_input, encoder, ctx)
        points.append({"kl_coef": beta, "rm_score": m.get("final_val_rm_score"), "kl": m.get("final_val_kl"),
                       "gold": m.get("final_val_gold"), "diversity": mean(div), "diversity_per_input": div})
    ctx.progress("kl_sweep", len(cfg.kl_coefs), len(cfg.kl_coefs))
    if ctx.is_main:
        write_json(ctx.out / "sweep.json", {"points": points, "sft_diversity": mean(sft_div),
                                            "sft_diversity_per_input": sft_div,
                                            "test_set": cfg.test_set, "n_inputs": len(prompts)})
    return {f"beta_{p['kl_coef']:g}/diversity": p["diversity"] for p in points} | {"sft_diversity": mean(sft_div)}


STAGE = Stage(name="kl_sweep", needs=lambda cfg: ["data", "sft", "rm"],
              reads=("seed", "generation", "ppo", "kl_sweep", "diversity.sentence_encoder", "model.dtype"),
              run=run, enabled=lambda cfg: cfg.kl_sweep.enabled)
