"""Two studies side by side: is config A's policy better than config B's (another β, RM size, method)?

`compare_runs(run_a, run_b)` pairs each policy the two runs share on each test set they share,
input by input: both runs' eval stages judged their policy's output on an input against the same
reference with the same judge, so the per-input difference of the two judgements is paired, as
within one run's findings. The estimate is the mean difference (PvR points, A − B), its 95%
interval a paired bootstrap over inputs, and the verdict comes from the interval and the
Holm-adjusted p over every (policy, test set) compared: "A better", "B better" or "inconclusive".

Runs whose judges differ, or whose test sets hold other inputs or other references, are refused
naming what differs: their judgements do not pair.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhflab.report.claims import ALPHA, RESAMPLES
from rlhflab.stats import holm, paired_bootstrap, verdict

VERDICTS = {"reproduced": "A better", "contradicted": "B better", "inconclusive": "inconclusive"}


def _eval(run: Path) -> dict:
    path = Path(run) / "eval" / "results.json"
    if not path.exists():
        raise ValueError(f"{path}: missing; compare finished runs (rlhflab run ... through eval)")
    return json.loads(path.read_text(encoding="utf-8"))


def _judged_pairs(run: Path, policy: str, test_set: str) -> list[tuple[str, str]] | None:
    """(input, reference) of each judged input, from the eval stage's annotation file."""
    path = Path(run) / "eval" / "annotations" / f"{policy}_vs_reference" / f"{test_set}.json"
    if not path.exists():
        return None
    return [(r["instruction"], r["output_1"]) for r in json.loads(path.read_text(encoding="utf-8"))]


def compare_runs(run_a: Path, run_b: Path, *, seed: int = 0) -> dict:
    """{"judge", "rows": [{policy, test_set, estimate, ci_low, ci_high, p_value, p_holm, n, verdict}]}."""
    a, b = _eval(run_a), _eval(run_b)
    if a.get("judge") != b.get("judge"):
        raise ValueError(f"{run_a} was judged by {a.get('judge')!r} and {run_b} by {b.get('judge')!r}: judgements "
                         "by different judges do not pair; compare runs with the same eval.judge")
    policies = sorted(set(a.get("preferences") or {}) & set(b.get("preferences") or {}))
    sets = [s for s in a.get("test_sets") or {} if s in (b.get("test_sets") or {})]
    if not policies or not sets:
        raise ValueError(f"{run_a} and {run_b} share no evaluated policy and test set")
    rows = []
    for s in sets:
        inputs_a, inputs_b = _judged_pairs(run_a, policies[0], s), _judged_pairs(run_b, policies[0], s)
        if inputs_a is None or inputs_b is None or inputs_a != inputs_b:
            n_a, n_b = len(inputs_a or []), len(inputs_b or [])
            raise ValueError(f"test set {s!r}: the two runs judged other inputs or references ({n_a} and {n_b} "
                             "inputs, not the same); compare runs of one task, data_seed and eval size")
        for p in policies:
            st = paired_bootstrap(_points(a["preferences"][p][s]), _points(b["preferences"][p][s]),
                                  resamples=RESAMPLES, seed=seed, key=f"compare-{p}-{s}")
            rows.append({"policy": p, "test_set": s, **{k: st[k] for k in ("estimate", "ci_low", "ci_high",
                                                                            "p_value", "n")}})
    for row, p_holm in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = p_holm
        row["verdict"] = VERDICTS[verdict(row["ci_low"], row["ci_high"], 1, significant=p_holm < ALPHA)]
    return {"run_a": str(run_a), "run_b": str(run_b), "judge": a.get("judge"), "rows": rows}


def _points(prefs: list) -> list:
    """Judgements as win-rate points; an invalid one (None) drops its input from both sides."""
    return [None if v is None else 100.0 * float(v) for v in prefs]


def compare_markdown(result: dict) -> str:
    lines = [f"# {result['run_a']} (A) against {result['run_b']} (B)", "",
             f"Judge: {result['judge']}. Per-input PvR difference A − B in points, paired bootstrap over inputs, "
             f"Holm over the {len(result['rows'])} comparisons.", "",
             "| policy | test set | A − B | 95% CI | Holm p | n | verdict |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['policy']} | {r['test_set']} | {r['estimate']:+.1f} | [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] | "
              f"{r['p_holm']:.2g} | {r['n']} | {r['verdict']} |" for r in result["rows"]]
    return "\n".join(lines) + "\n"
