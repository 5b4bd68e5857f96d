"""Time for all three diversity metrics on N inputs × K outputs (default 500 × 16) on this machine,
per-input and across-input, with the synthetic oracle NLI and all-MiniLM-L6-v2; against a
baseline measured in the same run: the same Sentence-BERT metric with each text re-encoded for
every set it appears in (what "encode once, reuse" saves).

    python benchmarks/diversity_time.py [--inputs 500] [--k 16]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from rlhflab.data import synthetic as syn
from rlhflab.data.synthetic_nli import SyntheticOracleNLI
from rlhflab.evaluation.diversity import cosine_diversity, diversity_table, load_sentence_encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=500)
    ap.add_argument("--k", type=int, default=16)
    a = ap.parse_args()
    rng = random.Random(0)
    posts = [syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), 2) for i in range(a.inputs)]
    texts = [syn.behaviour_summary(rng, p) for p in posts for _ in range(a.k)]
    encoder = load_sentence_encoder(None)

    t0 = time.perf_counter()
    emb = encoder.encode(texts, batch_size=128, convert_to_numpy=True)
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    diversity_table(texts, a.inputs, a.k, embeddings=emb, nli=SyntheticOracleNLI(), resamples=10)
    t_metrics = time.perf_counter() - t0
    ours = t_encode + t_metrics

    # baseline: re-encode the texts of every set (each input's K, plus 10 across-input draws)
    t0 = time.perf_counter()
    for i in range(a.inputs):
        cosine_diversity(encoder.encode(texts[i * a.k:(i + 1) * a.k], convert_to_numpy=True))
    for _ in range(10):
        picks = [i * a.k + rng.randrange(a.k) for i in range(a.inputs)]
        cosine_diversity(encoder.encode([texts[j] for j in picks], batch_size=128, convert_to_numpy=True))
    baseline = time.perf_counter() - t0
    print(f"diversity of {a.inputs} inputs × {a.k} outputs ({len(texts)} texts)")
    print(f"  encode once       {t_encode:7.1f} s")
    print(f"  EAD + SBERT + NLI {t_metrics:7.1f} s   (per-input and across-input, 10 redraws)")
    print(f"  total             {ours:7.1f} s")
    print(f"  baseline (re-encode per set, SBERT only) {baseline:7.1f} s   ratio baseline/ours = {baseline / ours:.2f}")


if __name__ == "__main__":
    np.random.seed(0)
    main()
