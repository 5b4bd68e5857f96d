"""Across-seed aggregation of finished runs: the seeds' headline numbers with error bars over seeds,
and each claim's verdict over seeds.

`aggregate_runs([run_dir, ...], out_dir)` first checks that the runs can be combined: distinct
folders, distinct seeds, and configs (`config.yaml`) equal in everything but the seed and the
run's name and place; it refuses anything else with a ValueError that names the runs and the keys.
It then reads each run's `eval/results.json`, `diversity/diversity.json`, `report/findings.json`
and stage manifests, and writes `aggregate.json`, `aggregate.md` and figures: PvR win rate per
policy and test set (ID sets first, as the first run's eval results declare them) and per-input
diversity per policy, each as mean ± standard error over seeds (`rlhflab.stats.mean_se`), and a
forest plot of the findings. Each finding's over-seed verdict is a random-effects combination of
the per-seed estimates with Holm's correction (`rlhflab.seed_inference`). Each run's seed,
rlhflab version and commit, torch version, machine and data artefact are recorded beside the numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import mean

import yaml

from rlhflab.data.records import flatten, write_json
from rlhflab.provenance import describe
from rlhflab.report.figures import grouped_bars, save_figure
from rlhflab.report.claims import gap_pairs, mean_gap
from rlhflab.report.findings import ordered_sets
from rlhflab.seed_inference import FOREST, findings_over_seeds, findings_table, forest_plot, method_note
from rlhflab.stats import mean_se

# config keys that differ between the seeds' runs of one experiment by design
SEED_KEYS = ("seed", "seeds", "name", "output_dir")
FIX = "aggregate the runs of one config that differ only in seed (rlhflab run CONFIG --seeds N makes them)"


def over_seeds(values: list[float]) -> dict:
    """{"mean", "se", "seeds"}: mean and standard error of one number across the seeds' runs."""
    m = mean_se(values)
    return {"mean": m["mean"], "se": m["se"], "seeds": m["n"]}


def _missing(p: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{p}: missing; aggregate finished runs (rlhflab run ... until the report)")


def _load(run: Path, rel: str):
    p = run / rel
    if not p.exists():
        raise _missing(p)
    return json.loads(p.read_text(encoding="utf-8"))


def _config(run: Path) -> dict:
    p = run / "config.yaml"
    if not p.exists():
        raise _missing(p)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:  # the CLI reports ValueErrors as one line
        raise ValueError(f"{p}: not readable YAML ({e}); restore it from the run or rerun the run") from e


def _manifests(run: Path) -> list[dict]:
    """The run's stage manifests in the order the stages ran."""
    # hidden folders are a killed or replaced stage's leftovers, not the run's stages
    found = [json.loads(p.read_text(encoding="utf-8")) for p in run.glob("*/manifest.json")
             if not p.parent.name.startswith(".")]
    return sorted(found, key=lambda m: str(m.get("started", "")))


def check_combinable(runs: list[Path], seeds: list, configs: list[dict]) -> None:
    """Raise ValueError unless the runs are distinct folders with distinct seeds whose configs
    (nested dicts, as in config.yaml) agree in every key but SEED_KEYS: one folder twice would
    count a seed twice and shrink the spread, and another config's run is another experiment."""
    seen: dict[Path, Path] = {}
    for r in runs:
        if (where := Path(r).resolve()) in seen:
            raise ValueError(f"{seen[where]} and {r} are the same run folder: give each seed's run once")
        seen[where] = r
    by_seed: dict = {}
    for r, s in zip(runs, seeds):
        if s in by_seed:
            raise ValueError(f"{by_seed[s]} and {r} both ran seed {s}: the spread over seeds needs one run per seed; "
                             + FIX)
        by_seed[s] = r
    flat = [{k: v for k, v in flatten(c).items() if k not in SEED_KEYS} for c in configs]
    for r, f in zip(runs[1:], flat[1:]):
        differ = sorted(k for k in set(flat[0]) | set(f) if flat[0].get(k, "<unset>") != f.get(k, "<unset>"))
        if differ:
            shown = ", ".join(differ[:8]) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")
            raise ValueError(f"{runs[0]} and {r} differ in config beyond the seed ({shown}): " + FIX)


def run_record(run: Path, seed, manifests: list[dict]) -> dict:
    """Where a run's numbers came from: its seed, the rlhflab version and commit, torch's version, the machines its
    stages ran on (each distinct value, in stage order), and its data stage's artefact id."""
    def distinct(values) -> list:
        return list(dict.fromkeys(v for v in values if v is not None))

    versions = [m.get("versions") or {} for m in manifests]
    return {"run": str(run), "seed": seed, "rlhflab": distinct(v.get("rlhflab") for v in versions),
            "commit": distinct(v.get("rlhflab_commit") for v in versions),
            "torch": distinct(v.get("torch") for v in versions),
            "machines": distinct(describe(m.get("machine")) for m in manifests),
            "cpu_families": distinct((m.get("machine") or {}).get("family") for m in manifests),
            "data": next((m.get("artefact_id") for m in manifests if m.get("stage") == "data"), None)}


def provenance_lines(records: list[dict]) -> list[str]:
    """The aggregate.md section on the runs: a table, and a warning where CPU families differ."""
    def cell(values: list) -> str:
        return ", ".join(map(str, values)) or "not recorded"

    lines = ["## Runs", "", "| run | seed | rlhflab | commit | torch | machine | data artefact |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['seed']} | {cell(r['rlhflab'])} | {cell([c[:12] for c in r.get('commit', [])])} | "
              f"{cell(r['torch'])} | {cell(r['machines'])} | {r['data'] or 'not recorded'} |" for r in records]
    families = list(dict.fromkeys(f for r in records for f in r["cpu_families"]))
    if len(families) > 1:
        lines += ["", f"**These runs ran on different CPU families ({'; '.join(families)}).** Their numbers differ "
                  "by the float kernels of each machine as well as by seed, so the spread over seeds here also "
                  "holds the machines' differences."]
    if len({r["data"] for r in records}) > 1:
        lines += ["", "**The runs used different data artefacts**: the spread over seeds includes the data's."]
    return lines


def aggregate_runs(runs: list[Path], out_dir: Path) -> dict:
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise ValueError("aggregate at least two runs (one per seed)")
    configs = [_config(r) for r in runs]
    seeds = [c.get("seed") for c in configs]
    check_combinable(runs, seeds, configs)
    evals = [_load(r, "eval/results.json") for r in runs]
    divs = [_load(r, "diversity/diversity.json") for r in runs]
    finds = [_load(r, "report/findings.json") for r in runs]
    policies = sorted(set.intersection(*(set(e["pvr"]) for e in evals)))
    common = set.intersection(*(set(e["test_sets"]) for e in evals))
    sets = [s for s in ordered_sets(evals[0]) if s in common]  # ID sets first, as the first run declares them
    pvr = {p: {s: over_seeds([e["pvr"][p][s]["win_rate"] for e in evals]) for s in sets} for p in policies}
    # each run's one mean gap, as its report defines it: over the OOD sets informative in that run
    gaps = {p: [mean_gap(e["gap"][p], gap_pairs(e)) if (e.get("gap") or {}).get(p) else None for e in evals]
            for p in policies}
    gap = {p: over_seeds(g) for p, g in gaps.items() if all(x is not None for x in g)}
    div_policies = sorted(set.intersection(*(set(d["policies"]) for d in divs)))
    metrics = sorted(set.intersection(*(set(d["policies"][p]) for d in divs for p in div_policies))) if div_policies else []
    diversity = {p: {m: over_seeds([d["policies"][p][m]["per_input"]["mean"] for d in divs]) for m in metrics}
                 for p in div_policies}
    findings = findings_over_seeds(finds, seeds)
    records = [run_record(r, s, _manifests(r)) for r, s in zip(runs, seeds)]
    note = method_note(findings, len(runs))
    result = {"runs": records, "pvr": pvr, "mean_gap": gap, "per_input_diversity": diversity,
              "findings": findings, "method": note}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "aggregate.json", result)
    _bars(out_dir / "pvr_over_seeds.png", pvr, "PvR win rate (%), mean ± SE over seeds", sets)
    if diversity:
        _bars(out_dir / "diversity_over_seeds.png", diversity, "per-input diversity, mean ± SE over seeds")
    forest = forest_plot(out_dir / FOREST, findings)
    lines = [f"# rlhflab: {len(runs)} runs (seeds {', '.join(map(str, seeds))})", "", "## Findings over seeds", "",
             *findings_table(findings), "", note, ""]
    lines += [f"![findings over seeds]({FOREST})", ""] if forest else []
    lines += provenance_lines(records)
    lines += ["", "## PvR win rate (%), mean ± SE over seeds", "", "| policy | " + " | ".join(sets) + " | mean gap |",
              "|---" * (len(sets) + 2) + "|"]
    for p in policies:
        g = gap.get(p)
        lines.append(f"| {p} | " + " | ".join(f"{pvr[p][s]['mean']:.1f} ± {pvr[p][s]['se']:.1f}" for s in sets)
                     + (f" | {g['mean']:.1f} ± {g['se']:.1f} |" if g else " | – |"))
    lines += ["", "Mean gap: ID minus OOD win rate averaged over the OOD sets that are informative in each run "
              "(the sets its report's gap claims use; a set where a policy scores below 2 points carries no "
              "gap), then mean ± SE over seeds.", "", "![PvR](pvr_over_seeds.png)", ""]
    if diversity:
        lines += ["## Per-input diversity, mean ± SE over seeds", "", "| policy | " + " | ".join(metrics) + " |",
                  "|---" * (len(metrics) + 1) + "|"]
        lines += [f"| {p} | " + " | ".join(f"{diversity[p][m]['mean']:.3f} ± {diversity[p][m]['se']:.3f}"
                                          for m in metrics) + " |" for p in div_policies]
        lines += ["", "![diversity](diversity_over_seeds.png)"]
    (out_dir / "aggregate.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def _bars(path: Path, table: dict[str, dict[str, dict]], title: str, groups: list[str] | None = None) -> None:
    bars = {p: {g: (v["mean"], 0.0 if math.isnan(v["se"]) else v["se"]) for g, v in row.items()}
            for p, row in table.items()}
    save_figure(path, title, lambda ax: grouped_bars(ax, bars, "", groups))
