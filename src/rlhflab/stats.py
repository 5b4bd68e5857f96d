"""Statistics shared across the library: standard errors, bootstrap intervals for paired and
stratified comparisons, the verdict a finding gets from its interval, Holm's correction, and
t-intervals over seeds.

Policies are judged on the same inputs, so their comparisons are paired: the unit of resampling is
an input, and one draw of inputs serves both policies (per-input differences are resampled). A
statistic over several test sets (a difference of gaps) resamples each set's inputs independently.
"""

from __future__ import annotations

import math
import zlib
from statistics import mean, stdev
from typing import Callable, Mapping, Sequence

import numpy as np

VERDICTS = ("reproduced", "contradicted", "inconclusive")


def standard_error(xs: Sequence[float]) -> float:
    """Sample standard deviation / √n (NaN for fewer than two values)."""
    if len(xs) < 2:
        return float("nan")
    return stdev(xs) / math.sqrt(len(xs))


def mean_se(values: Sequence[float]) -> dict:
    """{"mean", "se", "n"} of a list of values."""
    return {"mean": mean(values), "se": standard_error(values), "n": len(values)}


def sigmoid(z: float, clamp: float = 50.0) -> float:
    """σ(z) with z clamped to ±clamp, so huge gaps give 0/1 instead of an overflow."""
    return 1.0 / (1.0 + math.exp(-max(-clamp, min(clamp, z))))


# ------------------------------------------------------------------------------ bootstrap ---


def paired_differences(a: Sequence[float | None], b: Sequence[float | None]) -> np.ndarray:
    """a[i] − b[i] over the inputs where both are valid (None / NaN drop the input for both)."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} and {len(b)} values: both must score the same inputs")
    keep = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and not (math.isnan(x) or math.isnan(y))]
    return np.array([x - y for x, y in keep], dtype=float)


def bootstrap_means(values: Sequence[float], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples` means of `values` resampled with replacement (one row of indices per draw)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap of an empty sample")
    return v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator fixed by (seed, key): each comparison gets its own stream, reproducibly."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def interval(estimate: float, draws: np.ndarray, level: float = 0.95) -> dict:
    """Percentile interval of bootstrap draws and the two-sided bootstrap p-value of "= 0":
    twice the smaller tail share of draws on either side of 0, with +1 smoothing so a finite
    number of draws never claims p = 0."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    below, above = int((draws <= 0).sum()), int((draws >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (draws.size + 1))
    return {"estimate": float(estimate), "ci_low": float(lo), "ci_high": float(hi), "p_value": p,
            "level": level, "resamples": int(draws.size)}


def paired_bootstrap(a: Sequence[float | None], b: Sequence[float | None], *, resamples: int = 2000,
                     seed: int = 0, key: str = "", level: float = 0.95) -> dict:
    """mean(a − b) over shared valid inputs, with its paired bootstrap interval and p-value."""
    d = paired_differences(a, b)
    out = interval(float(d.mean()), bootstrap_means(d, resamples, rng_for(seed, key)), level)
    return {**out, "n": int(d.size)}


def stratified_bootstrap(samples: Mapping[str, Sequence[float]], statistic: Callable[[dict[str, float]], float], *,
                         resamples: int = 2000, seed: int = 0, key: str = "", level: float = 0.95) -> dict:
    """statistic(mean of each sample) with an interval from resampling every sample independently:
    for a quantity over several test sets (e.g. a difference of generalisation gaps), each set's
    inputs are resampled within that set."""
    rng = rng_for(seed, key)
    names = sorted(samples)
    draws = {s: bootstrap_means(samples[s], resamples, rng) for s in names}
    estimate = statistic({s: float(np.mean(samples[s])) for s in names})
    stats = np.array([statistic({s: float(draws[s][i]) for s in names}) for i in range(resamples)])
    return {**interval(estimate, stats, level), "n": {s: len(samples[s]) for s in names}}


# ------------------------------------------------------------------- verdicts, multiplicity ---


def verdict(ci_low: float, ci_high: float, direction: int, significant: bool = True) -> str:
    """"reproduced" when the interval excludes 0 on the claimed side (direction +1: the claim is
    that the quantity is positive; −1: negative), "contradicted" when it excludes 0 on the other
    side, else "inconclusive". `significant=False` (e.g. not after a multiplicity correction)
    makes any result inconclusive."""
    if direction not in (1, -1):
        raise ValueError("direction is +1 (claim: > 0) or −1 (claim: < 0)")
    lo, hi = (ci_low, ci_high) if direction == 1 else (-ci_high, -ci_low)
    if significant and lo > 0:
        return "reproduced"
    if significant and hi < 0:
        return "contradicted"
    return "inconclusive"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order: the k-th smallest of m is multiplied
    by (m − k + 1), made monotone and capped at 1. Rejecting adjusted p < α controls the
    family-wise error rate at α over the m comparisons."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def gatekept_holm(p_values: Sequence[float], primary: Sequence[bool]) -> list[float]:
    """Adjusted p-values of a serial gatekeeping procedure over two families (Dmitrienko & Tamhane
    2007, "Gatekeeping procedures with clinical trial applications"): Holm within the primary
    family; the secondary family is tested, by Holm within it, only once every primary hypothesis is
    rejected, so a secondary adjusted p is the larger of its own Holm p and the largest primary one.
    Rejecting adjusted p < α controls the family-wise error rate at α over both families together,
    while the primary claims pay for the size of their own family only. No primary: plain Holm."""
    if len(primary) != len(p_values):
        raise ValueError(f"{len(p_values)} p-values but {len(primary)} primary flags")
    first = [i for i, f in enumerate(primary) if f]
    rest = [i for i, f in enumerate(primary) if not f]
    out = [0.0] * len(p_values)
    for idx, adjusted in ((first, holm([p_values[i] for i in first])), (rest, holm([p_values[i] for i in rest]))):
        for i, p in zip(idx, adjusted):
            out[i] = p
    gate = max((out[i] for i in first), default=0.0)
    for i in rest:
        out[i] = max(out[i], gate)
    return out


# --------------------------------------------------------------------------- across seeds ---

# two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table up to 30 degrees of freedom, then the Cornish–Fisher expansion
    around z = 1.95996 (error < 1e-3 beyond 30)."""
    if df < 1:
        raise ValueError("a t-interval needs at least two values (df ≥ 1)")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_interval(values: Sequence[float]) -> dict:
    """Mean of a few per-seed values with its 95% t-interval (mean ± t·s/√n): with 3–5 seeds the
    normal 1.96 would understate the spread."""
    n = len(values)
    m = mean(values)
    if n < 2:
        return {"mean": m, "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
    half = t_quantile_975(n - 1) * stdev(values) / math.sqrt(n)
    return {"mean": m, "ci_low": m - half, "ci_high": m + half, "n": n}


Z975 = 1.959964  # the standard normal's 97.5% quantile


def se_from_interval(ci_low: float, ci_high: float) -> float:
    """The standard error a 95% interval implies if it is normal: (high − low) / (2 · 1.96). For a
    percentile bootstrap interval this is the normal approximation of its spread."""
    return (ci_high - ci_low) / (2 * Z975)


def t_p_value(t: float, df: int) -> float:
    """Two-sided p-value of a Student t statistic with an integer number of degrees of freedom, from
    the finite series of Abramowitz & Stegun 26.7.3 (odd df) and 26.7.4 (even df): exact, and no
    scipy dependency for the few seeds a study has."""
    if df < 1:
        raise ValueError("a t test needs at least one degree of freedom")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    term, series = 1.0, 1.0
    if df % 2:
        for j in range(1, (df - 1) // 2):
            term *= 2 * j / (2 * j + 1) * c2
            series += term
        inside = 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * series if df > 1 else 0.0))
    else:
        for j in range(1, df // 2):
            term *= (2 * j - 1) / (2 * j) * c2
            series += term
        inside = math.sin(theta) * series
    return min(1.0, max(0.0, 1.0 - inside))


def random_effects(estimates: Sequence[float], ses: Sequence[float]) -> dict:
    """Random-effects combination of k ≥ 2 estimates with standard errors: DerSimonian–Laird τ²
    (the between-estimate variance beyond what the SEs explain), the weighted mean with weights
    1 / (SE² + τ²), and its variance by Hartung–Knapp–Sidik–Jonkman, q / Σw with q the weighted
    spread of the estimates around that mean over k − 1, taken as max(1, q) (Röver, Knapp & Friede
    2015) so the interval is never narrower than the one the SEs and τ² alone give; a 95% interval
    with the t quantile on k − 1 df and the matching two-sided p-value.

    Returns {"estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "q", "df", "k"}."""
    k = len(estimates)
    if k < 2 or len(ses) != k:
        raise ValueError(f"a random-effects combination needs two or more estimates, each with an SE (got {k}, {len(ses)})")
    y = np.asarray(estimates, dtype=float)
    # a degenerate interval (every input gave the same difference) has SE 0; a tiny floor lets τ²
    # take the whole spread, and with all SEs 0 the result is the plain t-interval over seeds
    v = np.maximum(np.asarray(ses, dtype=float) ** 2, 1e-12)
    w = 1 / v
    fixed = float((w * y).sum() / w.sum())
    cochran_q = float((w * (y - fixed) ** 2).sum())
    c = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, (cochran_q - (k - 1)) / c)
    ws = 1 / (v + tau2)
    mu = float((ws * y).sum() / ws.sum())
    q = float((ws * (y - mu) ** 2).sum()) / (k - 1)
    se = math.sqrt(max(1.0, q) / float(ws.sum()))
    half = t_quantile_975(k - 1) * se
    return {"estimate": mu, "se": se, "ci_low": mu - half, "ci_high": mu + half,
            "p_value": t_p_value(mu / se, k - 1), "tau2": tau2, "q": q, "df": k - 1, "k": k}
