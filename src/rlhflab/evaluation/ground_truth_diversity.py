"""Ground-truth diversity on the synthetic task: how different the samples' meanings are (content)
and how differently one meaning is worded (form), read from the latent facts rather than guessed by
a model. The yardstick for EAD, Sentence-BERT and NLI (review2024 asks whether they measure
diversity at all; rlhflab.evaluation.diversity_validity uses these to check).

Every summary of the task is a set of fact phrases in a wording: `synthetic.stated_facts` recovers
its content C = {(slot, phrase)} exactly (every fact phrase is unique in the vocabulary), and
`synthetic.delexicalise` its form F = its words with each fact phrase replaced by a slot token.

- content(S) = mean over unordered pairs i < j of S of the Jaccard distance 1 − |Cᵢ ∩ Cⱼ| / |Cᵢ ∪ Cⱼ|
  (two empty fact sets are equal content: distance 0). Range [0, 1].
- content_distinct(S) = the number of distinct fact sets among S (1..|S|).
- form(S) = mean over the pairs i < j with Cᵢ = Cⱼ of the token edit distance of Fᵢ and Fⱼ
  (Levenshtein over tokens / the longer length; 0 for two empty forms). Range [0, 1]. Restricting to
  equal content keeps a dropped or swapped fact out of the wording: the two are separable only there.
  A set with no such pair has no form diversity to measure: NaN, and `per_input` averages over the
  inputs where it is defined (its n says how many). With more than `max_form_pairs` such pairs (an
  across-input set of degenerate outputs that all state nothing) a seeded sample of them is scored.

Per input and across inputs exactly as the other metrics (`diversity.per_input`, `across_input`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import combinations
from typing import Callable, Sequence

from rlhflab.data.synthetic import delexicalise, stated_facts
from rlhflab.evaluation.diversity import Spread, across_input, configured_diversity, per_input

GROUND_TRUTH_TASKS = ("synthetic-tldr",)  # tasks whose outputs' facts are known
GROUND_TRUTH_METRICS = ("content", "content_distinct", "form")
DEFAULT_MAX_FORM_PAIRS = 4096  # per set; K = 16 has 120 pairs, so per-input is always exact

FactSet = frozenset


def jaccard_distance(a: FactSet, b: FactSet) -> float:
    """1 − |a ∩ b| / |a ∪ b|; two empty sets are the same content (0)."""
    union = len(a | b)
    return 1.0 - len(a & b) / union if union else 0.0


def content_diversity(facts: Sequence[FactSet]) -> float:
    """Mean pairwise Jaccard distance of the fact sets. Pairs of equal sets contribute 0, so only
    distinct sets are compared, each pair weighted by how many samples hold each side."""
    n = len(facts)
    if n < 2:
        raise ValueError("diversity needs at least two texts")
    counts = list(Counter(facts).items())
    total = sum(ca * cb * jaccard_distance(a, b) for (a, ca), (b, cb) in combinations(counts, 2))
    return total / (n * (n - 1) / 2)


def distinct_contents(facts: Sequence[FactSet]) -> float:
    return float(len(set(facts)))


def token_edit_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """Levenshtein distance over tokens (insert, delete, substitute: 1 each) / max(len a, len b)."""
    if not a and not b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1] / max(len(a), len(b))


def same_content_pairs(facts: Sequence[FactSet]) -> list[tuple[int, int]]:
    """Index pairs i < j whose fact sets are equal."""
    groups: dict[FactSet, list[int]] = {}
    for i, f in enumerate(facts):
        groups.setdefault(f, []).append(i)
    return [p for idx in groups.values() for p in combinations(idx, 2)]


def form_diversity(facts: Sequence[FactSet], forms: Sequence[Sequence[str]],
                   max_pairs: int = DEFAULT_MAX_FORM_PAIRS, rng: random.Random | None = None) -> float:
    """Mean token edit distance of the forms over the pairs with equal content; NaN without one."""
    if len(facts) != len(forms):
        raise ValueError(f"{len(facts)} fact sets but {len(forms)} forms")
    pairs = same_content_pairs(facts)
    if not pairs:
        return math.nan
    if len(pairs) > max_pairs:
        pairs = (rng or random.Random(0)).sample(pairs, max_pairs)
    return sum(token_edit_distance(forms[i], forms[j]) for i, j in pairs) / len(pairs)


def ground_truth_table(texts: list[str], n_inputs: int, k: int, *, resamples: int = 10, seed: int = 0,
                       max_form_pairs: int = DEFAULT_MAX_FORM_PAIRS) -> dict[str, dict[str, Spread]]:
    """content, content_distinct and form per input and across inputs, for `texts` laid out
    input-major (K per input), as diversity.diversity_table lays out its metrics."""
    if len(texts) != n_inputs * k:
        raise ValueError(f"expected {n_inputs} × {k} = {n_inputs * k} texts, got {len(texts)}")
    facts = [stated_facts(t) for t in texts]
    forms = [delexicalise(t) for t in texts]
    rng = random.Random(seed)
    metrics: dict[str, Callable[[list[int]], float]] = {
        "content": lambda idx: content_diversity([facts[i] for i in idx]),
        "content_distinct": lambda idx: distinct_contents([facts[i] for i in idx]),
        "form": lambda idx: form_diversity([facts[i] for i in idx], [forms[i] for i in idx], max_form_pairs, rng),
    }
    return {name: {"per_input": per_input(f, n_inputs, k),
                   "across_input": across_input(f, n_inputs, k, resamples, seed)}
            for name, f in metrics.items()}


def measured_diversity(texts: list[str], n_inputs: int, k: int, cfg, task: str | None, *, encoder=None,
                       nli=None, seed: int = 0) -> dict[str, dict[str, Spread]]:
    """What every stage that reports diversity records: the configured metrics
    (diversity.configured_diversity) and, on a task whose facts are known, the ground truth too."""
    result = configured_diversity(texts, n_inputs, k, cfg, encoder=encoder, nli=nli, seed=seed)
    if task in GROUND_TRUTH_TASKS:
        result.update(ground_truth_table(texts, n_inputs, k, resamples=cfg.resamples, seed=seed))
    return result
