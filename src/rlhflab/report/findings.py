"""The papers' claims, decided from the study's numbers: a pure function of the loaded results.

`compute_findings(eval_results, diversity, kl_sweep, ppo_metrics)` takes the parsed
`eval/results.json`, `diversity/diversity.json`, `kl_sweep/sweep.json` and the `metrics` of the
PPO stage's `manifest.json` (any of them None when that stage did not run) and returns one row per
claim it can check:

    {"claim", "verdict", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "direction", "family", "evidence"}

Every comparison is paired: the policies were judged (or sampled) on the same inputs, so the
estimate is the mean per-input difference and its 95% interval comes from a paired bootstrap over
inputs (`rlhflab.stats`). A claim about gaps resamples each test set's inputs independently.
The verdict is *reproduced* when the interval excludes 0 in the claimed direction and the
adjusted p-value is below α = 0.05 (Holm within the primary family — PPO and best-of-N against
SFT in distribution — which gates Holm within the secondary family of every other claim:
`rlhflab.report.claims`), *contradicted* when the
same holds in the opposite direction, else *inconclusive*; a claim whose stage did not run is
"not run". So no verdict can disagree with its own interval.

Which sets are in or out of distribution and which carry information: `rlhflab.report.claims`.
The claims themselves: here the PvR comparisons per set, in `generalisation` the gap, shift,
head-to-head and length-control claims, in `diversity_claims` the diversity and KL claims.
"""

from __future__ import annotations

from rlhflab.report.claims import (ALPHA, DIGITS, FLOOR, NAMES, RESAMPLES, TEST, claim_row, decide, distribution,
                                   multiplicity_text, evaluated_sets, gap_pairs, mean_gap, ordered_sets, sets_in,
                                   uninformative_sets)
from rlhflab.report.diversity_claims import (KL_CLAIM, KL_TREND_CLAIM, across_input_claims, kl_claims, kl_metric,
                                             per_input_claims)
from rlhflab.report.generalisation import (GAP_CLAIM, H2H_CLAIM, LC_CLAIM, SHIFT_CLAIM, gap_claim, head_to_head_claims,
                                           length_control_claim, shift_claim)
from rlhflab.stats import paired_bootstrap

__all__ = ["ALPHA", "DIGITS", "FLOOR", "GAP_CLAIM", "H2H_CLAIM", "KL_CLAIM", "KL_TREND_CLAIM", "LC_CLAIM", "NAMES",
           "RESAMPLES", "SHIFT_CLAIM", "claim_row", "compute_findings", "decide", "distribution", "evaluated_sets",
           "gap_claim", "gap_pairs", "kl_metric", "mean_gap", "method_note", "ordered_sets", "sets_in",
           "uninformative_sets"]


def compute_findings(eval_results: dict | None, diversity: dict | None, kl_sweep: dict | None,
                     ppo_metrics: dict | None, *, seed: int = 0, floor: float = FLOOR,
                     extra: list[dict] = ()) -> list[dict]:
    """The claims this study can check, each with its paired interval and a verdict (see module doc);
    `extra` rows (other evaluations' claims, undecided) join the secondary family's correction."""
    rows: list[dict] = []
    e, d = eval_results, diversity
    prefs = (e or {}).get("preferences") or {}
    kept_start = ("; PPO's selection kept its starting point (best_step 0 = SFT)"
                  if (ppo_metrics or {}).get("best_step") == 0 else "")
    skip = set(uninformative_sets(e, floor))
    ids = sets_in(e, "id") if e else []

    def pvr_claim(claim: str, a: str, b: str, s: str, extra: str = "") -> None:
        st = paired_bootstrap(prefs[a][s], prefs[b][s], resamples=RESAMPLES, seed=seed, key=f"{a}-{b}-{s}")
        wa, wb = e["pvr"][a][s]["win_rate"], e["pvr"][b][s]["win_rate"]
        rows.append(claim_row(claim, 1, st, f"PvR {wa:.1f} vs {wb:.1f} on {st['n']} paired inputs" + extra, 100.0,
                              family="primary" if s in ids else "secondary"))

    if e and {"ppo", "sft"} <= set(prefs):
        for s in evaluated_sets(e):
            dist = distribution(e, s)
            if dist not in ("id", "ood") or s in skip:
                continue
            where = ("in distribution" if len(ids) == 1 else f"in distribution ({s})") if dist == "id" \
                else f"out of distribution ({s})"
            pvr_claim(f"RLHF (PPO) beats SFT {where}", "ppo", "sft", s, kept_start)
    if e and {"bon", "sft"} <= set(prefs):
        for s in ids:
            pvr_claim("Best-of-N beats SFT" if len(ids) == 1 else f"Best-of-N beats SFT ({s})", "bon", "sft", s)
    if e and {"ppo", "sft"} <= set(prefs):
        rows += [r for r in (gap_claim(e, prefs, skip, seed), shift_claim(e, prefs, seed, floor)) if r]
        rows += head_to_head_claims(e, seed, floor)
        rows += [r for r in (length_control_claim(e, ids),) if r]
    if d and "ppo" in d["policies"] and "sft" in d["policies"]:
        rows += per_input_claims(d, seed) + across_input_claims(d)
    rows += kl_claims(kl_sweep, seed)
    return decide(rows + list(extra))


def method_note(findings: list[dict]) -> str:
    """One sentence naming the test and the number of comparisons, for the report."""
    tested = [f for f in findings if f["verdict"] != "not run"]
    return (f"Each claim is tested by a {TEST} ({RESAMPLES} resamples; both policies scored on the same "
            "inputs, per-input differences resampled; a quantity over several test sets — a gap, the slope against "
            "the measured shift, the head-to-head change — resamples each set's inputs within the set; the KL trend "
            "averages each input's own slope of diversity on ln β), with a 95% percentile "
            f"interval. Verdicts: *reproduced* / *contradicted* when the interval excludes 0 on the claimed / "
            f"opposite side and the adjusted p-value is below {ALPHA} — {multiplicity_text(tested)}; otherwise "
            f"*inconclusive*. Test sets where every policy's PvR is below {FLOOR:g}% "
            "carry no information about generalisation: they get no claim and are left out of every mean gap.")
