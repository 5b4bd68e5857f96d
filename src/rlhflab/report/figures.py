"""The report's figures: one boilerplate (`save_figure`), the two chart shapes the papers use
(`grouped_bars`, `twin_plot`), and the functions that draw each of the report's plots.

Every function here takes the already-loaded result dicts; nothing reads files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rlhflab.report.findings import NAMES  # noqa: E402

POLICY_ORDER = ["sft", "bon", "ppo", "dpo", "grpo", "rloo", "online_dpo"]
POLICY_LABEL = NAMES
METRIC_LABEL = {"ead": "EAD", "sentence_bert": "Sentence-BERT", "nli": "NLI", "content": "content (ground truth)",
                "content_distinct": "distinct fact sets (ground truth)", "form": "form (ground truth)"}
KINDS = {"per_input": "per-input", "across_input": "across-input"}


def metrics_in_order(names) -> list[str]:
    """Diversity metrics in the paper's order (EAD, Sentence-BERT, NLI), then the ground truth's, then
    any others by name."""
    return sorted(names, key=lambda m: (list(METRIC_LABEL).index(m) if m in METRIC_LABEL else 9, m))


def ordered(names: Iterable[str]) -> list[str]:
    """Policies in the study's order (sft, bon, ppo, dpo, grpo, rloo, online_dpo), then any others by name."""
    return sorted(names, key=lambda n: (POLICY_ORDER.index(n) if n in POLICY_ORDER else 99, n))


def label(policy: str) -> str:
    return POLICY_LABEL.get(policy, policy)


def _write(fig, path: Path, dpi: int) -> None:
    """The PNG the pages show, and beside it the same figure as a vector PDF for a paper."""
    fig.savefig(path, dpi=dpi)
    fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None})  # same figure, same bytes


def save_figure(path: Path, title: str, draw: Callable, figsize=(6.4, 3.8), dpi=110) -> Path:
    """One figure: a single axes handed to draw(ax), titled, laid out and written as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(ax)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        _write(fig, path, dpi)
    finally:
        plt.close(fig)
    return path


def save_grid(path: Path, title: str, cells: list[list[Callable | None]], col_titles: list[str] | None = None,
              row_titles: list[str] | None = None, panel=(2.8, 2.2), dpi=110, sharex=False, sharey=False,
              legend: str = "figure") -> Path:
    """Small multiples: cells[r][c] draws panel (r, c) (None leaves it empty); column titles on the
    top row, row titles as the first column's y-labels. legend "figure": one legend, from the first
    panel with labelled artists (every panel shows the same things, e.g. policies); "panels": each
    panel its own (panels show different things, e.g. ID sets beside OOD sets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = len(cells), max(len(r) for r in cells)
    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols + 1.2, panel[1] * rows + 0.8), squeeze=False,
                             sharex=sharex, sharey=sharey)
    try:
        for r in range(rows):
            for c in range(cols):
                ax, draw = axes[r][c], cells[r][c] if c < len(cells[r]) else None
                if draw is None:
                    ax.set_visible(False)
                    continue
                draw(ax)
                ax.tick_params(labelsize=7)
                if legend == "panels" and ax.get_legend_handles_labels()[1]:  # below: many lines would hide data
                    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
                if col_titles and r == 0:
                    ax.set_title(col_titles[c], fontsize=8)
                if row_titles and c == 0:
                    ax.set_ylabel(row_titles[r], fontsize=8)
        labelled = next((ax for ax in axes.flat if ax.get_visible() and ax.get_legend_handles_labels()[1]), None)
        if legend == "figure" and labelled is not None:
            handles, labels = labelled.get_legend_handles_labels()
            fig.legend(handles, labels, fontsize=8, loc="upper right", ncol=min(len(labels), 6))
        fig.suptitle(title, fontsize=10, x=0.02, y=0.995, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (panel[1] * rows + 0.8)))
        _write(fig, path, dpi)
    finally:
        plt.close(fig)
    return path


def grouped_bars(ax, table: dict[str, dict[str, tuple[float, float]]], ylabel: str,
                 groups: Iterable[str] | None = None) -> None:
    """Bars per group (test set, metric) for each policy: table[policy][group] = (value, error).

    `groups` fixes the order of the groups on the x-axis (e.g. ID test sets first); groups the
    table has but the order leaves out follow, sorted. Without it the groups are sorted.
    """
    policies = ordered(table)
    present = {g for v in table.values() for g in v}
    order = [g for g in dict.fromkeys(groups or []) if g in present]
    order += sorted(present - set(order))
    width = 0.8 / max(1, len(policies))
    for i, p in enumerate(policies):
        xs = [j + i * width for j in range(len(order))]
        vals = [table[p].get(g, (math.nan, 0))[0] for g in order]
        errs = [table[p].get(g, (math.nan, 0))[1] for g in order]
        ax.bar(xs, vals, width, yerr=errs, capsize=2, label=p)
    ax.set_xticks([j + width * (len(policies) - 1) / 2 for j in range(len(order))])
    # test-set names are long (ood_topic_100, ood_sentiment): slanted, they never run into each other
    ax.set_xticklabels(order, fontsize=8, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def twin_plot(ax, x, left: dict[str, tuple[list, str]], right: tuple[str, list, str], xlabel: str,
              ylabel: str, right_label: str) -> None:
    """Curves on the left axis (label -> (values, style)) and one curve on a right-hand axis."""
    for name, (ys, style) in left.items():
        ax.plot(x, ys, style, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax2 = ax.twinx()
    name, ys, style = right
    ax2.plot(x, ys, style, c="C3", label=name)
    ax2.set_ylabel(right_label)
    ax.legend(fontsize=8, loc="upper left")
    ax2.legend(fontsize=8, loc="lower right")


# ---------------------------------------------------------------------- the report's plots ---

def draw_shift(ax, gap: dict[str, dict[str, float]], shift: dict[str, float], uninformative=()) -> None:
    """Each policy's generalisation gap against the measured input shift of each OOD set, as a
    curve in order of shift; sets where no policy succeeds are drawn hollow (they say nothing
    about generalisation)."""
    for p in ordered(gap):
        pts = sorted((shift[s], gap[p][s], s) for s in gap[p] if s in shift)
        line, = ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "-", label=p)
        for x, y, s in pts:
            ax.plot([x], [y], "o", color=line.get_color(), fillstyle="none" if s in uninformative else "full")
    # the sets' names on a top axis at their shifts, slanted: close shifts would overlap flat, and a
    # note at y = 0 falls outside the axes whenever every gap is positive
    names = sorted(shift.items(), key=lambda kv: kv[1])
    top = ax.secondary_xaxis("top")
    top.set_xticks([x for _, x in names], [s + ("†" if s in uninformative else "") for s, _ in names],
                   fontsize=7, rotation=60, ha="left", rotation_mode="anchor")
    ax.set_xlabel("shift from ID (cosine distance of mean embeddings)")
    ax.set_ylabel("gap (points)")
    ax.legend(fontsize=8)


POLICY_COLOUR = {"sft": "C0", "bon": "C1", "ppo": "C2", "dpo": "C3", "grpo": "C4", "rloo": "C5", "online_dpo": "C6"}


def draw_tradeoff(ax, diversity_policies: dict, pvr: dict, test_set: str, metric: str, kind: str) -> None:
    """One panel of kirk2024 fig. 25: each policy's `kind` (per_input | across_input) `metric`
    diversity (x) against its PvR win rate on `test_set` (y), one colour per policy throughout."""
    for p in ordered(diversity_policies):
        v = diversity_policies[p].get(metric)
        if v is None or test_set not in pvr.get(p, {}):
            continue
        x, y = v[kind]["mean"], pvr[p][test_set]["win_rate"]
        ax.errorbar([x], [y], xerr=[v[kind]["std"]], yerr=[pvr[p][test_set].get("standard_error") or 0], fmt="o",
                    ms=5, capsize=2, color=POLICY_COLOUR.get(p), label=label(p))


def draw_best_of_n(ax, sweep: dict, order: list[str]) -> None:
    """The evaluator's score of the RM's best-of-N against N on every test set (ID solid, OOD
    dashed), ±1 SE over inputs; each set's evaluator-picked best of the pool as a dotted level."""
    for i, s in enumerate(order):
        c = sweep["curves"][s]
        ns = sorted(int(n) for n in c)
        ood = (sweep.get("sets") or {}).get(s, {}).get("distribution") == "ood"
        ax.errorbar(ns, [c[str(n)]["mean"] for n in ns], yerr=[c[str(n)]["se"] for n in ns], marker="o", ms=3,
                    capsize=2, ls="--" if ood else "-", color=f"C{i}", label=s)
    ax.set_xscale("log", base=2)
    ns = sorted({int(n) for s in order for n in sweep["curves"][s]})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.minorticks_off()
    ax.set_xlabel("N", fontsize=8)
    ax.set_ylabel(f"{sweep['evaluator']} score of best-of-N", fontsize=8)


def draw_lines(ax, x: list[float], lines: dict[str, tuple[list, list | None]], xlabel: str, ylabel: str,
               reference: dict[str, tuple[float, float | None]] | None = None, log_x: bool = True,
               reference_label: str | None = None, colour_offset: int = 0) -> None:
    """Lines over x (label -> (values, errors or None)); `reference` (label -> (level, error or
    None)) drawn as dashed levels of the same colour, e.g. SFT as the β = ∞ end of a KL sweep,
    the first of them named `reference_label` in the legend. Line i takes colour C(i + colour_offset),
    so a panel of OOD sets can match the colours a neighbouring panel gave them."""
    named = False
    for i, (name, (ys, errs)) in enumerate(lines.items(), start=colour_offset):
        ax.errorbar(x, ys, yerr=errs, marker="o", ms=3, capsize=2, color=f"C{i}", label=name)
        level = (reference or {}).get(name)
        if level is not None and level[0] is not None:
            ax.axhline(level[0], ls="--", lw=1, color=f"C{i}", label=None if named else reference_label)
            named = True
            if level[1]:
                ax.axhspan(level[0] - level[1], level[0] + level[1], color=f"C{i}", alpha=0.1)
    if log_x:  # ticks at the swept values themselves: a sweep has few, unevenly spaced points
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.minorticks_off()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def draw_rm_accuracy(ax, rows: list[dict]) -> None:
    ax.plot([r["step"] for r in rows], [r["val_accuracy"] for r in rows], "o-")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")


def draw_ppo(ax, rows: list[dict], xlabel: str = "PPO step") -> None:
    """RM score (and gold reward, when logged) per step of an on-policy trainer, KL on the right-hand axis."""
    left = {"RM score": ([r["rm_score"] for r in rows], "-")}
    if "gold" in rows[0]:
        left["gold reward"] = ([r["gold"] for r in rows], "-")
    twin_plot(ax, [r["step"] for r in rows], left, ("KL", [r["kl"] for r in rows], "--"),
              xlabel, "reward", "KL (nats)")


def draw_frontier(ax, val_rows: dict[str, list[dict]]) -> None:
    """Each on-policy method's validation passes: reward (gold where every pass has it, else RM
    score) against KL to the SFT model, step 0 (SFT itself) included; the last pass is marked."""
    gold = all("val_gold" in r for rows in val_rows.values() for r in rows)
    key = "val_gold" if gold else "val_rm_score"
    for m in ordered(val_rows):
        rows = val_rows[m]
        colour = POLICY_COLOUR.get(m)
        ax.plot([r["val_kl"] for r in rows], [r[key] for r in rows], "o-", color=colour, label=label(m), ms=3)
        ax.plot([rows[-1]["val_kl"]], [rows[-1][key]], "*", color=colour, ms=10)
    ax.set_xlabel("validation KL to SFT (nats)")
    ax.set_ylabel("validation gold reward" if gold else "validation RM score")
    ax.legend(fontsize=8)


def draw_kl_sweep(ax, points: list[dict]) -> None:
    """Gold reward (where the task has one) and RM score against β, KL on the right-hand axis; all
    from the one checkpoint of each run the sweep reports."""
    left = {"RM score": ([p["rm_score"] for p in points], "o-")}
    if all(p.get("gold") is not None for p in points):
        left["gold reward"] = ([p["gold"] for p in points], "o-")
    twin_plot(ax, [p["kl_coef"] for p in points], left, ("KL", [p["kl"] for p in points], "s--"),
              "KL coefficient β", "validation reward", "KL (nats)")
    ax.set_xscale("log")
