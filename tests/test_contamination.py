"""No test input in training or selection data (issue 16): the pure overlap counts, the `part`
split of a datasets ref, the synthetic task's zero overlaps, and the proxy RM's training sets."""

import json
import random

import pytest

from rlhflab.config import ConfigError, load_config
from rlhflab.contamination import (ANCHOR_WORDS, CORPUS, ContaminationError, HeldOutSet, contamination_report,
                                   corpus_overlaps, error_message, in_part, index, input_text, keyed, normalise,
                                   overlap, violations)
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, read_json
from rlhflab import layout as L
from rlhflab.tasks.common import carve_validation


def P(prompt, id_="", **meta):
    return PromptRecord(prompt, None, id_, meta)


# ------------------------------------------------------------------------------ normalising ---

@pytest.mark.parametrize("a,b", [
    ("Hello,  World!", "hello world"),
    ("  POST: my dog\n\tbarks.\nTL;DR:", "post my dog barks tl;dr"),
    ("ﬁne Ｃａｆé", "fine café"),          # NFKC: ligature and full-width letters
    ("STRASSE", "straße"),                 # casefold
    ("«quoted» (aside)", "quoted aside"),
])
def test_normalise_equates_case_spacing_and_edge_punctuation(a, b):
    assert normalise(a) == normalise(b)


def test_normalise_keeps_inner_punctuation_and_words():
    assert normalise("hello-world") != normalise("hello world")
    assert normalise("don't, 10,000!") == "don't 10,000"
    assert normalise(" ... ") == ""


def test_input_text_prefers_messages_then_raw_input_then_prompt():
    chat = P("<|user|>\nHi\n<|assistant|>\n", messages=[{"role": "user", "content": "Hi"}])
    assert input_text(chat) == "Hi"  # the template does not matter
    assert input_text(P("SUBREDDIT: r/x\nPOST: body\nTL;DR:", input="body")) == "body"
    assert input_text(P("plain")) == "plain"


# -------------------------------------------------------------------------------- overlaps ---

def test_overlap_counts_test_inputs_found_in_the_other_set():
    test = [("a", "x"), ("b", "y"), ("c", "z"), ("d", "x")]
    other = index([("o1", "x"), ("o2", "x"), ("o3", "z"), ("o4", "w")])
    e = overlap(test, other)
    assert e == {"count": 3, "fraction": 0.75, "examples": [["a", "o1"], ["c", "o3"], ["d", "o1"]]}
    assert overlap(test, index([])) == {"count": 0, "fraction": 0.0, "examples": []}
    assert overlap([], other)["fraction"] == 0.0


def test_keyed_skips_empty_inputs_and_matches_after_normalising():
    recs = [P("Why?", "t1"), P("  ", "t2"), P("...", "t3"), P("Hello world", "t4")]
    assert keyed(recs) == [("t1", "why"), ("t4", "hello world")]
    train = [SFTRecord("WHY ", " because", "s1"), SFTRecord("hello,world", " hi", "s2")]
    assert overlap(keyed(recs), index(keyed(train))) == {"count": 1, "fraction": 0.5, "examples": [["t1", "s1"]]}


def test_report_compares_id_with_ood_tests_of_the_same_kind_only():
    tests = {"test/id": HeldOutSet("prompt", "id", [("i1", "a"), ("i2", "b")]),
             "test/ood": HeldOutSet("prompt", "ood", [("o1", "b"), ("o2", "c"), ("o3", "d"), ("o4", "e")]),
             "test/id2": HeldOutSet("prompt", "id", [("j1", "a")]),
             "preference/test_ood": HeldOutSet("preference", "ood", [("p1", "a")])}
    others = {"sft/train": index([("s1", "e"), ("s2", "e")])}
    r = contamination_report(tests, others)
    assert set(r["test/id"]["against"]) == {"sft/train", "test/ood"}  # not the other ID set, not preferences
    assert r["test/id"]["against"]["test/ood"] == {"count": 1, "fraction": 0.5, "examples": [["i2", "o1"]]}
    assert r["test/ood"]["against"]["test/id"]["fraction"] == 0.25  # each way, over its own size
    assert r["test/ood"]["against"]["test/id2"]["count"] == 0
    assert r["test/ood"]["against"]["sft/train"] == {"count": 1, "fraction": 0.25, "examples": [["o4", "s1"]]}
    assert set(r["preference/test_ood"]["against"]) == {"sft/train"}
    assert CORPUS not in r["test/id"]["against"]


def test_violations_are_above_the_threshold_worst_first():
    tests = {"test/id": HeldOutSet("prompt", "id", [(f"t{i}", f"x{i}") for i in range(200)])}
    others = {"sft/train": index([("s", "x0"), ("s2", "x1")]),       # 2 of 200 = 1%
              "prompts/train": index([("p", "x5")])}                 # 0.5%
    r = contamination_report(tests, others)
    assert violations(r, 0.01) == []                       # 1% is allowed, not above
    found = violations(r, 0.0)                             # 0: no overlap at all
    assert [(t, o, e["count"]) for t, o, e in found] == [("test/id", "sft/train", 2), ("test/id", "prompts/train", 1)]
    assert violations(r, 1.0) == []                        # 1: report only
    msg = error_message(r, found, 0.0)
    assert "test set test/id shares 2 of 200 inputs (1.0%) with sft/train" in msg
    assert "t0 (= s), t1 (= s2)" in msg and "also test/id with prompts/train: 1 of 200" in msg
    assert "task.contamination_threshold=0" in msg and "part:" in msg


def test_corpus_documents_match_inside_inputs_and_inputs_inside_documents():
    words = " ".join(f"w{i}" for i in range(20))
    test = {"test/id": [("post", f"subreddit r/x post {words} tl;dr"),    # the document plus a cue
                        ("inside", "alpha beta gamma delta epsilon zeta eta theta"),  # 8 words, inside a doc
                        ("equal", "short one"),
                        ("clean", "nothing like it at all in the corpus here")],
            "test/ood": [("o", "w1 w2 w3")]}
    docs = ["", f"SUBREDDIT: r/x\nPOST: {words}.",                     # line 2: inside 'post' (21 of 24 words)
            "Intro. Alpha beta gamma delta epsilon zeta eta theta! And more text after it.",  # line 3
            "Short one.",                                                # line 4: equal
            "w1 w2 w3 w4 w5 w6 w7 w8 w9"]                                # line 5: contains 'o', but 'o' < 8 words
    r = corpus_overlaps(test, docs)
    assert r["test/id"] == {"count": 3, "fraction": 0.75,
                            "examples": [["post", "line 2"], ["inside", "line 3"], ["equal", "line 4"]]}
    assert r["test/ood"]["count"] == 0
    # A short boilerplate document inside a long input is no match (it covers under half of it).
    long_input = [("t", " ".join(f"v{i}" for i in range(40)))]
    assert corpus_overlaps({"t": long_input}, [" ".join(f"v{i}" for i in range(ANCHOR_WORDS))])["t"]["count"] == 0
    assert corpus_overlaps({"t": long_input}, [" ".join(f"v{i}" for i in range(20))])["t"]["count"] == 1


def test_report_adds_the_corpus_when_given():
    tests = {"test/id": HeldOutSet("prompt", "id", [("a", "one two three four five six seven eight")])}
    r = contamination_report(tests, {}, ["x", "One, two three four five six seven eight."])
    assert r["test/id"]["against"][CORPUS]["examples"] == [["a", "line 2"]]


# ---------------------------------------------------------------------------- part and carve ---

def test_parts_cover_every_record_once_and_follow_the_input_not_the_format():
    recs = [P(f"SUBREDDIT: r/a\nPOST: post {i}\nTL;DR:", str(i), input=f"post {i}") for i in range(200)]
    parts = [[r for r in recs if in_part(r, k, 3)] for k in (1, 2, 3)]
    assert sorted(r.id for p in parts for r in p) == sorted(r.id for r in recs)
    assert all(40 < len(p) < 95 for p in parts)
    for r in recs[:20]:  # the same post in another source's format lands in the same part
        other = SFTRecord(f"TITLE: t\nPOST: {r.meta['input'].upper()}!\nTL;DR:", " s", meta={"input": r.meta["input"]})
        assert [in_part(other, k, 3) for k in (1, 2, 3)] == [in_part(r, k, 3) for k in (1, 2, 3)]


@pytest.mark.parametrize("part,ok", [("1/2", True), ("2/2", True), (" 3 / 4 ", True), ("0/2", False),
                                     ("3/2", False), ("1/1", False), ("half", False), ("1/2/3", False)])
def test_part_must_be_k_of_n(tmp_path, part, ok):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"task": {"kind": "datasets", "sft_train": {"source": "tldr", "part": part}},
                               "comparisons": {"source": "task"}, "eval": {"judge": "rm"},
                               "diversity": {"metrics": ["ead"]}}))
    if ok:
        assert load_config(cfg).task.sft_train.parts is not None
    else:
        with pytest.raises(ConfigError, match="part: expected K/N"):
            load_config(cfg)


@pytest.mark.parametrize("value,ok", [(0, True), (0.01, True), (1, True), (-0.1, False), (1.5, False)])
def test_contamination_threshold_is_a_fraction(tmp_path, value, ok):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"task": {"kind": "synthetic", "contamination_threshold": value}}))
    if ok:
        assert load_config(cfg).task.contamination_threshold == value
    else:
        with pytest.raises(ConfigError, match="contamination_threshold"):
            load_config(cfg)


def test_carve_without_a_key_is_unchanged_and_with_one_keeps_groups_apart():
    recs = list(range(100))
    rng = random.Random(7)  # the rule before keys existed
    idx = list(range(100))
    rng.shuffle(idx)
    assert carve_validation(recs, 7) == ([i for i in recs if i not in set(idx[:5])], [i for i in recs if i in set(idx[:5])])
    pairs = [PreferenceRecord(f"post {i // 4}", f" a{i}", f" b{i}", str(i)) for i in range(400)]  # 4 pairs a post
    train, val = carve_validation(pairs, 3, key=lambda r: r.prompt)
    assert len(train) + len(val) == 400 and len(val) == 20
    assert not {r.prompt for r in train} & {r.prompt for r in val}
    one = [PreferenceRecord("same", f" a{i}", f" b{i}") for i in range(40)]  # a single key: record by record
    assert len(carve_validation(one, 0, key=lambda r: r.prompt)[1]) == 2


# ---------------------------------------------------------------------------------- tasks ---

def test_the_synthetic_task_has_no_overlap_at_all(tmp_path):
    from rlhflab.stages.data import check_contamination
    from rlhflab.tasks import build_task

    cfg = load_config("quickstart", ["task.n_pretrain=400", "task.n_sft_train=100", "task.n_preference_train=100",
                                     "task.n_policy_prompts=50", "task.n_test=20", "task.n_preference_test=20",
                                     "task.median_pool=200"])
    build_task(cfg.task, 0, tmp_path)
    assert check_contamination(tmp_path, 0.0) == {"max_fraction": 0.0}
    c = read_json(tmp_path / "task.json")["contamination"]
    assert c["corpus"] == "compared" and c["threshold"] == 0.0
    assert set(c["tests"]["test/id"]["against"]) >= {"sft/train", "prompts/train", "test/ood_news", CORPUS,
                                                      "preference/proxy"}
    # The corpus check works on this corpus: a test post as an unlabelled document is found.
    post = json.loads((tmp_path / "test" / "ood_news.jsonl").read_text().splitlines()[3])
    with (tmp_path / "pretrain" / "corpus.jsonl").open("a") as f:
        f.write(json.dumps({"text": post["prompt"].rsplit("\nTL;DR:", 1)[0]}) + "\n")
    assert check_contamination(tmp_path, 1.0)["other"] == CORPUS
    # A test input in the proxy RM's pairs is found like one in any other training set.
    test_post = json.loads((tmp_path / "test" / "id.jsonl").read_text().splitlines()[2])
    with (tmp_path / "preference" / "proxy.jsonl").open("a") as f:
        f.write(json.dumps({"prompt": test_post["prompt"], "chosen": " a", "rejected": " b", "id": "x"}) + "\n")
    with pytest.raises(ContaminationError, match="preference/proxy"):
        check_contamination(tmp_path, 0.04)
    assert read_json(tmp_path / "task.json")["contamination"]["tests"]["test/id"]["against"]["preference/proxy"][
        "count"] == 1


# ------------------------------------------------------------------------------- proxy RM ---

def test_the_proxy_rm_learns_from_train_and_validation_never_a_test_set(monkeypatch):
    from rlhflab.stages import rm

    layout = L.Layout.build(L.train_and_validation() + [L.test_set("preference", "id", "id"),
                                                        L.test_set("preference", "ood_len", "ood", "length"),
                                                        L.test_set("prompt", "id", "id")])
    assert [s.file for s in rm.proxy_sets(layout)] == ["preference/train.jsonl", "preference/validation.jsonl"]

    def pairs(ds: L.DataSet):
        return [PreferenceRecord(f"{ds.name} post {i // 2}", f" a{i}", f" b{i}", f"{ds.name}-{i}") for i in range(40)]

    read, trained = [], {}
    monkeypatch.setattr(rm, "layout", lambda ctx: layout)
    monkeypatch.setattr(rm, "read_set", lambda ctx, ds: read.append(ds.file) or pairs(ds))
    monkeypatch.setattr(rm, "train_reward_model", lambda ctx, train, val, seed: trained.update(
        train=train, val=val, seed=seed) or {})

    class Ctx:
        seed = 5
        cfg = load_config("quickstart")

    metrics = rm.run_proxy(Ctx())
    assert read == ["preference/train.jsonl", "preference/validation.jsonl"]
    ids = [r.id for r in trained["train"] + trained["val"]]
    assert sorted(ids) == sorted([f"train-{i}" for i in range(40)] + [f"validation-{i}" for i in range(40)])
    assert not {r.prompt for r in trained["train"]} & {r.prompt for r in trained["val"]}
    assert trained["seed"] == 5 + Ctx.cfg.rm.proxy_seed_offset
    # without a proxy set of its own (files and datasets tasks) the manifest says it is a near-copy
    assert metrics == {"proxy_data": "same pairs as rm, other seed", "proxy_labels": "the RM's labels",
                       "pairs_shared_with_rm": 80, "prompts_shared_with_rm": 40}


def test_the_proxy_rm_learns_only_its_own_set_and_records_what_it_shares_with_the_rm(monkeypatch):
    from rlhflab.stages import rm

    layout = L.Layout.build(L.train_and_validation() + [L.test_set("preference", "id", "id"),
                                                        L.DataSet("preference", "proxy", "proxy")])
    assert [s.file for s in rm.proxy_sets(layout)] == ["preference/proxy.jsonl"]

    def pairs(ds: L.DataSet):
        # the last proxy pair reuses a prompt of the RM's training pairs: counted, not assumed away
        return [PreferenceRecord(f"{ds.name} post {i}" if (ds.role, i) != ("proxy", 39) else "train post 0",
                                 " a", " b", f"{ds.name}-{i}") for i in range(40)]

    read, trained = [], {}
    monkeypatch.setattr(rm, "layout", lambda ctx: layout)
    monkeypatch.setattr(rm, "read_set", lambda ctx, ds: read.append(ds.file) or pairs(ds))
    monkeypatch.setattr(rm, "train_reward_model", lambda ctx, train, val, seed: trained.update(
        train=train, val=val) or {"best_val_accuracy": 0.9})

    class Ctx:
        seed = 5
        cfg = load_config("quickstart")

    metrics = rm.run_proxy(Ctx())
    assert read[0] == "preference/proxy.jsonl" and "preference/test_id.jsonl" not in read
    assert sorted(r.id for r in trained["train"] + trained["val"]) == sorted(f"proxy-{i}" for i in range(40))
    assert metrics == {"best_val_accuracy": 0.9, "proxy_data": "gold-labelled pairs on held-out prompts (ID and OOD regions)",
                       "proxy_labels": "gold reward (noise-free)", "pairs_shared_with_rm": 0, "prompts_shared_with_rm": 1}
