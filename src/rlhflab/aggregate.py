"""Across-seed aggregation of finished runs: the seeds' headline numbers with error bars over seeds.

`aggregate_runs([run_dir, ...], out_dir)` reads each run's `eval/results.json`,
`diversity/diversity.json` and `report/findings.json`, and writes `aggregate.json`, `aggregate.md`
and two figures: PvR win rate per policy and test set (ID sets first, as the first run's eval
results declare them), and per-input diversity per policy, each as mean ± standard error over seeds
(`rlhflab.stats.mean_se`: std / √seeds). For each finding: its per-seed estimates with a 95%
t-interval over seeds (t, not 1.96: there are few seeds), the verdict that interval gives in the
claim's direction, and how many seeds' own verdicts were reproduced / contradicted / inconclusive.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import mean

from rlhflab.data.records import write_json
from rlhflab.report.figures import grouped_bars, save_figure
from rlhflab.report.findings import ordered_sets
from rlhflab.stats import mean_se, t_interval, verdict


def over_seeds(values: list[float]) -> dict:
    """{"mean", "se", "seeds"}: mean and standard error of one number across the seeds' runs."""
    m = mean_se(values)
    return {"mean": m["mean"], "se": m["se"], "seeds": m["n"]}


def _load(run: Path, rel: str):
    p = run / rel
    if not p.exists():
        raise FileNotFoundError(f"{p}: missing; aggregate finished runs (rlhflab run ... until the report)")
    return json.loads(p.read_text(encoding="utf-8"))


def aggregate_runs(runs: list[Path], out_dir: Path) -> dict:
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ValueError("aggregate at least two runs (one per seed)")
    evals = [_load(r, "eval/results.json") for r in runs]
    divs = [_load(r, "diversity/diversity.json") for r in runs]
    finds = [_load(r, "report/findings.json") for r in runs]
    policies = sorted(set.intersection(*(set(e["pvr"]) for e in evals)))
    common = set.intersection(*(set(e["test_sets"]) for e in evals))
    sets = [s for s in ordered_sets(evals[0]) if s in common]  # ID sets first, as the first run declares them
    pvr = {p: {s: over_seeds([e["pvr"][p][s]["win_rate"] for e in evals]) for s in sets} for p in policies}
    gap = {p: over_seeds([mean(e["gap"][p].values()) for e in evals]) for p in policies
           if all((e.get("gap") or {}).get(p) for e in evals)}
    div_policies = sorted(set.intersection(*(set(d["policies"]) for d in divs)))
    metrics = sorted(set.intersection(*(set(d["policies"][p]) for d in divs for p in div_policies))) if div_policies else []
    diversity = {p: {m: over_seeds([d["policies"][p][m]["per_input"]["mean"] for d in divs]) for m in metrics}
                 for p in div_policies}
    findings = findings_over_seeds(finds)
    result = {"runs": [str(r) for r in runs], "pvr": pvr, "mean_gap": gap, "per_input_diversity": diversity,
              "findings": findings}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "aggregate.json", result)
    _bars(out_dir / "pvr_over_seeds.png", pvr, "PvR win rate (%), mean ± SE over seeds", sets)
    if diversity:
        _bars(out_dir / "diversity_over_seeds.png", diversity, "per-input diversity, mean ± SE over seeds")
    lines = [f"# rlhflab: {len(runs)} runs", "", "## Findings", "",
             "| claim | over seeds | mean Δ, 95% t-interval over seeds | seeds: reproduced / contradicted / "
             "inconclusive |", "|---|---|---|---|"]
    for c, v in findings.items():
        iv = (f"{v['mean']:+.3g} [{v['ci_low']:+.3g}, {v['ci_high']:+.3g}]" if v.get("mean") is not None
              and not math.isnan(v["ci_low"]) else "–")
        lines.append(f"| {c} | {v['verdict']} | {iv} | {v['reproduced_in']} / {v['contradicted_in']} / "
                     f"{v['inconclusive_in']} of {v['checked_in']} |")
    lines += ["", "Over seeds: the claim's verdict from the t-interval of the per-seed estimates (each seed's own "
              "verdict is from its paired bootstrap with Holm's correction; see each run's report)."]
    lines += ["", "## PvR win rate (%), mean ± SE over seeds", "", "| policy | " + " | ".join(sets) + " | mean gap |",
              "|---" * (len(sets) + 2) + "|"]
    for p in policies:
        g = gap.get(p)
        lines.append(f"| {p} | " + " | ".join(f"{pvr[p][s]['mean']:.1f} ± {pvr[p][s]['se']:.1f}" for s in sets)
                     + (f" | {g['mean']:.1f} ± {g['se']:.1f} |" if g else " | – |"))
    lines += ["", "![PvR](pvr_over_seeds.png)", ""]
    if diversity:
        lines += ["## Per-input diversity, mean ± SE over seeds", "", "| policy | " + " | ".join(metrics) + " |",
                  "|---" * (len(metrics) + 1) + "|"]
        lines += [f"| {p} | " + " | ".join(f"{diversity[p][m]['mean']:.3f} ± {diversity[p][m]['se']:.3f}"
                                          for m in metrics) + " |" for p in div_policies]
        lines += ["", "![diversity](diversity_over_seeds.png)"]
    (out_dir / "aggregate.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def findings_over_seeds(per_run: list[list[dict]]) -> dict[str, dict]:
    """claim -> per-seed verdict counts, and the t-interval of the per-seed estimates with the
    verdict it gives in the claim's direction ("not run" where no seed tested the claim)."""
    rows: dict[str, list[dict]] = {}
    for findings in per_run:
        for row in findings:
            rows.setdefault(row["claim"], []).append(row)
    out = {}
    for claim, rs in rows.items():
        verdicts = [r.get("verdict") for r in rs]
        tested = [r for r in rs if r.get("estimate") is not None]
        entry = {"reproduced_in": verdicts.count("reproduced"), "contradicted_in": verdicts.count("contradicted"),
                 "inconclusive_in": verdicts.count("inconclusive"), "checked_in": len(tested),
                 "estimates": [r["estimate"] for r in tested], "verdict": "not run"}
        if tested:
            iv = t_interval(entry["estimates"])
            entry.update(mean=iv["mean"], ci_low=iv["ci_low"], ci_high=iv["ci_high"])
            entry["verdict"] = ("inconclusive" if math.isnan(iv["ci_low"])
                                else verdict(iv["ci_low"], iv["ci_high"], tested[0]["direction"]))
        out[claim] = entry
    return out


def _bars(path: Path, table: dict[str, dict[str, dict]], title: str, groups: list[str] | None = None) -> None:
    bars = {p: {g: (v["mean"], 0.0 if math.isnan(v["se"]) else v["se"]) for g, v in row.items()}
            for p, row in table.items()}
    save_figure(path, title, lambda ax: grouped_bars(ax, bars, "", groups))
