"""The downstream benchmarks in the report: ivison2024 table 1's layout and its two findings.

Claims, each over the benchmarks both policies were scored on, with a bootstrap that resamples
each benchmark's items within that benchmark (paired: both policies answered the same items):

- "PPO ≥ DPO on average": the overall average (per category, then over categories) of PPO's per-item
  scores minus DPO's;
- "<method>'s gains over SFT concentrate in instruction following": the mean gain over SFT on the
  instruction-following benchmarks minus the mean gain on the other categories' (ivison2024 §4: gains
  come mostly from instruction following and chat; AlpacaEval, the chat half, is rlhflab's eval stage).
"""

from __future__ import annotations

import numpy as np

from rlhflab.report import figures as F
from rlhflab.report.findings import RESAMPLES, claim_row
from rlhflab.stats import paired_differences, stratified_bootstrap

PPO_DPO_CLAIM = "PPO ≥ DPO on the downstream average (ivison2024 table 1)"
IF = "instruction following"


def downstream_section(rep, table: dict | None) -> None:
    if not table or not table.get("policies"):
        return
    tasks = table["tasks"]
    cats = list(dict.fromkeys(t["category"] for t in tasks))
    pols = list(table["policies"])

    def cell(p, name):
        r = table["policies"][p].get(name, {})
        if "skipped" in r:
            return "skipped"
        return "–" if r.get("score") is None else f"{r['score']:.1f}" + (f" ± {r['se']:.1f}" if r.get("se") else "")

    head = "| policy | " + " | ".join(f"{t['name']} ({t['category']})" for t in tasks) + " | average |"
    lines = [head, "|---" * (len(tasks) + 2) + "|"]
    for p in pols:
        avg = table["average"].get(p)
        lines.append(f"| {p} | " + " | ".join(cell(p, t["name"]) for t in tasks)
                     + f" | {'–' if avg is None else f'{avg:.1f}'} |")
    by_cat = ["| policy | " + " | ".join(cats) + " | average |", "|---" * (len(cats) + 2) + "|"]
    for p in pols:
        c = table["categories"].get(p, {})
        avg = table["average"].get(p)
        by_cat.append(f"| {p} | " + " | ".join(f"{c[k]:.1f}" if k in c else "–" for k in cats)
                      + f" | {'–' if avg is None else f'{avg:.1f}'} |")
    for p, d in table.get("delta_vs_sft", {}).items():
        by_cat.append(f"| {p} − sft | " + " | ".join(
            f"{_mean([d[t['name']] for t in tasks if t['category'] == k and t['name'] in d]):+.1f}"
            if any(t["category"] == k and t["name"] in d for t in tasks) else "–" for k in cats) + " | |")
    skipped = [t["name"] for t in tasks if any("skipped" in table["policies"][p].get(t["name"], {}) for p in pols)]
    note = (f"\n\nSkipped: {', '.join(skipped)} (they execute model-written code; "
            "`downstream.allow_code_execution: true` runs them)." if skipped else "")
    limit = f" on at most {table['limit']:g} items per task" if table.get("limit") else ""
    rep.add("Downstream benchmarks",
            f"Scores in percent through lm-evaluation-harness{limit} (± standard error over items):\n\n"
            + "\n".join(lines) + "\n\nPer category (ivison2024 table 1; the average is over categories), and "
            "each method's mean change against SFT:\n\n" + "\n".join(by_cat) + note)
    scores = {p: {k: (v, 0.0) for k, v in table["categories"].get(p, {}).items()} for p in pols}
    if any(scores.values()):
        rep.figure("downstream", "Downstream benchmarks by category",
                   "Category averages of the downstream suite per policy (ivison2024 table 1).",
                   lambda ax: F.grouped_bars(ax, scores, "score (%)", cats))


def _mean(xs):
    return sum(xs) / len(xs)


def _paired(items: dict, a: str, b: str, names: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for n in names:
        xa, xb = (items.get(a) or {}).get(n), (items.get(b) or {}).get(n)
        if xa and xb and len(xa) == len(xb):
            out[n] = 100 * paired_differences(xa, xb)
    return out


def downstream_claims(table: dict | None, items: dict | None, seed: int = 0) -> list[dict]:
    if not table or not items:
        return []
    category = {t["name"]: t["category"] for t in table["tasks"]}
    names = list(category)
    rows = []
    if {"ppo", "dpo"} <= set(items):
        diffs = _paired(items, "ppo", "dpo", names)

        def overall(means: dict[str, float]) -> float:
            cats: dict[str, list[float]] = {}
            for n, m in means.items():
                cats.setdefault(category[n], []).append(m)
            return _mean([_mean(v) for v in cats.values()])

        st = stratified_bootstrap(diffs, overall, resamples=RESAMPLES, seed=seed, key="downstream-ppo-dpo") \
            if diffs else None
        rows.append(claim_row(PPO_DPO_CLAIM, 1, st and {**st, "n": sum(st["n"].values())},
                         f"PPO − DPO over {len(diffs)} benchmarks, items paired"))
    for method in ("ppo", "dpo"):
        if method not in items or "sft" not in items:
            continue
        diffs = _paired(items, method, "sft", names)
        inside = [n for n in diffs if category[n] == IF]
        outside = [n for n in diffs if category[n] != IF]
        claim = f"{method.upper()}'s gains over SFT concentrate in instruction following (ivison2024 §4)"
        if not inside or not outside:
            rows.append(claim_row(claim, 1, None, "needs instruction-following and other benchmarks"))
            continue
        st = stratified_bootstrap(diffs, lambda m: _mean([m[n] for n in inside]) - _mean([m[n] for n in outside]),
                                  resamples=RESAMPLES, seed=seed, key=f"downstream-{method}-if")
        rows.append(claim_row(claim, 1, {**st, "n": sum(st["n"].values())},
                         f"mean gain on {', '.join(inside)} minus mean gain on {len(outside)} other benchmarks"))
    return rows
