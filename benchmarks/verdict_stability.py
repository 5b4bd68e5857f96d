"""Do three seeds decide the same? The embedded default run on two disjoint seed sets (default
{0, 1, 2} and {3, 4, 5}), each aggregated on its own (random-effects over seeds, then the findings'
multiplicity control), and every claim's over-seed verdict printed side by side. Beside it, what
decides whether a seed's study can say anything: each seed's reward models against the annotators'
labels and against the gold ordering (with the ceiling the label noise allows), and its PPO margin,
the selected checkpoint's validation gold reward minus the SFT model's. Then the wall time of each
set's run. Offline; the two sets share the data and the base model, as one experiment's seeds do.

    python benchmarks/verdict_stability.py [--sets 0,1,2 3,4,5] [--config quickstart]
                                           [--set KEY=VALUE ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rlhflab.aggregate import aggregate_runs  # noqa: E402
from rlhflab.config import load_config  # noqa: E402
from rlhflab.experiment import run_experiment  # noqa: E402
from rlhflab.provenance import describe, machine  # noqa: E402
from rlhflab.stages import REGISTRY  # noqa: E402


def seed_set(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give seeds as 0,1,2") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: an aggregate needs two or more distinct seeds")
    return seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=seed_set, nargs=2, default=[[0, 1, 2], [3, 4, 5]], metavar="SEEDS")
    ap.add_argument("--config", default="quickstart")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE, as rlhflab run --set")
    ap.add_argument("--keep", default=None, help="write the runs here instead of a temporary folder")
    a = ap.parse_args(argv)
    if set(a.sets[0]) & set(a.sets[1]):
        ap.error("--sets: the two seed sets must be disjoint")
    return a


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def seed_row(run: Path) -> dict:
    """One seed's reward models and PPO margin, from its run folder."""
    ppo = _json(run / "ppo" / "manifest.json").get("metrics") or {}
    first = next((json.loads(line) for line in (run / "ppo" / "metrics.jsonl").read_text().splitlines()
                  if "val_gold" in line), {}) if (run / "ppo" / "metrics.jsonl").exists() else {}
    table = _json(run / "rm_eval" / "table.json")
    models, ceiling = table.get("models") or {}, table.get("annotator_gold_agreement") or {}
    row = {"sft_val_gold": first.get("val_gold"), "ppo_val_gold": ppo.get("selected_val_gold"),
           "ppo_step": (ppo.get("selected") or {}).get("step"), "ppo_val_kl": ppo.get("selected_val_kl"),
           "label_ceiling": ceiling.get("test_id")}
    for name in ("rm", "rm_proxy"):
        m = models.get(name) or {}
        row[f"{name}_labels"] = (m.get("accuracy") or {}).get("test_id")
        row[f"{name}_gold"] = (m.get("gold_agreement") or {}).get("test_id")
    if row["sft_val_gold"] is not None and row["ppo_val_gold"] is not None:
        row["margin"] = row["ppo_val_gold"] - row["sft_val_gold"]
    return row


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def print_seeds(rows: dict[int, dict]) -> None:
    print("| seed | RM acc. (labels) | RM acc. (gold) | label ceiling | proxy RM (gold) | SFT val gold "
          "| PPO val gold (step) | margin | KL |")
    print("|---" * 9 + "|")
    for seed, r in rows.items():
        print(f"| {seed} | {_f(r['rm_labels'])} | {_f(r['rm_gold'])} | {_f(r['label_ceiling'])} "
              f"| {_f(r['rm_proxy_gold'])} | {_f(r['sft_val_gold'])} | {_f(r['ppo_val_gold'])} ({r['ppo_step']}) "
              f"| {_f(r.get('margin'))} | {_f(r['ppo_val_kl'], 2)} |")
    margins = [r["margin"] for r in rows.values() if r.get("margin") is not None]
    if margins:
        print(f"\nPPO margin on validation gold: min {min(margins):+.3f}, mean {sum(margins) / len(margins):+.3f} "
              f"over {len(margins)} seeds (RM accuracies on the ID test pairs)")


def _cell(v: dict | None) -> str:
    if not v:
        return "–"
    if "ci_low" not in v:
        return f"{v['verdict']}"
    return (f"{v['verdict']} {v['estimate']:+.3g} [{v['ci_low']:+.3g}, {v['ci_high']:+.3g}] "
            f"p_adj {v['p_holm']:.2g} ({v['reproduced_in']}/{v['checked_in']})")


def print_verdicts(names: list[str], findings: list[dict]) -> list[str]:
    """The side-by-side table; returns the claims whose verdicts differ between the sets."""
    claims = list(dict.fromkeys([c for f in findings for c in f]))
    print(f"| claim | {names[0]} | {names[1]} | same |")
    print("|---|---|---|---|")
    differ = []
    for c in claims:
        a, b = (f.get(c) for f in findings)
        same = bool(a and b and a["verdict"] == b["verdict"])
        if not same:
            differ.append(c)
        print(f"| {c} | {_cell(a)} | {_cell(b)} | {'yes' if same else '**no**'} |")
    return differ


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(a.keep or scratch)
        results, seconds, seeds_rows = [], [], {}
        for seeds in a.sets:
            cfg = load_config(a.config, [f"output_dir={root}", "pipeline.progress=false",
                                         f"seeds=[{','.join(map(str, seeds))}]", *a.overrides])
            runs: list[Path] = []
            started = time.perf_counter()
            run_experiment(cfg, REGISTRY, on_done=lambda c, r, s: runs.append(c.run_dir))
            seconds.append(time.perf_counter() - started)
            name = "seeds " + ",".join(map(str, seeds))
            agg = aggregate_runs(runs, root / f"verdicts-{'-'.join(map(str, seeds))}")
            results.append(agg["findings"])
            seeds_rows.update({s: seed_row(r) for s, r in zip(seeds, runs)})
        names = ["seeds " + ",".join(map(str, s)) for s in a.sets]
        print(f"{a.config}: verdicts over seeds on two disjoint seed sets, on {describe(machine())}\n")
        print_seeds(seeds_rows)
        print()
        differ = print_verdicts(names, results)
        print(f"\n{len(differ)} of {len({c for f in results for c in f})} claims get different verdicts from the two sets")
        for name, s in zip(names, seconds):
            print(f"{name}: {s:.0f} s for the run (its seeds, then their aggregate)")
        return {"sets": a.sets, "findings": results, "seeds": seeds_rows, "seconds": seconds, "differ": differ}


if __name__ == "__main__":
    main()
