"""Preference pairs from policy samples: filtering and annotator labelling."""

import random

from rlhflab.config import ConfigError, load_config
from rlhflab.data.records import PreferenceRecord
from rlhflab.stages.comparisons import candidate_pairs, label

import pytest


def _rec(i):
    return PreferenceRecord(prompt=f"p{i}", chosen="a", rejected="b", id=str(i))


def test_candidate_pairs_drop_pairs_without_a_preference():
    recs = [_rec(i) for i in range(4)]
    gold = lambda p, t: float(len(t))  # noqa: E731
    kept, dropped = candidate_pairs(recs, ["x", "same", "ab", "abc"], ["", "same", "cd", "a"], gold)
    assert dropped == {"empty": 1, "identical": 1, "gold_tie": 1}
    assert [(r.id, x, y, gx, gy) for r, x, y, gx, gy in kept] == [("3", "abc", "a", 3.0, 1.0)]


def test_label_follows_gold_when_annotators_are_sharp_and_is_noisy_when_not():
    pairs = [(_rec(i), "good", "bad", 1.0, 0.0) for i in range(400)]
    sharp, agree = label(random.Random(0), pairs, scale=1e-3)
    assert agree == 1.0 and all(r.chosen == " good" and r.rejected == " bad" for r in sharp)
    _, agree = label(random.Random(0), pairs, scale=1.0)  # P(agree) = σ(1) = 0.731
    assert 0.68 < agree < 0.78


def test_policy_samples_need_a_task_with_annotators(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: {{kind: files, sft_train: {f}, sft_validation: {f}}}\n"
                   "comparisons: {source: sft_samples}\n")
    with pytest.raises(ConfigError, match="comparisons.source"):
        load_config(cfg)


def test_the_proxy_rms_set_is_sampled_last_and_labelled_by_gold_alone():
    from rlhflab import layout as L
    from rlhflab.stages.comparisons import gold_label, preference_sets

    data = L.Layout.build(L.train_and_validation() + [L.test_set("preference", "id", "id"),
                                                      L.DataSet("preference", "proxy", "proxy")])
    assert list(preference_sets(data)) == ["train", "validation", "test_id", "proxy"]  # the RM's samples unchanged
    pairs = [(_rec(i), "good", "bad", 1.0, 0.0) if i % 2 else (_rec(i), "bad", "good", 0.0, 1.0) for i in range(100)]
    assert all(r.chosen == " good" and r.rejected == " bad" for r in gold_label(pairs))
