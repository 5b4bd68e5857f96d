"""`rlhflab compare A B`: two runs' policies paired input by input, refused when they do not pair."""

import json

import pytest
from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.report.compare import compare_runs


def _run(tmp_path, name, prefs, judge="gold", inputs=("p1", "p2", "p3", "p4")):
    run = tmp_path / name
    (run / "eval" / "annotations" / "ppo_vs_reference").mkdir(parents=True)
    results = {"judge": judge, "test_sets": {"test": len(inputs)}, "preferences": {"ppo": {"test": prefs}}}
    (run / "eval" / "results.json").write_text(json.dumps(results))
    (run / "eval" / "annotations" / "ppo_vs_reference" / "test.json").write_text(json.dumps(
        [{"instruction": i, "output_1": f"ref {i}", "output_2": "out", "preference": 1.5} for i in inputs]))
    return run


def test_a_clear_per_input_gain_is_a_better_and_its_interval_is_paired(tmp_path):
    a = _run(tmp_path, "a", [1.0, 1.0, 1.0, 0.5] * 1)
    b = _run(tmp_path, "b", [0.0, 0.0, 0.0, 0.5])
    row = compare_runs(a, b)["rows"][0]
    # differences 100, 100, 100, 0: mean 75; every bootstrap mean is one of 0, 25, ..., 100
    assert (row["policy"], row["test_set"], row["estimate"], row["n"]) == ("ppo", "test", 75.0, 4)
    assert 0.0 <= row["ci_low"] <= 50.0 and row["ci_high"] == 100.0
    same = compare_runs(a, _run(tmp_path, "a2", [1.0, 1.0, 1.0, 0.5]))["rows"][0]
    assert same["estimate"] == 0.0 and same["verdict"] == "inconclusive"


def test_a_large_consistent_difference_is_decided_and_the_direction_named(tmp_path):
    inputs = tuple(f"p{i}" for i in range(40))
    a = _run(tmp_path, "a", [0.2] * 40, inputs=inputs)
    b = _run(tmp_path, "b", [0.9] * 39 + [0.1], inputs=inputs)
    row = compare_runs(a, b)["rows"][0]
    assert row["estimate"] == pytest.approx((0.2 * 40 - (0.9 * 39 + 0.1)) / 40 * 100)
    assert row["verdict"] == "B better" and row["ci_high"] < 0 and row["p_holm"] < 0.05


def test_runs_that_do_not_pair_are_refused_naming_why(tmp_path):
    a = _run(tmp_path, "a", [1.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"judged by 'gold' and .* by 'rm': judgements by different judges"):
        compare_runs(a, _run(tmp_path, "b", [1.0] * 4, judge="rm"))
    with pytest.raises(ValueError, match=r"test set 'test': the two runs judged other inputs or references"):
        compare_runs(a, _run(tmp_path, "c", [1.0] * 4, inputs=("p1", "p2", "p3", "other")))
    res = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "nothing/eval/results.json: missing" in res.output
    ok = CliRunner().invoke(app, ["compare", str(a), str(_run(tmp_path, "d", [0.0] * 4)), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0 and "| ppo | test | +50.0 |" in ok.output and (tmp_path / "o" / "compare.md").exists()
