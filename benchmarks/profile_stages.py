"""Where the quickstart's time goes: every stage of a fresh `rlhflab run` under cProfile, its wall
time split into what the stages have in common (sampling, RM scoring, forward+backward passes of
training, optimiser steps, sentence encoding, judging, model loading and saving, tokenising), so
speed work starts from the largest cost. Prints a markdown table (pasted into benchmarks/README.md).

The categories are the cumulative time of entry functions that do not nest in one another here;
"forward & rest" is the rest of the stage: the training forward passes (which cProfile cannot
separate from sampling's own), data handling, Python bookkeeping, the report's plots. cProfile
adds overhead to Python-heavy code, so the shares are what to read, not the absolute seconds.

    python benchmarks/profile_stages.py [--config quickstart] [--set key=value ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rlhflab.config import load_config  # noqa: E402
from rlhflab.pipeline import Stage, run_pipeline  # noqa: E402
from rlhflab.report.readme import machine  # noqa: E402
from rlhflab.stages import REGISTRY  # noqa: E402

# category -> (file suffix, function name) of its entry points
CATEGORIES = {
    "sampling": [("rlhflab/generation.py", "sample")],
    "RM scoring": [("rlhflab/evaluation/reward_model.py", "score")],
    "backward": [("accelerate/accelerator.py", "backward")],
    "optimiser": [("rlhflab/training.py", "optimizer_step")],
    "sentence encoder": [("sentence_transformers/SentenceTransformer.py", "encode")],
    "judging": [("rlhflab/evaluation/annotations.py", "judge_pairs")],
    "load/save": [("transformers/modeling_utils.py", "from_pretrained"),
                  ("transformers/modeling_utils.py", "save_pretrained")],
}


def split(stats: pstats.Stats) -> dict[str, float]:
    out = dict.fromkeys(CATEGORIES, 0.0)
    for (file, _, func), (_, _, _, cum, _) in stats.stats.items():
        for cat, entries in CATEGORIES.items():
            if any(file.endswith(f) and func == name for f, name in entries):
                out[cat] += cum
    return out


def profiled(stage: Stage, rows: dict) -> Stage:
    def run(ctx):
        prof, t0 = cProfile.Profile(), time.perf_counter()
        prof.enable()
        try:
            return stage.run(ctx)
        finally:
            prof.disable()
            rows[stage.name] = (time.perf_counter() - t0, split(pstats.Stats(prof)))
    run.__module__ = stage.run.__module__  # the stage's own code fingerprint, key and config view
    return Stage(stage.name, stage.needs, stage.reads, run, stage.enabled, stage.files, stage.wants, stage.headline,
                 stage.select)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="quickstart")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--keep", type=Path, default=None, help="run folder to keep (default: a temporary one)")
    args = ap.parse_args()
    out = args.keep or Path(tempfile.mkdtemp())
    cfg = load_config(args.config, args.overrides + [f"output_dir={out}", "pipeline.progress=false"])
    rows: dict = {}
    run_pipeline(cfg, [profiled(s, rows) for s in REGISTRY], overwrite=True)
    cats = list(CATEGORIES)
    print(f"{args.config} under cProfile on {machine()}; seconds per stage and the share of each cost:\n")
    print("| stage | seconds | " + " | ".join(cats) + " | forward & rest |")
    print("|---" * (len(cats) + 3) + "|")
    total, sums = 0.0, dict.fromkeys(cats + ["other"], 0.0)
    for name, (secs, parts) in rows.items():
        other = max(0.0, secs - sum(parts.values()))
        total += secs
        for c in cats:
            sums[c] += parts[c]
        sums["other"] += other
        cells = [f"{100 * parts[c] / secs:.0f}%" if parts[c] >= 0.005 * secs else "" for c in cats]
        print(f"| {name} | {secs:.1f} | " + " | ".join(cells) + f" | {100 * other / secs:.0f}% |")
    print(f"| **all** | {total:.1f} | " + " | ".join(f"{100 * sums[c] / total:.0f}%" for c in cats)
          + f" | {100 * sums['other'] / total:.0f}% |")


if __name__ == "__main__":
    main()
