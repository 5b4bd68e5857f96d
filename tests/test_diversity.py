"""Diversity metrics against hand-computed values and the identical < paraphrase < unrelated ordering."""

import math
import random

import numpy as np
import pytest

from rlhflab.data.synthetic_nli import SyntheticOracleNLI
from rlhflab.evaluation.diversity import (across_input, cosine_diversity, diversity_table, ead, expected_distinct,
                                          load_sentence_encoder, nli_diversity_from_labels, per_input, sentence_pairs,
                                          split_sentences, words_reference)

IDENTICAL = ["my boss cut my hours. i am anxious."] * 4
# same facts (who, event, feeling), other words
PARAPHRASES = ["my boss cut my hours. i am anxious.", "so my boss cut my hours. honestly i am anxious.",
               "my boss cut my hours last week, now i am anxious.",
               "well, my boss cut my hours and i am anxious about it."]
UNRELATED = ["my boss cut my hours. i am anxious.", "the dog chewed the sofa while we slept.",
             "city council approved a new budget for roads.", "should i learn the violin at forty?"]


def test_ead_by_hand():
    # one text "a b a": unigrams C=3, distinct 2; bigrams C=2, distinct 2 ("a b", "b a"); trigram C=1
    v = 10
    want = [2 / expected_distinct(v, 3), 2 / expected_distinct(v, 2), 1 / expected_distinct(v, 1)]
    assert math.isclose(ead(["a b a"], vocab_size=v), sum(want) / 3, rel_tol=1e-12)
    assert math.isclose(expected_distinct(10, 2), 10 * (1 - 0.81), rel_tol=1e-12)


def test_reference_tokenisation_drops_periods_and_newlines():
    assert words_reference("Hi there.\nBye.") == ["Hi", "there", "Bye"]


def test_cosine_diversity_by_hand():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # cos: (0, 1/√2, 1/√2) → mean 0.4714; diversity 1 − √2/3
    assert math.isclose(cosine_diversity(e), 1 - math.sqrt(2) / 3, rel_tol=1e-9)
    assert math.isclose(cosine_diversity(np.ones((3, 4))), 0.0, abs_tol=1e-12)


def test_nli_score_and_pairs():
    assert nli_diversity_from_labels(["contradiction", "neutral"], ["entailment", "entailment"]) == -0.25
    assert split_sentences("One. Two?  Three!\nFour") == ["One.", "Two?", "Three!", "Four"]
    pairs = sentence_pairs(["a. b.", "c."], 100, random.Random(0))
    assert sorted(pairs) == [("a.", "c."), ("b.", "c.")]  # never two sentences of the same output
    assert len(sentence_pairs(["a. b. c.", "d. e. f."], 4, random.Random(0))) == 4


def test_oracle_nli_from_facts():
    nli = SyntheticOracleNLI()
    got = nli(["my boss cut my hours. i am anxious.", "my boss cut my hours.", "my boss cut my hours."],
              ["i am anxious.", "i am furious.", "the weather is nice."])
    assert got == ["entailment", "neutral", "neutral"]
    assert nli(["i am anxious."], ["i am furious."]) == ["contradiction"]


def test_each_metric_orders_identical_paraphrase_unrelated():
    for metric in (lambda ts: ead(ts),):
        assert metric(IDENTICAL) < metric(PARAPHRASES) < metric(UNRELATED)
    enc = load_sentence_encoder(None)
    emb = {k: enc.encode(v) for k, v in (("i", IDENTICAL), ("p", PARAPHRASES), ("u", UNRELATED))}
    assert cosine_diversity(emb["i"]) < 1e-6 < cosine_diversity(emb["p"]) < cosine_diversity(emb["u"])
    nli = SyntheticOracleNLI()

    def nli_div(texts):
        pairs = sentence_pairs(texts, 1000, random.Random(0))
        p, h = [a for a, _ in pairs], [b for _, b in pairs]
        return nli_diversity_from_labels(nli(p, h), nli(h, p))

    # NLI compares sentences across outputs. One-sentence copies entail each other: the minimum, −1.
    # An exact semantic oracle cannot tell a paraphrase from a copy (same facts), so ≤, not <.
    one = ["my boss cut my hours and i am anxious."]
    para = ["so my boss cut my hours and i am anxious.", "my boss cut my hours, now i am anxious.",
            "honestly my boss cut my hours and i am anxious about it."]
    assert nli_div(one * 3) == -1.0 <= nli_div(one + para) < nli_div(UNRELATED)
    # in two-sentence copies the "who/event" sentence and the "feeling" one are neutral to each other
    assert nli_div(IDENTICAL) == -0.5 < nli_div(UNRELATED)


def test_per_and_across_input_layout():
    texts = ["x"] * 3 + ["a", "b", "c"]  # input 0: identical outputs; input 1: distinct
    scores = {0: 0.0, 1: 1.0}
    per = per_input(lambda idx: scores[idx[0] // 3] if len(set(texts[i] for i in idx)) > 1 else 0.0, 2, 3)
    assert per.mean == 0.5 and per.std == 0.5 and per.n == 2
    seen = []
    across = across_input(lambda idx: seen.append(idx) or 0.0, 2, 3, resamples=5, seed=0)
    assert seen[0] == [0, 3] and across.n == 5 and all(i < 3 <= j for i, j in seen)
    emb = np.array([[1.0, 0.0]] * 3 + [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    table = diversity_table(texts, 2, 3, embeddings=emb, nli=SyntheticOracleNLI())
    assert set(table) == {"ead", "sentence_bert", "nli"}
    # input 0: identical rows → 0; input 1: 1 − √2/3 (see test_cosine_diversity_by_hand)
    assert table["sentence_bert"]["per_input"].mean == pytest.approx((1 - math.sqrt(2) / 3) / 2)
    with pytest.raises(ValueError, match="expected 2 × 3"):
        diversity_table(texts[:5], 2, 3)
