"""The synthetic task's exact NLI oracle, beside the task it knows.

It judges sentence pairs from the latent facts each sentence asserts (rlhflab.data.synthetic), and
has the shape of rlhflab.evaluation.diversity's `NLIClassifier`, so NLI diversity on the synthetic
task needs no model.
"""

from __future__ import annotations

from rlhflab.data.synthetic import fact_slots

LABELS = ("entailment", "neutral", "contradiction")


class SyntheticOracleNLI:
    """Exact NLI for the synthetic task from the facts each sentence asserts: the hypothesis is
    entailed when its facts are a non-empty subset of the premise's, contradicted when it gives a
    slot (who / event / feeling / question) a different value than the premise, neutral otherwise.
    Being exact, its class probabilities are one-hot. Each distinct sentence is parsed once."""

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, str]] = {}

    def _facts(self, sentence: str) -> dict[str, str]:
        if sentence not in self._slots:
            self._slots[sentence] = fact_slots(sentence)
        return self._slots[sentence]

    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        out = []
        for p, h in zip(premises, hypotheses):
            fp, fh = self._facts(p), self._facts(h)
            if any(slot in fp and fp[slot] != v for slot, v in fh.items()):
                out.append("contradiction")
            elif fh and all(fp.get(slot) == v for slot, v in fh.items()):
                out.append("entailment")
            else:
                out.append("neutral")
        return out

    def probabilities(self, premises: list[str], hypotheses: list[str]) -> list[dict[str, float]]:
        """One-hot {label: probability} per pair."""
        return [{label: float(label == got) for label in LABELS} for got in self(premises, hypotheses)]
