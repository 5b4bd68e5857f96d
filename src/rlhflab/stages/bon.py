"""`bon` stage: best-of-N sampling from the SFT policy with a reward model (kirk2024 §3; ivison2024 appendix H).

For every test set: sample N completions per input at τ = 0.7, score them with the RM, keep the
best; outputs go to `outputs/<test_set>.jsonl` for evaluation like any other policy's.

The best-of-N curve (kirk2024 fig. 22), on the ID and every OOD test set: ONE pool of
max(N, max(sweep)) samples per input (the first N of it give the outputs above), scored once by
the selecting RM and once by an evaluator the selection never saw: the gold reward, or, for a
task without one, the held-out proxy RM (`bon.sweep_evaluator`; kirk2024 used a proxy RM). For
each N it averages the evaluator's score of the RM's pick over all ⌊K/N⌋ disjoint blocks of the
pool, an unbiased estimate of E[score(best-of-N)] with less variance than one prefix; spread is
the standard error over inputs. The gap ID − OOD per N is taken against the ID set each OOD set
compares to.
"""

from __future__ import annotations

from statistics import mean

import torch

from rlhflab.data.records import write_json, write_jsonl
from rlhflab.evaluation.winrate import generalisation_gap
from rlhflab.inputs import gold_reward_of, layout, read_set
from rlhflab.layout import roles
from rlhflab.evaluation.reward_model import load_scorer
from rlhflab.models import load_causal_lm, load_tokenizer
from rlhflab.pipeline import Stage, StageContext
from rlhflab.sampling import best_of_n_curve, sample_pool, score_pool


def sweep_evaluator(ctx: StageContext, gold):
    """(name, scores(prompts, pool) -> [P, K]) of what judges the curve's picks, or (None, why not)."""
    cfg = ctx.cfg.bon
    choice = cfg.sweep_evaluator
    proxy_free = cfg.reward_model != "rm_proxy" and ctx.has_input("rm_proxy")
    if choice == "auto":
        choice = "gold" if gold else "rm_proxy" if proxy_free else None
        if choice is None:
            return None, "no gold reward, and no held-out proxy RM other than the selecting RM"
    if choice == "gold":
        if gold is None:
            raise ValueError("bon.sweep_evaluator=gold: this task has no gold reward; use rm_proxy")
        return "gold", lambda prompts, pool: torch.tensor([[gold(p, c) for c in row] for p, row in zip(prompts, pool)])
    if not proxy_free:
        raise ValueError("bon.sweep_evaluator=rm_proxy needs the proxy RM (rm.proxy: true) and a different "
                         "selecting RM (bon.reward_model: rm); an RM cannot judge its own picks")
    proxy, tok = load_scorer(ctx.input("rm_proxy"), ctx.cfg.model.dtype)
    return "rm_proxy", lambda prompts, pool: score_pool(proxy, tok, prompts, pool)


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.bon
    torch.manual_seed(ctx.seed + 31)
    policy_dir = ctx.input("sft")
    tokenizer = load_tokenizer(policy_dir)
    policy = load_causal_lm(policy_dir, ctx.cfg.model.dtype)
    rm, rm_tok = load_scorer(ctx.input(cfg.reward_model), ctx.cfg.model.dtype)
    gold = gold_reward_of(ctx)
    evaluator, evaluate = sweep_evaluator(ctx, gold)
    pool_size = max(cfg.n, max(cfg.sweep)) if evaluator else cfg.n
    metrics: dict = {"n": cfg.n, "reward_model": cfg.reward_model, "sweep_evaluator": evaluator}
    if not evaluator:
        metrics["sweep_evaluator_missing"] = evaluate  # why there is no curve

    tests = sorted(layout(ctx).tests("prompt"), key=lambda ds: ds.name)
    sets = roles(tests)
    curves, oracle, curve_inputs = {}, {}, {}
    for i, ds in enumerate(tests):
        name, every = ds.name, read_set(ctx, ds)
        n_out = len(every[: cfg.max_prompts_per_test_set])
        n_curve = min(cfg.sweep_prompts, len(every)) if evaluator else 0
        recs = every[: max(n_out, n_curve)]
        prompts = [r.prompt for r in recs]
        ctx.progress("bon: test sets", i, len(tests))
        pool = sample_pool(policy, tokenizer, prompts, pool_size, cfg.temperature, ctx.cfg.generation)
        scores = score_pool(rm, rm_tok, prompts, pool)
        best = scores[:, : cfg.n].argmax(dim=1).tolist()  # best-of-N as a policy: the pool's first N
        rows = []
        for r, cands, b, sc in list(zip(recs, pool, best, scores.tolist()))[:n_out]:
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
        if evaluator:
            values = evaluate(prompts[:n_curve], pool[:n_curve])
            curves[name] = {str(n): v for n, v in best_of_n_curve(scores[:n_curve], values, cfg.sweep).items()}
            oracle[name] = values.max(dim=1).values.mean().item()  # best of the pool, picked by the evaluator
            curve_inputs[name] = n_curve
            metrics[f"{name}/sweep"] = {n: round(v["mean"], 4) for n, v in curves[name].items()}
    ctx.progress("bon: test sets", len(tests), len(tests))
    metrics.update(validation_score(ctx, policy, tokenizer, rm, rm_tok, evaluator, evaluate))
    if evaluator and ctx.is_main:
        write_json(ctx.out / "sweep.json", {
            "evaluator": evaluator, "selector": cfg.reward_model, "pool": pool_size, "temperature": cfg.temperature,
            "sets": sets, "inputs": curve_inputs, "curves": curves, "gap": curve_gap(curves, sets),
            "oracle_best_of_pool": oracle})
    return metrics


def validation_score(ctx: StageContext, policy, tokenizer, rm, rm_tok, evaluator, evaluate) -> dict:
    """Best-of-N's score on ID validation prompts: what a sweep of this stage selects on (kirk2024
    appendix G compares best-of-N temperatures; E.3 selects on ID validation only). Scored by the
    curve's evaluator (gold, else the held-out proxy RM), never by the selecting RM, whose score of
    its own picks rewards over-optimisation: without an evaluator there is no score."""
    cfg = ctx.cfg.bon
    if not evaluator:
        return {"val_score_bon": None}
    prompts = [r.prompt for r in read_set(ctx, layout(ctx).require("prompt", "validation"))][: cfg.sweep_prompts]
    torch.manual_seed(ctx.seed + 37)  # the same draw at every grid point, whatever was sampled before
    pool = sample_pool(policy, tokenizer, prompts, cfg.n, cfg.temperature, ctx.cfg.generation)
    best = score_pool(rm, rm_tok, prompts, pool).argmax(dim=1)
    return {"val_score_bon": evaluate(prompts, pool)[torch.arange(len(prompts)), best].float().mean().item(),
            "val_scored_by": evaluator}


def curve_gap(curves: dict[str, dict[str, dict]], sets: dict) -> dict[str, dict[str, float]]:
    """{OOD set: {N: ID − OOD mean score of best-of-N}}, against the ID set each OOD set compares to."""
    compare_to = {s: v["compare_to"] for s, v in sets.items()
                  if v["distribution"] == "ood" and v["compare_to"] in curves and s in curves}
    ns = sorted({n for c in curves.values() for n in c}, key=int)
    by_n = {n: generalisation_gap({s: c[n]["mean"] for s, c in curves.items()}, compare_to) for n in ns}
    return {s: {n: by_n[n][s] for n in ns} for s in compare_to}


def _wants(cfg) -> list[str]:
    return ["rm_proxy"] if cfg.bon.sweep_evaluator != "gold" and cfg.bon.reward_model != "rm_proxy" else []


STAGE = Stage(name="bon", needs=lambda cfg: ["data", "sft", cfg.bon.reward_model], wants=_wants,
              reads=("seed", "generation", "bon", "model.dtype"), run=run,
              enabled=lambda cfg: cfg.bon.enabled, headline=("id/gold_bon", "id/gold_gain", "val_score_bon"),
              select=("val_score_bon", "max"))
