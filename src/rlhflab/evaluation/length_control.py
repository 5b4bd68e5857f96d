"""AlpacaEval 2's length-controlled (LC) win rate, re-implemented from its published GLM.

Source: Dubois, Galambosi, Liang & Hashimoto 2024, "Length-Controlled AlpacaEval: A Simple Way to
Debias Automatic Evaluators" (arXiv:2404.04475), and tatsu-lab/alpaca_eval
src/alpaca_eval/metrics/glm_winrate.py (GLM "length_controlled_v1",
formula `np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1`)
with notebooks/instruction_difficulty.ipynb for the difficulty term. No code was copied.

The model. For one policy judged against reference outputs on inputs i = 1..n, with soft preferences
p_i = P(policy beats reference) in [0, 1] (None/NaN = invalid, dropped), Δ_i = len(policy_i) −
len(reference_i) and s = the sample standard deviation (ddof 1, not centred) of Δ over the valid inputs:

    logit P(policy wins on i) = θ · tanh(Δ_i / s) + φ · d_i + ψ

d_i is a fixed per-instruction difficulty (omit it and φ for AlpacaEval's "length_controlled_minimal"
formula). θ, φ, ψ maximise the soft-label Bernoulli log-likelihood Σ_i [p_i log σ(η_i) + (1 − p_i)
log(1 − σ(η_i))] minus l2·(θ² + φ² + ψ²), by Newton's method with backtracking (float64, deterministic,
stops when the largest step is < 1e-10). The LC win rate is the model's prediction with the length term
set to zero (as if each output had its reference's length), averaged over the valid inputs:
LC = 100 · mean_i σ(φ̂ d_i + ψ̂).

Instruction difficulty (`fit_instruction_difficulty`) follows AlpacaEval's joint fit across models:
over all policies m and inputs i, logit P = b_m + θ_m tanh(Δ_mi / s_m) + d_i (each policy its own bias
and length slope, each instruction its own effect), same soft-label likelihood with an L2 penalty on
every parameter; d is returned centred to mean 0. Larger d_i = policies beat the reference more easily
on input i (AlpacaEval's sign). Since φ and ψ are refitted per policy, LC is invariant to affine
changes of d up to the penalty.

Deviations from alpaca_eval, and why:
  * Regularisation: AlpacaEval uses an L1 penalty (liblinear, no separate intercept) whose strength C
    is picked by 5-fold grouped cross-validation, plus "regularize to baseline": annotations of the
    baseline prompted to be verbose/concise, weighted λ/2 = 0.1 each, sharing θ and φ with the model.
    rlhflab has no gamed-reference annotations, so that term is omitted, and a fixed L2 penalty is used
    instead of CV'd L1: l2 = 1/(2C) = 0.005 with C = 100 (the C AlpacaEval's helper uses when CV is
    off), on the summed loss, intercept included, so it only guards against separation (all wins);
    the joint difficulty fit uses l2 = 0.5 (a N(0, 1) prior on the logit scale), since each d_i rests
    on a handful of policies rather than a leaderboard.
  * Δ is policy − reference; AlpacaEval uses baseline − model. tanh is odd and the penalty symmetric,
    so only θ's sign flips; LC is identical.
  * Invalid preferences are dropped before s is computed and before averaging (AlpacaEval computes s
    over all rows and averages predictions over all rows); this keeps LC comparable with
    `winrate.win_rate`, which drops them too.
  * Difficulty comes from the study's own policies (AlpacaEval ships one fitted on its leaderboard).
    With fewer than MIN_POLICIES_FOR_DIFFICULTY policies, d absorbs much of a policy's own per-input
    signal, so `length_controlled_win_rates` then falls back to the minimal formula unless told not to.
  * No per-instance tie-breaking jitter, no LC standard error, no cross-baseline prediction.
  * If s = 0 (every Δ_i equal, e.g. always the reference's length) the length term is undefined or
    confounded with ψ: LC is then the raw win rate (100 · mean p_i), flagged by `length_term=False`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_L2 = 0.005  # = 1/(2C), C = 100
DEFAULT_DIFFICULTY_L2 = 0.5
MIN_INPUTS = 10  # valid judgements needed for a fit
MIN_POLICIES_FOR_DIFFICULTY = 3  # `length_controlled_win_rates` fits difficulty itself from this many
STEP_TOL = 1e-10
MAX_ITER = 200


@dataclass(frozen=True)
class LengthControlledFit:
    lc_win_rate: float  # 100 · mean_i σ(φ d_i + ψ) over valid inputs
    win_rate: float  # 100 · mean p_i over the same inputs (raw)
    coef: dict[str, float]  # "length" θ, "difficulty" φ (0 if no d), "intercept" ψ
    n: int  # valid judgements
    n_invalid: int
    length_sd: float  # s, the sample sd of Δ
    length_term: bool  # False when s == 0: LC is the raw win rate


# ------------------------------------------------------------------------------ validation ---


def _preference(p, where: str) -> float | None:
    if p is None:
        return None
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: a preference must be a number in [0, 1] or None, got {p!r}")
    p = float(p)
    if math.isnan(p):
        return None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{where}: preference {p} is outside [0, 1]")
    return p


def _lengths(values: Sequence, n: int, name: str) -> np.ndarray:
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} preferences")
    if any(isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        raise TypeError(f"{name} must hold numbers (character or token counts)")
    out = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    return out


def _difficulty(values: Sequence[float] | None, n: int) -> np.ndarray | None:
    if values is None:
        return None
    if len(values) != n:
        raise ValueError(f"instruction_difficulty has {len(values)} entries but there are {n} preferences")
    out = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("instruction_difficulty must be finite")
    return out


def _prepare(preferences, policy_lengths, reference_lengths, name: str = "policy"):
    """(valid indices, p, tanh(Δ/s) or None when s == 0, s) for one policy."""
    n = len(preferences)
    prefs = [_preference(p, f"{name}[{i}]") for i, p in enumerate(preferences)]
    delta = _lengths(policy_lengths, n, f"{name} lengths") - _lengths(reference_lengths, n, "reference_lengths")
    keep = np.array([i for i, p in enumerate(prefs) if p is not None], dtype=np.int64)
    if keep.size == 0:
        raise ValueError(f"{name}: all {n} preferences are invalid")
    p = np.array([prefs[i] for i in keep], dtype=np.float64)
    d = delta[keep]
    s = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    return keep, p, (np.tanh(d / s) if s > 0 else None), s


# --------------------------------------------------------------------------------- fitting ---


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _soft_nll_terms(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """−[y log σ(η) + (1 − y) log(1 − σ(η))], written without cancellation for large |η|."""
    return y * np.logaddexp(0.0, -eta) + (1 - y) * np.logaddexp(0.0, eta)


def _residual(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """σ(η) − y, written so that it does not round to 0 when σ(η) rounds to 1."""
    return (1 - y) * _sigmoid(eta) - y * _sigmoid(-eta)


def _soft_nll(eta: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(_soft_nll_terms(eta, y)))


def _newton(objective, grad_step, x0: np.ndarray) -> np.ndarray:
    """Minimise a smooth convex objective; grad_step(x) -> (gradient, Newton step H⁻¹g)."""
    x, f = x0, objective(x0)
    for _ in range(MAX_ITER):
        g, s = grad_step(x)
        if not np.all(np.isfinite(s)):
            raise ValueError("the fit is not identifiable (singular Hessian); use l2 > 0")
        t = 1.0
        while True:
            x_new = x - t * s
            f_new = objective(x_new)
            if f_new <= f - 1e-4 * t * float(g @ s) + 1e-14 * abs(f):  # Armijo, with float slack
                break
            t /= 2
            if t < 1e-12:
                return x  # no descent left at float64 precision: at the optimum
        x, f = x_new, f_new
        if np.max(np.abs(t * s)) < STEP_TOL:
            return x
    raise RuntimeError(f"the GLM did not converge in {MAX_ITER} Newton steps (perfect separation? use l2 > 0)")


def _solve(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(h, g)
    except np.linalg.LinAlgError:
        return np.full_like(g, np.nan)


def _fit_glm(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """argmin_β Σ soft-NLL(xβ, y) + l2·‖β‖² for a small dense design x (n × k)."""
    def objective(b):
        return _soft_nll(x @ b, y) + l2 * float(b @ b)

    def grad_step(b):
        eta = x @ b
        g = x.T @ _residual(eta, y) + 2 * l2 * b
        h = (x * (_sigmoid(eta) * _sigmoid(-eta))[:, None]).T @ x + 2 * l2 * np.eye(x.shape[1])
        return g, _solve(h, g)

    return _newton(objective, grad_step, np.zeros(x.shape[1]))


def fit_length_controlled(preferences: Sequence[float | None], policy_lengths: Sequence[float],
                          reference_lengths: Sequence[float], instruction_difficulty: Sequence[float] | None = None,
                          *, l2: float = DEFAULT_L2, min_inputs: int = MIN_INPUTS) -> LengthControlledFit:
    """Fit the GLM for one policy (see the module docstring) and return the LC win rate with its fit.
    All sequences are aligned by input; `instruction_difficulty` (one value per input) adds φ·d_i."""
    if l2 < 0:
        raise ValueError("l2 must be >= 0")
    if min_inputs < 2:
        raise ValueError("min_inputs must be at least 2 (the length sd needs two inputs)")
    d_all = _difficulty(instruction_difficulty, len(preferences))
    keep, p, t, s = _prepare(preferences, policy_lengths, reference_lengths)
    if p.size < min_inputs:
        raise ValueError(f"only {p.size} valid preferences; at least {min_inputs} are needed for the GLM")
    raw = 100 * float(np.mean(p))
    n_invalid = len(preferences) - int(p.size)
    if t is None:
        return LengthControlledFit(raw, raw, {"length": 0.0, "difficulty": 0.0, "intercept": 0.0},
                                   int(p.size), n_invalid, s, False)
    d = d_all[keep] if d_all is not None else np.zeros_like(p)
    cols = [t, d, np.ones_like(p)] if d_all is not None else [t, np.ones_like(p)]
    beta = _fit_glm(np.stack(cols, axis=1), p, l2)
    theta, psi = float(beta[0]), float(beta[-1])
    phi = float(beta[1]) if d_all is not None else 0.0
    lc = 100 * float(np.mean(_sigmoid(phi * d + psi)))
    return LengthControlledFit(lc, raw, {"length": theta, "difficulty": phi, "intercept": psi},
                               int(p.size), n_invalid, s, True)


def length_controlled_win_rate(preferences: Sequence[float | None], policy_lengths: Sequence[float],
                               reference_lengths: Sequence[float],
                               instruction_difficulty: Sequence[float] | None = None, *, l2: float = DEFAULT_L2,
                               min_inputs: int = MIN_INPUTS) -> float:
    """AlpacaEval's LC win rate (0–100) for one policy; see `fit_length_controlled`."""
    return fit_length_controlled(preferences, policy_lengths, reference_lengths, instruction_difficulty,
                                 l2=l2, min_inputs=min_inputs).lc_win_rate


# ------------------------------------------------------------------- instruction difficulty ---


def _aligned(preferences_by_policy: Mapping[str, Sequence], lengths_by_policy: Mapping[str, Sequence] | None,
             reference_lengths: Sequence | None) -> int:
    sizes = {len(v) for v in preferences_by_policy.values()}
    if len(sizes) != 1:
        raise ValueError(f"policies were judged on different numbers of inputs: {sorted(sizes)}")
    if lengths_by_policy is not None and set(lengths_by_policy) != set(preferences_by_policy):
        raise ValueError("lengths_by_policy must have exactly the policies of preferences_by_policy")
    if (lengths_by_policy is None) != (reference_lengths is None):
        raise ValueError("give both lengths_by_policy and reference_lengths, or neither")
    return sizes.pop()


def fit_instruction_difficulty(preferences_by_policy: Mapping[str, Sequence[float | None]],
                               lengths_by_policy: Mapping[str, Sequence[float]] | None = None,
                               reference_lengths: Sequence[float] | None = None, *,
                               l2: float = DEFAULT_DIFFICULTY_L2) -> list[float]:
    """Per-input difficulty d_i (logit scale, mean 0) from AlpacaEval's joint fit across policies:
    logit P(m beats reference on i) = b_m + θ_m tanh(Δ_mi / s_m) + d_i, soft labels, L2 penalty l2 on
    every parameter (required > 0: it makes the fit unique). Without lengths the θ_m terms are left
    out. An input no policy has a valid judgement for gets the prior value (0 before centring)."""
    if len(preferences_by_policy) < 2:
        raise ValueError("instruction difficulty needs at least 2 policies judged on the same inputs")
    if not l2 > 0:
        raise ValueError("l2 must be > 0 for the joint fit")
    n = _aligned(preferences_by_policy, lengths_by_policy, reference_lengths)
    names = list(preferences_by_policy)
    n_pol = len(names)
    y, t, mask = np.zeros((n_pol, n)), np.zeros((n_pol, n)), np.zeros((n_pol, n))
    for m, name in enumerate(names):
        prefs = [_preference(p, f"{name}[{i}]") for i, p in enumerate(preferences_by_policy[name])]
        for i, p in enumerate(prefs):
            if p is not None:
                y[m, i], mask[m, i] = p, 1.0
        if lengths_by_policy is not None and mask[m].any():
            keep, _, tm, _ = _prepare(preferences_by_policy[name], lengths_by_policy[name], reference_lengths, name)
            if tm is not None:
                t[m, keep] = tm
    if mask.sum() == 0:
        raise ValueError("all preferences are invalid")

    def unpack(x):
        return x[:n_pol], x[n_pol:2 * n_pol], x[2 * n_pol:]

    def eta_of(x):
        b, th, d = unpack(x)
        return b[:, None] + th[:, None] * t + d[None, :]

    def objective(x):
        eta = eta_of(x)
        return float(np.sum(mask * _soft_nll_terms(eta, y))) + l2 * float(x @ x)

    def grad_step(x):  # Newton step via the Schur complement: the d-block of the Hessian is diagonal
        eta = eta_of(x)
        r, w = mask * _residual(eta, y), mask * _sigmoid(eta) * _sigmoid(-eta)
        g = np.concatenate([r.sum(1), (r * t).sum(1), r.sum(0)]) + 2 * l2 * x
        a = 2 * l2 * np.eye(2 * n_pol)
        a[:n_pol, :n_pol] += np.diag(w.sum(1))
        a[:n_pol, n_pol:] += np.diag((w * t).sum(1))
        a[n_pol:, :n_pol] += np.diag((w * t).sum(1))
        a[n_pol:, n_pol:] += np.diag((w * t * t).sum(1))
        bmat, dg = np.vstack([w, w * t]), w.sum(0) + 2 * l2
        g_a, g_d = g[:2 * n_pol], g[2 * n_pol:]
        s_a = _solve(a - (bmat / dg) @ bmat.T, g_a - bmat @ (g_d / dg))
        return g, np.concatenate([s_a, (g_d - bmat.T @ s_a) / dg])

    d = unpack(_newton(objective, grad_step, np.zeros(2 * n_pol + n)))[2]
    return [float(v) for v in d - d.mean()]


def length_controlled_win_rates(preferences_by_policy: Mapping[str, Sequence[float | None]],
                                lengths_by_policy: Mapping[str, Sequence[float]], reference_lengths: Sequence[float],
                                *, instruction_difficulty: bool | Sequence[float] | None = None,
                                l2: float = DEFAULT_L2, difficulty_l2: float = DEFAULT_DIFFICULTY_L2,
                                min_inputs: int = MIN_INPUTS) -> dict[str, float]:
    """LC win rate (0–100) per policy, all judged against one reference on the same inputs.
    instruction_difficulty: None = fit it jointly from these policies when there are at least
    MIN_POLICIES_FOR_DIFFICULTY of them, else leave it out; True = always fit it (needs 2 policies);
    False = leave it out (AlpacaEval's minimal formula); a sequence = use those values (one per input)."""
    if not preferences_by_policy:
        raise ValueError("no policies given")
    _aligned(preferences_by_policy, lengths_by_policy, reference_lengths)
    if instruction_difficulty is None:
        instruction_difficulty = len(preferences_by_policy) >= MIN_POLICIES_FOR_DIFFICULTY
    if instruction_difficulty is True:
        d = fit_instruction_difficulty(preferences_by_policy, lengths_by_policy, reference_lengths, l2=difficulty_l2)
    elif instruction_difficulty is False:
        d = None
    else:
        d = list(instruction_difficulty)
    return {name: length_controlled_win_rate(prefs, lengths_by_policy[name], reference_lengths, d, l2=l2,
                                             min_inputs=min_inputs)
            for name, prefs in preferences_by_policy.items()}
