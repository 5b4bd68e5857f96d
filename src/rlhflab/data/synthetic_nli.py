"""The synthetic task's exact NLI oracle, beside the task it knows.

It judges sentence pairs from the latent facts each sentence asserts (rlhflab.data.synthetic), and
has the shape of rlhflab.evaluation.diversity's `NLIClassifier`, so NLI diversity on the synthetic
task needs no model.
"""

from __future__ import annotations

from rlhflab.data.synthetic import fact_slots


class SyntheticOracleNLI:
    """Exact NLI for the synthetic task from the facts each sentence asserts: the hypothesis is
    entailed when its facts are a non-empty subset of the premise's, contradicted when it gives a
    slot (who / event / feeling / question) a different value than the premise, neutral otherwise."""

    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        out = []
        for p, h in zip(premises, hypotheses):
            fp, fh = fact_slots(p), fact_slots(h)
            if any(slot in fp and fp[slot] != v for slot, v in fh.items()):
                out.append("contradiction")
            elif fh and all(fp.get(slot) == v for slot, v in fh.items()):
                out.append("entailment")
            else:
                out.append("neutral")
        return out
