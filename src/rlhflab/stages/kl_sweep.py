"""`kl_sweep` stage: PPO (or `kl_sweep.method`: GRPO, RLOO) at several KL coefficients β (kirk2024 appendix I, fig. 11–13): does a
stronger KL penalty trade generalisation for diversity, or bring back the SFT model's diversity?

Every number of a β comes from ONE checkpoint of its run, `kl_sweep.select_on` (the last by
default; recorded as the point's `step`): the validation RM score, KL and gold reward of that
checkpoint's validation pass, and, from the same weights, (1) PvR win rates on the ID and every
OOD test set (at most `n_inputs` inputs each, one output per input at the generation τ, judged
against the references by `eval.judge` exactly as the eval stage judges) with the ID − OOD gap,
and (2) per-input and across-input diversity of `samples_per_input` samples at the diversity τ on
`test_set`, every metric of `diversity.metrics`, as the diversity stage measures it. The SFT
model is measured the same way, as the β = ∞ reference line. Writes `sweep.json`.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from rlhflab.data.records import write_json
from rlhflab.evaluation.annotations import AnnotationCache
from rlhflab.evaluation.diversity import load_sentence_encoder, nli_for
from rlhflab.evaluation.ground_truth_diversity import measured_diversity
from rlhflab.inputs import gold_reward_of, layout, read_set, task_info
from rlhflab.judging import JUDGE_READS, judge_needs, judges_for, pvr_by_set
from rlhflab.layout import roles
from rlhflab.lora import adapter_disabled
from rlhflab.pipeline import Stage, StageContext
from rlhflab.group_trainer import GRPOTrainer, RLOOTrainer
from rlhflab.ppo_trainer import PPOTrainer
from rlhflab.sampling import model_sampler

DIVERSITY_READS = tuple(f"diversity.{k}" for k in ("metrics", "temperature", "sentence_encoder", "nli_model",
                                                     "nli_variant", "max_nli_pairs", "ead_vocab_size",
                                                     "ead_tokenisation", "resamples"))


class Measure:
    """Win rates per test set and diversity of one model, the same way for every β and for SFT."""

    def __init__(self, ctx: StageContext):
        cfg, data = ctx.cfg.kl_sweep, layout(ctx)
        tests = sorted(data.tests("prompt"), key=lambda ds: ds.name)  # the eval stage's order
        self.ctx, self.sets = ctx, roles(tests)
        self.test_sets = {ds.name: read_set(ctx, ds)[: cfg.n_inputs] for ds in tests}
        self.compare_to = {s: v["compare_to"] for s, v in self.sets.items()
                           if v["distribution"] == "ood" and v["compare_to"]}
        self.div_set = data.test_set_or_first_id(cfg.test_set)
        self.div_prompts = [r.prompt for r in read_set(ctx, self.div_set)][: cfg.n_inputs]
        div = ctx.cfg.diversity
        self.encoder = load_sentence_encoder(div.sentence_encoder) if "sentence_bert" in div.metrics else None
        self.task = task_info(ctx).get("task")
        self.nli = nli_for(div, self.task) if "nli" in div.metrics else None
        self.judges = judges_for(ctx, self.test_sets)
        self.cache = AnnotationCache(ctx.run_dir / "judge-cache" / "annotations.jsonl", reuse=not ctx.forced)

    def __call__(self, model, tokenizer) -> dict:
        ctx, g, div = self.ctx, self.ctx.cfg.generation, self.ctx.cfg.diversity
        torch.manual_seed(ctx.seed + 202)  # the eval stage's sampling seed
        sample = model_sampler(model, tokenizer, g, g.temperature)
        outputs = {s: sample([r.prompt for r in recs], 1) for s, recs in self.test_sets.items()}
        judged = pvr_by_set(self.judges, ctx.cfg.eval.judge, self.test_sets, outputs, seed=ctx.seed,
                            cache=self.cache, compare_to=self.compare_to)
        k = ctx.cfg.kl_sweep.samples_per_input
        torch.manual_seed(ctx.seed + 101)  # the diversity stage's sampling seed
        texts = model_sampler(model, tokenizer, g, div.temperature)(self.div_prompts, k)
        table = measured_diversity(texts, len(self.div_prompts), k, div, self.task, encoder=self.encoder,
                                   nli=self.nli, seed=ctx.seed)
        return {**judged, "diversity": {m: {kind: asdict(s) for kind, s in v.items()} for m, v in table.items()}}


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.kl_sweep
    data = layout(ctx)
    train_prompts = [r.prompt for r in read_set(ctx, data.require("prompt", "train"))]
    val_prompts = [r.prompt for r in read_set(ctx, data.require("prompt", "validation"))]
    gold = gold_reward_of(ctx)
    measure = Measure(ctx)
    points, sft = [], None
    for i, beta in enumerate(cfg.kl_coefs):
        ctx.progress("kl_sweep", i, len(cfg.kl_coefs))
        section = getattr(ctx.cfg, cfg.method)
        settings = section.model_copy(update={"kl_coef": beta, "max_steps": cfg.max_steps or section.max_steps,
                                              "select_on": cfg.select_on})
        metrics_file = ctx.out / f"beta_{beta:g}" / "metrics.jsonl"  # each β's training curve beside the sweep
        start: dict = {}

        def log(step, row, f=metrics_file, start=start):
            if step == 0:
                start.update(row)  # the SFT model's validation pass: the reference line's RM score and gold
            ctx.log(step, row, f)

        trainer_class = {"ppo": PPOTrainer, "grpo": GRPOTrainer, "rloo": RLOOTrainer}[cfg.method]
        trainer = trainer_class(settings, ctx.cfg.generation, sft_dir=ctx.input("sft"), rm_dir=ctx.input("rm"),
                             seed=ctx.seed, dtype=ctx.cfg.model.dtype, lora=ctx.cfg.model.lora,
                             train=ctx.cfg.train, prompts=train_prompts,
                             val_prompts=val_prompts, gold=gold, log=log)
        m = trainer.train()
        if sft is None:
            with adapter_disabled(trainer.reference):
                sft = {"rm_score": start.get("val_rm_score"), "kl": 0.0, "gold": start.get("val_gold"),
                       **measure(trainer.reference, trainer.tokenizer)}
        chosen = m["selected"]
        points.append({"kl_coef": beta, "step": chosen["step"], "steps": m["steps"], "is_sft": chosen["step"] == 0,
                       "rm_score": chosen.get("val_rm_score"), "kl": chosen.get("val_kl"),
                       "gold": chosen.get("val_gold"), **measure(trainer.policy, trainer.tokenizer)})
        del trainer  # one β's models at a time
    ctx.progress("kl_sweep", len(cfg.kl_coefs), len(cfg.kl_coefs))
    if ctx.is_main:
        write_json(ctx.out / "sweep.json", {
            "method": cfg.method, "select_on": cfg.select_on, "judge": ctx.cfg.eval.judge, "sets": measure.sets,
            "win_rate_inputs": {s: len(r) for s, r in measure.test_sets.items()},
            "diversity_test_set": measure.div_set.name, "n_inputs": len(measure.div_prompts),
            "samples_per_input": cfg.samples_per_input, "temperature": ctx.cfg.diversity.temperature,
            "points": points, "sft": sft})
    return headline(points, sft, measure.sets)


def headline(points: list[dict], sft: dict, sets: dict) -> dict:
    """Per β (and SFT): the ID win rates and each metric's per-input diversity."""
    out = {}
    for name, p in [(f"beta_{p['kl_coef']:g}", p) for p in points] + [("sft", sft)]:
        out |= {f"{name}/pvr_{s}": p["pvr"][s]["win_rate"] for s, v in sets.items() if v["distribution"] == "id"}
        out |= {f"{name}/{m}_per_input": v["per_input"]["mean"] for m, v in p["diversity"].items()}
    return out


def _needs(cfg) -> list[str]:
    return list(dict.fromkeys(["data", "sft", "rm"] + judge_needs(cfg)))


STAGE = Stage(name="kl_sweep", needs=_needs,
              reads=("seed", "generation", "ppo", "grpo", "rloo", "kl_sweep", "model.lora", "train") + JUDGE_READS
              + DIVERSITY_READS,
              run=run, enabled=lambda cfg: cfg.kl_sweep.enabled)
