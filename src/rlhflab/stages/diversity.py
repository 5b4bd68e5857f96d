"""`diversity` stage: per-input and across-input diversity of every policy (kirk2024 §5.2, §6.2, J.4).

For N inputs of one test set, K samples per input at τ = 1 from each policy (best-of-N's pool too:
its N candidates are drawn at the same τ, not at bon.temperature, so every policy is measured at
one temperature, kirk2024 §6.2); EAD, Sentence-BERT and NLI diversity per input (mean, std over
inputs; eq. 2) and across inputs (first sample of every input, spread over redraws; eq. 3). Each
text is embedded once and reused. On the synthetic task the ground truth is recorded beside them:
`content`, `content_distinct` and `form` (rlhflab.evaluation.ground_truth_diversity). Writes
`diversity.json` and the samples (`samples/<policy>.jsonl`) so any number can be recomputed.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from rlhflab.data.records import write_json, write_jsonl
from rlhflab.evaluation.diversity import load_sentence_encoder, nli_for
from rlhflab.evaluation.ground_truth_diversity import measured_diversity
from rlhflab.inputs import available_policies, layout, policy_wants, read_set, sampler_of, task_info
from rlhflab.pipeline import Stage, StageContext


def diversity_sampler(ctx: StageContext, name: str):
    """Policy `name` sampling at diversity.temperature; for best-of-N also its candidate pool."""
    tau = ctx.cfg.diversity.temperature
    return sampler_of(ctx, name, tau, pool_temperature=tau)


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.diversity
    chosen = layout(ctx).test_set_or_first_id(cfg.test_set)
    recs = read_set(ctx, chosen)[: cfg.n_inputs]
    prompts, k = [r.prompt for r in recs], cfg.samples_per_input
    encoder = load_sentence_encoder(cfg.sentence_encoder) if "sentence_bert" in cfg.metrics else None
    task = task_info(ctx).get("task")
    nli = nli_for(cfg, task) if "nli" in cfg.metrics else None
    policies = available_policies(ctx, cfg.policies)
    table: dict = {"test_set": chosen.name, "n_inputs": len(prompts), "samples_per_input": k,
                   "temperature": cfg.temperature, "bon_pool_temperature": cfg.temperature,
                   "ead_tokenisation": cfg.ead_tokenisation, "nli_variant": cfg.nli_variant,
                   "nli_scale": [-2.0, 2.0], "policies": {}}
    headline = {}
    for i, name in enumerate(policies):
        ctx.progress("diversity", i, len(policies))
        torch.manual_seed(ctx.seed + 101)  # every policy gets the same sampling seed
        texts = diversity_sampler(ctx, name)(prompts, k)
        result = measured_diversity(texts, len(prompts), k, cfg, task, encoder=encoder, nli=nli, seed=ctx.seed)
        table["policies"][name] = {m: {kind: asdict(s) for kind, s in v.items()} for m, v in result.items()}
        for m, v in result.items():
            headline[f"{name}/{m}_per_input"] = v["per_input"].mean
            headline[f"{name}/{m}_across_input"] = v["across_input"].mean
        if ctx.is_main:
            write_jsonl(ctx.out / "samples" / f"{name}.jsonl",
                        [{"id": r.id, "prompt": r.prompt, "outputs": texts[j * k:(j + 1) * k]}
                         for j, r in enumerate(recs)])
    ctx.progress("diversity", len(policies), len(policies))
    if ctx.is_main:
        write_json(ctx.out / "diversity.json", table)
    return headline


STAGE = Stage(name="diversity", needs=lambda cfg: ["data", "sft"],
              wants=lambda cfg: policy_wants(cfg.diversity.policies, cfg.bon.reward_model),
              reads=("seed", "generation", "diversity", "bon.n", "bon.reward_model", "model.dtype"),
              run=run, enabled=lambda cfg: cfg.diversity.enabled)
