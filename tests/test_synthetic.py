import json
import random
from pathlib import Path
from statistics import mean

import pytest

from rlhflab.config import SyntheticTask
from rlhflab.data import synthetic as syn
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, read_records
from rlhflab.tasks import synthetic as task
from rlhflab.tasks.synthetic import TEST_SETS, TOPIC_SHIFTS, TOPIC_SLOTS, build_synthetic_task

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


def test_adjacent_fact_phrases_never_form_another():
    # Mixed-topic posts and summaries put any who before any event, any event before any question.
    vocab = syn.fact_vocabulary()
    phrases = [p.lower() for ps in vocab.values() for p in ps]
    for a in phrases:
        for b in phrases:
            if a != b:
                assert syn.find_facts(f"{a} {b}") == [a, b], (a, b)


def _mixed_post(rng: random.Random, post_id: str, unseen: float) -> syn.Post:
    """A post of an OOD topic whose facts come from its own vocabulary with probability `unseen`,
    else from one ID topic's, as the graded topic-shift sets draw them."""
    topic = rng.choice(sorted(set(syn.TOPICS) - set(SMALL.id_topics)))
    seen_vocab = syn.TOPICS[rng.choice(SMALL.id_topics)]
    facts_from = {s: (syn.TOPICS[topic] if rng.random() < unseen else seen_vocab)[s] for s in TOPIC_SLOTS}
    return syn.make_post(rng, post_id, "reddit", topic, rng.randint(0, 8), facts_from)


def test_filler_asserts_no_fact():
    for text, _ in syn.FILLER + syn.NEWS_FILLER:
        assert syn.find_facts(text) == [], text


def test_posts_carry_their_facts():
    rng = random.Random(0)
    for i in range(200):
        topic = rng.choice(sorted(syn.TOPICS))
        post = syn.make_post(rng, str(i), "reddit", topic, rng.randint(0, 8))
        assert set(syn.find_facts(post.prompt)) == {v.lower() for v in post.facts.values()}
        mixed = _mixed_post(rng, str(i), 0.5)
        assert syn.fact_slots(mixed.prompt) == {k: v.lower() for k, v in mixed.facts.items()}


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
    for i in range(400):
        if i % 4 == 1:  # a post whose facts mix an OOD topic's vocabulary with an ID topic's
            post = _mixed_post(rng, str(i), 0.5)
        else:
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


def _test_files(a, name):
    return [(a / f"test/{name}.jsonl", PromptRecord, SMALL.n_test),
            (a / f"preference/test_{name}.jsonl", PreferenceRecord, SMALL.n_preference_test)]


def test_ood_sets_flip_exactly_one_factor(built):
    a, s = built
    mw, ms = s["median_words"], s["median_sentiment"]
    for name in TEST_SETS:
        for path, kind, n in _test_files(a, name):
            recs = read_records(path, kind)
            assert len(recs) == n, path
            assert kind is PreferenceRecord or all(r.reference for r in recs)
            for r in recs:
                m = r.meta
                assert m["split"] == name
                if name == "ood_news":
                    assert m["domain"] == "news"
                    continue
                assert (m["n_words"] >= mw) == (name == "ood_length")
                assert (m["sentiment"] >= ms) == (name == "ood_sentiment")
                assert (m["topic"] not in SMALL.id_topics) == (name in TOPIC_SHIFTS)
    # no test input leaks into training
    train = {r.prompt for r in read_records(a / "sft/train.jsonl", SFTRecord)}
    for name in TEST_SETS:
        assert not train & {r.prompt for r in read_records(a / f"test/{name}.jsonl", PromptRecord)}


def test_graded_topic_sets_are_declared(built):
    a, _ = built
    assert TEST_SETS == ("id", "ood_length", "ood_sentiment", "ood_topic_0", "ood_topic_25", "ood_topic_50",
                         "ood_topic_100", "ood_news")
    sets = json.loads((a / "task.json").read_text())["sets"]
    for kind in ("prompt", "preference"):
        tests = {r["name"]: r for r in sets if r["kind"] == kind and r["role"] == "test"}
        assert list(tests) == list(TEST_SETS)
        assert tests["id"]["distribution"] == "id" and tests["id"]["shift"] is None
        assert {n: r["shift"] for n, r in tests.items() if n.startswith("ood_topic")} == {
            "ood_topic_0": "topic (0% unseen facts)", "ood_topic_25": "topic (25% unseen facts)",
            "ood_topic_50": "topic (50% unseen facts)", "ood_topic_100": "topic (100% unseen facts)"}
        assert all(r["distribution"] == "ood" and r["compare_to"] == "id" for n, r in tests.items() if n != "id")
        assert all((a / r["file"]).exists() for r in tests.values())


def test_graded_topic_sets_hold_the_intended_share_of_unseen_facts(built):
    a, _ = built
    id_vocab = {p.lower(): t for t in SMALL.id_topics for s in TOPIC_SLOTS for p in syn.TOPICS[t][s]}
    for name, unseen in TOPIC_SHIFTS.items():
        n = n_unseen = 0
        for path, kind, _ in _test_files(a, name):
            for r in read_records(path, kind):
                slots = syn.fact_slots(r.prompt)
                assert set(slots) == set(syn.SLOTS)  # every fact recovered from the mixed text
                own = {p.lower() for s in TOPIC_SLOTS for p in syn.TOPICS[r.meta["topic"]][s]}
                phrases = [slots[s] for s in TOPIC_SLOTS]
                assert all(p in own or p in id_vocab for p in phrases)
                assert len({id_vocab[p] for p in phrases if p in id_vocab}) <= 1  # one ID topic per post
                n += len(phrases)
                n_unseen += sum(p in own for p in phrases)
        # 750 slots per set at SMALL's sizes: the standard error of the share is at most 0.018
        assert n_unseen / n == pytest.approx(unseen, abs=0.06), name
        if unseen in (0.0, 1.0):
            assert n_unseen / n == unseen, name


def test_test_references_score_the_maximum(built):
    a, _ = built
    w = syn.GoldRewardWeights()
    for name in TEST_SETS:
        for r in read_records(a / f"test/{name}.jsonl", PromptRecord):
            assert syn.fact_slots(r.reference) == syn.fact_slots(r.prompt)  # complete and faithful
            best = 1.0 - w.length_penalty * max(0, len(syn.words(r.reference)) - w.free_words)
            assert syn.gold_reward(r.prompt, r.reference) == pytest.approx(best), (name, r.id)


def _body(prompt: str) -> str:
    """The post text of a prompt (without subreddit and title), as the sampler compares posts."""
    head = "\nPOST: " if "\nPOST: " in prompt else "ARTICLE: "
    return prompt.split(head, 1)[1].rsplit("\nTL;DR:", 1)[0]


def test_no_post_text_repeats_across_sets(built):
    a, _ = built
    files = [(a / "sft/train.jsonl", SFTRecord), (a / "sft/validation.jsonl", SFTRecord),
             (a / "preference/train.jsonl", PreferenceRecord), (a / "preference/validation.jsonl", PreferenceRecord),
             (a / "prompts/train.jsonl", PromptRecord), (a / "prompts/validation.jsonl", PromptRecord),
             (a / "preference/proxy.jsonl", PreferenceRecord)]
    files += [(path, kind) for name in TEST_SETS for path, kind, _ in _test_files(a, name)]
    bodies = [_body(r.prompt) for path, kind in files for r in read_records(path, kind)]
    assert len(bodies) == len(set(bodies))
    corpus = {_body(json.loads(line)["text"] + "\nTL;DR:") for line in (a / "pretrain/corpus.jsonl").open()}
    assert not corpus & set(bodies)


def test_graded_sets_leave_the_other_sets_unchanged(built, tmp_path, monkeypatch):
    """Without the partly-unseen topic sets, every other file is byte-identical (but the proxy RM's
    pairs, drawn from every region there is)."""
    a, _ = built
    partial = [n for n, f in TOPIC_SHIFTS.items() if f < 1]
    monkeypatch.setattr(task, "SHIFTS", {n: s for n, s in task.SHIFTS.items() if n not in partial})
    monkeypatch.setattr(task, "TOPIC_SHIFTS", {n: f for n, f in TOPIC_SHIFTS.items() if n not in partial})
    monkeypatch.setattr(task, "TEST_SETS", tuple(task.SHIFTS))
    monkeypatch.setattr(task, "_DRAWN_LAST", ())
    build_synthetic_task(SMALL, 7, tmp_path)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.jsonl"))
    assert len(files) == len(list(a.rglob("*.jsonl"))) - 2 * len(partial)
    for f in files:
        if str(f) != "preference/proxy.jsonl":
            assert (a / f).read_bytes() == (tmp_path / f).read_bytes(), f


def test_the_proxy_rms_pairs_are_fresh_gold_labelled_and_from_every_region(built):
    """kirk2024 J.3's proxy RM learns "a different data distribution": no pair id and no prompt of
    the RM's pairs (nor of any other set), labels from the gold ordering, ID and OOD posts alike."""
    a, summary = built
    proxy = read_records(a / "preference/proxy.jsonl", PreferenceRecord)
    assert len(proxy) == summary["sizes"]["preference_proxy"] == SMALL.n_preference_train + SMALL.n_preference_validation
    assert all(syn.gold_reward(r.prompt, r.chosen) > syn.gold_reward(r.prompt, r.rejected) for r in proxy)
    kinds = {"sft": SFTRecord, "preference": PreferenceRecord, "prompts": PromptRecord, "test": PromptRecord}
    others = [r for f in a.glob("*/*.jsonl") if f.name != "proxy.jsonl" and f.parent.name in kinds
              for r in read_records(f, kinds[f.parent.name])]
    assert not {r.id for r in proxy} & {r.id for r in others}
    assert not {r.prompt for r in proxy} & {r.prompt for r in others}
    assert {r.meta["split"] for r in proxy} == set(TEST_SETS)  # both sides of the split ("without splitting")
    info = json.loads((a / "task.json").read_text())
    assert {"kind": "preference", "role": "proxy", "name": "proxy"}.items() <= info["sets"][-1].items()


def test_without_a_proxy_set_every_other_file_is_unchanged(built, tmp_path):
    a, _ = built
    build_synthetic_task(SMALL.model_copy(update={"n_preference_proxy": 0}), 7, tmp_path)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.jsonl"))
    assert sorted(p.relative_to(a) for p in a.rglob("*.jsonl")) == sorted(files + [Path("preference/proxy.jsonl")])
    for f in files:
        assert (a / f).read_bytes() == (tmp_path / f).read_bytes(), f
    assert all(s["role"] != "proxy" for s in json.loads((tmp_path / "task.json").read_text())["sets"])
    with pytest.raises(ValueError, match="n_preference_proxy"):
        SyntheticTask(n_preference_proxy=5)


# kirk2024 appendix J.1's single-factor splits: ID below the median on one factor, `ood` its complement

SPLITS = ("length", "sentiment", "topic")
_ID_FILES = [("sft/train.jsonl", SFTRecord), ("sft/validation.jsonl", SFTRecord),
             ("preference/train.jsonl", PreferenceRecord), ("preference/validation.jsonl", PreferenceRecord),
             ("prompts/train.jsonl", PromptRecord), ("prompts/validation.jsonl", PromptRecord),
             ("test/id.jsonl", PromptRecord), ("preference/test_id.jsonl", PreferenceRecord)]
_OOD_FILES = [("test/ood.jsonl", PromptRecord), ("preference/test_ood.jsonl", PreferenceRecord)]


def _small_split(split: str) -> SyntheticTask:
    return SyntheticTask(split=split, n_pretrain=100, n_sft_train=50, n_sft_validation=10, n_preference_train=50,
                         n_preference_validation=10, n_preference_test=40, n_policy_prompts=20,
                         n_policy_validation=10, n_test=40, median_pool=1000)


@pytest.fixture(scope="module", params=SPLITS)
def built_split(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    return request.param, out, build_synthetic_task(_small_split(request.param), 3, out)


def _below(split: str, meta: dict, medians: dict) -> bool:
    """Whether a post lies in the ID half of `split`'s factor."""
    if split == "topic":
        return meta["topic"] in SyntheticTask().id_topics
    key = {"length": "n_words", "sentiment": "sentiment"}[split]
    return meta[key] < medians[key]


def test_single_factor_split_constrains_only_its_factor(built_split):
    split, a, summary = built_split
    medians = summary["medians"]
    id_meta = [r.meta for f, kind in _ID_FILES for r in read_records(a / f, kind)]
    ood_meta = [r.meta for f, kind in _OOD_FILES for r in read_records(a / f, kind)]
    assert len(ood_meta) == 40 + 40
    assert all(_below(split, m, medians) for m in id_meta)
    assert not any(_below(split, m, medians) for m in ood_meta)
    assert all(m["domain"] == "reddit" for m in id_meta + ood_meta)  # no news set
    for other in set(SPLITS) - {split}:  # the other factors vary in ID and in OOD
        for metas in (id_meta, ood_meta):
            halves = [_below(other, m, medians) for m in metas]
            assert 0.15 < mean(halves) < 0.85, (split, other)
    if split != "topic":  # every topic, ID or not, is in distribution
        assert {m["topic"] for m in id_meta} == set(syn.TOPICS)
        assert {m["topic"] for m in ood_meta} == set(syn.TOPICS)
        return
    for f, kind in _OOD_FILES:  # the other topics, with their own (unseen) fact vocabulary throughout
        for r in read_records(a / f, kind):
            own = {p.lower() for s in TOPIC_SLOTS for p in syn.TOPICS[r.meta["topic"]][s]}
            assert all(syn.fact_slots(r.prompt)[s] in own for s in TOPIC_SLOTS)


def test_single_factor_split_declares_one_ood_set(built_split):
    split, a, summary = built_split
    info = json.loads((a / "task.json").read_text())
    assert info["split"] == summary["split"] == split
    assert info["id_rule"] and info["ood_rule"] and "topic_shifts" not in info
    for kind in ("prompt", "preference"):
        tests = [r for r in info["sets"] if r["kind"] == kind and r["role"] == "test"]
        assert [(r["name"], r["distribution"], r["shift"], r["compare_to"]) for r in tests] == [
            ("id", "id", None, None), ("ood", "ood", split, "id")]
    assert task.synthetic_layout(split).to_json() == info["sets"]
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*.jsonl"))
    assert files == sorted([f for f, _ in _ID_FILES + _OOD_FILES] + ["pretrain/corpus.jsonl", "preference/proxy.jsonl"])
    assert {k for k in summary["sizes"] if "test" in k} == {"test_id", "test_ood", "preference_test_id",
                                                             "preference_test_ood"}


def test_single_factor_split_deterministic_without_repeats(built_split, tmp_path):
    split, a, _ = built_split
    build_synthetic_task(_small_split(split), 3, tmp_path)
    for f in sorted(p.relative_to(a) for p in a.rglob("*")):
        if (a / f).is_file():
            assert (a / f).read_bytes() == (tmp_path / f).read_bytes(), f
    bodies = [_body(r.prompt) for f, kind in _ID_FILES + _OOD_FILES for r in read_records(a / f, kind)]
    assert len(bodies) == len(set(bodies))
    corpus = {_body(json.loads(line)["text"] + "\nTL;DR:") for line in (a / "pretrain/corpus.jsonl").open()}
    assert not corpus & set(bodies)


def test_joint_is_the_default_design(built):
    a, summary = built
    assert SyntheticTask().split == "joint"
    assert task.split_shifts() is task.SHIFTS and task.synthetic_layout() == task.synthetic_layout("joint")
    assert "split" not in summary and summary["topic_shifts"] == TOPIC_SHIFTS
    with pytest.raises(ValueError):
        SyntheticTask(split="subreddit")
