"""Wall time of the embedded default (`rlhflab run`: the quickstart's three seeds, sharing the data
and the base model, then the aggregate over seeds) on a fresh output folder, per stage and seed,
against the budgets of issue 18: the whole default run ≤ 600 s and one seed's run ≤ 240 s on 2 CPU
cores. Then the README's measured tables, printed from this run (rlhflab.report.readme and the
aggregate), so the README can be regenerated from a fresh run. Offline; nothing is downloaded.

    python benchmarks/quickstart_time.py [--seeds 3] [--budget 600] [--seed-budget 240] [--set KEY=VALUE ...]
                                         [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rlhflab.config import load_config  # noqa: E402
from rlhflab.experiment import run_experiment, with_seed_count  # noqa: E402
from rlhflab.report.readme import machine, readme_tables  # noqa: E402
from rlhflab.stages import REGISTRY  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=None, help="default: the quickstart's (3)")
    ap.add_argument("--budget", type=float, default=600.0, help="seconds for the whole default run")
    ap.add_argument("--seed-budget", type=float, default=240.0, help="seconds for one seed's run")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--keep", default=None, help="write the runs here instead of a temporary folder")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cfg = load_config("quickstart", [f"output_dir={a.keep or scratch}", "pipeline.progress=false", *a.overrides])
        cfg = cfg if a.seeds is None else with_seed_count(cfg, a.seeds)
        runs: list[tuple] = []
        started = time.perf_counter()
        aggregate = run_experiment(cfg, REGISTRY, on_done=lambda c, results, s: runs.append((c, results, s)))
        total = time.perf_counter() - started
        report(a, runs, total, aggregate)


def report(a, runs: list[tuple], total: float, aggregate: Path | None) -> None:
    stages = [r.name for r in runs[0][1]]
    print(f"quickstart, {len(runs)} seed(s), on {machine()}\n")
    print("| stage | " + " | ".join(f"seed {c.seed}" for c, _, _ in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for name in stages:
        cells = []
        for _, results, _ in runs:
            r = next((r for r in results if r.name == name), None)
            cells.append("–" if r is None else ("shared" if r.status.startswith("shared") else f"{r.seconds:.1f}"))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| **run** | " + " | ".join(f"**{s:.1f}**" for _, _, s in runs) + " |")
    rest = total - sum(s for _, _, s in runs)
    print(f"\naggregate over seeds: {rest:.1f} s")
    print(f"total {total:.1f} s   budget {a.budget:.0f} s   ratio total/budget = {total / a.budget:.2f}")
    for c, _, s in runs:
        print(f"seed {c.seed}: {s:.1f} s   budget {a.seed_budget:.0f} s   ratio = {s / a.seed_budget:.2f}")
    first = runs[0][0]
    print(f"\nREADME tables from seed {first.seed}'s run:\n")
    print(readme_tables(first.run_dir, {stage.name: stage.headline for stage in REGISTRY}))
    if aggregate is not None:
        print(f"\nOver seeds ({aggregate / 'aggregate.md'}):\n")
        print((aggregate / "aggregate.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
