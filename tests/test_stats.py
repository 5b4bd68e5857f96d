"""The statistics behind the findings: paired and stratified bootstrap, verdicts, Holm, t-intervals."""

import math

import numpy as np
import pytest

from rlhflab.stats import (holm, interval, paired_bootstrap, paired_differences, stratified_bootstrap,
                           t_interval, t_quantile_975, verdict)


def test_paired_differences_drop_an_input_invalid_on_either_side():
    d = paired_differences([1.0, None, 0.5, float("nan"), 0.0], [0.0, 1.0, 0.5, 0.0, None])
    assert d.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="same inputs"):
        paired_differences([1.0], [1.0, 0.0])


def test_a_constant_difference_has_a_degenerate_interval_and_the_smallest_p_value():
    got = paired_bootstrap([1, 1, 1, 1], [0, 0, 0, 0], resamples=999)
    assert (got["estimate"], got["ci_low"], got["ci_high"], got["n"]) == (1.0, 1.0, 1.0, 4)
    assert got["p_value"] == pytest.approx(2 * 1 / 1000)  # +1 smoothing: never 0


def test_pairing_removes_the_between_input_spread():
    """Two policies whose scores swing wildly across inputs but differ by +0.1 on every input: the
    unpaired SEs overlap, the paired interval is exactly +0.1."""
    base = [0.0, 1.0, 0.2, 0.9, 0.1, 0.8, 0.3, 0.7]
    got = paired_bootstrap([b + 0.1 for b in base], base, resamples=500)
    assert got["ci_low"] == pytest.approx(0.1) and got["ci_high"] == pytest.approx(0.1)


def test_a_difference_within_the_noise_is_inconclusive():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 40).astype(float)
    b = a.copy()
    b[:3] = 1 - b[:3]  # three inputs flip: a tiny mean difference, an interval across 0
    st = paired_bootstrap(a.tolist(), b.tolist(), resamples=2000, seed=3, key="x")
    assert st["ci_low"] < 0 < st["ci_high"] and st["p_value"] > 0.05
    assert verdict(st["ci_low"], st["ci_high"], +1) == "inconclusive"


def test_bootstrap_is_reproducible_per_seed_and_key():
    a, b = [0.1, 0.9, 0.4, 0.6, 0.3], [0.2, 0.5, 0.5, 0.1, 0.3]
    one = paired_bootstrap(a, b, seed=1, key="k")
    assert paired_bootstrap(a, b, seed=1, key="k") == one
    assert paired_bootstrap(a, b, seed=1, key="other") != one


def test_interval_p_value_counts_both_tails():
    draws = np.array([-1.0] * 10 + [1.0] * 90)
    got = interval(0.8, draws)
    assert got["p_value"] == pytest.approx(2 * 11 / 101)
    assert (got["ci_low"], got["ci_high"]) == (-1.0, 1.0)


def test_stratified_bootstrap_resamples_each_sample_within_itself():
    # constant samples: every resample has the same means, so the interval is the estimate
    got = stratified_bootstrap({"id": [0.5, 0.5], "ood": [0.2, 0.2, 0.2]}, lambda m: m["id"] - m["ood"],
                               resamples=200)
    assert got["estimate"] == pytest.approx(0.3)
    assert got["ci_low"] == pytest.approx(0.3) and got["ci_high"] == pytest.approx(0.3)
    assert got["n"] == {"id": 2, "ood": 3}


@pytest.mark.parametrize("lo, hi, direction, expected", [
    (0.1, 0.5, 1, "reproduced"), (-0.5, -0.1, 1, "contradicted"), (-0.1, 0.5, 1, "inconclusive"),
    (-0.5, -0.1, -1, "reproduced"), (0.1, 0.5, -1, "contradicted"), (0.0, 0.5, 1, "inconclusive")])
def test_verdict_from_the_interval_and_the_claimed_direction(lo, hi, direction, expected):
    assert verdict(lo, hi, direction) == expected


def test_verdict_is_inconclusive_when_not_significant_after_correction():
    assert verdict(0.1, 0.5, 1, significant=False) == "inconclusive"
    with pytest.raises(ValueError):
        verdict(0.1, 0.5, 0)


def test_holm_adjusted_p_values_by_hand():
    # sorted 0.01, 0.03, 0.04 -> ×3, ×2, ×1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_t_interval_by_hand():
    got = t_interval([1.0, 2.0, 3.0])  # mean 2, s = 1, t_{0.975,2} = 4.303
    assert got["mean"] == 2.0 and got["n"] == 3
    assert got["ci_low"] == pytest.approx(2 - 4.303 / math.sqrt(3))
    assert got["ci_high"] == pytest.approx(2 + 4.303 / math.sqrt(3))
    assert math.isnan(t_interval([1.0])["ci_low"])


@pytest.mark.parametrize("df, expected", [(1, 12.706), (4, 2.776), (30, 2.042), (40, 2.021), (120, 1.980)])
def test_t_quantiles_match_the_tables(df, expected):
    assert t_quantile_975(df) == pytest.approx(expected, abs=1.5e-3)
