"""RewardBench's score: sections weighted by its example counts, Prior Sets at 0.5, ties wrong."""

from pathlib import Path

import pytest
import torch

from rlhflab.config.benchmarks import RewardBench
from rlhflab.data.sources import SourceError
from rlhflab.evaluation.rewardbench import (EXAMPLE_COUNTS, PRIOR, overall_score, rewardbench_result, section_scores,
                                            strict_accuracy, subset_accuracies)
from rlhflab.stages.rm_eval import rewardbench_records

FIX = Path(__file__).parent / "fixtures" / "sources"


def test_the_second_papers_table_13_score_reproduces_from_its_sections():
    # ivison2024 table 13: (74.3 + 49.3 + 52.2 + 65.0 + 0.5 * 67.9) / 4.5 = 61.1
    sections = {"Chat": 74.3, "Chat Hard": 49.3, "Safety": 52.2, "Reasoning": 65.0, PRIOR: 67.9}
    assert overall_score(sections) == pytest.approx(274.75 / 4.5)
    assert round(overall_score(sections), 1) == 61.1
    with pytest.raises(ValueError, match="no RewardBench section"):
        overall_score({})


def test_sections_weight_subsets_by_rewardbenchs_example_counts():
    acc = {"mt-bench-hard": 0.5, "llmbar-natural": 0.0, "math-prm": 0.5, "hep-python": 1.0,
           "anthropic_helpful": 0.5, "shp": 1.0, "anthropic_harmless": 0.0}
    s = section_scores(acc)
    assert EXAMPLE_COUNTS["math-prm"] == 984  # upweighted from 447 pairs to weigh as much as the code subsets
    assert s["Chat Hard"] == pytest.approx(100 * 18.5 / 137)
    assert s["Reasoning"] == pytest.approx(100 * (0.5 * 984 + 164) / 1148)
    assert s[PRIOR] == pytest.approx(75.0)  # anthropic_harmless is not among the leaderboard's prior subsets
    assert set(s) == {"Chat Hard", "Reasoning", PRIOR}
    assert strict_accuracy(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 4.0])) == pytest.approx(1 / 3)


def _by_length(prompts, chosen, rejected):
    return torch.tensor([float(len(c)) for c in chosen]), torch.tensor([float(len(r)) for r in rejected])


def test_a_fixed_scorer_on_the_fixture_sets_gives_the_hand_computed_score():
    cfg = RewardBench(core=str(FIX / "rewardbench.jsonl"), prior_sets=str(FIX / "rewardbench_prior_sets.jsonl"))
    records = rewardbench_records(cfg, seed=0)
    result = rewardbench_result(subset_accuracies(records, _by_length), cfg.prior_subsets)
    # longer response wins; math-prm's second pair is a tie, which counts as wrong
    assert result["subsets"] == {"alpacaeval-easy": 1.0, "anthropic_harmless": 1.0, "anthropic_helpful": 0.5,
                                 "hep-python": 1.0, "llmbar-natural": 0.0, "math-prm": 0.5, "mt-bench-hard": 0.5,
                                 "shp": 1.0, "xstest-should-refuse": 1.0}
    chat_hard, reasoning = 100 * 18.5 / 137, 100 * 656 / 1148
    assert result["sections"] == pytest.approx({"Chat": 100.0, "Chat Hard": chat_hard, "Safety": 100.0,
                                                "Reasoning": reasoning, PRIOR: 75.0})
    assert result["score"] == pytest.approx((100 + chat_hard + 100 + reasoning + 0.5 * 75) / 4.5)


def test_sampling_per_subset_and_a_prior_file_without_subsets(tmp_path):
    cfg = RewardBench(core=str(FIX / "rewardbench.jsonl"), prior_sets=None, max_per_subset=1)
    records = rewardbench_records(cfg, seed=0)
    assert len(records) == 6 and len({r.meta["category"] for r in records}) == 6
    bad = tmp_path / "prior.jsonl"
    bad.write_text((FIX / "rewardbench_prior_sets.jsonl").read_text().replace('"subset": "shp", ', ""))
    with pytest.raises(SourceError, match="prior.jsonl: every row needs a `subset` field"):
        rewardbench_records(RewardBench(core=None, prior_sets=str(bad)), seed=0)
