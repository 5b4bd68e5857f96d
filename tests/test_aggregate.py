"""Across-seed aggregation on hand-made run folders."""

import json
import math

import pytest
from typer.testing import CliRunner

from rlhflab.aggregate import aggregate_runs
from rlhflab.cli import app


def _run(folder, wr_sft, wr_ppo, div_ppo, reproduced):
    (folder / "eval").mkdir(parents=True)
    (folder / "diversity").mkdir()
    (folder / "report").mkdir()
    sets = {"id": 10, "ood_x": 10}
    pvr = {"sft": {"id": {"win_rate": wr_sft}, "ood_x": {"win_rate": wr_sft - 5}},
           "ppo": {"id": {"win_rate": wr_ppo}, "ood_x": {"win_rate": wr_ppo - 10}}}
    (folder / "eval" / "results.json").write_text(json.dumps(
        {"test_sets": sets, "pvr": pvr, "gap": {"sft": {"ood_x": 5.0}, "ppo": {"ood_x": 10.0}}}))
    (folder / "diversity" / "diversity.json").write_text(json.dumps(
        {"policies": {"sft": {"ead": {"per_input": {"mean": 0.5}}}, "ppo": {"ead": {"per_input": {"mean": div_ppo}}}}}))
    (folder / "report" / "findings.json").write_text(json.dumps(
        [{"claim": "RLHF beats SFT", "reproduced": reproduced, "evidence": "x"},
         {"claim": "KL", "reproduced": None, "evidence": "not run"}]))
    return folder


def test_mean_and_standard_error_over_seeds(tmp_path):
    runs = [_run(tmp_path / "s0", 10, 30, 0.3, True), _run(tmp_path / "s1", 20, 40, 0.4, True),
            _run(tmp_path / "s2", 30, 20, 0.2, False)]
    res = aggregate_runs(runs, tmp_path / "agg")
    assert res["pvr"]["ppo"]["id"]["mean"] == pytest.approx(30)
    assert res["pvr"]["ppo"]["id"]["se"] == pytest.approx(10 / math.sqrt(3))  # sample std 10
    assert res["mean_gap"]["ppo"]["mean"] == 10.0 and res["mean_gap"]["ppo"]["se"] == 0.0
    assert res["per_input_diversity"]["ppo"]["ead"]["mean"] == pytest.approx(0.3)
    assert res["findings"]["RLHF beats SFT"] == {"reproduced_in": 2, "checked_in": 3}
    assert res["findings"]["KL"] == {"reproduced_in": 0, "checked_in": 0}
    assert (tmp_path / "agg" / "pvr_over_seeds.png").stat().st_size > 1000
    assert "2 of 3 seeds" in (tmp_path / "agg" / "aggregate.md").read_text()


def test_aggregate_cli_errors_name_the_missing_file(tmp_path):
    _run(tmp_path / "s0", 10, 30, 0.3, True)
    (tmp_path / "s1").mkdir()
    res = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "results.json" in res.output
    ok = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s0"), "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0 and "1/1 seeds" not in ok.output and "2/2 seeds: RLHF beats SFT" in ok.output
