"""Across-seed aggregation on hand-made run folders."""

import json
import math

import pytest
from typer.testing import CliRunner

from rlhflab.aggregate import aggregate_runs
from rlhflab.cli import app


def _run(folder, wr_sft, wr_ppo, div_ppo, estimate):
    (folder / "eval").mkdir(parents=True)
    (folder / "diversity").mkdir()
    (folder / "report").mkdir()
    # "a_ood" sorts before "b_id" by name; only the declared distribution puts b_id first
    sizes = {"a_ood": 10, "b_id": 10}
    sets = {"b_id": {"distribution": "id", "shift": None, "compare_to": None},
            "a_ood": {"distribution": "ood", "shift": "length", "compare_to": "b_id"}}
    pvr = {"sft": {"b_id": {"win_rate": wr_sft}, "a_ood": {"win_rate": wr_sft - 5}},
           "ppo": {"b_id": {"win_rate": wr_ppo}, "a_ood": {"win_rate": wr_ppo - 10}}}
    (folder / "eval" / "results.json").write_text(json.dumps(
        {"test_sets": sizes, "sets": sets, "baseline": "sft", "pvr": pvr,
         "gap": {"sft": {"a_ood": 5.0}, "ppo": {"a_ood": 10.0}}}))
    (folder / "diversity" / "diversity.json").write_text(json.dumps(
        {"policies": {"sft": {"ead": {"per_input": {"mean": 0.5}}}, "ppo": {"ead": {"per_input": {"mean": div_ppo}}}}}))
    (folder / "report" / "findings.json").write_text(json.dumps(
        [{"claim": "RLHF beats SFT", "verdict": "reproduced" if estimate > 1 else "inconclusive", "direction": 1,
          "estimate": estimate, "ci_low": estimate - 1, "ci_high": estimate + 1, "evidence": "x"},
         {"claim": "KL", "verdict": "not run", "direction": -1, "evidence": "not run"}]))
    return folder


def test_mean_and_standard_error_over_seeds(tmp_path):
    runs = [_run(tmp_path / "s0", 10, 30, 0.3, 4.0), _run(tmp_path / "s1", 20, 40, 0.4, 5.0),
            _run(tmp_path / "s2", 30, 20, 0.2, 0.5)]
    res = aggregate_runs(runs, tmp_path / "agg")
    assert res["pvr"]["ppo"]["b_id"]["mean"] == pytest.approx(30)
    assert res["pvr"]["ppo"]["b_id"]["se"] == pytest.approx(10 / math.sqrt(3))  # sample std 10
    assert res["pvr"]["ppo"]["b_id"]["seeds"] == 3 and list(res["pvr"]["ppo"]) == ["b_id", "a_ood"]
    assert res["mean_gap"]["ppo"]["mean"] == 10.0 and res["mean_gap"]["ppo"]["se"] == 0.0
    assert res["per_input_diversity"]["ppo"]["ead"]["mean"] == pytest.approx(0.3)
    beats = res["findings"]["RLHF beats SFT"]
    assert (beats["reproduced_in"], beats["inconclusive_in"], beats["checked_in"]) == (2, 1, 3)
    # estimates 4, 5, 0.5: mean 3.1667, s = 2.3629, t_{0.975,2} = 4.303 -> ± 5.870: across 0
    assert beats["mean"] == pytest.approx(19 / 6)
    assert beats["ci_low"] == pytest.approx(19 / 6 - 4.303 * 2.36291 / math.sqrt(3), abs=1e-3)
    assert beats["verdict"] == "inconclusive"
    assert res["findings"]["KL"]["verdict"] == "not run" and res["findings"]["KL"]["checked_in"] == 0
    assert (tmp_path / "agg" / "pvr_over_seeds.png").stat().st_size > 1000
    md = (tmp_path / "agg" / "aggregate.md").read_text()
    assert "| RLHF beats SFT | inconclusive | +3.17 [-2.7, +9.04] | 2 / 0 / 1 of 3 |" in md and "| policy | b_id | a_ood | mean gap |" in md
    assert "| ppo | 30.0 ± 5.8 | 20.0 ± 5.8 | 10.0 ± 0.0 |" in md


def test_aggregate_cli_errors_name_the_missing_file(tmp_path):
    _run(tmp_path / "s0", 10, 30, 0.3, 4.0)
    (tmp_path / "s1").mkdir()
    res = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "results.json" in res.output
    ok = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s0"), "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0 and "1/1 seeds" not in ok.output
    # the same run twice: identical estimates, a zero-width interval at +4
    assert "reproduced over seeds (2/2 seeds reproduce): RLHF beats SFT" in ok.output
