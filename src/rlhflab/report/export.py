"""A finished run's tables for a paper: CSV for a spreadsheet or pandas, LaTeX (booktabs) to \\input.

`export_run(run_dir, out_dir, fmt)` reads the artefacts a run wrote — the findings
(`report/findings.json`), PvR and head-to-head win rates with their bootstrap intervals
(`eval/results.json`), per-input and across-input diversity (`diversity/diversity.json`) and the
reward models' accuracies (`rm_eval/table.json`) — and writes one file per table that exists. The
numbers are the artefacts' own, rounded only in LaTeX; CSV keeps full precision. The report's
figures already lie beside their PNGs as vector PDFs (`report/figures/*.pdf`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rlhflab.data.records import write_text

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def findings_table(findings: list[dict]) -> tuple[list[str], list[list]]:
    head = ["claim", "verdict", "estimate", "ci_low", "ci_high", "p_value", "p_holm", "family", "unit", "n"]
    return head, [[f.get(k) for k in head] for f in findings]


def win_rate_table(results: dict, kind: str) -> tuple[list[str], list[list]]:
    """kind "pvr" or "head_to_head": one row per policy and test set, with the set's distribution."""
    sets = results.get("sets") or {}
    head = ["policy", "test_set", "distribution", "win_rate", "standard_error", "ci_low", "ci_high", "n"]
    rows = [[p, s, (sets.get(s) or {}).get("distribution"), w["win_rate"], w["standard_error"], w.get("ci_low"),
             w.get("ci_high"), w["n"]]
            for p, by_set in (results.get(kind) or {}).items() for s, w in by_set.items()]
    return head, rows


def diversity_table(div: dict) -> tuple[list[str], list[list]]:
    head = ["policy", "metric", "per_input_mean", "per_input_std", "across_input_mean", "across_input_std"]
    rows = [[p, m, v["per_input"]["mean"], v["per_input"]["std"], v["across_input"]["mean"], v["across_input"]["std"]]
            for p, metrics in div["policies"].items() for m, v in metrics.items()]
    return head, rows


def reward_model_table(table: dict) -> tuple[list[str], list[list]]:
    head = ["reward_model", "preference_set", "accuracy", "gold_agreement"]
    rows = [[name, s, acc, (row.get("gold_agreement") or {}).get(s)]
            for name, row in table["models"].items() for s, acc in row["accuracy"].items()]
    return head, rows


def to_csv(head: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue()


def _latex_cell(v, column: str = "", points: bool = False) -> str:
    """Text escaped; a p-value to 2 significant digits; win-rate points (`points`, or any float of 10
    or more) to 1 decimal; other floats (diversity, accuracy) to 3."""
    if v is None:
        return "--"
    if isinstance(v, float) and column.startswith("p_"):
        return f"{v:.2g}"
    if isinstance(v, float) and points:
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.2g}" if 0 < abs(v) < 1e-3 else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "".join(LATEX_SPECIALS.get(c, c) for c in str(v))


def to_latex(head: list[str], rows: list[list], caption: str) -> str:
    """A booktabs tabular in a table float; text cells escaped, numbers to 3 significant decimals."""
    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
               and any(isinstance(r[i], (int, float)) for r in rows) for i in range(len(head))]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_cell(caption)}}}",
             r"\begin{tabular}{" + "".join("r" if n else "l" for n in numeric) + "}", r"\toprule", " & ".join(_latex_cell(h) for h in head) + r" \\", r"\midrule"]
    unit = head.index("unit") if "unit" in head else None  # the findings' rows say their own unit
    lines += [" & ".join(_latex_cell(v, h, unit is not None and r[unit] == "points") for v, h in zip(r, head))
              + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def run_tables(run_dir: Path) -> dict[str, tuple[str, list[str], list[list]]]:
    """name -> (caption, header, rows) for every table this run's artefacts hold."""
    run_dir = Path(run_dir)
    out: dict[str, tuple[str, list[str], list[list]]] = {}
    if (findings := _json(run_dir / "report" / "findings.json")) is not None:
        out["findings"] = ("Findings: paired estimates, 95% bootstrap intervals, adjusted p (Holm per family, the "
                           "primary gating the secondary)",
                           *findings_table(findings))
    if (results := _json(run_dir / "eval" / "results.json")) is not None:
        out["pvr"] = (f"PvR win rate (%) against the reference outputs, judge {results.get('judge')}",
                      *win_rate_table(results, "pvr"))
        if results.get("head_to_head"):
            out["head_to_head"] = (f"Head-to-head win rate (%) against {results.get('baseline')}",
                                   *win_rate_table(results, "head_to_head"))
    if (div := _json(run_dir / "diversity" / "diversity.json")) is not None:
        out["diversity"] = ("Output diversity per input and across inputs", *diversity_table(div))
    if (rm := _json(run_dir / "rm_eval" / "table.json")) is not None:
        out["reward_models"] = ("Reward-model accuracy against the labels and the gold ordering",
                                *reward_model_table(rm))
    return out


def export_run(run_dir: Path, out_dir: Path, fmt: str) -> list[Path]:
    """Write each table of the run as <name>.csv or <name>.tex into out_dir; returns the files."""
    if fmt not in ("csv", "latex"):
        raise ValueError(f"--format {fmt}: choose csv or latex")
    tables = run_tables(run_dir)
    if not tables:
        raise ValueError(f"{run_dir}: no finished eval, diversity, rm_eval or report stage to export; "
                         "run the pipeline first (rlhflab run ...)")
    written = []
    for name, (caption, head, rows) in tables.items():
        path = Path(out_dir) / f"{name}.{'csv' if fmt == 'csv' else 'tex'}"
        write_text(path, to_csv(head, rows) if fmt == "csv" else to_latex(head, rows, caption))
        written.append(path)
    return written
