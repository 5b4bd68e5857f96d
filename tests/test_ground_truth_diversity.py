"""Ground-truth content and form diversity of the synthetic task, against values computed by hand
from summaries whose facts are known."""

import math

import pytest

from rlhflab.config import DiversityStage
from rlhflab.data.synthetic import delexicalise, stated_facts
from rlhflab.evaluation.ground_truth_diversity import (content_diversity, distinct_contents, form_diversity,
                                                       ground_truth_table, jaccard_distance, measured_diversity,
                                                       same_content_pairs, token_edit_distance)

# facts: who "my landlord", event "raised the rent again", feeling "anxious", question "can i get a refund"
A = "my landlord raised the rent again and I feel anxious. can I get a refund?"  # form: W E and i feel F Q
B = "My landlord raised the rent again, now I am anxious. Can I get a refund?"  # W E now i am F Q: 2 of 7 differ
C = "my landlord raised the rent again. can I get a refund?"  # no feeling: {W, E, Q}
D = "my roommate raised the rent again. can I get a refund?"  # another who: {W', E, Q}
C2 = "my landlord raised the rent again, can I get a refund?"  # C's content and words, other punctuation
TWO_WHOS = "my landlord and my roommate raised the rent again."  # {W, W', E}


def facts(*texts):
    return [stated_facts(t) for t in texts]


def test_stated_facts_and_forms():
    assert stated_facts(A) == stated_facts(B) == {("who", "my landlord"), ("event", "raised the rent again"),
                                                  ("feeling", "anxious"), ("question", "can i get a refund")}
    assert stated_facts(TWO_WHOS) == {("who", "my landlord"), ("who", "my roommate"), ("event", "raised the rent again")}
    assert delexicalise(A) == ["<who>", "<event>", "and", "i", "feel", "<feeling>", "<question>"]
    assert delexicalise(C) == delexicalise(C2) == delexicalise(D) == ["<who>", "<event>", "<question>"]


def test_jaccard_distance_by_hand():
    a, c, d = facts(A, C, D)
    assert jaccard_distance(a, c) == pytest.approx(1 / 4)  # 3 shared of 4
    assert jaccard_distance(a, d) == pytest.approx(3 / 5)  # 2 shared of 5
    assert jaccard_distance(c, d) == pytest.approx(1 / 2)  # 2 shared of 4
    assert jaccard_distance(frozenset(), frozenset()) == 0.0
    # every phrase counts, not only the first per slot: the invented second `who` is content
    assert jaccard_distance(*facts(TWO_WHOS, "my landlord raised the rent again.")) == pytest.approx(1 / 3)


def test_content_diversity_by_hand():
    # pairs AB 0, AC 1/4, AD 3/5, BC 1/4, BD 3/5, CD 1/2: sum 2.2 over 6 pairs
    assert content_diversity(facts(A, B, C, D)) == pytest.approx(2.2 / 6, rel=1e-12)
    assert content_diversity(facts(A, B)) == 0.0
    assert content_diversity(facts(A, A, C)) == pytest.approx((0 + 0.25 + 0.25) / 3, rel=1e-12)
    assert distinct_contents(facts(A, B, C, D)) == 3.0
    with pytest.raises(ValueError):
        content_diversity(facts(A))


def test_token_edit_distance_by_hand():
    assert token_edit_distance(list("kitten"), list("sitting")) == pytest.approx(3 / 7)
    assert token_edit_distance(["a", "b", "c"], ["a", "c"]) == pytest.approx(1 / 3)
    assert token_edit_distance(["a"], []) == 1.0
    assert token_edit_distance([], []) == 0.0


def test_form_diversity_only_over_pairs_with_equal_content():
    texts = [A, B, C, D]
    assert same_content_pairs(facts(*texts)) == [(0, 1)]
    # only A–B share content; their forms differ in "and"→"now", "feel"→"am": 2 substitutions of 7 tokens
    assert form_diversity(facts(*texts), [delexicalise(t) for t in texts]) == pytest.approx(2 / 7, rel=1e-12)
    assert form_diversity(facts(C, C2), [delexicalise(C), delexicalise(C2)]) == 0.0  # punctuation is not wording
    assert math.isnan(form_diversity(facts(C, D), [delexicalise(C), delexicalise(D)]))  # no pair shares content


def test_form_diversity_samples_pairs_beyond_the_cap():
    texts = [A, B, A, B]  # 6 pairs share content: AB ×4 at 2/7, AA and BB at 0 → 8/42 exactly
    f, forms = facts(*texts), [delexicalise(t) for t in texts]
    assert form_diversity(f, forms) == pytest.approx(8 / 42, rel=1e-12)
    capped = form_diversity(f, forms, max_pairs=1)
    assert capped in (0.0, pytest.approx(2 / 7))


def test_ground_truth_table_per_input_and_across_input():
    # input 0: [A, B] (same content, other wording); input 1: [C, D] (other content, same wording)
    t = ground_truth_table([A, B, C, D], 2, 2, resamples=1)
    assert t["content"]["per_input"].values == [0.0, 0.5]
    assert t["content"]["per_input"].mean == pytest.approx(0.25)
    assert t["content_distinct"]["per_input"].values == [1.0, 2.0]
    form = t["form"]["per_input"]
    assert form.values[0] == pytest.approx(2 / 7) and math.isnan(form.values[1])
    assert (form.mean, form.std, form.n) == (pytest.approx(2 / 7), 0.0, 1)  # undefined inputs left out
    # across inputs: the first sample of each, A and C
    assert t["content"]["across_input"].mean == pytest.approx(0.25)
    assert t["content_distinct"]["across_input"].mean == 2.0
    assert math.isnan(t["form"]["across_input"].mean)
    with pytest.raises(ValueError):
        ground_truth_table([A, B, C], 2, 2)


def test_across_input_spread_leaves_undefined_redraws_out():
    # input 0: [A, C], input 1: [B, D]; the first draw (A, B) shares content, the others mostly do not
    form = ground_truth_table([A, C, B, D], 2, 2, resamples=8)["form"]["across_input"]
    assert form.mean == pytest.approx(2 / 7) and form.std == 0.0 and form.n == 8


def test_measured_diversity_adds_ground_truth_only_where_facts_are_known():
    cfg = DiversityStage(metrics=["ead"], resamples=2)
    synthetic = measured_diversity([A, B, C, D], 2, 2, cfg, "synthetic-tldr")
    assert set(synthetic) == {"ead", "content", "content_distinct", "form"}
    assert synthetic["content"]["per_input"].values == [0.0, 0.5]
    assert set(measured_diversity([A, B, C, D], 2, 2, cfg, "files")) == {"ead"}
