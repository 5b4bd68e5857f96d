"""The diversity claims: RLHF lowers per-input and across-input diversity (kirk2024 §6.2, mode
collapse), and the KL penalty does not buy it back (kirk2024 §6.3 and appendix I: "higher KL
penalties actually resulted in less output diversity"). Pure functions of the loaded
`diversity.json` and `kl_sweep/sweep.json`.
"""

from __future__ import annotations

import math

import numpy as np

from rlhflab.report.claims import RESAMPLES, claim_row, slope
from rlhflab.stats import Z975, interval, paired_bootstrap

KL_CLAIM = "The largest KL penalty does not restore SFT's diversity"
KL_TREND_CLAIM = "A higher KL penalty lowers per-input diversity (kirk2024 appendix I)"


# the metrics whose PPO − SFT difference is a claim: the papers' three and the ground truth's content
# (so a reader sees whether RLHF's drop is in meaning); `form` is often undefined (no two samples
# state the same facts) and `content_distinct` restates `content`, so they are shown, not claimed
CLAIMED = ("ead", "sentence_bert", "nli", "content")


def kl_metric(metrics) -> str | None:
    """The diversity metric the KL claims test: Sentence-BERT, the one kirk2024 fig. 12 leads with,
    else the first of the papers' metrics measured."""
    metrics = sorted(m for m in metrics if m in CLAIMED and m != "content")
    return "sentence_bert" if "sentence_bert" in metrics else (metrics[0] if metrics else None)


def per_input_claims(d: dict, seed: int) -> list[dict]:
    rows = []
    for m, v in d["policies"]["ppo"].items():
        if m not in CLAIMED:
            continue
        s_vals = (d["policies"]["sft"].get(m) or {}).get("per_input", {}).get("values")
        p_vals = v["per_input"].get("values")
        if not s_vals or not p_vals:
            continue
        st = paired_bootstrap(p_vals, s_vals, resamples=RESAMPLES, seed=seed, key=f"diversity-{m}")
        rows.append(claim_row(f"RLHF lowers per-input diversity ({m})", -1, st,
                              f"PPO {v['per_input']['mean']:.3f} vs SFT {d['policies']['sft'][m]['per_input']['mean']:.3f}"
                              f" over {st['n']} inputs", unit="score"))
    return rows


def _across_difference(a: dict, b: dict) -> tuple[dict | None, str]:
    """a − b in across-input diversity with its interval, and what the interval covers. With
    `draws` (the metric on bootstrap resamples of the inputs, the same resamples for every policy)
    a paired bootstrap over inputs; without, a normal interval from the spread over redraws of
    which sample stands for each input, which leaves the choice of inputs out."""
    est = a["mean"] - b["mean"]
    if a.get("draws") and b.get("draws") and len(a["draws"]) == len(b["draws"]):
        st = interval(est, np.subtract(a["draws"], b["draws"]))
        return {**st, "n": len(a["draws"])}, "paired bootstrap over inputs"
    se = math.hypot(a.get("std") or 0.0, b.get("std") or 0.0)
    if se == 0:
        return None, "not checkable: diversity.json holds one across-input draw and no spread"
    return ({"estimate": est, "ci_low": est - Z975 * se, "ci_high": est + Z975 * se,
             "p_value": math.erfc(abs(est) / se / math.sqrt(2)), "n": a.get("n")},
            "normal interval from the spread over redraws of each input's sample only (inputs not resampled)")


def across_input_claims(d: dict) -> list[dict]:
    """PPO − SFT in across-input diversity per metric (kirk2024 §6.2: RLHF "still reduces it to a
    lesser extent in the cross-input setting", the mode collapse of fig. 6)."""
    rows = []
    for m, v in d["policies"]["ppo"].items():
        if m not in CLAIMED:
            continue
        a, b = v.get("across_input"), (d["policies"]["sft"].get(m) or {}).get("across_input")
        if not a or not b:
            continue
        st, how = _across_difference(a, b)
        rows.append(claim_row(f"RLHF lowers across-input diversity ({m})", -1, st,
                              f"PPO {a['mean']:.3f} vs SFT {b['mean']:.3f} across {d['n_inputs']} inputs; {how}",
                              unit="score"))
    return rows


def _sweep(kl_sweep: dict | None) -> tuple[list[dict], dict, str | None]:
    """The sweep's points by increasing β, SFT's diversity, and the metric every point measured."""
    pts = sorted((kl_sweep or {}).get("points") or [], key=lambda p: p["kl_coef"])
    sft = ((kl_sweep or {}).get("sft") or {}).get("diversity") or {}
    common = set(sft).intersection(*(set(p.get("diversity") or {}) for p in pts)) if pts else set()
    return pts, sft, kl_metric(common)


def kl_claims(kl_sweep: dict | None, seed: int) -> list[dict]:
    """The trend across β and the largest β against SFT (see the module doc)."""
    pts, sft, m = _sweep(kl_sweep)
    if m is None:
        return [claim_row(c, -1, None, "not run: enable the kl_sweep stage", unit=u)
                for c, u in ((KL_TREND_CLAIM, "score per unit log β"), (KL_CLAIM, "score"))]
    return [_kl_trend(pts, m, seed), _kl_top(pts, sft, m, seed)]


def _kl_trend(pts: list[dict], m: str, seed: int) -> dict:
    """Each input's least-squares slope of its per-input diversity on ln β over the sweep's points,
    averaged over inputs, with a bootstrap over inputs: the inputs are shared by every β, so the
    slope is paired. Negative = more penalty, less diversity, as kirk2024 found."""
    values = [p["diversity"][m]["per_input"].get("values") or [] for p in pts]
    betas = [p["kl_coef"] for p in pts]
    if len(set(betas)) < 2 or min(betas) <= 0 or len({len(v) for v in values}) != 1 or not values[0]:
        return claim_row(KL_TREND_CLAIM, -1, None, "not checkable: needs two or more β > 0 with per-input values "
                         "on the same inputs", unit="score per unit log β")
    logs = [math.log(b) for b in betas]
    per_input = [slope(logs, ys) for ys in zip(*values)]
    st = paired_bootstrap(per_input, [0.0] * len(per_input), resamples=RESAMPLES, seed=seed, key="kl-trend")
    means = ", ".join(f"{p['diversity'][m]['per_input']['mean']:.3f} at β = {p['kl_coef']:g}" for p in pts)
    return claim_row(KL_TREND_CLAIM, -1, st, f"per-input {m} diversity {means} over {st['n']} inputs; slope per "
                     "unit of ln β", unit="score per unit log β")


def _kl_top(pts: list[dict], sft: dict, m: str, seed: int) -> dict:
    top, ref = pts[-1]["diversity"][m]["per_input"], sft[m]["per_input"]
    st = paired_bootstrap(top["values"], ref["values"], resamples=RESAMPLES, seed=seed, key="kl")
    at = f"step {pts[-1]['step']}" + (", SFT itself" if pts[-1].get("is_sft") else "")
    return claim_row(KL_CLAIM, -1, st, f"per-input {m} diversity at β = {pts[-1]['kl_coef']} ({at}): {top['mean']:.3f} "
                     f"vs SFT {ref['mean']:.3f} over {st['n']} inputs", unit="score")
