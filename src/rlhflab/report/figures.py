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

POLICY_ORDER = ["sft", "bon", "ppo", "dpo"]
POLICY_LABEL = {"sft": "SFT", "bon": "best-of-N", "ppo": "PPO", "dpo": "DPO"}


def ordered(names: Iterable[str]) -> list[str]:
    """Policies in the study's order (sft, bon, ppo, dpo), then any others by name."""
    return sorted(names, key=lambda n: (POLICY_ORDER.index(n) if n in POLICY_ORDER else 99, n))


def label(policy: str) -> str:
    return POLICY_LABEL.get(policy, policy)


def save_figure(path: Path, title: str, draw: Callable, figsize=(6.4, 3.8), dpi=110) -> Path:
    """One figure: a single axes handed to draw(ax), titled, laid out and written as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(ax)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
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
    ax.set_xticklabels(order, fontsize=8)
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
    for s, x in shift.items():
        ax.annotate(s + (" (no policy succeeds)" if s in uninformative else ""), (x, 0), fontsize=7, rotation=45)
    ax.set_xlabel("shift from ID (cosine distance of mean embeddings)")
    ax.set_ylabel("gap (points)")
    ax.legend(fontsize=8)


def draw_tradeoff(ax, diversity_policies: dict, pvr: dict, test_set: str) -> None:
    """One point per policy: per-input Sentence-BERT diversity against PvR win rate on test_set."""
    for p in ordered(diversity_policies):
        if test_set in pvr.get(p, {}) and "sentence_bert" in diversity_policies[p]:
            x = diversity_policies[p]["sentence_bert"]["per_input"]["mean"]
            y = pvr[p][test_set]["win_rate"]
            ax.scatter([x], [y], s=40)
            ax.annotate(p, (x, y), fontsize=8)
    ax.set_xlabel("per-input Sentence-BERT diversity")
    ax.set_ylabel(f"PvR win rate on {test_set} (%)")


def draw_best_of_n(ax, sweep: dict) -> None:
    """Gold reward of the RM's pick against N, with the gold-picked oracle as a line."""
    c = sweep["curve"]
    ns = sorted(int(n) for n in c)
    ax.errorbar(ns, [c[str(n)]["gold_mean"] for n in ns], yerr=[c[str(n)]["gold_se"] for n in ns],
                marker="o", capsize=2, label="RM picks")
    ax.axhline(sweep["gold_oracle_best_of_pool"], ls="--", c="grey", label="gold picks (oracle)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N")
    ax.set_ylabel("gold reward of best-of-N")
    ax.legend(fontsize=8)


def draw_rm_accuracy(ax, rows: list[dict]) -> None:
    ax.plot([r["step"] for r in rows], [r["val_accuracy"] for r in rows], "o-")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")


def draw_ppo(ax, rows: list[dict]) -> None:
    """RM score (and gold reward, when logged) per PPO step, KL on the right-hand axis."""
    left = {"RM score": ([r["rm_score"] for r in rows], "-")}
    if "gold" in rows[0]:
        left["gold reward"] = ([r["gold"] for r in rows], "-")
    twin_plot(ax, [r["step"] for r in rows], left, ("KL", [r["kl"] for r in rows], "--"),
              "PPO step", "reward", "KL (nats)")


def draw_kl_sweep(ax, points: list[dict]) -> None:
    """Gold reward and per-input diversity against the KL coefficient."""
    twin_plot(ax, [p["kl_coef"] for p in points], {"gold reward": ([p["gold"] for p in points], "o-")},
              ("per-input diversity", [p["diversity"] for p in points], "s--"),
              "KL coefficient β", "gold reward", "per-input Sentence-BERT diversity")
    ax.set_xscale("log")
