"""The report's sweep section: one table (and, for a one-key numeric grid, one plot) per swept stage,
in the manner of kirk2024 tables 8–10 (learning rates tried, the selected one marked) and table 14
(the freezing ablation)."""

from __future__ import annotations

import math

from rlhflab.report.page import fmt
from rlhflab.sweep import format_value

WHY = {"best_val_loss": "ID validation loss", "best_val_accuracy": "ID validation accuracy",
       "selected_val_rm_score": "ID validation RM score",
       "val_score_bon": "ID validation score of best-of-N's picks"}


def _cell(v) -> str:
    return fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def sweep_table(grid: dict) -> str:
    """Markdown table of every point: the swept values, the selection metric, the stage's headline
    metrics; the point that fed downstream in bold with a ✓."""
    metric = grid["metric"]
    others = [h for h in grid.get("headline", []) if h != metric]
    head = grid["keys"] + [f"{metric} ({'lower' if grid['mode'] == 'min' else 'higher'} is better)"] + others + ["used"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for p in grid["points"]:
        cells = [format_value(p["values"][k]) for k in grid["keys"]] + [_cell(p["metrics"].get(metric))]
        cells += [_cell(p["metrics"].get(h)) for h in others] + ["✓" if p["selected"] else ""]
        if p["selected"]:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_sweep(ax, grid: dict) -> None:
    """Selection metric against the one swept value (log axis when it spans a decade or more)."""
    key, metric = grid["keys"][0], grid["metric"]
    pts = sorted(((p["values"][key], p["metrics"].get(metric), p["selected"]) for p in grid["points"]),
                 key=lambda t: t[0])
    xs = [x for x, y, _ in pts if isinstance(y, (int, float)) and math.isfinite(y)]
    ys = [y for x, y, _ in pts if isinstance(y, (int, float)) and math.isfinite(y)]
    ax.plot(xs, ys, "o-", color="C0")
    for x, y, chosen in pts:
        if chosen and y is not None:
            ax.plot([x], [y], "*", color="C3", markersize=14, label="used downstream")
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(WHY.get(metric, metric))
    ax.legend(fontsize=8)


def _numeric_one_key(grid: dict) -> bool:
    return len(grid["keys"]) == 1 and all(isinstance(p["values"][grid["keys"][0]], (int, float))
                                          for p in grid["points"])


def hparam_sweeps(rep, grids: dict[str, dict]) -> None:
    """grids: stage name -> that stage's grid.json."""
    if not grids:
        return
    parts = []
    for stage, grid in grids.items():
        how = ("the configured values feed downstream (an ablation)" if grid["select"] == "config" else
               f"selected on {WHY.get(grid['metric'], grid['metric'])}, as kirk2024 appendix E.3 selects")
        parts.append(f"**{stage}** — {len(grid['points'])} runs, same seed; {how}.\n\n{sweep_table(grid)}")
        if _numeric_one_key(grid):
            rep.figure(f"sweep_{stage}", f"{stage} sweep", f"{stage}: {WHY.get(grid['metric'], grid['metric'])} "
                       f"against {grid['keys'][0]}; the star is the run used downstream.",
                       lambda ax, g=grid: draw_sweep(ax, g))
    rep.add("Hyper-parameter sweeps", "\n\n".join(parts))
