"""The report's sweep sections: best-of-N against N (kirk2024 fig. 22) and the KL-penalty sweep
(kirk2024 appendix I, fig. 11–13), each with its small-multiple figures and a table."""

from __future__ import annotations

import re
from statistics import mean

from rlhflab.report import figures as F
from rlhflab.report.findings import gap_pairs, mean_gap, sets_in
from rlhflab.report.page import fmt
from rlhflab.report.sections import Sections, fmt1, mean_gap_note


def _sets_in_order(roles: dict, present) -> list[str]:
    """ID sets first, then OOD sets, each by name with numbers compared as numbers (ood_topic_25
    before ood_topic_100), as far as `present` has them."""
    rank = {"id": 0, "ood": 1}

    def natural(name: str) -> list:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]

    return sorted(present, key=lambda s: (rank.get((roles.get(s) or {}).get("distribution"), 2), natural(s)))


def best_of_n(rep: Sections, sweep: dict | None) -> None:
    """kirk2024 fig. 22: the best-of-N curve on every test set and the ID − OOD gap per N."""
    if not sweep or not sweep.get("curves"):
        return
    order = _sets_in_order(sweep.get("sets") or {}, sweep["curves"])
    gap = sweep.get("gap") or {}
    ns = sorted({int(n) for c in sweep["curves"].values() for n in c})
    cells = [lambda ax: F.draw_best_of_n(ax, sweep, order)]
    if gap:
        gap_lines = {s: ([gap[s][str(n)] for n in ns], None) for s in order if s in gap}
        first = next(i for i, s in enumerate(order) if s in gap)  # each set keeps its colour from the left panel
        cells.append(lambda ax: F.draw_lines(ax, ns, gap_lines, "N", "gap ID − OOD", colour_offset=first))
    ev = sweep["evaluator"]
    # the sets' curves and the OOD sets' gaps are different lines: a legend in each panel
    rep.grid("best_of_n", "Best-of-N against N", f"One pool of {sweep['pool']} samples per input at τ = "
             f"{sweep.get('temperature')}, picked by the {sweep.get('selector', 'rm')} reward model, scored by "
             f"{'the gold reward' if ev == 'gold' else 'the held-out proxy RM'}; left: every test set (OOD dashed), "
             "±1 SE over inputs; right: ID − OOD per N (kirk2024 fig. 22).", [cells],
             col_titles=["score of the pick", "generalisation gap"][: len(cells)], panel=(4.2, 3.8),
             legend="panels")
    head = "| N | " + " | ".join(order) + (" | mean gap |" if gap else " |")
    sizes = sweep.get("inputs") or {}
    over = (f"{next(iter(sizes.values()))} inputs per set" if len(set(sizes.values())) == 1
            else ", ".join(f"{s} {n}" for s, n in sizes.items()) + " inputs")
    lines = [f"Best-of-N: {ev} score of the RM's pick (mean over {over}), one pool per set reused for every N:", "",
             head, "|---" * (len(order) + 1 + bool(gap)) + "|"]
    for n in ns:
        cells_n = [fmt(sweep["curves"][s].get(str(n), {}).get("mean")) for s in order]
        g = [gap[s][str(n)] for s in gap if str(n) in gap[s]]
        lines.append(f"| {n} | " + " | ".join(cells_n) + (f" | {fmt(mean(g))} |" if gap and g else " |"))
    oracle = sweep.get("oracle_best_of_pool") or {}
    if oracle:
        lines += ["", f"Best of the whole pool picked by the {ev} score itself (the ceiling): "
                  + ", ".join(f"{s} {fmt(oracle[s])}" for s in order if s in oracle) + "."]
    rep.add("Best-of-N", "\n".join(lines))


def kl_sweep(rep: Sections, sweep: dict | None) -> None:
    """kirk2024 appendix I: win rates and the gap (fig. 11), per-input (fig. 12) and across-input
    (fig. 13) diversity against β, SFT as the β = ∞ level; every number of a β from one checkpoint."""
    pts = sorted((sweep or {}).get("points") or [], key=lambda p: p["kl_coef"])
    if not pts:
        return
    sft, roles, betas = sweep.get("sft") or {}, sweep.get("sets") or {}, [p["kl_coef"] for p in pts]
    which = {"last": "the last checkpoint", "val_objective": "the checkpoint with the best validation RM − β·KL"}
    method = F.label(sweep.get("method", "ppo"))
    where = (f"{method} at each β; every number of a β comes from one checkpoint of its run: "
             f"{which.get(sweep.get('select_on'), '?')}")
    rep.figure("kl_sweep", "KL-penalty sweep: reward and KL", where + "; validation RM score, gold reward and KL to "
               "SFT (kirk2024 appendix I).", lambda ax: F.draw_kl_sweep(ax, pts))
    sets = _sets_in_order(roles, pts[0].get("pvr") or {})
    by = {d: [s for s in sets if (roles.get(s) or {}).get("distribution") == d] for d in ("id", "ood")}
    gaps = _sets_in_order(roles, pts[0].get("gap") or {})

    def value(point: dict, key: str, s: str):
        v = (point.get(key) or {}).get(s)
        return v["win_rate"] if key == "pvr" and v is not None else v

    def panel(key: str, names: list[str], ylabel: str):
        lines = {s: ([value(p, key, s) for p in pts], None) for s in names}
        return lambda ax: F.draw_lines(ax, betas, lines, "β", ylabel, reference_label="SFT (dashed)",
                                       reference={s: (value(sft, key, s), None) for s in names})

    cells = [panel(k, names, ylabel) for k, names, ylabel in
             (("pvr", by["id"], "PvR (%)"), ("pvr", by["ood"], "PvR (%)"), ("gap", gaps, "points")) if names]
    titles = [t for t, names in (("ID win rate", by["id"]), ("OOD win rate", by["ood"]), ("gap ID − OOD", gaps)) if names]
    if cells:
        rep.grid("kl_sweep_win_rates", "KL-penalty sweep: win rates", f"{where}; PvR against the references "
                 f"({sweep.get('judge')} judge, {max((sweep.get('win_rate_inputs') or {0: 0}).values())} inputs per "
                 "set at most); dashed: SFT, the β = ∞ end (kirk2024 fig. 11).", [cells], col_titles=titles,
                 panel=(3.4, 3.8), legend="panels")
    metrics = F.metrics_in_order(pts[0].get("diversity") or {})
    for kind, fig in (("per_input", "12"), ("across_input", "13")):
        spread = "inputs" if kind == "per_input" else "redraws of the across-input sample"
        row = [lambda ax, m=m, kind=kind: F.draw_lines(
            ax, betas, {method: ([p["diversity"][m][kind]["mean"] for p in pts],
                                [p["diversity"][m][kind]["std"] for p in pts])},
            "β", "diversity", reference_label="SFT", reference={method: (
                (sft.get("diversity") or {}).get(m, {}).get(kind, {}).get("mean"),
                (sft.get("diversity") or {}).get(m, {}).get(kind, {}).get("std"))}) for m in metrics]
        if row:
            rep.grid(f"kl_sweep_{kind}", f"KL-penalty sweep: {F.KINDS[kind]} diversity",
                     f"{where}; {sweep.get('n_inputs')} {sweep.get('diversity_test_set')} inputs × "
                     f"{sweep.get('samples_per_input')} samples at τ = {sweep.get('temperature')}; bars ±1 std over "
                     f"{spread}; dashed band: SFT (kirk2024 fig. {fig}).", [row],
                     col_titles=[F.METRIC_LABEL.get(m, m) for m in metrics])
    rep.add("KL-penalty sweep", _kl_table(sweep, pts, sft, sets, metrics, where))


def _kl_table(sweep: dict, pts: list[dict], sft: dict, sets: list[str], metrics: list[str], where: str) -> str:
    """Two tables, one row per β and SFT as ∞: reward, KL and win rates; then diversity."""
    rows = [(f"{p['kl_coef']:g}", p) for p in pts] + [("∞ (SFT)", {**sft, "step": "–"})]
    # the findings' mean gap: a set no β (and not SFT) succeeds on is left out, as in the eval tables
    as_results = {"test_sets": {s: None for s in sets}, "sets": sweep.get("sets") or {},
                  "pvr": {name: p.get("pvr") or {} for name, p in rows}}
    pairs = gap_pairs(as_results)
    excluded = [s for s in sets_in(as_results, "ood") if s not in pairs]
    head = (["β", "step", "RM score", "KL", "gold"] + [f"{s}{'†' if s in excluded else ''} PvR" for s in sets]
            + ["mean gap"])
    lines = [f"{where} (its step below; step 0 is the SFT model itself).", "",
             "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, p in rows:
        gap = p.get("gap") or {}
        cells = [name, str(p.get("step")), fmt(p.get("rm_score")), fmt(p.get("kl")), fmt(p.get("gold"))]
        cells += [fmt1((p.get("pvr") or {}).get(s, {}).get("win_rate")) for s in sets]
        lines.append("| " + " | ".join(cells + [fmt1(mean_gap(gap, pairs))]) + " |")
    lines += ["", mean_gap_note(excluded)]
    head = ["β"] + [f"{F.METRIC_LABEL.get(m, m)} {F.KINDS[k]}" for m in metrics for k in F.KINDS]
    lines += ["", f"Diversity on {sweep.get('n_inputs')} {sweep.get('diversity_test_set')} inputs:", "",
              "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, p in rows:
        cells = [fmt((p.get("diversity") or {}).get(m, {}).get(k, {}).get("mean")) for m in metrics for k in F.KINDS]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)
