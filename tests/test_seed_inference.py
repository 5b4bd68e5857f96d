"""Verdicts over seeds on hand-made per-seed findings: random effects, Holm over the family, direction."""

import math

import pytest

from rlhflab.seed_inference import findings_over_seeds, forest_plot, method_note
from rlhflab.stats import t_p_value

Z = 1.959964


def _row(claim, estimate, se, direction=1, verdict="inconclusive", family="secondary"):
    return {"claim": claim, "verdict": verdict, "direction": direction, "estimate": estimate,
            "ci_low": estimate - Z * se, "ci_high": estimate + Z * se, "unit": "points", "family": family,
            "evidence": "x"}


def _runs(claims: dict[str, tuple[list[float], list[float], int]], primary=()) -> list[list[dict]]:
    """claim -> (per-seed estimates, per-seed SEs, direction) as the findings lists of each seed's run."""
    k = len(next(iter(claims.values()))[0])
    return [[_row(c, ys[i], ses[i], d, family="primary" if c in primary else "secondary")
             for c, (ys, ses, d) in claims.items()] for i in range(k)]


def _over(claims, primary=()):
    per_run = _runs(claims, primary)
    return findings_over_seeds(per_run, list(range(len(per_run))))


def test_three_agreeing_seeds_with_small_ses_reproduce():
    got = _over({"c": ([10.0, 11.0, 12.0], [1.0, 1.0, 1.0], 1)})["c"]
    # w = 1: Q = 2 = k − 1, so τ² = 0; μ = 11; q = 2 / 2 = 1; SE = √(1/3)
    assert got["tau2"] == pytest.approx(0.0, abs=1e-9) and got["estimate"] == pytest.approx(11.0)
    assert got["se"] == pytest.approx(math.sqrt(1 / 3))
    assert got["ci_low"] == pytest.approx(11 - 4.303 * math.sqrt(1 / 3))
    assert got["p_holm"] == pytest.approx(t_p_value(11 / math.sqrt(1 / 3), 2))  # a family of one
    assert got["verdict"] == "reproduced"
    assert [s["estimate"] for s in got["seeds"]] == [10.0, 11.0, 12.0] and [s["seed"] for s in got["seeds"]] == [0, 1, 2]
    assert got["seeds"][0]["se"] == pytest.approx(1.0) and got["checked_in"] == 3


def test_seeds_agreeing_in_sign_with_large_own_ses_are_inconclusive():
    # their spread (sd 1) is far below their SEs (5): the SEs, not the spread, must set the width
    got = _over({"c": ([4.0, 5.0, 6.0], [5.0, 5.0, 5.0], 1)})["c"]
    assert got["se"] == pytest.approx(math.sqrt(25 / 3))
    assert got["ci_low"] < 0 < got["ci_high"] and got["verdict"] == "inconclusive"


def test_seeds_disagreeing_in_sign_are_inconclusive():
    got = _over({"c": ([8.0, -6.0, 7.0], [1.0, 1.0, 1.0], 1)})["c"]
    # Q = 25 + 81 + 16 = 122, C = 2: τ² = 60; μ = 3; SE = √(61/3)
    assert got["tau2"] == pytest.approx(60.0) and got["estimate"] == pytest.approx(3.0)
    assert got["se"] == pytest.approx(math.sqrt(61 / 3))
    assert got["verdict"] == "inconclusive"


def test_a_claim_significant_alone_is_inconclusive_after_holm_over_the_family():
    strong = ([3.0, 4.0, 5.0], [0.5, 0.5, 0.5], 1)  # τ² = 0.75, SE √(1/3), t = 6.93: p = 0.0202
    alone = _over({"strong": strong})["strong"]
    assert alone["p_value"] == pytest.approx(1 - 4 * math.sqrt(3) / math.sqrt(2 + 48)) == pytest.approx(0.0202, abs=1e-4)
    assert alone["verdict"] == "reproduced"
    family = {"strong": strong} | {f"null {i}": ([0.5, -0.5, 0.0], [1.0, 1.0, 1.0], 1) for i in range(12)}
    got = _over(family)
    assert got["strong"]["ci_low"] > 0  # the interval alone would reproduce it
    assert got["strong"]["p_holm"] == pytest.approx(13 * alone["p_value"])
    assert got["strong"]["verdict"] == "inconclusive"
    assert "Holm within the 13 secondary claims (no primary claim was checked)" in method_note(got, 3)


def test_a_primary_claim_pays_for_its_own_family_and_gates_the_secondary_ones():
    strong = ([3.0, 4.0, 5.0], [0.5, 0.5, 0.5], 1)  # p = 0.0202 alone (above)
    nulls = {f"null {i}": ([0.5, -0.5, 0.0], [1.0, 1.0, 1.0], 1) for i in range(12)}
    got = _over({"strong": strong} | nulls, primary={"strong"})
    assert got["strong"]["family"] == "primary" and got["strong"]["p_holm"] == pytest.approx(0.0202, abs=1e-4)
    assert got["strong"]["verdict"] == "reproduced"
    assert all(got[c]["p_holm"] >= got["strong"]["p_holm"] and got[c]["verdict"] == "inconclusive" for c in nulls)
    note = method_note(got, 3)
    assert "Holm within the 1 primary claim (" in note and "Holm within the 12 secondary claims" in note
    # a claim that is primary in one run and secondary in another: runs of different versions
    per_run = _runs({"strong": strong}, {"strong"})
    per_run[1][0]["family"] = "secondary"
    with pytest.raises(ValueError, match="families"):
        findings_over_seeds(per_run, [0, 1, 2])


@pytest.mark.parametrize("ys, direction, expected", [
    ([-10.0, -11.0, -12.0], -1, "reproduced"), ([-10.0, -11.0, -12.0], 1, "contradicted"),
    ([10.0, 11.0, 12.0], -1, "contradicted")])
def test_the_verdict_follows_each_claims_direction(ys, direction, expected):
    got = _over({"c": (ys, [1.0, 1.0, 1.0], direction)})["c"]
    assert got["direction"] == direction and got["verdict"] == expected


def test_claims_one_seed_checked_join_the_family_and_unrun_claims_stay_out():
    per_run = _runs({"c": ([10.0, 11.0, 12.0], [1.0, 1.0, 1.0], 1)})
    per_run[0].append(_row("once", 20.0, 0.1))
    for findings in per_run:
        findings.append({"claim": "KL", "verdict": "not run", "direction": -1, "evidence": "not run"})
    got = findings_over_seeds(per_run, [0, 1, 2])
    assert got["once"]["verdict"] == "inconclusive" and got["once"]["p_value"] == 1.0 and "ci_low" not in got["once"]
    assert got["KL"]["verdict"] == "not run" and "p_holm" not in got["KL"]
    alone = _over({"c": ([10.0, 11.0, 12.0], [1.0, 1.0, 1.0], 1)})["c"]
    assert got["c"]["p_holm"] == pytest.approx(2 * alone["p_value"])
    assert "Holm within the 2 secondary claims" in method_note(got, 3)


def test_a_claim_whose_direction_differs_between_runs_is_refused():
    per_run = [[_row("c", 1.0, 1.0, 1)], [_row("c", 1.0, 1.0, -1)]]
    with pytest.raises(ValueError, match="directions"):
        findings_over_seeds(per_run, [0, 1])


def test_forest_plot_has_a_panel_per_checked_claim(tmp_path):
    got = _over({"a": ([10.0, 11.0, 12.0], [1.0, 1.0, 1.0], 1), "b": ([-0.1, 0.2, 0.05], [0.05, 0.1, 0.2], -1)})
    assert forest_plot(tmp_path / "f.png", got).stat().st_size > 5000
    unrun = {"KL": {"seeds": [], "verdict": "not run", "direction": -1}}
    assert forest_plot(tmp_path / "g.png", unrun) is None and not (tmp_path / "g.png").exists()
