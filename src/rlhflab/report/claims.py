"""What every claim of the report shares: where each test set lies, which sets carry information,
one row per claim, the slope statistic, and the verdicts decided over the whole table (Holm within
two families, the primary one gating the secondary, `rlhflab.stats.gatekept_holm`).

The primary family is fixed before any data: the papers' headline performance claims, PPO and
best-of-N against SFT on the in-distribution sets (kirk2024 §5, ivison2024 §3). Every other claim
(out of distribution per set, gaps, shift, head-to-head, diversity, KL) is secondary: it is
decided only once every primary claim is, at the Holm level of its own family. Why: with one
family of ~20 claims, the first Holm step asks p < 0.0025, which three seeds on a t(2)
distribution reach only for t > 14; a study that could never decide its headline is no test.

Whether a test set is in or out of distribution is read from `eval_results["sets"][name]
["distribution"]`, never from the set's name. A set on which every policy's PvR win rate is
below `FLOOR` carries no information about generalisation (nothing works there): it gets no
claim and is left out of every mean gap, in the claims and in the tables alike.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rlhflab.stats import gatekept_holm, verdict

FLOOR = 2.0  # PvR win rate (%) below which a policy "does not succeed" on a set
ALPHA = 0.05
RESAMPLES = 10000  # the smallest p is 2/(draws + 1): Holm over ~15 claims keeps it near 0.003, far below 0.05
TEST = "paired bootstrap over inputs"
FAMILIES = ("primary", "secondary")
NAMES = {"sft": "SFT", "bon": "best-of-N", "ppo": "PPO", "dpo": "DPO", "grpo": "GRPO", "rloo": "RLOO",
         "online_dpo": "online DPO"}
# decimals shown per unit: win-rate points, a diversity score, and the two slopes
DIGITS = {"points": 1, "score": 3, "points per unit shift": 1, "score per unit log β": 3}


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


def gap_pairs(results: dict, floor: float = FLOOR, skip: set[str] | None = None) -> dict[str, str]:
    """OOD set -> the ID set its gap is taken against, for the sets every mean gap averages over:
    both the OOD set and its ID set informative (`skip`: the uninformative sets, if known)."""
    skip = set(uninformative_sets(results, floor)) if skip is None else skip
    pairs = {s: ((results.get("sets") or {}).get(s) or {}).get("compare_to") for s in sets_in(results, "ood")}
    return {s: base for s, base in pairs.items() if base and s not in skip and base not in skip}


def mean_gap(gap: dict[str, float], pairs: dict[str, str]) -> float | None:
    """The report's one mean gap: over the informative OOD sets `pairs` names (None without any)."""
    used = [gap[s] for s in pairs if s in gap]
    return sum(used) / len(used) if used else None


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y on x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = xs - xs.mean()
    return float((dx * (ys - ys.mean())).sum() / (dx * dx).sum())


def claim_row(claim: str, direction: int, stat: dict | None, evidence: str, scale: float = 1.0,
              unit: str = "points", family: str = "secondary") -> dict:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: one of {FAMILIES}")
    if stat is None:
        return {"claim": claim, "verdict": "not run", "direction": direction, "unit": unit, "family": family,
                "evidence": evidence}
    return {"claim": claim, "verdict": None, "direction": direction, "estimate": scale * stat["estimate"],
            "ci_low": scale * stat["ci_low"], "ci_high": scale * stat["ci_high"], "p_value": stat["p_value"],
            "n": stat["n"], "unit": unit, "family": family, "evidence": evidence}


def is_primary(row: dict) -> bool:
    return row.get("family") == "primary"


def multiplicity_text(tested) -> str:
    """How the table's p-values are adjusted, with the size of each family, for the method notes;
    `tested`: the rows (claims) whose p-values were adjusted."""
    k = sum(map(is_primary, tested))
    m = len(tested) - k
    second = f"Holm within the {m} secondary claim{'s' if m != 1 else ''}"
    if not k:
        return f"{second} (no primary claim was checked)"
    return (f"Holm within the {k} primary claim{'s' if k != 1 else ''} (the in-distribution claims that PPO and "
            "best-of-N beat SFT, fixed in advance as the papers' headline claims) and, only once every primary claim "
            f"is decided, {second} (serial gatekeeping, Dmitrienko & Tamhane 2007: the family-wise error over both "
            "families stays below α)")


def interval_text(row: dict) -> str:
    digits = DIGITS[row["unit"]]
    return f"Δ = {row['estimate']:+.{digits}f}, 95% CI [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"


def decide(rows: list[dict]) -> list[dict]:
    """Adjust the p-values of every tested claim (Holm per family, the primary family gating the
    secondary) and give each its verdict."""
    tested = [r for r in rows if r["verdict"] is None]
    for r, p in zip(tested, gatekept_holm([r["p_value"] for r in tested], [is_primary(r) for r in tested])):
        r["p_holm"] = p
        r["verdict"] = verdict(r["ci_low"], r["ci_high"], r["direction"], significant=p < ALPHA)
        r["evidence"] += f": {interval_text(r)}, adjusted p = {p:.3g}"
    return rows
