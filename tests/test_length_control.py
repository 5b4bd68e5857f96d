"""AlpacaEval's length-controlled win rate: closed-form MLEs, length exploitation, invariances, errors."""

import math
import random
import statistics

import numpy as np
import pytest

from rlhflab.evaluation.length_control import (LengthControlledFit, fit_instruction_difficulty, fit_length_controlled,
                                               length_controlled_win_rate, length_controlled_win_rates)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def logit(p):
    return math.log(p / (1 - p))


def synthetic(n=200, seed=0, shift=300.0, theta=3.0, psi=-1.0, phi=0.0, difficulty=None):
    """Lengths and exact soft preferences from the GLM itself (policy mostly longer than the reference)."""
    rng = random.Random(seed)
    ref = [float(rng.randint(200, 1500)) for _ in range(n)]
    pol = [max(0.0, r + rng.gauss(shift, 250)) for r in ref]
    delta = [a - b for a, b in zip(pol, ref)]
    s = statistics.stdev(delta)
    d = difficulty or [0.0] * n
    prefs = [sigmoid(theta * math.tanh(x / s) + phi * di + psi) for x, di in zip(delta, d)]
    return prefs, pol, ref


# ------------------------------------------------------------------------------ (a) by hand ---


def test_one_group_at_reference_length_gives_its_mean():
    # Δ takes two values, one of them 0: the model is saturated, so the unpenalised MLE predicts each
    # group's mean preference, and with the length term zeroed every input gets the Δ = 0 group's mean
    ref = [100.0] * 12
    pol = [130.0] * 6 + [100.0] * 6
    prefs = [1.0, 0.9, 0.8, 1.0, 0.5, 0.7] + [0.5, 0.2, 0.4, 0.3, 0.6, 0.1]
    fit = fit_length_controlled(prefs, pol, ref, l2=0.0)
    assert fit.length_term and fit.n == 12
    assert fit.lc_win_rate == pytest.approx(100 * statistics.mean(prefs[6:]), abs=1e-4)
    assert fit.win_rate == pytest.approx(100 * statistics.mean(prefs), abs=1e-12)


def test_two_groups_closed_form():
    ref = [500.0] * 10
    pol = [540.0] * 5 + [480.0] * 5  # Δ = +40 or −20
    prefs = [0.9, 1.0, 0.5, 0.8, 1.0] + [0.5, 0.0, 0.5, 0.2, 0.3]
    s = statistics.stdev([40.0] * 5 + [-20.0] * 5)
    ta, tb = math.tanh(40 / s), math.tanh(-20 / s)
    ma, mb = statistics.mean(prefs[:5]), statistics.mean(prefs[5:])
    theta = (logit(ma) - logit(mb)) / (ta - tb)
    psi = logit(ma) - theta * ta
    fit = fit_length_controlled(prefs, pol, ref, l2=0.0)
    assert fit.length_sd == pytest.approx(s, rel=1e-12)
    assert fit.coef["length"] == pytest.approx(theta, abs=1e-6)
    assert fit.coef["intercept"] == pytest.approx(psi, abs=1e-6)
    assert fit.lc_win_rate == pytest.approx(100 * sigmoid(psi), abs=1e-4)


def test_with_difficulty_the_score_equations_hold():
    # no closed form: check the unpenalised optimum independently, Σ x_i (σ(η_i) − p_i) = 0 per column
    rng = random.Random(3)
    n = 40
    ref = [float(rng.randint(300, 600)) for _ in range(n)]
    pol = [r + rng.gauss(40, 80) for r in ref]
    d = [rng.gauss(0, 1) for _ in range(n)]
    prefs = [min(1.0, max(0.0, rng.random() * 0.6 + 0.2 + 0.1 * di)) for di in d]
    fit = fit_length_controlled(prefs, pol, ref, d, l2=0.0)
    s = statistics.stdev([a - b for a, b in zip(pol, ref)])
    t = [math.tanh((a - b) / s) for a, b in zip(pol, ref)]
    c = fit.coef
    res = [sigmoid(c["length"] * ti + c["difficulty"] * di + c["intercept"]) - p for ti, di, p in zip(t, d, prefs)]
    for col in (t, d, [1.0] * n):
        assert abs(sum(x * r for x, r in zip(col, res))) < 1e-8
    want = 100 * statistics.mean(sigmoid(c["difficulty"] * di + c["intercept"]) for di in d)
    assert fit.lc_win_rate == pytest.approx(want, abs=1e-10)


def test_exact_soft_labels_recover_the_generating_model():
    rng = random.Random(5)
    d = [rng.gauss(0, 1) for _ in range(150)]
    prefs, pol, ref = synthetic(150, seed=1, theta=2.0, psi=0.4, phi=0.7, difficulty=d)
    fit = fit_length_controlled(prefs, pol, ref, d, l2=0.0)
    assert fit.coef == pytest.approx({"length": 2.0, "difficulty": 0.7, "intercept": 0.4}, abs=1e-6)
    assert fit.lc_win_rate == pytest.approx(100 * statistics.mean(sigmoid(0.7 * x + 0.4) for x in d), abs=1e-4)


# ------------------------------------------------------------------ (b) length exploitation ---


def test_wins_explained_by_length_are_removed():
    prefs, pol, ref = synthetic(300, theta=3.0, psi=-1.0)
    fit = fit_length_controlled(prefs, pol, ref)
    assert fit.win_rate > 60
    assert fit.lc_win_rate == pytest.approx(100 * sigmoid(-1.0), abs=0.5)
    assert fit.win_rate - fit.lc_win_rate > 30


def test_policy_at_the_reference_length_keeps_its_raw_win_rate():
    prefs, _, ref = synthetic(100, seed=2)
    fit = fit_length_controlled(prefs, ref, ref)
    assert not fit.length_term and fit.lc_win_rate == fit.win_rate == 100 * statistics.mean(prefs)
    # lengths that differ a little, unrelated to the judgements: LC stays close to raw
    rng = random.Random(4)
    jitter = [r + rng.gauss(0, 5) for r in ref]
    assert length_controlled_win_rate(prefs, jitter, ref) == pytest.approx(100 * statistics.mean(prefs), abs=2.0)


def test_study_with_several_policies():
    rng = random.Random(7)
    n = 120
    d = [rng.gauss(0, 1) for _ in range(n)]
    verbose, vlen, ref = synthetic(n, seed=8, theta=3.0, psi=-1.0, phi=1.0, difficulty=d)
    plain = [sigmoid(0.2 + di) for di in d]
    other, olen, _ = synthetic(n, seed=8, shift=-100, theta=0.5, psi=0.0, phi=1.0, difficulty=d)
    prefs = {"verbose": verbose, "plain": plain, "other": other}
    lengths = {"verbose": vlen, "plain": ref, "other": olen}
    lc = length_controlled_win_rates(prefs, lengths, ref)  # 3 policies: difficulty fitted from the study
    assert lc["plain"] == pytest.approx(100 * statistics.mean(plain), abs=1e-12)
    assert 100 * statistics.mean(verbose) - lc["verbose"] > 25
    truth = 100 * statistics.mean(sigmoid(-1.0 + di) for di in d)  # length term zeroed, true difficulty
    assert lc["verbose"] == pytest.approx(truth, abs=5)  # difficulty estimated from 3 policies, shrunk
    known = length_controlled_win_rates(prefs, lengths, ref, instruction_difficulty=d)
    assert known["verbose"] == pytest.approx(truth, abs=0.5)
    without = length_controlled_win_rates(prefs, lengths, ref, instruction_difficulty=False)
    assert without["verbose"] == pytest.approx(length_controlled_win_rate(verbose, vlen, ref), abs=1e-12)
    assert length_controlled_win_rates(prefs, lengths, ref) == lc  # deterministic


def test_fit_instruction_difficulty_recovers_the_shared_term():
    rng = random.Random(9)
    n = 80
    d = [rng.gauss(0, 1) for _ in range(n)]
    mean_d = statistics.mean(d)
    prefs, lengths, ref = {}, {}, None
    for k, (theta, psi) in enumerate([(0.0, -0.5), (1.5, 0.3), (3.0, 0.0)]):
        p, pol, ref = synthetic(n, seed=10, shift=100 * k, theta=theta, psi=psi, phi=1.0, difficulty=d)
        prefs[f"m{k}"], lengths[f"m{k}"] = p, pol
    got = fit_instruction_difficulty(prefs, lengths, ref, l2=1e-7)
    assert abs(statistics.mean(got)) < 1e-12
    assert got == pytest.approx([x - mean_d for x in d], abs=1e-3)
    shrunk = fit_instruction_difficulty(prefs, lengths, ref)  # default penalty: shrunk, same ordering
    assert statistics.pstdev(shrunk) < statistics.pstdev(got)
    assert statistics.correlation(shrunk, d) > 0.95
    # without the length term, the length effect the policies share (same length noise here) leaks into d
    no_len = fit_instruction_difficulty(prefs)
    assert len(no_len) == n and statistics.correlation(no_len, d) < statistics.correlation(shrunk, d) - 0.1


# ---------------------------------------------------------------------- (c) invariances ---


def test_invariances():
    prefs, pol, ref = synthetic(120, seed=11)
    base = length_controlled_win_rate(prefs, pol, ref)
    scaled = length_controlled_win_rate(prefs, [7.3 * x for x in pol], [7.3 * x for x in ref])
    shifted = length_controlled_win_rate(prefs, [x + 50 for x in pol], [x + 50 for x in ref])
    assert scaled == pytest.approx(base, abs=1e-9) and shifted == pytest.approx(base, abs=1e-9)
    order = list(range(120))
    random.Random(12).shuffle(order)
    assert length_controlled_win_rate([prefs[i] for i in order], [pol[i] for i in order],
                                      [ref[i] for i in order]) == pytest.approx(base, abs=1e-9)
    # swapping roles: the reference judged against the policy scores 100 − LC
    assert length_controlled_win_rate([1 - p for p in prefs], ref, pol) == pytest.approx(100 - base, abs=1e-8)


def test_difficulty_affine_invariance_and_invalid_inputs_dropped():
    rng = random.Random(13)
    d = [rng.gauss(0, 1) for _ in range(60)]
    prefs, pol, ref = synthetic(60, seed=14, phi=0.5, difficulty=d)
    prefs = [min(1.0, max(0.0, p + rng.gauss(0, 0.2))) for p in prefs]
    base = length_controlled_win_rate(prefs, pol, ref, d, l2=0.0)
    assert length_controlled_win_rate(prefs, pol, ref, [2 * x + 3 for x in d], l2=0.0) == pytest.approx(base, abs=1e-6)
    with_bad = prefs + [None, float("nan")]
    fit = fit_length_controlled(with_bad, pol + [10.0, 99999.0], ref + [20.0, 1.0], d + [5.0, -5.0], l2=0.0)
    assert fit.n_invalid == 2 and fit.lc_win_rate == pytest.approx(base, abs=1e-9)
    assert isinstance(fit, LengthControlledFit)


# ---------------------------------------------------------------------------- (d) errors ---


def test_errors():
    prefs, pol, ref = synthetic(20, seed=15)
    with pytest.raises(ValueError, match="entries"):
        length_controlled_win_rate(prefs, pol[:-1], ref)
    with pytest.raises(ValueError, match="reference_lengths"):
        length_controlled_win_rate(prefs, pol, ref + [1.0])
    with pytest.raises(ValueError, match="instruction_difficulty"):
        length_controlled_win_rate(prefs, pol, ref, [0.0] * 3)
    with pytest.raises(ValueError, match="all 20 preferences are invalid"):
        length_controlled_win_rate([None] * 20, pol, ref)
    with pytest.raises(ValueError, match="at least 10"):
        length_controlled_win_rate(prefs[:5] + [None] * 15, pol, ref)
    with pytest.raises(ValueError, match="outside"):
        length_controlled_win_rate([1.5] + prefs[1:], pol, ref)
    with pytest.raises(TypeError):
        length_controlled_win_rate([True] + prefs[1:], pol, ref)
    with pytest.raises(ValueError, match="non-negative"):
        length_controlled_win_rate(prefs, [-1.0] + pol[1:], ref)
    with pytest.raises(ValueError, match="non-negative"):
        length_controlled_win_rate(prefs, [float("nan")] + pol[1:], ref)
    with pytest.raises(ValueError, match="l2"):
        length_controlled_win_rate(prefs, pol, ref, l2=-1.0)
    with pytest.raises((ValueError, RuntimeError), match="l2 > 0"):  # all wins: the unpenalised MLE is at ∞
        length_controlled_win_rate([1.0] * 20, pol, ref, l2=0.0)
    assert 99 < length_controlled_win_rate([1.0] * 20, pol, ref) < 100  # the default penalty keeps it finite
    with pytest.raises(ValueError, match="at least 2 policies"):
        fit_instruction_difficulty({"a": prefs})
    with pytest.raises(ValueError, match="different numbers"):
        fit_instruction_difficulty({"a": prefs, "b": prefs[:-1]})
    with pytest.raises(ValueError, match="l2"):
        fit_instruction_difficulty({"a": prefs, "b": prefs}, l2=0.0)
    with pytest.raises(ValueError, match="neither"):
        fit_instruction_difficulty({"a": prefs, "b": prefs}, {"a": pol, "b": pol})
    with pytest.raises(ValueError, match="exactly the policies"):
        length_controlled_win_rates({"a": prefs, "b": prefs}, {"a": pol}, ref)
    with pytest.raises(ValueError, match="no policies"):
        length_controlled_win_rates({}, {}, ref)


def test_lc_difference_bootstrap_separates_a_length_gain_from_a_real_one():
    """Two policies beat SFT by the same raw margin: one only by writing longer outputs, one at
    SFT's length. Length control keeps the second's gain and removes most of the first's."""
    from rlhflab.evaluation.winrate import length_controlled_difference

    rng = np.random.default_rng(0)
    n = 60
    ref = rng.integers(80, 120, n).tolist()
    sft_len = [r + int(d) for r, d in zip(ref, rng.integers(-10, 10, n))]
    long_len = [r + int(d) for r, d in zip(ref, rng.integers(-40, 120, n))]
    z = np.tanh((np.array(long_len) - np.array(ref)) / 60.0)
    prefs = {"sft": (rng.random(n) < 0.3).astype(float).tolist(),
             "long": (rng.random(n) < 1 / (1 + np.exp(-(-0.85 + 2.5 * z)))).astype(float).tolist(),
             "good": (rng.random(n) < 0.55).astype(float).tolist()}
    lengths = {"sft": sft_len, "long": long_len, "good": sft_len}
    good = length_controlled_difference(prefs, lengths, ref, "good", "sft", resamples=200, seed=1)
    long = length_controlled_difference(prefs, lengths, ref, "long", "sft", resamples=200, seed=1)
    assert good["ci_low"] > 0 and good["estimate"] == pytest.approx(good["lc_a"] - good["lc_b"])
    assert long["raw_a"] - long["raw_b"] > 10  # a raw gain ...
    assert long["estimate"] < (long["raw_a"] - long["raw_b"]) / 2  # ... mostly explained by length
    assert good["skipped"] == 0 and good["n"] == n and good["resamples"] == 200
    again = length_controlled_difference(prefs, lengths, ref, "good", "sft", resamples=200, seed=1)
    assert again == good  # reproducible from the seed


def _mean_lc(prefs, lengths, reference_lengths):
    """A cheap stand-in for the GLM refit: each policy's mean preference × 100."""
    return {p: 100 * float(np.mean(v)) for p, v in prefs.items()}


def test_a_strong_lc_difference_gets_a_p_far_below_holms_thresholds_and_a_null_one_stops_early(monkeypatch):
    """The LC claim's p comes from this bootstrap. With 500 draws its floor 2/501 times 13 claims
    is 0.052, so it could never be significant; the default draws enough that a clear difference
    survives Holm over the whole family, and a null one stops after the first block."""
    import rlhflab.evaluation.length_control as lcm
    from rlhflab.config.sections import EvalStage
    from rlhflab.evaluation.winrate import LC_BLOCK, length_controlled_difference

    monkeypatch.setattr(lcm, "length_controlled_win_rates", _mean_lc)
    rng = np.random.default_rng(0)
    n = 40
    ref = [50] * n
    lengths = {"a": ref, "b": ref}
    strong = {"a": (rng.random(n) < 0.9).astype(float).tolist(), "b": (rng.random(n) < 0.1).astype(float).tolist()}
    got = length_controlled_difference(strong, lengths, ref, "a", "b", seed=0)
    assert got["resamples"] == EvalStage().lc_resamples >= 10000
    assert 13 * got["p_value"] < 0.005
    null = {"a": (rng.random(n) < 0.5).astype(float).tolist()}
    null["b"] = list(null["a"])
    null["a"][0] = 1.0 - null["a"][0]  # one input apart: p near 1
    got = length_controlled_difference(null, lengths, ref, "a", "b", seed=0)
    assert got["resamples"] == LC_BLOCK and got["p_value"] > 0.2


def test_only_the_claimed_lc_difference_pays_for_the_full_budget(monkeypatch):
    import rlhflab.evaluation.length_control as lcm
    from rlhflab.evaluation.winrate import LC_BLOCK
    from rlhflab.stages.eval import length_control

    monkeypatch.setattr(lcm, "length_controlled_win_rates", _mean_lc)
    rng = np.random.default_rng(1)
    n = 30
    strong = {"sft": (rng.random(n) < 0.1), "ppo": (rng.random(n) < 0.9), "bon": (rng.random(n) < 0.9)}
    results = {"preferences": {p: {"id": v.astype(float).tolist()} for p, v in strong.items()},
               "lengths": {p: {"id": [50] * n} for p in strong}, "reference_lengths": {"id": [50] * n}}
    _, diffs = length_control(results, {"id": {"distribution": "id"}}, "sft", 0, resamples=3000)
    assert diffs["ppo_vs_sft"]["id"]["resamples"] == 3000
    assert diffs["bon_vs_sft"]["id"]["resamples"] == LC_BLOCK
