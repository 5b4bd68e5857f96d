"""OOD splits of any dataset by input length, sentiment or category (kirk2024 appendix J.1).

A split is fitted once — the median of a measure over the SFT training inputs, or a set of ID
categories — and applied identically to SFT, preference and prompt records, so every method trains
on the same in-distribution inputs and is tested on the same complement:

- length:    ID = posts with fewer words than the median (the paper's 245 words on TL;DR);
- sentiment: ID = posts whose TextBlob polarity (Loria, 2013 — the classifier the paper uses;
             lexicon-based, works offline) is below the median;
- category:  ID = records whose `meta.category` (subreddit, news site, source dataset) is one of
             `id_values` (the paper: r/relationships).

What is measured is `meta.input` (the raw post or instruction, set by the source adapters), or the
prompt when a record has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Literal, Sequence

By = Literal["length", "sentiment", "category"]


def word_length(text: str) -> float:
    return float(len(text.split()))


def textblob_polarity(text: str) -> float:
    from textblob import TextBlob

    return float(TextBlob(text).sentiment.polarity)


MEASURES: dict[str, Callable[[str], float]] = {"length": word_length, "sentiment": textblob_polarity}


def input_text(record) -> str:
    return record.meta.get("input") or record.prompt


@dataclass
class SplitRule:
    """A fitted split: ID is `measure(input) < threshold`, or `category in id_values`."""

    by: str
    threshold: float | None = None
    id_values: list[str] = field(default_factory=list)
    fitted_on: int = 0  # records the threshold was computed from
    # Each distinct input is measured once across fitting, splitting and reporting: TextBlob
    # takes ~5 ms per 245-word post, i.e. ~10 minutes per pass over TL;DR's 117k posts.
    _measured: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    def value(self, text: str) -> float:
        if text not in self._measured:
            self._measured[text] = MEASURES[self.by](text)
        return self._measured[text]

    def is_id(self, record) -> bool:
        if self.by == "category":
            return str(record.meta.get("category")) in self.id_values
        return self.value(input_text(record)) < self.threshold

    def to_dict(self) -> dict:
        return {"by": self.by, "threshold": self.threshold, "id_values": list(self.id_values),
                "fitted_on": self.fitted_on}


def fit_split(records: Sequence, by: By, id_values: Sequence[str] = ()) -> SplitRule:
    """The split rule for `records` (the SFT training inputs): their median, or the ID categories."""
    if by == "category":
        if not id_values:
            raise ValueError("a category split needs id_values: the categories that are in distribution")
        seen = {str(r.meta.get("category")) for r in records}
        missing = sorted(set(id_values) - seen)
        if missing:
            raise ValueError(f"category split: {missing} never occur(s) in meta.category of the fitting "
                             f"data; categories seen include {sorted(seen)[:10]}")
        return SplitRule(by, id_values=list(id_values), fitted_on=len(records))
    if by not in MEASURES:
        raise ValueError(f"unknown split {by!r}; choose length, sentiment or category")
    rule = SplitRule(by)
    # Each distinct input counts once: preference data repeats posts.
    values = [rule.value(t) for t in {input_text(r) for r in records}]
    rule.threshold, rule.fitted_on = float(median(values)), len(values)
    return rule


def apply_split(records: Sequence, rule: SplitRule) -> tuple[list, list]:
    """(in-distribution, out-of-distribution) records."""
    ind, ood = [], []
    for r in records:
        (ind if rule.is_id(r) else ood).append(r)
    return ind, ood


def describe(records: Sequence, rule: SplitRule) -> dict:
    """Sizes and the measure's median on each side: what a reader needs to judge the shift."""
    ind, ood = apply_split(records, rule)
    out = {"n_id": len(ind), "n_ood": len(ood)}
    if rule.by != "category":
        for name, part in (("id", ind), ("ood", ood)):
            vals = [rule.value(input_text(r)) for r in part]
            out[f"median_{name}"] = float(median(vals)) if vals else None
    return out
