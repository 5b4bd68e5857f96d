"""The papers' claims, decided from the study's numbers: a pure function of the loaded results.

`compute_findings(eval_results, diversity, kl_sweep, ppo_metrics)` takes the parsed
`eval/results.json`, `diversity/diversity.json`, `kl_sweep/sweep.json` and the `metrics` of the
PPO stage's `manifest.json` (any of them None when that stage did not run) and returns one row per
claim it can check:

    {"claim", "verdict", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "direction", "evidence"}

Every comparison is paired: the policies were judged (or sampled) on the same inputs, so the
estimate is the mean per-input difference and its 95% interval comes from a paired bootstrap over
inputs (`rlhflab.stats`). A claim about gaps resamples each test set's inputs independently.
The verdict is *reproduced* when the interval excludes 0 in the claimed direction and the
Holm-adjusted p-value over all claims of the table is below α = 0.05, *contradicted* when the
same holds in the opposite direction, else *inconclusive*; a claim whose stage did not run is
"not run". So no verdict can disagree with its own interval.

Whether a test set is in or out of distribution is read from `eval_results["sets"][name]
["distribution"]`, never from the set's name. A set on which every policy's PvR win rate is
below `FLOOR` carries no information about generalisation (nothing works there): it gets no
claim and is left out of the mean-gap claim, and `uninformative_sets` lists it for the report.
"""

from __future__ import annotations

from rlhflab.stats import holm, paired_bootstrap, paired_differences, stratified_bootstrap, verdict

KL_CLAIM = "A higher KL penalty does not restore SFT's diversity"
GAP_CLAIM = "RLHF generalises better than SFT (smaller ID − OOD gap)"
LC_CLAIM = "RLHF's win-rate gain over SFT survives length control"
FLOOR = 2.0  # PvR win rate (%) below which a policy "does not succeed" on a set
ALPHA = 0.05
RESAMPLES = 2000
TEST = "paired bootstrap over inputs"
NAMES = {"sft": "SFT", "bon": "best-of-N", "ppo": "PPO", "dpo": "DPO", "grpo": "GRPO", "rloo": "RLOO",
         "online_dpo": "online DPO"}


def distribution(results: dict, test_set: str) -> str | None:
    """"id", "ood" or None: where the eval results declare test_set to lie."""
    return ((results.get("sets") or {}).get(test_set) or {}).get("distribution")


def evaluated_sets(results: dict) -> list[str]:
    return list(results.get("test_sets") or results.get("sets") or {})


def sets_in(results: dict, dist: str) -> list[str]:
    """The evaluated test sets declared in distribution `dist` ("id" or "ood"), in results order."""
    return [s for s in evaluated_sets(results) if distribution(results, s) == dist]


def ordered_sets(results: dict) -> list[str]:
    """Test sets with the ID sets first, then the OOD sets (by measured shift, smallest first, where
    the eval stage measured it), then any without a declared role."""
    ids, oods = sets_in(results, "id"), sets_in(results, "ood")
    shift = results.get("shift") or {}
    if all(s in shift for s in oods):
        oods = sorted(oods, key=lambda s: shift[s])
    return ids + oods + [s for s in evaluated_sets(results) if s not in ids and s not in oods]


def uninformative_sets(results: dict | None, floor: float = FLOOR) -> list[str]:
    """Test sets on which every evaluated policy's PvR win rate is below `floor` (%)."""
    if not results or not results.get("pvr"):
        return []
    pvr = results["pvr"]
    return [s for s in evaluated_sets(results)
            if all(s in pvr[p] and not pvr[p][s]["win_rate"] >= floor for p in pvr)]


DIGITS = {"points": 1, "score": 3}  # win-rate points, or a diversity score


def claim_row(claim: str, direction: int, stat: dict | None, evidence: str, scale: float = 1.0,
         unit: str = "points") -> dict:
    if stat is None:
        return {"claim": claim, "verdict": "not run", "direction": direction, "unit": unit, "evidence": evidence}
    return {"claim": claim, "verdict": None, "direction": direction, "estimate": scale * stat["estimate"],
            "ci_low": scale * stat["ci_low"], "ci_high": scale * stat["ci_high"], "p_value": stat["p_value"],
            "n": stat["n"], "unit": unit, "evidence": evidence}


def _interval_text(row: dict) -> str:
    digits = DIGITS[row["unit"]]
    return (f"Δ = {row['estimate']:+.{digits}f}, 95% CI [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]")


def compute_findings(eval_results: dict | None, diversity: dict | None, kl_sweep: dict | None,
                     ppo_metrics: dict | None, *, seed: int = 0, floor: float = FLOOR,
                     extra: list[dict] = ()) -> list[dict]:
    """The claims this study can check, each with its paired interval and a verdict (see module doc);
    `extra` rows (other evaluations' claims, undecided) join the same Holm correction."""
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
        rows.append(claim_row(claim, 1, st, f"PvR {wa:.1f} vs {wb:.1f} on {st['n']} paired inputs" + extra, 100.0))

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
        rows += [r for r in (gap_claim(e, prefs, skip, seed), _length_control_claim(e, ids)) if r]
    if d and "ppo" in d["policies"] and "sft" in d["policies"]:
        for m, v in d["policies"]["ppo"].items():
            s_vals = (d["policies"]["sft"].get(m) or {}).get("per_input", {}).get("values")
            p_vals = v["per_input"].get("values")
            if not s_vals or not p_vals:
                continue
            st = paired_bootstrap(p_vals, s_vals, resamples=RESAMPLES, seed=seed, key=f"diversity-{m}")
            rows.append(claim_row(f"RLHF lowers per-input diversity ({m})", -1, st,
                             f"PPO {v['per_input']['mean']:.3f} vs SFT {d['policies']['sft'][m]['per_input']['mean']:.3f}"
                             f" over {st['n']} inputs", unit="score"))
    rows.append(_kl_claim(kl_sweep, seed))
    return decide(rows + list(extra))


def gap_claim(e: dict, prefs: dict, skip: set[str], seed: int, a: str = "ppo", b: str = "sft",
              claim: str = GAP_CLAIM) -> dict | None:
    """Mean over informative OOD sets of (a's gap − b's gap), each gap against the set's own
    `compare_to` ID set; negative = a loses less ground. Each set's per-input a − b differences
    are resampled within the set."""
    pairs = {s: (e["sets"][s].get("compare_to")) for s in sets_in(e, "ood")}
    pairs = {s: base for s, base in pairs.items() if base and s not in skip and base not in skip}
    if not pairs:
        return None
    diffs = {s: paired_differences(prefs[a][s], prefs[b][s]) for s in set(pairs) | set(pairs.values())}

    def mean_gap_difference(m: dict[str, float]) -> float:
        return sum(m[base] - m[s] for s, base in pairs.items()) / len(pairs)

    st = stratified_bootstrap(diffs, mean_gap_difference, resamples=RESAMPLES, seed=seed,
                              key="gap" if (a, b) == ("ppo", "sft") else f"gap-{a}-{b}")
    gp = sum(e["gap"][a][s] for s in pairs) / len(pairs)
    gs = sum(e["gap"][b][s] for s in pairs) / len(pairs)
    left_out = sorted(set(sets_in(e, "ood")) - set(pairs))
    note = f"; left out (no policy succeeds): {', '.join(left_out)}" if left_out else ""
    return claim_row(claim, -1, st, f"mean gap {NAMES[a]} {gp:.1f} vs {NAMES[b]} {gs:.1f} points over {len(pairs)} OOD sets"
                + note, 100.0)


def _length_control_claim(e: dict, ids: list[str]) -> dict | None:
    """PPO − SFT in length-controlled PvR win rate on the (first) ID set, with the bootstrap the
    eval stage ran by refitting the length GLM on resampled inputs."""
    lc = (e.get("length_controlled") or {}).get("ppo_vs_sft") or {}
    s = next((s for s in ids if s in lc), None)
    if s is None:
        return None
    st = lc[s]
    return claim_row(LC_CLAIM + ("" if len(ids) == 1 else f" ({s})"), 1, st,
                f"LC PvR {st['lc_a']:.1f} vs {st['lc_b']:.1f} (raw {st['raw_a']:.1f} vs {st['raw_b']:.1f})")


def kl_metric(metrics) -> str | None:
    """The diversity metric the KL claim tests: Sentence-BERT, the one kirk2024 fig. 12 leads with,
    else the first measured."""
    metrics = sorted(metrics)
    return "sentence_bert" if "sentence_bert" in metrics else (metrics[0] if metrics else None)


def _kl_claim(kl_sweep: dict | None, seed: int) -> dict:
    pts = sorted((kl_sweep or {}).get("points") or [], key=lambda p: p["kl_coef"])
    sft = ((kl_sweep or {}).get("sft") or {}).get("diversity") or {}
    m = kl_metric(set(sft) & set(pts[-1].get("diversity") or {})) if pts else None
    if m is None:
        return claim_row(KL_CLAIM, -1, None, "not run: enable the kl_sweep stage", unit="score")
    top, ref = pts[-1]["diversity"][m]["per_input"], sft[m]["per_input"]
    st = paired_bootstrap(top["values"], ref["values"], resamples=RESAMPLES, seed=seed, key="kl")
    at = f"step {pts[-1]['step']}" + (", SFT itself" if pts[-1].get("is_sft") else "")
    return claim_row(KL_CLAIM, -1, st, f"per-input {m} diversity at β = {pts[-1]['kl_coef']} ({at}): {top['mean']:.3f} "
                f"vs SFT {ref['mean']:.3f} over {st['n']} inputs", unit="score")


def decide(rows: list[dict]) -> list[dict]:
    """Holm-adjust the p-values of every tested claim and give each its verdict."""
    tested = [r for r in rows if r["verdict"] is None]
    for r, p in zip(tested, holm([r["p_value"] for r in tested])):
        r["p_holm"] = p
        r["verdict"] = verdict(r["ci_low"], r["ci_high"], r["direction"], significant=p < ALPHA)
        r["evidence"] += f": {_interval_text(r)}, Holm p = {p:.3g}"
    return rows


def method_note(findings: list[dict]) -> str:
    """One sentence naming the test and the number of comparisons, for the report."""
    m = sum(f["verdict"] != "not run" for f in findings)
    return (f"Each claim is tested by a {TEST} ({RESAMPLES} resamples; both policies scored on the same "
            f"inputs, per-input differences resampled; gaps resample each test set), with a 95% percentile "
            f"interval. Verdicts: *reproduced* / *contradicted* when the interval excludes 0 on the claimed / "
            f"opposite side and the Holm-adjusted p-value over the {m} comparisons of this table is below "
            f"{ALPHA}; otherwise *inconclusive*. Test sets where every policy's PvR is below {FLOOR:g}% "
            "carry no information about generalisation and get no claim.")
