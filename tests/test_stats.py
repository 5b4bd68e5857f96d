"""The statistics behind the findings: paired and stratified bootstrap, verdicts, Holm, t-intervals."""

import math

import numpy as np
import pytest

from rlhflab import stats
from rlhflab.stats import (holm, interval, paired_bootstrap, paired_differences, random_effects, se_from_interval,
                           stratified_bootstrap, t_interval, t_p_value, t_quantile_975, verdict)


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


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8, 29])
@pytest.mark.parametrize("t", [0.0, 0.4, 1.0, 2.5, 6.9, -3.2, 40.0])
def test_t_p_value_matches_scipy(df, t):
    scipy_stats = pytest.importorskip("scipy.stats")
    assert t_p_value(t, df) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), abs=1e-12)


def test_t_p_value_by_hand():
    # df = 1 (Cauchy): p = 1 − 2·atan(t)/π; df = 2: p = 1 − t/√(2 + t²)
    assert t_p_value(1.0, 1) == pytest.approx(0.5)
    assert t_p_value(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6))
    assert t_p_value(4.303, 2) == pytest.approx(0.05, abs=1e-4)  # the table's quantile
    with pytest.raises(ValueError):
        t_p_value(1.0, 0)


def test_se_from_a_95_percent_interval():
    assert se_from_interval(-1.959964, 1.959964) == pytest.approx(1.0)
    assert se_from_interval(2.0, 6.0) == pytest.approx(4 / 3.919928)


def test_random_effects_by_hand():
    """DerSimonian–Laird and Hartung–Knapp worked by hand for y = 1, 5, 9 with SEs 2, 1, 1."""
    got = random_effects([1.0, 5.0, 9.0], [2.0, 1.0, 1.0])
    # w = 1/4, 1, 1: fixed mean 14.25 / 2.25 = 19/3; Q = ¼(16/3)² + (4/3)² + (8/3)² = 16;
    # C = 2.25 − 2.0625 / 2.25 = 4/3; τ² = (16 − 2) / (4/3) = 10.5
    assert got["tau2"] == pytest.approx(10.5)
    # w* = 1/14.5, 1/11.5, 1/11.5: μ = (11.5 + 14·14.5) / (11.5 + 2·14.5) = 214.5 / 40.5 = 143/27
    assert got["estimate"] == pytest.approx(143 / 27)
    sum_w = 40.5 / (14.5 * 11.5)
    q = ((1 - 143 / 27) ** 2 / 14.5 + (5 - 143 / 27) ** 2 / 11.5 + (9 - 143 / 27) ** 2 / 11.5) / 2
    assert q == pytest.approx(1.23672, abs=1e-5) and got["q"] == pytest.approx(q)
    assert got["se"] == pytest.approx(math.sqrt(q / sum_w))  # q > 1: Hartung–Knapp widens
    assert got["ci_low"] == pytest.approx(143 / 27 - 4.303 * got["se"])
    assert got["ci_high"] == pytest.approx(143 / 27 + 4.303 * got["se"])
    assert got["p_value"] == pytest.approx(t_p_value(143 / 27 / got["se"], 2)) and got["df"] == 2


def test_random_effects_never_narrower_than_the_seeds_own_ses():
    """Seeds agreeing more closely than their SEs (q < 1): plain Hartung–Knapp would give
    SE √(q / Σw) = √(0.04 / 0.12) ≈ 0.58 and an interval [2.5, 7.5]; the modification keeps √(1 / Σw)."""
    got = random_effects([4.0, 5.0, 6.0], [5.0, 5.0, 5.0])
    assert got["tau2"] == 0.0 and got["q"] == pytest.approx(0.04)
    assert got["se"] == pytest.approx(math.sqrt(25 / 3))
    assert got["ci_low"] < 0 < got["ci_high"]


def test_random_effects_with_equal_ses_and_real_spread_is_the_t_interval():
    # equal SEs and τ² > 0: equal weights, τ² = s² − SE², so the variance is s²/k, as over seeds alone
    ys = [4.0, 5.0, 0.5]
    for ses in ([0.3] * 3, [0.0] * 3):
        got, t = random_effects(ys, ses), t_interval(ys)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((t["ci_low"], t["ci_high"]))
    with pytest.raises(ValueError, match="two or more"):
        random_effects([1.0], [1.0])


def test_the_bootstrap_draws_every_input_the_last_one_too():
    # with the last input never drawn, every mean of [0, 0, 1] would be 0
    draws = stats.bootstrap_means([0.0, 0.0, 3.0], 3000, np.random.default_rng(0))
    assert draws.max() == 3.0 and abs(draws.mean() - 1.0) < 0.05  # E[mean] = 3 / 3
    assert set(np.unique(draws).round(6)) == {0.0, 1.0, 2.0, 3.0}  # 0 to 3 copies of the last input


def test_a_95_percent_interval_cuts_2_5_percent_from_each_tail():
    draws = np.arange(1001, dtype=float)  # quantile q of 0..1000 is 1000·q exactly
    iv = stats.interval(500.0, draws, level=0.95)
    assert (iv["ci_low"], iv["ci_high"]) == pytest.approx((25.0, 975.0))  # a 90% interval: (50, 950)
    assert stats.interval(500.0, draws, level=0.8)["ci_low"] == pytest.approx(100.0)


def test_holm_multiplies_the_kth_smallest_by_m_minus_k_plus_1_and_keeps_order():
    assert stats.holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])  # 3·0.01, max(2·0.03, 0.03), 1·0.04→0.06
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1


def test_gatekeeping_holms_each_family_and_lifts_the_secondary_to_the_largest_primary_p():
    # primary 0.01, 0.02 -> Holm ×2, ×1 = 0.02, 0.02; secondary 0.001, 0.04, 0.5 -> 0.003, 0.08, 0.5,
    # each then at least the gate 0.02
    got = stats.gatekept_holm([0.02, 0.001, 0.01, 0.04, 0.5], [True, False, True, False, False])
    assert got == pytest.approx([0.02, 0.02, 0.02, 0.08, 0.5])
    # a primary claim that fails closes the gate: no secondary claim is decided
    closed = stats.gatekept_holm([0.3, 0.0001], [True, False])
    assert closed == pytest.approx([0.3, 0.3])
    # the primary family pays for its own size only: with one family of 5 the first claim would get 0.05
    assert stats.gatekept_holm([0.01] + [0.2] * 4, [True] + [False] * 4)[0] == pytest.approx(0.01)
    assert stats.holm([0.01] + [0.2] * 4)[0] == pytest.approx(0.05)
    # no primary claim: plain Holm
    assert stats.gatekept_holm([0.04, 0.01, 0.03], [False] * 3) == pytest.approx(stats.holm([0.04, 0.01, 0.03]))
    with pytest.raises(ValueError, match="primary flags"):
        stats.gatekept_holm([0.1, 0.2], [True])


def test_the_standard_error_divides_the_sample_deviation_by_root_n():
    assert stats.standard_error([1.0, 2.0, 3.0, 4.0]) == pytest.approx((5 / 3) ** 0.5 / 2)  # s² = 5/3, n = 4
