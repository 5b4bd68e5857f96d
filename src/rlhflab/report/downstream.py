"""The downstream benchmarks in the report: ivison2024 table 1's layout and its two findings.

Claims, each over the benchmarks both policies were scored on, with a bootstrap that resamples
each benchmark's items within that benchmark (paired: both policies answered the same items):

- "PPO ≥ DPO on average": the overall average (per category, then over categories) of PPO's per-item
  scores minus DPO's;
- "<method>'s gains over SFT concentrate in instruction following": the mean gain over SFT on the
  instruction-following benchmarks minus the mean gain on the other categories' (ivison2024 §4: gains
  come mostly from instruction following and chat).

AlpacaEval 1 and 2 are in ivison2024's instruction-following category, but rlhflab measures them in its
own `eval` stage; `join_alpaca_eval` adds the eval stage's PvR (AlpacaEval 1, with its per-input
judgements, so the claims pair policies on them too) and length-controlled PvR (AlpacaEval 2, a fitted
aggregate with no per-input values) on the sets `downstream.alpaca_eval_sets` names.
"""

from __future__ import annotations

import copy

import numpy as np

from rlhflab.evaluation.downstream import category_averages, changes_vs_sft
from rlhflab.report import figures as F
from rlhflab.report.findings import RESAMPLES, claim_row
from rlhflab.stats import paired_differences, stratified_bootstrap

PPO_DPO_CLAIM = "PPO ≥ DPO on the downstream average (ivison2024 table 1)"
IF = "instruction following"


def join_alpaca_eval(table: dict | None, items: dict | None, results: dict | None,
                     sets: list[str] | tuple[str, ...]) -> tuple[dict | None, dict | None, list[str]]:
    """The downstream table and items with the eval stage's AlpacaEval 1 / 2 rows of each set in
    `sets` added as instruction following (category means, the average and the change against SFT
    recomputed), and the sets that could not be joined. The inputs are not modified."""
    if not table or not sets:
        return table, items, []
    table, items = copy.deepcopy(table), copy.deepcopy(items or {})
    results = results or {}
    missing = [s for s in sets if s not in (results.get("test_sets") or {})]
    for s in (s for s in sets if s not in missing):
        ae1, ae2 = f"alpaca_eval_1/{s}", f"alpaca_eval_2_lc/{s}"
        table["tasks"] += [{"name": ae1, "category": IF, "metric": "pvr"},
                           {"name": ae2, "category": IF, "metric": "lc_pvr"}]
        for p, rows in table["policies"].items():
            pvr = (results.get("pvr") or {}).get(p, {}).get(s)
            lc = ((results.get("lc_win_rate") or {}).get(p) or {}).get(s)
            if pvr is None:
                continue
            rows[ae1] = {"score": pvr["win_rate"], "se": pvr.get("se"), "n": pvr.get("n")}
            items.setdefault(p, {})[ae1] = results["preferences"][p][s]
            rows[ae2] = {"score": lc, "se": None, "n": pvr.get("n")}
    category = {t["name"]: t["category"] for t in table["tasks"]}
    for p, rows in table["policies"].items():
        summary = category_averages({k: r.get("score") for k, r in rows.items()}, category)
        table["categories"][p], table["average"][p] = summary["categories"], summary["average"]
    table["delta_vs_sft"] = changes_vs_sft(table["policies"])
    return table, items, missing


def downstream_section(rep, table: dict | None, missing_sets: list[str] = ()) -> None:
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
    if any(t["name"].startswith("alpaca_eval_") for t in tasks):
        note += ("\n\nalpaca_eval_1 / alpaca_eval_2_lc: the `eval` stage's win rate against the set's reference "
                 "outputs by its judge, plain (AlpacaEval 1) and length-controlled (AlpacaEval 2).")
    if missing_sets:
        note += f"\n\nNot joined (no such eval test set): {', '.join(missing_sets)}."
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
        chat = " and chat" if any(n.startswith("alpaca_eval_") for n in diffs) else ""
        claim = f"{method.upper()}'s gains over SFT concentrate in instruction following{chat} (ivison2024 §4)"
        if not inside or not outside:
            rows.append(claim_row(claim, 1, None, "needs instruction-following and other benchmarks"))
            continue
        st = stratified_bootstrap(diffs, lambda m: _mean([m[n] for n in inside]) - _mean([m[n] for n in outside]),
                                  resamples=RESAMPLES, seed=seed, key=f"downstream-{method}-if")
        rows.append(claim_row(claim, 1, {**st, "n": sum(st["n"].values())},
                         f"mean gain on {', '.join(inside)} minus mean gain on {len(outside)} other benchmarks"))
    return rows
