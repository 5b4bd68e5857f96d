"""`eval` stage: every policy on every ID and OOD test set with the configured judge (kirk2024 §5.1, §6.1).

For each policy one output per input (τ from `generation`; best-of-N picks among `bon.n`, and its
outputs are the `bon` stage's where that stage wrote one for every input scored here):
preference-vs-reference (PvR) win rate per test set with AlpacaEval's standard error and a
bootstrap interval; the generalisation gap ID − OOD; head-to-head against the baseline policy
(default SFT) and its change from ID to each OOD set; the judge's own agreement with held-out
preference labels, ID and OOD (kirk2024 appendix D.1), and with the gold reward where the task has one.

Writes AlpacaEval-format `model_outputs/<policy>/<set>.json` and `annotations/<pair>/<set>.json`,
and `results.json`. Which sets are in or out of distribution, and which ID set each OOD set's gap
is measured against, comes from the task's layout and is recorded in `results.json` ("sets").
Judgements are cached in `<run>/judge-cache/`, outside the stage folder, so a crashed or changed run
never pays twice for the same judgement; `rlhflab run --force eval` judges everything anew.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from statistics import mean

import torch

from rlhflab.data.records import write_json
from rlhflab.evaluation.annotations import AnnotationCache, judge_pairs
from rlhflab.evaluation.winrate import (LC_BLOCK, annotations, generalisation_gap, length_controlled_difference,
                                        model_outputs, win_rate)
from rlhflab.inputs import available_policies, gold_reward_of, layout, policy_wants, preference_needs, read_set, sampler_of
from rlhflab.judging import judge_input, judge_needs, judges_for, references_of
from rlhflab.layout import roles
from rlhflab.pipeline import Stage, StageContext


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.eval
    data = layout(ctx)
    tests = sorted(data.tests("prompt"), key=lambda ds: ds.name)  # by name: the sampling order of every run
    if not tests:
        raise ValueError("eval: the task has no test sets")
    test_sets = {ds.name: read_set(ctx, ds)[: cfg.max_inputs_per_test_set] for ds in tests}
    sets = roles(tests)
    ood = {s: v["compare_to"] for s, v in sets.items() if v["distribution"] == "ood" and v["compare_to"]}
    policies = available_policies(ctx, cfg.policies)
    cache = AnnotationCache(ctx.run_dir / "judge-cache" / "annotations.jsonl", reuse=not ctx.forced)
    gold = gold_reward_of(ctx)

    outputs: dict[str, dict[str, list[str]]] = {}
    bon_from_stage = bon_stage_outputs(ctx, test_sets) if "bon" in policies else None
    for i, name in enumerate(policies):
        ctx.progress("eval: sampling", i, len(policies))
        torch.manual_seed(ctx.seed + 202)
        if name == "bon" and bon_from_stage is not None:
            outputs[name] = bon_from_stage
        else:
            sampler = sampler_of(ctx, name, ctx.cfg.generation.temperature)
            outputs[name] = {s: sampler([r.prompt for r in recs], 1) for s, recs in test_sets.items()}
        for s, recs in test_sets.items():
            if ctx.is_main:
                write_json(ctx.out / "model_outputs" / name / f"{s}.json",
                           model_outputs([r.prompt for r in recs], outputs[name][s], name))
    ctx.progress("eval: sampling", len(policies), len(policies))

    results: dict = {"judge": cfg.judge, "test_sets": {k: len(v) for k, v in test_sets.items()}, "sets": sets,
                     "bon_outputs": None if "bon" not in policies else "sampled" if bon_from_stage is None else "bon",
                     "baseline": cfg.baseline, "pvr": {}, "head_to_head": {}, "gap": {}, "head_to_head_change": {},
                     "gold": {}, "preferences": {}, "head_to_head_preferences": {}, "lengths": {},
                     "reference_lengths": {s: [len(r.reference or "") for r in recs] for s, recs in test_sets.items()}}
    judges = judges_for(ctx, test_sets)

    def compare(s: str, mine: list[str], theirs: list[str], names: tuple[str, str], salt: int) -> list:
        prompts = [judge_input(r, cfg.judge) for r in test_sets[s]]
        js = judge_pairs(judges[s], prompts, mine, theirs, seed=ctx.seed + salt, cache=cache)
        prefs = [j.preference for j in js]
        if ctx.is_main:  # AlpacaEval orientation: generator_2 is the model under test
            write_json(ctx.out / "annotations" / f"{names[0]}_vs_{names[1]}" / f"{s}.json",
                       annotations(prompts, theirs, names[1], mine, names[0], prefs))
        return prefs

    steps = len(policies) * len(test_sets)
    done = 0
    for name in policies:
        results["pvr"][name], results["head_to_head"][name] = {}, {}
        results["preferences"][name], results["lengths"][name] = {}, {}
        for s, recs in test_sets.items():
            refs = references_of(s, recs)
            # per input, so the report can compare policies input by input (paired) and control for length
            prefs = results["preferences"][name][s] = compare(s, outputs[name][s], refs, (name, "reference"), 0)
            results["lengths"][name][s] = [len(o) for o in outputs[name][s]]
            results["pvr"][name][s] = asdict(win_rate(prefs, bootstrap=cfg.bootstrap, seed=ctx.seed))
            if name != cfg.baseline and cfg.baseline in outputs:
                h2h = compare(s, outputs[name][s], outputs[cfg.baseline][s], (name, cfg.baseline), 1)
                results["head_to_head_preferences"].setdefault(name, {})[s] = h2h  # per input, for paired claims
                results["head_to_head"][name][s] = asdict(win_rate(h2h, bootstrap=cfg.bootstrap, seed=ctx.seed))
            if gold:
                results["gold"].setdefault(name, {})[s] = mean(gold(r.prompt, o) for r, o in zip(recs, outputs[name][s]))
            done += 1
            ctx.progress("eval: judging", done, steps)
        pvr = {s: v["win_rate"] for s, v in results["pvr"][name].items()}
        h2h = {s: v["win_rate"] for s, v in results["head_to_head"][name].items()}
        if ood:
            results["gap"][name] = generalisation_gap(pvr, ood)
        if ood and h2h:  # the gap with the sign turned: how the head-to-head win rate moves from ID to OOD
            results["head_to_head_change"][name] = {s: -g for s, g in generalisation_gap(h2h, ood).items()}

    results["lc_win_rate"], results["length_controlled"] = length_control(results, sets, cfg.baseline, ctx.seed,
                                                                                  cfg.lc_resamples)
    results["judge_validation"] = validate_judge(ctx, judges, cache)
    if ood:
        results["shift"] = input_shift(ctx, test_sets, ood)
    if ctx.is_main:
        write_json(ctx.out / "results.json", results)
    headline = {}
    for name in policies:
        for s, v in sets.items():
            if v["distribution"] == "id":
                headline[f"{name}/pvr_{s}"] = results["pvr"][name][s]["win_rate"]
        gaps = results["gap"].get(name, {})
        if gaps:
            headline[f"{name}/mean_gap"] = mean(gaps.values())
    return headline


def bon_stage_outputs(ctx: StageContext, test_sets: dict) -> dict[str, list[str]] | None:
    """Best-of-N's outputs as the `bon` stage wrote them (the RM's pick among the first `bon.n` of
    each input's pool at `bon.temperature`: what best-of-N as a policy samples here), when they
    cover every input this stage scores, in order; None sends eval to draw its own (when
    `bon.max_prompts_per_test_set` is below `eval.max_inputs_per_test_set`)."""
    out = {}
    for s, recs in test_sets.items():
        path = ctx.input("bon") / "outputs" / f"{s}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
        if [r["id"] for r in rows[: len(recs)]] != [r.id for r in recs]:
            return None
        out[s] = [r["output"] for r in rows[: len(recs)]]
    return out


CLAIMED_LC_POLICY = "ppo"


def length_control(results: dict, sets: dict, baseline: str, seed: int, resamples: int = 10000) -> tuple[dict, dict]:
    """AlpacaEval 2's length-controlled PvR win rate of every policy on every set (instruction
    difficulty fitted from the study's policies), and on each ID set each policy's LC difference
    from the baseline with a refitting paired bootstrap. A set with too few valid judgements for
    the GLM gets None rather than a number from a degenerate fit. Only PPO's difference is a
    claim (report.findings), so only it gets `resamples` draws for a small enough p; the others'
    intervals need no tail that far out, and a strong difference would cost ~30 s each."""
    from rlhflab.evaluation.length_control import length_controlled_win_rates

    prefs, lengths, refs = results["preferences"], results["lengths"], results["reference_lengths"]
    lc: dict = {p: {} for p in prefs}
    for s in refs:
        try:
            got = length_controlled_win_rates({p: prefs[p][s] for p in prefs}, {p: lengths[p][s] for p in prefs}, refs[s])
        except ValueError:
            got = {}
        for p in prefs:
            lc[p][s] = got.get(p)
    diffs: dict = {}
    for p in prefs:
        if p == baseline or baseline not in prefs:
            continue
        for s, info in sets.items():
            if info["distribution"] == "id" and lc[p].get(s) is not None:
                diffs.setdefault(f"{p}_vs_{baseline}", {})[s] = length_controlled_difference(
                    {q: prefs[q][s] for q in prefs}, {q: lengths[q][s] for q in prefs}, refs[s], p, baseline,
                    seed=seed, key=f"lc-{p}-{s}", full={q: lc[q][s] for q in prefs},
                    resamples=resamples if p == CLAIMED_LC_POLICY else LC_BLOCK)
    return lc, diffs


def input_shift(ctx: StageContext, test_sets: dict, ood: dict[str, str]) -> dict[str, float]:
    """How far each OOD set's inputs sit from its ID set's: cosine distance between the mean
    Sentence-BERT embeddings of the two sets (0 = same centre), so "generalises better as the
    shift grows" can be plotted against a number rather than an ordering."""
    from rlhflab.evaluation.diversity import load_sentence_encoder

    encoder = load_sentence_encoder(ctx.cfg.diversity.sentence_encoder)
    needed = set(ood) | set(ood.values())
    centres = {s: encoder.encode([r.prompt for r in test_sets[s]], batch_size=128, convert_to_numpy=True).mean(axis=0)
               for s in test_sets if s in needed}

    def distance(a, b) -> float:
        return float(1 - a @ b / ((a @ a) ** 0.5 * (b @ b) ** 0.5))

    return {s: distance(centres[s], centres[base]) for s, base in ood.items()}


def validate_judge(ctx: StageContext, judges: dict, cache: AnnotationCache) -> dict:
    """The judge's agreement with held-out preference labels per set, and with gold where it exists."""
    gold = gold_reward_of(ctx)
    out = {}
    for ds in sorted(layout(ctx).tests("preference"), key=lambda ds: ds.name):
        recs = read_set(ctx, ds)[: ctx.cfg.eval.max_inputs_per_test_set]
        judge = judges.get(ds.name) or next(iter(judges.values()))
        js = judge_pairs(judge, [judge_input(r, ctx.cfg.eval.judge) for r in recs], [r.chosen for r in recs],
                         [r.rejected for r in recs],
                         seed=ctx.seed + 3, cache=cache)
        valid = [j.preference for j in js if j.preference is not None]
        row = {"n": len(recs), "invalid": len(recs) - len(valid),
               "label_agreement": mean(valid) if valid else None, "distribution": ds.distribution}
        if gold:
            gaps = [gold(r.prompt, r.chosen) - gold(r.prompt, r.rejected) for r in recs]
            # over pairs the gold reward separates: P(judge picks the gold-better side)
            sep = [j.preference if g > 0 else 1 - j.preference
                   for j, g in zip(js, gaps) if j.preference is not None and g != 0]
            row["gold_agreement"] = mean(sep) if sep else None
        out[f"test_{ds.name}"] = row
    return out


def _needs(cfg) -> list[str]:
    return list(dict.fromkeys(preference_needs(cfg) + ["sft"] + judge_needs(cfg)))


STAGE = Stage(name="eval", needs=_needs, wants=lambda cfg: policy_wants(cfg.eval.policies, cfg.bon.reward_model),
              reads=("seed", "generation", "eval", "bon.n", "bon.temperature", "bon.reward_model", "model.dtype",
                     "diversity.sentence_encoder"),
              run=run, enabled=lambda cfg: cfg.eval.enabled)
