"""How many inputs per test set does a study need to decide its claims over seeds? A power
calculation for the over-seed test rlhflab runs (rlhflab.seed_inference: random effects with the
Hartung–Knapp–Sidik–Jonkman variance, t on k − 1 df), with the multiplicity control of the
findings (Holm in the primary family, which gates Holm in the secondary one).

From finished runs of one config (one per seed) it reads, per claim, each seed's estimate and SE
(from its 95% interval) and the number of paired inputs n behind it. The per-input standard
deviation of the paired difference is σ = SE·√n; the between-seed variance τ² is the
DerSimonian–Laird estimate over the seeds. Then, by simulation with the library's own test, the
chance that k seeds decide the claim (its adjusted p below α, on the claimed side) at each n, for
the effect the seeds measured or one given with --effect (e.g. the size the papers report). The
adjusted level is the worst case of each family: α / (primary claims) for a primary claim, α /
(secondary claims) for a secondary one. Larger n only shrinks σ²/n: where τ² dominates, no eval
size decides the claim, and the remedy is in training (every seed learning alike) or more seeds.

    python benchmarks/power.py runs/quickstart-s0 runs/quickstart-s1 runs/quickstart-s2
        [--seeds 3] [--effect CLAIM=POINTS ...] [--power 0.8] [--sims 2000] [--claims primary|all]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from rlhflab.report.findings import ALPHA
from rlhflab.stats import random_effects, se_from_interval

N_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run folders of one config, one per seed")
    ap.add_argument("--seeds", type=int, default=None, help="seeds k of the planned study (default: as many as runs)")
    ap.add_argument("--effect", action="append", default=[], metavar="CLAIM=VALUE",
                    help="assume this effect for a claim (its name's start) instead of the measured one")
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--claims", choices=("primary", "all"), default="all")
    a = ap.parse_args(argv)
    if len(a.runs) < 2:
        ap.error("give two or more runs (seeds): τ² needs a spread over seeds")
    if a.seeds is not None and a.seeds < 2:
        ap.error("--seeds: two or more")
    return a


def claim_inputs(runs: list[Path]) -> dict[str, dict]:
    """claim -> {"family", "unit", "direction", "estimates", "ses", "n"} over the runs that checked it."""
    out: dict[str, dict] = {}
    for run in runs:
        path = run / "report" / "findings.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: not a finished run (no report/findings.json); run `rlhflab run` first")
        for f in json.loads(path.read_text(encoding="utf-8")):
            if f.get("estimate") is None or not f.get("n") or not all(
                    isinstance(f.get(k), (int, float)) and math.isfinite(f[k]) for k in ("ci_low", "ci_high")):
                continue
            c = out.setdefault(f["claim"], {"family": f.get("family", "secondary"), "unit": f.get("unit"),
                                            "direction": f["direction"], "estimates": [], "ses": [], "n": []})
            c["estimates"].append(f["estimate"])
            c["ses"].append(se_from_interval(f["ci_low"], f["ci_high"]))
            # a claim over several sets records n per set: every set's inputs scale together, so its SE
            # goes as 1/√(mean n)
            c["n"].append(float(np.mean(list(f["n"].values()))) if isinstance(f["n"], dict) else float(f["n"]))
    return {k: v for k, v in out.items() if len(v["estimates"]) >= 2}


def decided_fraction(delta: float, sigma: float, tau2: float, n: int, k: int, level: float, direction: int,
                     sims: int, rng: np.random.Generator) -> float:
    """Share of simulated k-seed studies whose random-effects p is below `level` on the claimed side."""
    se = sigma / math.sqrt(n)
    ys = rng.normal(delta, math.sqrt(tau2 + se * se), size=(sims, k))
    hits = 0
    for y in ys:
        r = random_effects(y.tolist(), [se] * k)
        hits += r["p_value"] < level and r["estimate"] * direction > 0
    return hits / sims


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    claims = claim_inputs(a.runs)
    sizes = {fam: sum(v["family"] == fam for v in claims.values()) for fam in ("primary", "secondary")}
    if a.claims == "primary":
        claims = {c: v for c, v in claims.items() if v["family"] == "primary"}
    k = a.seeds or len(a.runs)
    effects = dict(e.split("=", 1) for e in a.effect)
    rng = np.random.default_rng(0)
    print(f"{k} seeds; α = {ALPHA}; worst-case levels: primary α/{sizes['primary']}, secondary "
          f"α/{sizes['secondary']}; power wanted {a.power:g}; {a.sims} simulated studies per cell\n")
    print("| claim | family | effect | σ per input | τ between seeds | n now | power now | n for power |")
    print("|---|---|---|---|---|---|---|---|")
    table = {}
    for claim, v in claims.items():
        combined = random_effects(v["estimates"], v["ses"])
        given = next((float(x) for name, x in effects.items() if claim.startswith(name)), None)
        delta = combined["estimate"] if given is None else given
        sigma = float(np.mean([se * math.sqrt(n) for se, n in zip(v["ses"], v["n"])]))
        level = ALPHA / max(1, sizes[v["family"]])
        n_now = int(round(float(np.mean(v["n"]))))
        now = decided_fraction(delta, sigma, combined["tau2"], n_now, k, level, v["direction"], a.sims, rng)
        needed = next((n for n in N_GRID if decided_fraction(delta, sigma, combined["tau2"], n, k, level,
                                                             v["direction"], a.sims, rng) >= a.power), None)
        # with every seed's own noise gone, only τ² is left: below the power wanted, no n decides the claim
        limit = decided_fraction(delta, sigma, combined["tau2"], 10**12, k, level, v["direction"], a.sims, rng)
        table[claim] = {"family": v["family"], "effect": delta, "sigma": sigma, "tau": math.sqrt(combined["tau2"]),
                        "n_now": n_now, "power_now": now, "n_needed": needed, "power_unlimited_n": limit}
        why = f"never: {limit:.2f} with unlimited inputs (τ)" if limit < a.power else f"> {N_GRID[-1]}"
        print(f"| {claim} | {v['family']} | {delta:+.3g}{' (given)' if given is not None else ''} | {sigma:.3g} "
              f"| {math.sqrt(combined['tau2']):.3g} | {n_now} | {now:.2f} | {needed if needed is not None else why} |")
    return table


if __name__ == "__main__":
    main()
