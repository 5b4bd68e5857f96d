"""`bon` stage: best-of-N sampling from the SFT policy with a reward model (kirk2024 §3; ivison2024 appendix H).

For every test set: sample N completions per input at τ = 0.7, score them with the RM, keep the
best; outputs go to `outputs/<test_set>.jsonl` for evaluation like any other policy's.

The best-of-N curve (kirk2024 fig. 22) reuses ONE pool of max(sweep) samples per ID validation prompt.
For each N it averages the gold reward of the RM's pick over all ⌊K/N⌋ disjoint blocks of the pool
(the nested prefix is one of them), an unbiased estimate of E[gold(best-of-N)] with less variance
than one prefix; spread is the standard error over prompts.
"""

from __future__ import annotations

from statistics import mean

import torch

from rlhflab.data.records import write_json, write_jsonl
from rlhflab.inputs import gold_reward_of, layout, read_set
from rlhflab.models import load_causal_lm, load_reward_model, load_tokenizer
from rlhflab.pipeline import Stage, StageContext
from rlhflab.sampling import best_of_n_curve, sample_pool, score_pool


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.bon
    torch.manual_seed(ctx.seed + 31)
    policy_dir = ctx.input("sft")
    tokenizer = load_tokenizer(policy_dir)
    policy = load_causal_lm(policy_dir, ctx.cfg.model.dtype)
    rm_dir = ctx.input(cfg.reward_model)
    rm_tok = load_tokenizer(rm_dir)
    rm = load_reward_model(rm_dir, rm_tok, ctx.cfg.model.dtype)
    gold = gold_reward_of(ctx)
    metrics: dict = {"n": cfg.n, "reward_model": cfg.reward_model}

    data = layout(ctx)
    test_sets = sorted(data.tests("prompt"), key=lambda ds: ds.name)
    for i, ds in enumerate(test_sets):
        name = ds.name
        recs = read_set(ctx, ds)[: cfg.max_prompts_per_test_set]
        prompts = [r.prompt for r in recs]
        ctx.progress("bon: test sets", i, len(test_sets))
        pool = sample_pool(policy, tokenizer, prompts, cfg.n, cfg.temperature, ctx.cfg.generation)
        scores = score_pool(rm, rm_tok, prompts, pool)
        best = scores.argmax(dim=1).tolist()
        rows = []
        for r, cands, b, sc in zip(recs, pool, best, scores.tolist()):
            row = {"id": r.id, "prompt": r.prompt, "output": cands[b], "reward": sc[b],
                   "reference": r.reference, "meta": r.meta}
            if gold:
                row["gold"] = gold(r.prompt, cands[b])
                row["gold_first_sample"] = gold(r.prompt, cands[0])
            rows.append(row)
        if ctx.is_main:
            write_jsonl(ctx.out / "outputs" / f"{name}.jsonl", rows)
        if gold:
            metrics[f"{name}/gold_bon"] = mean(r["gold"] for r in rows)
            metrics[f"{name}/gold_sft_sample"] = mean(r["gold_first_sample"] for r in rows)
            metrics[f"{name}/gold_gain"] = metrics[f"{name}/gold_bon"] - metrics[f"{name}/gold_sft_sample"]
    ctx.progress("bon: test sets", len(test_sets), len(test_sets))

    if gold and cfg.sweep:
        recs = read_set(ctx, data.require("prompt", "validation"))[: cfg.sweep_prompts]
        prompts = [r.prompt for r in recs]
        ctx.progress("bon: sweep pool", 0, 1)
        pool = sample_pool(policy, tokenizer, prompts, max(cfg.sweep), cfg.temperature, ctx.cfg.generation)
        scores = score_pool(rm, rm_tok, prompts, pool)
        golds = torch.tensor([[gold(p, c) for c in row] for p, row in zip(prompts, pool)])
        curve = best_of_n_curve(scores, golds, cfg.sweep)
        oracle = golds.max(dim=1).values.mean().item()  # best-of-K picked by the gold reward itself
        if ctx.is_main:
            write_json(ctx.out / "sweep.json", {"prompts": len(prompts), "pool": max(cfg.sweep),
                                                "curve": {str(n): v for n, v in curve.items()},
                                                "gold_oracle_best_of_pool": oracle})
        metrics["sweep"] = {str(n): round(v["gold_mean"], 4) for n, v in curve.items()}
        ctx.progress("bon: sweep pool", 1, 1)
    return metrics


STAGE = Stage(name="bon", needs=lambda cfg: ["data", "sft", cfg.bon.reward_model],
              reads=("seed", "generation", "bon", "model.dtype"), run=run,
              enabled=lambda cfg: cfg.bon.enabled, headline=("id/gold_bon", "id/gold_gain"))
