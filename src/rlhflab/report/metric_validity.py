"""The report's section "Do the diversity metrics measure diversity here?" (review2024's second
objection): where the task knows what every output states (the synthetic task's ground-truth
`content` diversity, `evaluation/ground_truth_diversity.py`), each diversity metric is set against
it on the study's own outputs.

Two questions per metric, on the diversity stage's inputs and policies:
- per input: Spearman's ρ of the metric's per-input values with ground-truth content over every
  (input, policy) cell, with a bootstrap over inputs (an input's policies share a prompt);
- across the policies: does the metric rank the policies' mean diversity as the ground truth does
  (ρ over the policy means; a handful of points, so no interval)?
"""

from __future__ import annotations

import math

from rlhflab.evaluation.diversity_validity import condition_correlations, mean_correlations, per_input_values
from rlhflab.report import figures as F

GROUND_TRUTH = "content"
PAPERS = ("ead", "sentence_bert", "nli")


# What the synthetic task's validation found (docs/diversity-validity.md, benchmarks/diversity_validity.py), for
# runs whose outputs have no known meaning
NO_GROUND_TRUTH = (
    "This task has no ground truth for what an output means, so the metrics cannot be checked on these outputs. "
    "On the synthetic task, where it is known (docs/diversity-validity.md), Sentence-BERT and NLI tell sets that "
    "differ in one fact from sets that only reword one fact (conTest AUROC 1.0 each), while EAD ranks the "
    "rewordings as *more* diverse (AUROC 0.14): read EAD as lexical diversity, and Sentence-BERT and NLI as the "
    "closer proxies of semantic diversity. To check this on your own kind of text, write content and paraphrase "
    "sets (JSONL: docs/diversity-validity.md) and run `python benchmarks/diversity_validity.py RUN --no-sweep "
    "--paraphrase-sets FILE`.")


def _cell(st: dict | None) -> str:
    if not st or st.get("estimate") is None or math.isnan(st["estimate"]):
        return "–"
    if math.isnan(st.get("ci_low", math.nan)):
        return f"{st['estimate']:+.2f}"
    return f"{st['estimate']:+.2f} [{st['ci_low']:+.2f}, {st['ci_high']:+.2f}]"


def validity_rows(d: dict, seed: int = 0) -> list[dict]:
    """Per metric of the papers that was measured: its per-input ρ with ground-truth content (with
    its interval) and its ρ with content over the policies' means. [] without the ground truth."""
    pol = d["policies"]
    if len(pol) < 2 or not all(GROUND_TRUTH in ms for ms in pol.values()):
        return []
    tables = {p: {m: pol[p][m] for m in [*PAPERS, GROUND_TRUTH] if m in pol[p]} for p in F.ordered(pol)}
    per_input = condition_correlations(tables, ground_truth=GROUND_TRUTH, seed=seed)
    means = mean_correlations(tables, ground_truth=GROUND_TRUTH)
    return [{"metric": m, "per_input": per_input[m].get("ground_truth"), "policies": means[m].get("ground_truth"),
             "means": means[m]["means"]} for m in F.metrics_in_order(per_input) if m in PAPERS]


def _scatter(d: dict, metric: str):
    def draw(ax) -> None:
        for p in F.ordered(d["policies"]):
            x = per_input_values(d["policies"][p], GROUND_TRUTH)
            y = per_input_values(d["policies"][p], metric)
            ax.scatter(x, y, s=6, alpha=0.6, label=p)
        ax.set_xlabel("ground-truth content diversity", fontsize=7)
        ax.set_ylabel(F.METRIC_LABEL.get(metric, metric), fontsize=7)
    return draw


def metric_validity(rep, d: dict | None, seed: int = 0) -> None:
    """Add the section (a table and one figure, a panel per metric) when the diversity stage
    measured the ground truth; else nothing."""
    rows = validity_rows(d, seed) if d else []
    if d and not rows:
        rep.add("Do the diversity metrics measure diversity here?", NO_GROUND_TRUTH)
    if not rows:
        return
    rep.grid("metric_validity", "Each diversity metric against ground-truth content diversity",
             f"One point per input and policy ({d['n_inputs']} {d['test_set']} inputs × "
             f"{len(d['policies'])} policies, per-input diversity over {d['samples_per_input']} samples).",
             [[_scatter(d, r["metric"]) for r in rows]],
             col_titles=[F.METRIC_LABEL.get(r["metric"], r["metric"]) for r in rows])
    truth = {p: v[GROUND_TRUTH]["per_input"]["mean"] for p, v in d["policies"].items()}
    order = " > ".join(f"{p} {truth[p]:.3f}" for p in sorted(truth, key=lambda p: -truth[p]))
    lines = ["Ground truth: `content`, the mean pairwise Jaccard distance of the facts the samples state "
             "(the task's generator knows them). ρ per input: Spearman over every (input, policy), 95% bootstrap "
             "interval over inputs. ρ over policies: does the metric order the policies' mean diversity as the "
             f"ground truth orders them ({order}).", "",
             "| metric | ρ with content, per input [95% CI] | ρ with content, over the policies |", "|---|---|---|"]
    lines += [f"| {F.METRIC_LABEL.get(r['metric'], r['metric'])} | {_cell(r['per_input'])} | "
              f"{_cell({'estimate': r['policies'], 'ci_low': math.nan})} |" for r in rows]
    rep.add("Do the diversity metrics measure diversity here?", "\n".join(lines))
