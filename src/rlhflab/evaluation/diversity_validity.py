"""Do the diversity metrics measure diversity? A validation protocol after Tevet & Berant 2021,
"Evaluating the Evaluation of Diversity in Natural Language Generation" (EACL), answering
review2024's objection that EAD, Sentence-BERT and NLI may be artefacts of their proxies.

Tevet & Berant validate a metric two ways. decTest: sets generated with a known diversity
parameter (the decoding temperature) — a valid metric correlates with it (Spearman, over sets).
conTest: sets written by crowd workers to have low or high *content* diversity with the wording
free to vary — a valid content metric separates them. rlhflab differs in three ways:

- the ground truth is exact, not human-rated: on the synthetic task every sample's content and form
  are known (rlhflab.evaluation.ground_truth_diversity), so each metric is also correlated with the
  ground-truth content diversity of the very same sets, not only with τ (which changes content and
  wording together);
- the conTest sets are built by the task's generator, not by people: *form sets* hold one fact set
  in K different summary templates (content fixed, wording varied) and *content sets* K fact sets
  with distinct phrases in every slot in one template (wording fixed, content varied), so the two
  kinds differ only in which of content and form varies; a content metric must score content sets
  higher (AUROC → 1), a wording metric the form sets (AUROC → 0);
- the interval of each correlation comes from a bootstrap over inputs (all of an input's sets,
  one per τ or per policy, are resampled together), not from the spread over sets.

Pure functions; benchmarks/diversity_validity.py runs them on a trained SFT model.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Mapping, Sequence

import numpy as np

from rlhflab.data.synthetic import FEELINGS, SLOTS, SUMMARY_FORMS_COMPLETE, TOPICS
from rlhflab.stats import interval, rng_for

# --------------------------------------------------------------------------- statistics ---


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    v = np.asarray(x, dtype=float)
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(v.size)
    ranks[order] = np.arange(1, v.size + 1)
    _, inverse = np.unique(v, return_inverse=True)
    return np.bincount(inverse, weights=ranks)[inverse] / np.bincount(inverse)[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the average ranks, over the pairs where neither is
    NaN; NaN with fewer than two such pairs or a constant side (no ranking to agree with)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"spearman of {a.size} and {b.size} values")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 2:
        return math.nan
    ra, rb = average_ranks(a) - (a.size + 1) / 2, average_ranks(b) - (b.size + 1) / 2
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom else math.nan


def row_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Spearman's ρ over all cells of `resamples` draws of the rows (inputs) with replacement."""
    draws = np.empty(resamples)
    for i in range(resamples):
        rows = rng.integers(0, a.shape[0], size=a.shape[0])
        draws[i] = spearman(a[rows].ravel(), b[rows].ravel())
    return draws


def clustered_spearman(x: Sequence[Sequence[float]], y: Sequence[Sequence[float]], *, resamples: int = 1000,
                       seed: int = 0, key: str = "", level: float = 0.95) -> dict:
    """Spearman's ρ over every cell of two [input × condition] tables (a condition: a τ, a policy),
    with a percentile interval from resampling inputs, each with all its conditions, since one
    input's sets share a prompt and are not independent."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"tables of shape {a.shape} and {b.shape}: both must be [inputs, conditions]")
    estimate = spearman(a.ravel(), b.ravel())
    draws = row_bootstrap(a, b, resamples, rng_for(seed, key))
    draws = draws[~np.isnan(draws)]
    if math.isnan(estimate) or draws.size == 0:
        return {"estimate": estimate, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
                "level": level, "resamples": 0, "n": int(a.shape[0])}
    return {**interval(estimate, draws, level), "n": int(a.shape[0])}


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting ½ (the Mann–Whitney form); NaN ignored."""
    p = np.asarray([v for v in positive if not math.isnan(v)], dtype=float)
    n = np.asarray([v for v in negative if not math.isnan(v)], dtype=float)
    if not p.size or not n.size:
        return math.nan
    diff = p[:, None] - n[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def standardised_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a − mean b) / √((var a + var b) / 2), sample variances (Cohen's d for equal groups);
    NaN ignored. Two constant groups (up to rounding): 0 if equal, else ±inf (perfectly separated)."""
    x = np.asarray([v for v in a if not math.isnan(v)], dtype=float)
    y = np.asarray([v for v in b if not math.isnan(v)], dtype=float)
    if x.size < 2 or y.size < 2:
        return math.nan
    diff = float(x.mean() - y.mean())
    sd = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    if sd <= 1e-12 * max(1.0, abs(float(x.mean())), abs(float(y.mean()))):  # constant up to rounding
        return 0.0 if abs(diff) <= 1e-12 else math.copysign(math.inf, diff)
    return diff / sd


def separation(content_sets: Sequence[float], form_sets: Sequence[float]) -> dict:
    """How well a metric tells sets that differ in content from sets that differ only in wording:
    d and AUROC are positive / above ½ when content sets score higher, as a content metric should."""
    defined = [v for v in (*content_sets, *form_sets) if not math.isnan(v)]
    return {"content_mean": _nanmean(content_sets), "form_mean": _nanmean(form_sets),
            "d": standardised_difference(content_sets, form_sets), "auroc": auroc(content_sets, form_sets),
            "n": len(defined)}


def _nanmean(v: Sequence[float]) -> float:
    ok = [x for x in v if not math.isnan(x)]
    return sum(ok) / len(ok) if ok else math.nan


# -------------------------------------------------------------- conTest: content vs form ---


def form_set(rng: random.Random, k: int) -> list[str]:
    """One topic's fact set in k different complete summary templates: same content, other words."""
    if not 2 <= k <= len(SUMMARY_FORMS_COMPLETE):
        raise ValueError(f"a form set holds 2..{len(SUMMARY_FORMS_COMPLETE)} samples (one per template), not {k}")
    facts = _facts(rng, rng.choice(sorted(TOPICS)), 1)[0]
    return [t.format(**facts).lower() for t in rng.sample(SUMMARY_FORMS_COMPLETE, k)]


def content_set(rng: random.Random, k: int, varied: int = 4) -> list[str]:
    """k fact sets of one topic in one template: other content, same words. `varied` of the four
    slots (chosen at random) take a different phrase in every sample, the others one shared phrase,
    so each pair's Jaccard distance is 2v / (4 + v): 1 with all four, 0.4 with one (the harder test:
    a small change of meaning against a whole change of wording). A topic has at least 3 phrases
    per slot, so k ≤ 3."""
    topic = rng.choice(sorted(TOPICS))
    template = rng.choice(SUMMARY_FORMS_COMPLETE)
    drawn = _facts(rng, topic, k)
    fixed = rng.sample(SLOTS, len(SLOTS) - varied)
    return [template.format(**(f | {s: drawn[0][s] for s in fixed})).lower() for f in drawn]


def _facts(rng: random.Random, topic: str, k: int) -> list[dict[str, str]]:
    """k fact assignments of `topic` whose phrases are pairwise distinct in every slot."""
    pools = {s: TOPICS[topic][s] for s in ("who", "event", "question")} | {"feeling": sorted(FEELINGS)}
    if k > min(len(p) for p in pools.values()):
        raise ValueError(f"topic {topic!r} has too few phrases for {k} fact sets with nothing shared")
    drawn = {s: rng.sample(p, k) for s, p in pools.items()}
    return [{s: drawn[s][i] for s in SLOTS} for i in range(k)]


def content_vs_form_sets(n_sets: int, k: int = 3, seed: int = 0, varied: int = 4) -> tuple[list[str], list[str]]:
    """n_sets form sets and n_sets content sets (`varied` slots varied) of k samples each, set-major."""
    if not 1 <= varied <= len(SLOTS):
        raise ValueError(f"a content set varies 1..{len(SLOTS)} slots, not {varied}")
    rng = random.Random(seed)
    forms = [t for _ in range(n_sets) for t in form_set(rng, k)]
    contents = [t for _ in range(n_sets) for t in content_set(rng, k, varied)]
    return forms, contents


Table = Mapping[str, Mapping[str, object]]  # metric -> {"per_input": Spread or its dict, ...}


def per_input_values(table: Table, metric: str) -> list[float]:
    """A metric's per-input values from a diversity table (Spread objects or diversity.json dicts)."""
    s = table[metric]["per_input"]
    vals = s["values"] if isinstance(s, Mapping) else s.values
    return [math.nan if v is None else float(v) for v in vals]


def content_vs_form(measure: Callable[[list[str], int, int], Table], n_sets: int, k: int = 3,
                    seed: int = 0, varied: int = 4) -> dict[str, dict]:
    """Each metric's separation of content sets from form sets; `measure(texts, n_sets, k)` is the
    diversity table of the sets (each set one "input"), e.g. ground_truth_diversity.measured_diversity."""
    forms, contents = content_vs_form_sets(n_sets, k, seed, varied)
    f_table, c_table = measure(forms, n_sets, k), measure(contents, n_sets, k)
    return {m: separation(per_input_values(c_table, m), per_input_values(f_table, m))
            for m in f_table if m in c_table}


# ------------------------------------------------- conTest on sets a user wrote (any text) ---

PARAPHRASE_KINDS = ("content", "form")


def read_paraphrase_sets(path) -> dict[str, list[list[str]]]:
    """A user's conTest sets from JSONL, one set per line: {"kind": "content" | "form", "texts": [k
    strings], "id": optional}. A *form* set says one thing k ways (paraphrases); a *content* set says k
    different things in as alike a wording as the writer can. Every set has the same k ≥ 2 (each set is
    one "input" of the metrics' per-input estimators), and each kind needs two sets or more. Errors
    name the file, the line and the fix."""
    from rlhflab.data.records import json_lines

    sets: dict[str, list[list[str]]] = {k: [] for k in PARAPHRASE_KINDS}
    size = None
    for _, where, row in json_lines(path):
        if not isinstance(row, dict) or row.get("kind") not in PARAPHRASE_KINDS:
            raise ValueError(f'{where}: "kind" must be "content" (k different meanings) or "form" (one meaning '
                             "in k wordings)")
        texts = row.get("texts")
        if not isinstance(texts, list) or len(texts) < 2 or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f'{where}: "texts" must be a list of two or more non-empty strings')
        if size is not None and len(texts) != size:
            raise ValueError(f"{where}: {len(texts)} texts where the sets before have {size}; give every set the "
                             "same number of texts")
        size = len(texts)
        sets[row["kind"]].append(texts)
    for kind, got in sets.items():
        if len(got) < 2:
            raise ValueError(f'{path}: {len(got)} set(s) of kind "{kind}"; the test needs two or more of each kind')
    return sets


def paraphrase_separation(measure: Callable[[list[str], int, int], Table],
                          sets: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, dict]:
    """Each metric's separation of a user's content sets from their form sets (`read_paraphrase_sets`)."""
    k = len(sets["content"][0])
    tables = {kind: measure([t for group in sets[kind] for t in group], len(sets[kind]), k) for kind in PARAPHRASE_KINDS}
    return {m: separation(per_input_values(tables["content"], m), per_input_values(tables["form"], m))
            for m in tables["form"] if m in tables["content"]}


# ------------------------------------------------------------ decTest and the policies ---


def condition_correlations(tables: Mapping[str, Table], control: Mapping[str, float] | None = None, *,
                           ground_truth: str = "content", resamples: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Per metric, Spearman's ρ of its per-input values over every (input, condition) with the
    ground truth's (`ground_truth`) and, given `control` (condition -> e.g. τ), with the control;
    each with a bootstrap over inputs. `tables`: condition -> diversity table on the same inputs."""
    conds = list(tables)
    metrics = [m for m in tables[conds[0]] if all(m in tables[c] for c in conds)]
    cols = {m: np.array([per_input_values(tables[c], m) for c in conds]).T for m in metrics}
    out = {}
    for m in metrics:
        row = {}
        if control is not None:
            ctl = np.broadcast_to(np.array([control[c] for c in conds], dtype=float), cols[m].shape)
            row["control"] = clustered_spearman(cols[m], ctl, resamples=resamples, seed=seed, key=f"{m}-control")
        if ground_truth in cols and m != ground_truth:
            row["ground_truth"] = clustered_spearman(cols[m], cols[ground_truth], resamples=resamples, seed=seed,
                                                     key=f"{m}-{ground_truth}")
        out[m] = row
    return out


def mean_correlations(tables: Mapping[str, Table], control: Mapping[str, float] | None = None, *,
                      ground_truth: str = "content", kind: str = "per_input") -> dict[str, dict]:
    """Per metric, Spearman's ρ over the conditions of its mean (`kind`: per_input or across_input)
    with the ground truth's mean and with `control`: does it rank the τs, or the policies, as the
    ground truth does? No interval: a handful of points; clustered_spearman has the inputs."""
    conds = list(tables)
    means = {m: [_mean_of(tables[c][m][kind]) for c in conds]
             for m in tables[conds[0]] if all(m in tables[c] for c in conds)}
    out = {}
    for m, v in means.items():
        row = {"means": dict(zip(conds, v))}
        if control is not None:
            row["control"] = spearman(v, [control[c] for c in conds])
        if ground_truth in means and m != ground_truth:
            row["ground_truth"] = spearman(v, means[ground_truth])
        out[m] = row
    return out


def _mean_of(spread) -> float:
    return float(spread["mean"] if isinstance(spread, Mapping) else spread.mean)
