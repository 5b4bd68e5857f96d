"""Wall time of the full embedded quickstart (`rlhflab run`) on a fresh run folder, per stage,
against the 10-minute budget for 2 CPU cores (issue 7), then the README's measured tables printed
from that run (rlhflab.report.readme), so the README can be regenerated from a fresh run. Offline;
nothing is downloaded.

    python benchmarks/quickstart_time.py [--budget 600] [--set KEY=VALUE ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from rlhflab.config import load_config  # noqa: E402
from rlhflab.pipeline import run_pipeline  # noqa: E402
from rlhflab.report.readme import machine, readme_tables  # noqa: E402
from rlhflab.stages import REGISTRY  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--keep", default=None, help="write the run here instead of a temporary folder")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.keep or scratch
        cfg = load_config("quickstart", [f"output_dir={tmp}", "pipeline.progress=false", *a.overrides])
        started = time.perf_counter()
        results = run_pipeline(cfg, REGISTRY)
        total = time.perf_counter() - started
        findings = results[-1].metrics if results and results[-1].name == "report" else {}
        tables = readme_tables(cfg.run_dir, {stage.name: stage.headline for stage in REGISTRY})
    print(f"quickstart on {machine()}")
    for r in results:
        print(f"  {r.name:12s} {r.seconds:7.1f} s")
    print(f"  {'total':12s} {total:7.1f} s   budget {a.budget:.0f} s   ratio total/budget = {total / a.budget:.2f}")
    if findings:
        print(f"  findings: {findings['findings_reproduced']} reproduced, {findings['findings_contradicted']} "
              f"contradicted, {findings['findings_inconclusive']} inconclusive of {findings['findings_checked']} checked")
    print("\nREADME tables from this run:\n")
    print(tables)


if __name__ == "__main__":
    main()
