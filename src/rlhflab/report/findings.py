"""The papers' claims, decided from the study's numbers: a pure function of the loaded results.

`compute_findings(eval_results, diversity, kl_sweep, ppo_metrics)` takes the parsed
`eval/results.json`, `diversity/diversity.json`, `kl_sweep/sweep.json` and the `metrics` of the
PPO stage's `manifest.json` (any of them None when that stage did not run) and returns one
`{"claim", "reproduced", "evidence"}` per claim it can check: `reproduced` is True or False, or
None for a claim whose stage did not run. Each comparison's evidence gives both numbers, their
difference and its 1-SE uncertainty.

Whether a test set is in or out of distribution is read from `eval_results["sets"][name]
["distribution"]` ("id" or "ood"), never from the set's name; a set without that flag is neither,
and gets no ID/OOD claim.
"""

from __future__ import annotations

import math
from statistics import mean

from rlhflab.report.page import fmt

KL_CLAIM = "A higher KL penalty does not restore SFT's diversity"


def distribution(results: dict, test_set: str) -> str | None:
    """"id", "ood" or None: where the eval results declare test_set to lie."""
    return ((results.get("sets") or {}).get(test_set) or {}).get("distribution")


def evaluated_sets(results: dict) -> list[str]:
    return list(results.get("test_sets") or results.get("sets") or {})


def sets_in(results: dict, dist: str) -> list[str]:
    """The evaluated test sets declared in distribution `dist` ("id" or "ood"), in results order."""
    return [s for s in evaluated_sets(results) if distribution(results, s) == dist]


def ordered_sets(results: dict) -> list[str]:
    """Test sets with the ID sets first, then the OOD sets, then any without a declared role."""
    ids, oods = sets_in(results, "id"), sets_in(results, "ood")
    return ids + oods + [s for s in evaluated_sets(results) if s not in ids and s not in oods]


def _delta(a: dict, b: dict) -> tuple[float, float]:
    """Difference of two win rates and its standard error (the two SEs in quadrature)."""
    return a["win_rate"] - b["win_rate"], math.hypot(a["standard_error"], b["standard_error"])


def compute_findings(eval_results: dict | None, diversity: dict | None, kl_sweep: dict | None,
                     ppo_metrics: dict | None) -> list[dict]:
    """The claims this study can check, each with whether it holds here and the evidence."""
    out: list[dict] = []

    def claim(text: str, holds: bool | None, evidence: str) -> None:
        out.append({"claim": text, "reproduced": holds, "evidence": evidence})

    e, d = eval_results, diversity
    # A PPO run whose validation selection kept step 0 *is* the SFT policy; say so beside the
    # PPO-against-SFT claims rather than let an exact tie read as a finding.
    kept_start = ("; PPO's selection kept its starting point (best_step 0 = SFT)"
                  if (ppo_metrics or {}).get("best_step") == 0 else "")
    ids = sets_in(e, "id") if e else []

    def in_distribution(s: str) -> str:
        return "in distribution" if len(ids) == 1 else f"in distribution ({s})"

    if e and "ppo" in e["pvr"] and "sft" in e["pvr"]:
        for s in evaluated_sets(e):
            dist = distribution(e, s)
            if dist not in ("id", "ood"):
                continue
            a, b = e["pvr"]["ppo"][s], e["pvr"]["sft"][s]
            diff, se = _delta(a, b)
            where = in_distribution(s) if dist == "id" else f"out of distribution ({s})"
            claim(f"RLHF (PPO) beats SFT {where}", diff > 0,
                  f"PvR {a['win_rate']:.1f} vs {b['win_rate']:.1f}: Δ = {diff:+.1f} ± {se:.1f} (1 SE)" + kept_start)
    if e and "bon" in e["pvr"] and "sft" in e["pvr"]:
        for s in ids:
            a, b = e["pvr"]["bon"][s], e["pvr"]["sft"][s]
            diff, se = _delta(a, b)
            name = "Best-of-N beats SFT" if len(ids) == 1 else f"Best-of-N beats SFT ({s})"
            claim(name, diff > 0, f"ID PvR {a['win_rate']:.1f} vs {b['win_rate']:.1f}: Δ = {diff:+.1f} ± {se:.1f}")
    gap = (e or {}).get("gap") or {}
    if gap.get("ppo") and gap.get("sft"):
        gp, gs = mean(gap["ppo"].values()), mean(gap["sft"].values())
        claim("RLHF generalises better than SFT (smaller ID − OOD gap)", gp < gs,
              f"mean gap PPO {gp:.1f} vs SFT {gs:.1f} points over {len(gap['ppo'])} OOD sets")
    if d and "ppo" in d["policies"] and "sft" in d["policies"]:
        for m, v in d["policies"]["ppo"].items():
            if m not in d["policies"]["sft"]:
                continue
            s = d["policies"]["sft"][m]["per_input"]
            p = v["per_input"]
            se = math.hypot(p["std"] / math.sqrt(p["n"]), s["std"] / math.sqrt(s["n"]))
            claim(f"RLHF lowers per-input diversity ({m})", p["mean"] < s["mean"],
                  f"PPO {p['mean']:.3f} vs SFT {s['mean']:.3f}: Δ = {p['mean'] - s['mean']:+.3f} ± {se:.3f}")
    if kl_sweep and kl_sweep.get("points"):
        pts = sorted(kl_sweep["points"], key=lambda p: p["kl_coef"])
        sft_div = kl_sweep.get("sft_diversity")
        restored = sft_div is not None and pts[-1]["diversity"] >= sft_div
        claim(KL_CLAIM, not restored,
              f"per-input diversity at β = {pts[-1]['kl_coef']}: {pts[-1]['diversity']:.3f} vs SFT {fmt(sft_div)}")
    else:
        claim(KL_CLAIM, None, "not run: enable the kl_sweep stage")
    return out
