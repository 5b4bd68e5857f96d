import random
from statistics import mean

import pytest

from rlhflab.config import SyntheticTask
from rlhflab.data import synthetic as syn
from rlhflab.data.records import PreferenceRecord, PromptRecord, read_records
from rlhflab.tasks.synthetic import TEST_SETS, build_synthetic_task

SMALL = SyntheticTask(n_pretrain=200, n_sft_train=100, n_sft_validation=20, n_preference_train=400,
                      n_preference_validation=20, n_preference_test=200, n_policy_prompts=20,
                      n_policy_validation=10, n_test=50, median_pool=1000)


def test_fact_phrases_unique_and_never_nested():
    vocab = syn.fact_vocabulary()
    phrases = [p for ps in vocab.values() for p in ps]
    assert len(phrases) == len(set(phrases))
    for a in phrases:
        for b in phrases:
            if a != b:
                assert f" {a} " not in f" {b} ", (a, b)


def test_filler_asserts_no_fact():
    for text, _ in syn.FILLER + syn.NEWS_FILLER:
        assert syn.find_facts(text) == [], text


def test_posts_carry_their_facts():
    rng = random.Random(0)
    for i in range(200):
        topic = rng.choice(sorted(syn.TOPICS))
        post = syn.make_post(rng, str(i), "reddit", topic, rng.randint(0, 8))
        assert set(syn.find_facts(post.prompt)) == {v.lower() for v in post.facts.values()}


def test_gold_reward_hand_computed():
    prompt = ("SUBREDDIT: r/work\nTITLE: my boss cut my hours\nPOST: Yesterday my boss cut my hours. "
              "I feel anxious about it. Should I quit?\nTL;DR:")
    # all four facts in 10 words -> coverage 1, no penalty; one word more costs 0.02
    assert syn.gold_reward(prompt, "my boss cut my hours, feel anxious. should i quit?") == pytest.approx(1.0)
    assert syn.gold_reward(prompt, "my boss cut my hours, i feel anxious. should i quit?") == pytest.approx(0.98)
    # who + event only: 0.25 + 0.35
    assert syn.gold_reward(prompt, "my boss cut my hours") == pytest.approx(0.6)
    # invented feeling: 0.6 - 0.5
    assert syn.gold_reward(prompt, "my boss cut my hours, i am thrilled") == pytest.approx(0.1)
    # 14 words, no new facts: 0.6 - 0.02 * (14 - 10)
    text = "my boss cut my hours and that is all there is to say today"
    assert len(syn.words(text)) == 14
    assert syn.gold_reward(prompt, text) == pytest.approx(0.6 - 0.08)
    assert syn.gold_reward(prompt, "") == 0.0


@pytest.mark.parametrize("kind", ["drop", "invent", "pad"])
def test_gold_ranks_reference_above_corruptions(kind):
    rng = random.Random(1)
    wins = []
    for i in range(300):
        domain = "news" if i % 4 == 0 else "reddit"
        topic = "news" if domain == "news" else rng.choice(sorted(syn.TOPICS))
        post = syn.make_post(rng, str(i), domain, topic, rng.randint(0, 8))
        ref = syn.reference_summary(rng, post, 0.25)
        bad = syn.corrupt(rng, post, ref, kind)
        wins.append(syn.gold_reward(post.prompt, ref) > syn.gold_reward(post.prompt, bad))
    assert mean(wins) >= 0.95


def test_annotator_scale_calibrates():
    gaps = [0.1, 0.5, 1.0, 0.3]
    s = syn.annotator_scale(gaps, 0.72)
    import math
    assert mean(1 / (1 + math.exp(-g / s)) for g in gaps) == pytest.approx(0.72, abs=1e-6)
    with pytest.raises(ValueError):
        syn.annotator_scale([0.0, 0.0], 0.7)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    summary = build_synthetic_task(SMALL, 7, a)
    return a, summary


def test_deterministic_from_seed(built, tmp_path):
    a, _ = built
    build_synthetic_task(SMALL, 7, tmp_path / "b")
    build_synthetic_task(SMALL, 8, tmp_path / "c")
    files = sorted(p.relative_to(a) for p in a.rglob("*.jsonl"))
    assert len(files) >= 10
    for f in files:
        assert (a / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (a / "sft/train.jsonl").read_bytes() != (tmp_path / "c" / "sft/train.jsonl").read_bytes()


def test_annotators_agree_with_gold_at_target_rate(built):
    a, summary = built
    assert 0.67 <= summary["annotator_agreement"]["train"] <= 0.77
    recs = read_records(a / "preference/train.jsonl", PreferenceRecord)
    agree = mean(syn.gold_reward(r.prompt, r.chosen) > syn.gold_reward(r.prompt, r.rejected) for r in recs)
    assert agree == pytest.approx(summary["annotator_agreement"]["train"])


def test_ood_sets_flip_exactly_one_factor(built):
    a, s = built
    mw, ms = s["median_words"], s["median_sentiment"]
    for name in TEST_SETS:
        recs = read_records(a / f"test/{name}.jsonl", PromptRecord)
        assert len(recs) == SMALL.n_test and all(r.reference for r in recs)
        for r in recs:
            m = r.meta
            if name == "ood_news":
                assert m["domain"] == "news"
                continue
            assert (m["n_words"] >= mw) == (name == "ood_length")
            assert (m["sentiment"] >= ms) == (name == "ood_sentiment")
            assert (m["topic"] not in SMALL.id_topics) == (name == "ood_topic")
    # no test input leaks into training
    train = {r.prompt for r in read_records(a / "sft/train.jsonl", __import__("rlhflab.data.records", fromlist=["SFTRecord"]).SFTRecord)}
    for name in TEST_SETS:
        assert not train & {r.prompt for r in read_records(a / f"test/{name}.jsonl", PromptRecord)}
