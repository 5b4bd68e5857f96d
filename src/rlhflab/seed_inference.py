"""Inference over seeds: each claim's per-seed estimates combined into one estimate, interval and
verdict, with the family-wise error controlled over the claims as in a single run.

Why a random-effects combination and not a hierarchical bootstrap: `report/findings.json` keeps, per
claim, the paired estimate and its 95% interval, which every claim has alike, while the per-input
values behind them are not uniform (a gap claim resamples test sets separately, the length-control
claim refits a GLM per draw). Each seed is a study with an estimate y_i and a standard error s_i,
and the seeds also differ among themselves by more than s_i when training randomness moves the
result: DerSimonian–Laird estimates that extra between-seed variance τ², and each seed is weighted
by 1 / (s_i² + τ²). With 3 seeds, τ² is itself very uncertain, so the normal DerSimonian–Laird
interval is far too narrow; the Hartung–Knapp–Sidik–Jonkman variance with a t quantile on k − 1 df
keeps close to its nominal coverage with few studies (IntHout et al. 2014), and its modification
max(1, q) (Röver et al. 2015) stops it from collapsing when 3 seeds happen to agree more closely
than their own SEs say. (`rlhflab.stats.random_effects`.)

The per-seed SE is not stored: it is taken from the seed's 95% bootstrap interval,
SE = (high − low) / (2 · 1.96). The multiplicity control is the one a single run uses
(`rlhflab.report.claims`: Holm within the primary family, which gates Holm within the secondary
one) over every claim at least one seed checked; a claim only one seed checked cannot be combined
and enters its family with p = 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from rlhflab.report.figures import save_grid
from rlhflab.report.findings import ALPHA
from rlhflab.report.claims import is_primary, multiplicity_text
from rlhflab.stats import gatekept_holm, random_effects, se_from_interval, verdict

FOREST = "findings_forest.png"


def _checked(row: dict) -> bool:
    return row.get("estimate") is not None and all(
        isinstance(row.get(k), (int, float)) and math.isfinite(row[k]) for k in ("ci_low", "ci_high"))


def _one(claim: str, rows: list[tuple[object, dict]], key: str, plural: str, default=None):
    """The value every run gives the claim's `key`; runs that differ are of different rlhflab versions."""
    values = {r.get(key, default) for _, r in rows}
    if len(values) != 1:
        raise ValueError(f"claim {claim!r} has {plural} {sorted(values)} in different runs: "
                         "aggregate runs of one rlhflab version")
    return values.pop()


def _claim_entry(claim: str, rows: list[tuple[object, dict]]) -> dict:
    verdicts = [r.get("verdict") for _, r in rows]
    tested = [(s, r) for s, r in rows if _checked(r)]
    entry = {"direction": _one(claim, rows, "direction", "directions"), "unit": rows[0][1].get("unit", "points"),
             "verdict": "not run", "family": _one(claim, rows, "family", "families", default="secondary"),
             "reproduced_in": verdicts.count("reproduced"), "contradicted_in": verdicts.count("contradicted"),
             "inconclusive_in": verdicts.count("inconclusive"), "checked_in": len(tested),
             "seeds": [{"seed": s, "estimate": r["estimate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                        "se": se_from_interval(r["ci_low"], r["ci_high"]), "verdict": r.get("verdict")}
                       for s, r in tested]}
    if len(tested) >= 2:
        entry.update(random_effects([s["estimate"] for s in entry["seeds"]], [s["se"] for s in entry["seeds"]]))
    elif tested:
        entry["p_value"] = 1.0  # one seed: no spread over seeds to judge it by
    return entry


def findings_over_seeds(per_run: list[list[dict]], seeds: Sequence) -> dict[str, dict]:
    """claim -> the per-seed estimates (with their intervals and SEs), their random-effects
    combination ("estimate", "se", "ci_low", "ci_high", "p_value", "tau2", "df"), the adjusted p
    ("p_holm": Holm per family, the primary family gating the secondary), the over-seed verdict in the
    claim's own direction, and the seeds' own verdict counts. `per_run[i]` is the findings list of the
    run of seed `seeds[i]`."""
    rows: dict[str, list[tuple[object, dict]]] = {}
    for seed, findings in zip(seeds, per_run, strict=True):
        for row in findings:
            rows.setdefault(row["claim"], []).append((seed, row))
    out = {claim: _claim_entry(claim, rs) for claim, rs in rows.items()}
    family = [e for e in out.values() if e["checked_in"]]
    for e, p in zip(family, gatekept_holm([e["p_value"] for e in family], [is_primary(e) for e in family])):
        e["p_holm"] = p
        e["verdict"] = (verdict(e["ci_low"], e["ci_high"], e["direction"], significant=p < ALPHA)
                        if "ci_low" in e else "inconclusive")
    return out


def method_note(findings: dict[str, dict], n_seeds: int) -> str:
    """The paragraph aggregate.md prints about the method and its assumptions."""
    checked = [e for e in findings.values() if e["checked_in"] > 0]
    return (f"Over the {n_seeds} seeds, each claim's per-seed estimates are combined by a random-effects "
            "meta-analysis: each seed contributes its paired estimate with a standard error taken from its own 95% "
            "bootstrap interval, SE = (high − low) / (2 × 1.96) (the findings store the interval, not the SE); the "
            "between-seed variance τ² is estimated by DerSimonian–Laird, and the combined estimate's variance by "
            "Hartung–Knapp–Sidik–Jonkman (never below the DerSimonian–Laird variance) with a t quantile on k − 1 "
            "degrees of freedom, k the number of seeds that checked the claim. This assumes the seeds are "
            "exchangeable runs of one config that differ only in the seed (they share the data and the base "
            "model, so the spread is training and sampling randomness, not a new sample of data), and that each "
            "seed's estimate is approximately normal with the SE its interval implies. The p-values of the claims "
            f"checked in at least one seed are adjusted as a single run's table is: {multiplicity_text(checked)} (a "
            "claim checked in one seed only enters with p = 1). A claim is *reproduced* / *contradicted* when the "
            f"combined 95% interval excludes 0 on the claimed / opposite side and its adjusted p is below {ALPHA}; "
            "otherwise *inconclusive*.")


def _fmt(x: float) -> str:
    return f"{x:+.3g}"


def findings_table(findings: dict[str, dict]) -> list[str]:
    """The markdown rows of the over-seed findings table, per-seed estimates beside the combined one."""
    lines = ["| claim | over seeds | combined Δ, 95% CI | adj. p | τ² | per seed: Δ [95% CI] | seeds: reproduced / "
             "contradicted / inconclusive |", "|---|---|---|---|---|---|---|"]
    for c, e in findings.items():
        combined = f"{_fmt(e['estimate'])} [{_fmt(e['ci_low'])}, {_fmt(e['ci_high'])}]" if "ci_low" in e else "–"
        holm_p = f"{e['p_holm']:.2g}" if "p_holm" in e else "–"
        tau2 = f"{e['tau2']:.3g}" if "tau2" in e else "–"
        seeds = "; ".join(f"s{s['seed']} {_fmt(s['estimate'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"
                          for s in e["seeds"]) or "–"
        lines.append(f"| {c} | {e['verdict']} | {combined} | {holm_p} | {tau2} | {seeds} | {e['reproduced_in']} / "
                     f"{e['contradicted_in']} / {e['inconclusive_in']} of {e['checked_in']} |")
    return lines


def _interval_bar(ax, x: float, lo: float, hi: float, y: float, **style) -> None:
    # a percentile interval need not contain its estimate; matplotlib refuses negative error lengths
    ax.errorbar([x], [y], xerr=[[max(0.0, x - lo)], [max(0.0, hi - x)]], capsize=2, **style)


def _forest_panel(claim: str, e: dict):
    def draw(ax) -> None:
        ys = list(range(len(e["seeds"]), 0, -1))
        for y, s in zip(ys, e["seeds"]):
            _interval_bar(ax, s["estimate"], s["ci_low"], s["ci_high"], y, fmt="o", ms=4, color="tab:blue")
        if "ci_low" in e:
            _interval_bar(ax, e["estimate"], e["ci_low"], e["ci_high"], 0, fmt="D", ms=5, color="black")
        ax.set_yticks(ys + [0], [f"seed {s['seed']}" for s in e["seeds"]] + ["over seeds"])
        ax.set_ylim(-0.7, len(e["seeds"]) + 0.7)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        side = ">" if e["direction"] > 0 else "<"
        ax.set_title(f"{claim} (claim: Δ {side} 0, in {e['unit']}): {e['verdict']}", fontsize=8, loc="left")
    return draw


def forest_plot(path: Path, findings: dict[str, dict]) -> Path | None:
    """One panel per checked claim (each on its own scale: points or a diversity score): every
    seed's estimate with its 95% interval, the combined estimate with its interval, and zero.
    None when no claim was checked."""
    shown = {c: e for c, e in findings.items() if e["seeds"]}
    if not shown:
        return None
    height = 0.28 * (max(len(e["seeds"]) for e in shown.values()) + 1) + 0.8
    return save_grid(path, "Findings over seeds: per-seed and combined estimates, 95% intervals",
                     [[_forest_panel(c, e)] for c, e in shown.items()], panel=(7.0, height))
