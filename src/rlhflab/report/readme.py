"""The README's measured tables, printed from a finished run folder, so the numbers in the README
are always those of a run (`python benchmarks/quickstart_time.py --keep DIR` prints them after
the run; `readme_tables(DIR, ...)` reprints them from the folder).

Three tables: seconds, peak RSS and headline metrics per stage (from each stage's manifest.json), the PvR
win rates with the length-controlled ones (eval/results.json), and the findings with their
verdicts and paired intervals (report/findings.json). The machine line names the CPU model and
the torch threads, since results and timings differ across CPUs.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

from rlhflab.report.findings import DIGITS, ordered_sets


def machine() -> str:
    """"<CPU model> (<family>, <n> cores), <n> torch threads": where a number was measured."""
    import torch

    from rlhflab.provenance import describe, machine as this_machine

    return f"{describe(this_machine())}, {torch.get_num_threads()} torch threads"


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _value(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _headline(metrics: dict, keys: tuple[str, ...]) -> list[str]:
    """The headline values; an on-policy stage's `final_*` validation numbers are those of its last
    step, so where the stage kept another checkpoint the kept one's are shown instead."""
    kept = metrics.get("selected") or {}
    out = []
    for k in keys:
        rest = k.removeprefix("final_")
        if rest != k and rest in kept:
            out.append(f"kept {rest} {_value(kept[rest])}")
        elif k in metrics:
            out.append(f"{k} {_value(metrics[k])}")
    return out


def stage_table(run_dir: Path, headlines: dict[str, tuple[str, ...]]) -> list[str]:
    """| stage | seconds | peak RSS MB | headline metrics | for every stage folder with a manifest, in order."""
    lines = ["| stage | seconds | peak RSS MB | headline metrics |", "| --- | --- | --- | --- |"]
    total = 0.0
    for name, keys in headlines.items():
        m = _json(Path(run_dir) / name / "manifest.json")
        if not m:
            continue
        total += m.get("seconds", 0.0)
        shown = ", ".join(_headline(m.get("metrics", {}), keys)) or "–"
        rss = (m.get("memory") or {}).get("peak_rss_mb")
        lines.append(f"| {name} | {m.get('seconds', 0.0):.1f} | {'–' if rss is None else f'{rss:.0f}'} | {shown} |")
    lines.append(f"| total | {total:.1f} | | |")
    return lines


def pvr_table(results: dict) -> list[str]:
    """PvR win rate ± SE, then LC win rate and mean output length, per policy and test set."""
    sets = ordered_sets(results)
    lc = results.get("lc_win_rate") or {}
    lines = ["| policy | " + " | ".join(f"{s} PvR (LC) · length" for s in sets) + " |", "|---" * (len(sets) + 1) + "|"]
    for p, row in results["pvr"].items():
        cells = []
        for s in sets:
            v = row.get(s)
            if not v:
                cells.append("–")
                continue
            lcv = (lc.get(p) or {}).get(s)
            length = (results.get("lengths") or {}).get(p, {}).get(s)
            cells.append(f"{v['win_rate']:.1f} ± {v['standard_error']:.1f}"
                         + (f" ({lcv:.1f})" if lcv is not None else "")
                         + (f" · {mean(length):.0f}" if length else ""))
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def findings_table(findings: list[dict]) -> list[str]:
    lines = ["| claim (from the papers) | verdict | estimate [95% CI] | adj. p |", "| --- | --- | --- | --- |"]
    for f in findings:
        if f["verdict"] == "not run":
            lines.append(f"| {f['claim']} | not run | – | – |")
            continue
        digits = DIGITS[f["unit"]]
        lines.append(f"| {f['claim']} | {f['verdict']} | {f['estimate']:+.{digits}f} "
                     f"[{f['ci_low']:+.{digits}f}, {f['ci_high']:+.{digits}f}] | {f['p_holm']:.2g} |")
    return lines


def readme_tables(run_dir: Path, headlines: dict[str, tuple[str, ...]]) -> str:
    run_dir = Path(run_dir)
    out = [f"Measured on: {machine()}.", ""] + stage_table(run_dir, headlines)
    results = _json(run_dir / "eval" / "results.json")
    if results:
        out += ["", f"PvR win rate (%) ± SE against the references, judge {results['judge']}; in brackets the "
                "length-controlled win rate; after the dot the mean output length (characters):", ""]
        out += pvr_table(results)
    findings = _json(run_dir / "report" / "findings.json")
    if findings:
        out += ["", "Findings (paired bootstrap over inputs; p adjusted by Holm per family, the primary family gating the secondary):", ""]
        out += findings_table(findings)
    return "\n".join(out) + "\n"
