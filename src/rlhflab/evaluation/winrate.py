"""Win rates the way AlpacaEval reports them, bootstrap intervals, generalisation gaps, and
AlpacaEval's file formats (model_outputs.json, annotations.json) in both directions.

Preferences here are P(model beats the other) in [0, 1] (0.5 a draw; None invalid). AlpacaEval's
annotation `preference` is in [1, 2]: 1 = output_1 better, 2 = output_2 better, 1.5 a draw, with
0 also meaning a draw in older files; the model under test is generator_2.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Sequence

import numpy as np

from rlhflab.stats import standard_error


@dataclass
class WinRate:
    win_rate: float  # 100 × mean preference over valid judgements
    standard_error: float  # 100 × sample std / √n
    n: int  # valid judgements
    n_draws: int
    n_invalid: int
    ci_low: float | None = None
    ci_high: float | None = None


def win_rate(prefs: Sequence[float | None], *, bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> WinRate:
    valid = [float(p) for p in prefs if p is not None and not (isinstance(p, float) and math.isnan(p))]
    invalid = len(prefs) - len(valid)
    if not valid:
        return WinRate(float("nan"), float("nan"), 0, 0, invalid)
    se = 100 * standard_error(valid)
    out = WinRate(100 * mean(valid), se, len(valid), sum(p == 0.5 for p in valid), invalid)
    if bootstrap:
        out.ci_low, out.ci_high = bootstrap_ci(valid, bootstrap, seed, level)
    return out


def bootstrap_ci(values: Sequence[float], resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of 100 × mean."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(100 * sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[int(math.floor((1 - level) / 2 * (resamples - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (resamples - 1)))]
    return lo, hi


def generalisation_gap(values: dict[str, float], compare_to: dict[str, str]) -> dict[str, float]:
    """ID − OOD for each OOD set, against the ID set it compares to (kirk2024 §6.1): positive = the
    policy loses ground out of distribution. values: set -> score; compare_to: OOD set -> ID set."""
    return {ood: values[base] - values[ood] for ood, base in compare_to.items()}


# ------------------------------------------------------------------------- AlpacaEval files ---


def classify_preference(p) -> tuple[float | None, str | None]:
    """An AlpacaEval preference (1..2; 0 or 1.5 = draw) as (P(generator_2 wins), None), or
    (None, why it is invalid)."""
    if p is None:
        return None, "null"
    if isinstance(p, bool):  # JSON true/false are not preferences, though float(True) == 1
        return None, "boolean"
    if isinstance(p, str):
        try:
            p = float(p)
        except ValueError:
            return None, "not a number"
    if not isinstance(p, (int, float)):
        return None, f"a {type(p).__name__}"
    if math.isnan(p):
        return None, "NaN"
    if p == 0:
        return 0.5, None
    if 1.0 <= p <= 2.0:
        return p - 1.0, None
    return None, "outside [1, 2]"


def preference_from_alpaca(p) -> float | None:
    """AlpacaEval preference (1..2, 0 or 1.5 = draw) -> P(generator_2 wins); None if invalid."""
    return classify_preference(p)[0]


def preference_to_alpaca(p_second_wins: float | None) -> float | None:
    return None if p_second_wins is None else 1.0 + p_second_wins


def model_outputs(prompts: Sequence[str], outputs: Sequence[str], generator: str) -> list[dict]:
    return [{"instruction": p, "output": o, "generator": generator} for p, o in zip(prompts, outputs)]


def annotations(prompts, outputs_1, generator_1: str, outputs_2, generator_2: str,
                p_second_wins: Sequence[float | None]) -> list[dict]:
    return [{"instruction": p, "output_1": o1, "generator_1": generator_1, "output_2": o2,
             "generator_2": generator_2, "preference": preference_to_alpaca(w)}
            for p, o1, o2, w in zip(prompts, outputs_1, outputs_2, p_second_wins)]


class AnnotationFileError(ValueError):
    pass


def read_annotations(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationFileError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
    if not isinstance(rows, list):
        raise AnnotationFileError(f"{path}: expected a JSON list of annotations (AlpacaEval's annotations.json)")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "preference" not in r:
            raise AnnotationFileError(f"{path}: record {i} has no 'preference' field; each annotation needs "
                                      "output_1, output_2, generator_2 and preference (1–2)")
    return rows


def win_rates_by_generator(rows: list[dict]) -> dict[str, WinRate]:
    """Win rate of each generator_2 against its generator_1s."""
    groups: dict[str, list[float | None]] = {}
    for r in rows:
        groups.setdefault(str(r.get("generator_2", "model")), []).append(preference_from_alpaca(r["preference"]))
    return {g: win_rate(p) for g, p in sorted(groups.items())}


def summarise_annotation_file(path: str | Path, rows: list[dict]) -> list[dict]:
    """One row per (judge, generator_2) of one annotation file: win rate, SE, counts, and each kind
    of invalid record with its count and the index of the first one. Records without a
    generator_2 count as invalid rather than join a made-up generator."""
    groups: dict[tuple[str, str], dict] = {}
    for i, r in enumerate(rows):
        judge = str(r.get("annotator", "-"))
        gen = r.get("generator_2")
        key = (judge, str(gen) if gen is not None else "(no generator_2)")
        g = groups.setdefault(key, {"prefs": [], "invalid": {}})
        value, why = classify_preference(r["preference"]) if gen is not None else (None, "no generator_2")
        g["prefs"].append(value)
        if why:
            count, first = g["invalid"].get(why, (0, i))
            g["invalid"][why] = (count + 1, first)
    out = []
    for (judge, gen), g in sorted(groups.items()):
        w = win_rate(g["prefs"])
        out.append({"file": str(path), "judge": judge, "generator": gen, "win_rate": w.win_rate,
                    "standard_error": w.standard_error, "n": w.n, "draws": w.n_draws, "invalid": w.n_invalid,
                    "invalid_kinds": {k: {"count": c, "first_index": f} for k, (c, f) in g["invalid"].items()}})
    return out


# ------------------------------------------------------------------------- length control ---


LC_BLOCK = 500
LC_SETTLED_P = 0.2


def length_controlled_difference(prefs: dict[str, Sequence[float | None]], lengths: dict[str, Sequence[int]],
                                 reference_lengths: Sequence[int], a: str, b: str, *, resamples: int = 10000,
                                 seed: int = 0, key: str = "", full: dict[str, float] | None = None) -> dict:
    """LC win rate of policy a minus that of b on one test set, with a paired bootstrap interval:
    each draw resamples the inputs (the same draw for every policy, as they judged the same inputs)
    and refits the length GLM, instruction difficulty included, so the interval carries the fit's
    uncertainty. Draws whose fit fails (too few valid judgements) are skipped and counted. `full`:
    the LC win rates on all inputs, when the caller has them already.

    Up to `resamples` draws, in blocks of `LC_BLOCK`: a refit costs ~3 ms, so all 10000 draws cost
    ~30 s a comparison. They are needed only where p is small (the smallest p is 2/(draws+1), and
    Holm multiplies it by up to the claim family's size); once p > `LC_SETTLED_P`, no Holm
    threshold (≤ 0.05) is within Monte Carlo reach, so drawing stops."""
    from rlhflab.evaluation.length_control import length_controlled_win_rates
    from rlhflab.stats import interval, rng_for

    def lc(idx) -> dict[str, float]:
        return length_controlled_win_rates({p: [v[i] for i in idx] for p, v in prefs.items()},
                                           {p: [v[i] for i in idx] for p, v in lengths.items()},
                                           [reference_lengths[i] for i in idx])

    n = len(reference_lengths)
    full = full or lc(range(n))
    rng = rng_for(seed, key or f"lc-{a}-{b}")
    draws, skipped = [], 0
    for i in range(resamples):
        if i and i % LC_BLOCK == 0 and draws and interval(0.0, np.array(draws))["p_value"] > LC_SETTLED_P:
            break
        try:
            got = lc(rng.integers(0, n, size=n).tolist())
        except ValueError:
            skipped += 1
            continue
        draws.append(got[a] - got[b])
    if not draws:
        raise ValueError(f"length control {a} vs {b}: every bootstrap refit failed ({n} inputs)")
    raw = {p: 100 * mean([x for x in prefs[p] if x is not None]) for p in (a, b)}
    return {**interval(full[a] - full[b], np.array(draws)), "n": n, "skipped": skipped,
            "lc_a": full[a], "lc_b": full[b], "raw_a": raw[a], "raw_b": raw[b]}
