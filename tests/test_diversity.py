"""Diversity metrics against hand-computed values and the identical < paraphrase < unrelated ordering;
the diversity stage samples best-of-N's pool at its own temperature."""

import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rlhflab.data.synthetic_nli import SyntheticOracleNLI
from rlhflab.evaluation.diversity import (HFNLIClassifier, across_input, cosine_diversity, diversity_table, ead,
                                          expected_distinct, load_sentence_encoder, nli_direction_scores,
                                          nli_diversity, nli_diversity_from_labels, nli_diversity_from_scores,
                                          per_input, sentence_pairs, split_sentences, words_reference, words_spaced)

IDENTICAL = ["my boss cut my hours. i am anxious."] * 4
# same facts (who, event, feeling), other words
PARAPHRASES = ["my boss cut my hours. i am anxious.", "so my boss cut my hours. honestly i am anxious.",
               "my boss cut my hours last week, now i am anxious.",
               "well, my boss cut my hours and i am anxious about it."]
UNRELATED = ["my boss cut my hours. i am anxious.", "the dog chewed the sofa while we slept.",
             "city council approved a new budget for roads.", "should i learn the violin at forty?"]


def test_ead_by_hand():
    # one text "a b a": unigrams C=3, distinct 2; bigrams C=2, distinct 2 ("a b", "b a"); trigram C=1;
    # no 4- or 5-grams: those n count 0 and the mean is over all five n (the reference code's rule)
    v = 10
    want = [2 / expected_distinct(v, 3), 2 / expected_distinct(v, 2), 1 / expected_distinct(v, 1), 0.0, 0.0]
    assert math.isclose(ead(["a b a"], vocab_size=v), sum(want) / 5, rel_tol=1e-12)
    assert math.isclose(expected_distinct(10, 2), 10 * (1 - 0.81), rel_tol=1e-12)


def test_ead_of_one_word_texts_counts_missing_ngrams_as_zero():
    # three distinct unigrams, C=3: EAD_1 = 3 / (V·(1 − ((V−1)/V)^3)) ≈ 1.00002; n = 2..5 have no n-grams → 0
    assert ead(["yes", "no", "ok"]) == pytest.approx(0.20, abs=1e-4)
    assert ead(["yes", "no", "ok"]) == pytest.approx(3 / expected_distinct(50257, 3) / 5, rel=1e-12)
    assert ead([""]) == 0.0


def test_ead_two_texts_by_hand_for_each_tokenisation():
    texts, v = ["a b.\nc", "b c"], 10
    # E(C) = 10·(1 − 0.9^C): E(1) = 1, E(2) = 1.9, E(3) = 2.71, E(4) = 3.439, E(5) = 4.0951
    # reference: "a b.\nc" → "a bc" → [a, bc]; [b, c]. unigrams C=4, distinct 4; bigrams C=2, distinct 2
    assert ead(texts, vocab_size=v) == pytest.approx((4 / 3.439 + 2 / 1.9) / 5, rel=1e-12)
    assert ead(texts, vocab_size=v, tokenisation="reference") == ead(texts, vocab_size=v)
    # words: [a, b, c]; [b, c]. unigrams C=5, distinct 3; bigrams (a b), (b c), (b c): C=3, distinct 2;
    # trigram (a b c): C=1, distinct 1
    assert ead(texts, vocab_size=v, tokenisation="words") == pytest.approx((3 / 4.0951 + 2 / 2.71 + 1 / 1) / 5,
                                                                           rel=1e-12)
    with pytest.raises(ValueError, match="unknown EAD tokenisation"):
        ead(texts, tokenisation="bpe")


def test_tokenisations():
    # the reference code deletes '.' and newlines and splits on single spaces
    assert words_reference("Hi there.\nBye.") == ["Hi", "thereBye"]
    assert words_reference("cut my hours.\nShould  I") == ["cut", "my", "hoursShould", "I"]
    assert words_spaced("Hi there.\nBye.") == ["Hi", "there", "Bye"]
    texts = ["x y.\nz"] * 2 + ["p q"] * 2
    ref = diversity_table(texts, 2, 2)["ead"]["per_input"].values
    spaced = diversity_table(texts, 2, 2, ead_tokenisation="words")["ead"]["per_input"].values
    assert ref[1] == spaced[1] and ref[0] != spaced[0]


def test_cosine_diversity_by_hand():
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # cos: (0, 1/√2, 1/√2) → mean 0.4714; diversity 1 − √2/3
    assert math.isclose(cosine_diversity(e), 1 - math.sqrt(2) / 3, rel_tol=1e-9)
    assert math.isclose(cosine_diversity(np.ones((3, 4))), 0.0, abs_tol=1e-12)


def test_nli_score_and_pairs():
    # each pair sums its two directions (scale [−2, 2], kirk2024 table 11): (+1 − 1) and (0 − 1) → mean −0.5
    assert nli_diversity_from_labels(["contradiction", "neutral"], ["entailment", "entailment"]) == -0.5
    assert nli_diversity_from_labels(["contradiction"] * 3, ["contradiction"] * 3) == 2.0
    assert nli_diversity_from_scores([], []) == 0.0
    assert split_sentences("One. Two?  Three!\nFour") == ["One.", "Two?", "Three!", "Four"]
    pairs = sentence_pairs(["a. b.", "c."], 100, random.Random(0))
    assert sorted(pairs) == [("a.", "c."), ("b.", "c.")]  # never two sentences of the same output
    assert len(sentence_pairs(["a. b. c.", "d. e. f."], 4, random.Random(0))) == 4


class TableNLI:
    """A classifier answering from a table of (premise, hypothesis) -> (P(entailment), P(neutral), P(contradiction))."""

    def __init__(self, table):
        self.table = table

    def probabilities(self, premises, hypotheses):
        return [dict(zip(("entailment", "neutral", "contradiction"), self.table[p, h]))
                for p, h in zip(premises, hypotheses)]

    def __call__(self, premises, hypotheses):
        return [max(d, key=d.get) for d in self.probabilities(premises, hypotheses)]


def test_nli_probability_variant_by_hand():
    nli = TableNLI({("a.", "b."): (0.6, 0.3, 0.1), ("b.", "a."): (0.2, 0.3, 0.5), ("a.", "a."): (0.9, 0.1, 0.0)})
    # one pair: label variant, entailment (−1) + contradiction (+1) = 0;
    # probability variant, (0.1 − 0.6) + (0.5 − 0.2) = −0.2
    assert nli_diversity(["a.", "b."], nli, 10, random.Random(0)) == 0.0
    assert nli_diversity(["a.", "b."], nli, 10, random.Random(0), "probability") == pytest.approx(-0.2)
    assert nli_direction_scores(nli, ["a.", "b."], ["b.", "a."], "probability") == pytest.approx([-0.5, 0.3])
    with pytest.raises(ValueError, match="unknown NLI variant"):
        nli_direction_scores(nli, ["a."], ["b."], "logits")
    texts = ["a.", "b."] * 2  # two inputs of K = 2 outputs
    table = diversity_table(texts, 2, 2, nli=nli, nli_variant="probability", resamples=1)
    assert table["nli"]["per_input"].values == pytest.approx([-0.2, -0.2])
    assert table["nli"]["across_input"].mean == pytest.approx(-1.8)  # "a." and "a.": (0 − 0.9) · 2
    with pytest.raises(ValueError, match="unknown NLI variant"):
        diversity_table(texts, 2, 2, nli=nli, nli_variant="soft")


def test_oracle_nli_from_facts():
    nli = SyntheticOracleNLI()
    got = nli(["my boss cut my hours. i am anxious.", "my boss cut my hours.", "my boss cut my hours."],
              ["i am anxious.", "i am furious.", "the weather is nice."])
    assert got == ["entailment", "neutral", "neutral"]
    assert nli(["i am anxious."], ["i am furious."]) == ["contradiction"]
    # exact, so one-hot: the probability variant equals the label variant
    assert nli.probabilities(["i am anxious.", "i am anxious."], ["i am furious.", "i am anxious."]) == [
        {"entailment": 0.0, "neutral": 0.0, "contradiction": 1.0},
        {"entailment": 1.0, "neutral": 0.0, "contradiction": 0.0}]
    for variant in ("label", "probability"):
        assert nli_diversity(UNRELATED, nli, 1000, random.Random(0), variant) == nli_diversity(
            UNRELATED, nli, 1000, random.Random(0))


def test_hf_nli_classifier_returns_probabilities(tmp_path):
    import torch
    from transformers import LlamaForSequenceClassification

    from helpers import tiny_model_and_tokenizer

    lm, tok = tiny_model_and_tokenizer()
    config = lm.config
    config.num_labels, config.pad_token_id = 3, tok.pad_token_id
    config.id2label = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    nli = HFNLIClassifier(str(tmp_path), batch_size=2)
    prem, hyp = ["my boss cut my hours.", "I am furious.", "my dog chewed the sofa."], ["I feel anxious."] * 3
    probs = nli.probabilities(prem, hyp)
    assert all(set(p) == {"entailment", "neutral", "contradiction"} for p in probs)
    assert all(sum(p.values()) == pytest.approx(1) for p in probs)
    assert nli(prem, hyp) == [max(p, key=p.get) for p in probs]
    with torch.no_grad():  # the first pair alone, straight from the model: label 0 is contradiction
        enc = nli.tok(prem[:1], hyp[:1], return_tensors="pt")
        want = nli.model(**enc).logits.softmax(-1)[0].tolist()
    assert probs[0]["contradiction"] == pytest.approx(want[0], abs=1e-5)
    assert probs[0]["entailment"] == pytest.approx(want[2], abs=1e-5)


def test_each_metric_orders_identical_paraphrase_unrelated():
    for metric in (lambda ts: ead(ts),):
        assert metric(IDENTICAL) < metric(PARAPHRASES) < metric(UNRELATED)
    enc = load_sentence_encoder(None)
    emb = {k: enc.encode(v) for k, v in (("i", IDENTICAL), ("p", PARAPHRASES), ("u", UNRELATED))}
    assert cosine_diversity(emb["i"]) < 1e-6 < cosine_diversity(emb["p"]) < cosine_diversity(emb["u"])
    nli = SyntheticOracleNLI()

    def nli_div(texts):
        return nli_diversity(texts, nli, 1000, random.Random(0))

    # NLI compares sentences across outputs. One-sentence copies entail each other both ways: the minimum, −2.
    # An exact semantic oracle cannot tell a paraphrase from a copy (same facts), so ≤, not <.
    one = ["my boss cut my hours and i am anxious."]
    para = ["so my boss cut my hours and i am anxious.", "my boss cut my hours, now i am anxious.",
            "honestly my boss cut my hours and i am anxious about it."]
    assert nli_div(one * 3) == -2.0 <= nli_div(one + para) < nli_div(UNRELATED)
    # in two-sentence copies the "who/event" sentence and the "feeling" one are neutral to each other
    assert nli_div(IDENTICAL) == -1.0 < nli_div(UNRELATED)


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


def test_diversity_stage_draws_best_of_n_pool_at_the_diversity_temperature(monkeypatch, tmp_path):
    """kirk2024 §6.2: every policy's diversity samples at τ = 1; best-of-N's candidates too, not at
    bon.temperature (which the eval stage keeps for best-of-N as a policy)."""
    import rlhflab.stages.diversity as stage
    from rlhflab import inputs
    from rlhflab.cache_key import ConfigView
    from rlhflab.config import load_config

    cfg = load_config("quickstart", ["diversity.policies=[sft,bon]", "diversity.metrics=[ead]",
                                     "diversity.n_inputs=2", "diversity.samples_per_input=2"])
    assert cfg.bon.temperature != cfg.diversity.temperature == 1.0
    calls = []

    def fake_policy_sampler(policy_dir, dtype, g, temperature, best_of=None):
        calls.append((Path(policy_dir).name, temperature, best_of and best_of[2]))
        return lambda prompts, k: [f"{p} says {j}" for p in prompts for j in range(k)]

    monkeypatch.setattr(inputs, "policy_sampler", fake_policy_sampler)
    id_set = SimpleNamespace(name="id")
    monkeypatch.setattr(stage, "layout", lambda ctx: SimpleNamespace(test_set_or_first_id=lambda *a: id_set))
    monkeypatch.setattr(stage, "task_info", lambda ctx: {"task": "synthetic-tldr"})
    monkeypatch.setattr(stage, "read_set", lambda ctx, ds: [SimpleNamespace(id=str(i), prompt=f"post {i}")
                                                            for i in range(2)])
    ctx = SimpleNamespace(cfg=ConfigView(cfg, stage.STAGE.reads, "diversity"), seed=0, is_main=False,
                          input=lambda s: tmp_path / s, has_input=lambda s: True, progress=lambda *a: None)
    headline = stage.run(ctx)  # bon.temperature is not among the stage's reads: reading it would raise
    assert calls == [("sft", 1.0, None), ("sft", 1.0, 1.0)]  # (model, τ, best-of-N pool τ)
    # the synthetic task's ground truth is recorded beside the configured metrics (no fact stated: content 0)
    assert headline["sft/ead_per_input"] > 0 and headline["sft/content_per_input"] == 0.0
    assert {"sft/form_per_input", "bon/content_distinct_across_input"} <= set(headline)
    calls.clear()
    eval_ctx = SimpleNamespace(cfg=cfg, input=lambda s: tmp_path / s)
    inputs.sampler_of(eval_ctx, "bon", 0.5)  # eval: best-of-N's pool stays at bon.temperature
    assert calls == [("sft", 0.5, cfg.bon.temperature)]


def test_sentence_pairs_sample_as_if_every_pair_were_listed():
    """The pairs are indexed lazily; the draw equals rng.sample over the explicit list."""
    import random

    from rlhflab.evaluation.diversity import sentence_pairs, split_sentences

    texts = ["A b. C d. E f.", "", "G h.", "I j. K l.", "M n. O p. Q r. S t."] * 4
    sents = [split_sentences(t) for t in texts]
    every = [(a, b) for i in range(len(sents)) for j in range(i + 1, len(sents)) for a in sents[i] for b in sents[j]]
    assert sentence_pairs(texts, 10**6, random.Random(3)) == every
    for k in (1, 7, 100):
        assert sentence_pairs(texts, k, random.Random(k)) == random.Random(k).sample(every, k)
