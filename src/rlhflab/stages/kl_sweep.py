"""`kl_sweep` stage: PPO at several KL coefficients β, each scored by validation RM score, KL and
gold reward and by per-input Sentence-BERT diversity of its samples at τ = 1 (000 fig. 11–13:
does a stronger KL penalty bring back the SFT model's diversity?). The SFT model's diversity on
the same inputs is measured alongside, as the reference line."""

from __future__ import annotations

import torch

from rlhflab.data.records import PromptRecord, read_records, write_json
from rlhflab.evaluation.diversity import cosine_diversity, load_sentence_encoder
from rlhflab.generation import sample_texts
from rlhflab.pipeline import Stage, StageContext
from rlhflab.stages.common import data_file, task_info
from rlhflab.stages.ppo import PPOTrainer


def per_input_diversity(model, tokenizer, prompts: list[str], k: int, encoder, ctx: StageContext) -> float:
    g = ctx.cfg.generation
    torch.manual_seed(ctx.seed + 303)
    texts = sample_texts(model, tokenizer, [p for p in prompts for _ in range(k)], batch_size=g.batch_size * 4,
                         temperature=1.0, top_p=g.top_p, max_new_tokens=g.max_new_tokens)
    emb = encoder.encode(texts, batch_size=128, convert_to_numpy=True)
    return sum(cosine_diversity(emb[i * k:(i + 1) * k]) for i in range(len(prompts))) / len(prompts)


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.kl_sweep
    tests = task_info(ctx)["test_sets"]
    prompts = [r.prompt for r in read_records(data_file(ctx, tests[cfg.test_set]), PromptRecord)][: cfg.n_inputs]
    encoder = load_sentence_encoder(ctx.cfg.diversity.sentence_encoder)
    points, sft_div = [], None
    for i, beta in enumerate(cfg.kl_coefs):
        ctx.progress("kl_sweep", i, len(cfg.kl_coefs))
        ppo = ctx.cfg.ppo.model_copy(update={"kl_coef": beta, "max_steps": cfg.max_steps or ctx.cfg.ppo.max_steps,
                                             "save_every": 10**9})
        sub_cfg = ctx.cfg.model_copy(update={"ppo": ppo})
        sub = type(ctx)(sub_cfg, ctx.stage, ctx.out / f"beta_{beta:g}", ctx.run_dir, ctx.state,
                        key=f"{ctx.key}-{beta:g}")
        sub.out.mkdir(parents=True, exist_ok=True)
        trainer = PPOTrainer(sub)
        m = trainer.train(save=False)
        if sft_div is None:
            sft_div = per_input_diversity(trainer.ref, trainer.tokenizer, prompts, cfg.samples_per_input, encoder, ctx)
        div = per_input_diversity(trainer.raw.policy, trainer.tokenizer, prompts, cfg.samples_per_input, encoder, ctx)
        points.append({"kl_coef": beta, "rm_score": m.get("final_val_rm_score"), "kl": m.get("final_val_kl"),
                       "gold": m.get("final_val_gold"), "diversity": div})
    ctx.progress("kl_sweep", len(cfg.kl_coefs), len(cfg.kl_coefs))
    if ctx.is_main:
        write_json(ctx.out / "sweep.json", {"points": points, "sft_diversity": sft_div,
                                            "test_set": cfg.test_set, "n_inputs": len(prompts)})
    return {f"beta_{p['kl_coef']:g}/diversity": p["diversity"] for p in points} | {"sft_diversity": sft_div}


STAGE = Stage(name="kl_sweep", needs=lambda cfg: ["data", "sft", "rm"],
              reads=("seed", "generation", "ppo", "kl_sweep", "diversity.sentence_encoder", "model.dtype"),
              run=run, enabled=lambda cfg: cfg.kl_sweep.enabled)
