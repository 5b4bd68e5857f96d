"""The report's sections: each takes loaded result dicts, adds its markdown to the report and
draws its figures through `Sections.figure`."""

from __future__ import annotations

from pathlib import Path
import math
from statistics import mean

from rlhflab.report import figures as F
from rlhflab.report.findings import FLOOR, distribution, gap_pairs, mean_gap, ordered_sets, sets_in, uninformative_sets
from rlhflab.report.page import fmt


class Sections:
    """Collects the report's sections (title, markdown) and figures (file, title, caption)."""

    def __init__(self, out_dir: Path):
        self.out = Path(out_dir)
        (self.out / "figures").mkdir(parents=True, exist_ok=True)
        self.figures: list[tuple[str, str, str]] = []
        self.sections: list[tuple[str, str]] = []

    def figure(self, name: str, title: str, caption: str, draw) -> None:
        F.save_figure(self.out / "figures" / f"{name}.png", title, draw)
        self.figures.append((f"figures/{name}.png", title, caption))

    def grid(self, name: str, title: str, caption: str, cells, **kw) -> None:
        F.save_grid(self.out / "figures" / f"{name}.png", title, cells, **kw)
        self.figures.append((f"figures/{name}.png", title, caption))

    def add(self, title: str, markdown: str) -> None:
        self.sections.append((title, markdown))


def _key(file: str) -> str:
    """task.json names a set's size by its file ("test/id.jsonl") or flat ("test_id"): one key for both."""
    return file.removesuffix(".jsonl").replace("/", "_")


def _role(s: dict) -> str:
    if s.get("distribution") != "ood":
        return s.get("distribution") or "–"
    return f"ood: {s['shift']}" if s.get("shift") else "ood"


def data(rep: Sections, task: dict | None) -> None:
    """Set sizes, where each set lies, and the ID/OOD split: how large the distribution shift is
    (a reviewer's first question, review2024)."""
    if not task:
        return
    roles = {_key(s["file"]): _role(s) for s in task.get("sets", []) if s.get("file")}
    if roles:
        lines = ["| set | records | distribution |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {roles.get(_key(k), '–')} |" for k, v in sorted(task.get("sizes", {}).items())]
    else:
        lines = ["| set | records |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(task.get("sizes", {}).items())]
    split = task.get("ood_split")
    if split:
        rule = split["rule"]
        how = (f"ID = {rule['by']} below the median {rule['threshold']:.4g} (fitted on {rule['fitted_on']} "
               "distinct inputs)" if rule["by"] != "category" else f"ID = category in {rule['id_values']}")
        lines += ["", f"OOD split (kirk2024 appendix J.1): {how}.", "",
                  "| set | ID | OOD | median ID | median OOD |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['n_id']} | {v['n_ood']} | {fmt(v.get('median_id'))} | {fmt(v.get('median_ood'))} |"
                  for k, v in split["sets"].items()]
    elif "id_rule" in task:
        lines += ["", f"Synthetic {task['split']} split (kirk2024 appendix J.1): ID = {task['id_rule']}; "
                  f"the OOD set = {task['ood_rule']}."]
    elif "median_words" in task:
        lines += ["", f"Synthetic splits: ID posts are shorter than {task['median_words']:g} words and less positive "
                  f"than sentiment {task['median_sentiment']:g}, from topics {', '.join(task.get('id_topics', []))}. "
                  "Each OOD set changes one factor; the topic shift is graded by the share of fact phrases never "
                  "seen in training."]
    lines += _contamination(task.get("contamination"))
    rep.add("Data and splits", "\n".join(lines))


def _contamination(found: dict | None) -> list[str]:
    """Per test set, its largest overlap with any other set (normalised-input hashes)."""
    if not found:
        return []
    lines = ["", f"Contamination check ({found['compared_by']}; pretraining corpus: {found['corpus']}; the run stops "
             f"above {found['threshold']:.0%}):", "", "| test set | inputs | largest overlap | with |", "|---|---|---|---|"]
    for name, t in found["tests"].items():
        other, e = max(t["against"].items(), key=lambda kv: kv[1]["fraction"], default=(None, None))
        lines.append(f"| {name} | {t['n']} | " + (f"{e['count']} ({e['fraction']:.1%}) | {other} |"
                                                  if e and e["count"] else "0 | – |"))
    return lines


def _set_roles(e: dict, sets: list[str]) -> str:
    """One line naming each test set's place: ID, or OOD with its shift and the ID set it compares to."""
    parts = []
    for s in sets:
        info = (e.get("sets") or {}).get(s) or {}
        if info.get("distribution") == "id":
            parts.append(f"{s} (ID)")
        elif info.get("distribution") == "ood":
            against = info.get("compare_to") and f"gap against {info['compare_to']}"
            extra = "; ".join(x for x in (info.get("shift"), against) if x)
            parts.append(f"{s} (OOD{': ' + extra if extra else ''})")
        else:
            parts.append(f"{s} (role not declared)")
    return "Test sets: " + ", ".join(parts) + "."


def performance(rep: Sections, e: dict | None) -> None:
    if not e:
        return
    sets = ordered_sets(e)
    pvr = {p: {s: (v["win_rate"], v["standard_error"]) for s, v in ss.items()} for p, ss in e["pvr"].items()}
    rep.figure("pvr", f"Win rate vs reference ({e['judge']} judge)",
               "Preference-vs-reference win rate per policy on the ID and every OOD test set, ±1 SE "
               "(kirk2024 fig. 2–3).", lambda ax: F.grouped_bars(ax, pvr, "PvR win rate (%)", sets))
    gaps = {p: {s: (v, _gap_se(e, p, s)) for s, v in g.items()} for p, g in (e.get("gap") or {}).items() if g}
    if gaps:
        rep.figure("gap", "Generalisation gap (ID − OOD win rate)",
                   "Each OOD set's win rate subtracted from that of the ID set it compares to, ±1 SE "
                   "(√(SE_ID² + SE_OOD²): the two sets hold different inputs); positive = the "
                   "policy loses ground out of distribution (kirk2024 §6.1).",
                   lambda ax: F.grouped_bars(ax, gaps, "gap (points)", sets))
    h2h = {p: {s: (v["win_rate"], v["standard_error"]) for s, v in ss.items()}
           for p, ss in (e.get("head_to_head") or {}).items() if ss}
    if h2h:
        base = e.get("baseline", "sft")
        rep.figure("head_to_head", f"Head-to-head win rate against {F.label(base)}",
                   f"Each policy's outputs judged against the {F.label(base)} model's on the same inputs "
                   "(kirk2024 fig. 4).", lambda ax: F.grouped_bars(ax, h2h, f"win rate vs {F.label(base)} (%)", sets))
    pairs = gap_pairs(e)
    excluded = [s for s in sets_in(e, "ood") if s not in pairs]
    lines = ["| policy | " + " | ".join(s + ("†" if s in excluded else "") for s in sets) + " | mean gap |",
             "|---" * (len(sets) + 2) + "|"]
    for p in F.ordered(e["pvr"]):
        cells = [f"{e['pvr'][p][s]['win_rate']:.1f} ± {e['pvr'][p][s]['standard_error']:.1f}"
                 if s in e["pvr"][p] else "–" for s in sets]
        g = mean_gap((e.get("gap") or {}).get(p) or {}, pairs)
        lines.append(f"| {p} | " + " | ".join(cells) + (f" | {g:.1f} |" if g is not None else " | – |"))
    md = "PvR win rate (%) ± SE, judge: " + e["judge"] + "\n\n" + _set_roles(e, sets) + "\n\n" + "\n".join(lines)
    md += "\n\n" + mean_gap_note(excluded)
    dark = uninformative_sets(e)
    if dark:
        md += (f"\n\nNo policy succeeds (every PvR below {FLOOR:g}%) on: {', '.join(dark)}. These sets carry no "
               "information about generalisation and are left out of the findings.")
    md += _length_table(e, sets)
    if e.get("shift"):
        md += "\n\nDistribution shift (mean embedding distance to the ID inputs): " + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(e["shift"].items(), key=lambda kv: kv[1]))
        rep.figure("shift", "Generalisation gap against measured distribution shift",
                   "x: cosine distance between the mean Sentence-BERT embeddings of the ID and each OOD "
                   "set's inputs; y: the gap; hollow points and †: sets where no policy succeeds (kirk2024 §6.1, "
                   "asked for by review2024).",
                   lambda ax: F.draw_shift(ax, e.get("gap") or {}, e["shift"], dark))
    val = e.get("judge_validation")
    if val:
        md += ("\n\nJudge validation (agreement with held-out preference labels; with gold):\n\n"
               "| set | n | labels | gold |\n|---|---|---|---|\n")
        md += "\n".join(f"| {k} | {v['n']} | {fmt(v.get('label_agreement'))} | {fmt(v.get('gold_agreement'))} |"
                        for k, v in val.items())
    rep.add("Performance in and out of distribution", md)


def _gap_se(e: dict, policy: str, s: str) -> float:
    """SE of one gap, ID − OOD win rate: the sets' inputs are different, so their variances add."""
    base = ((e.get("sets") or {}).get(s) or {}).get("compare_to")
    pvr = e["pvr"].get(policy) or {}
    if base not in pvr or s not in pvr:
        return 0.0
    se = math.hypot(pvr[base]["standard_error"], pvr[s]["standard_error"])
    return se if math.isfinite(se) else 0.0


def mean_gap_note(excluded: list[str]) -> str:
    """What every table's "mean gap" averages over: the findings' definition."""
    note = ("Mean gap: the mean over the informative OOD sets, as in the findings (a set, or the ID set it "
            f"compares to, where every policy's PvR is below {FLOOR:g}% says nothing about generalisation)")
    return note + (f"; † left out of it: {', '.join(excluded)}." if excluded else ".")


def _length_table(e: dict, sets: list[str]) -> str:
    """Length-controlled PvR (AlpacaEval 2's GLM) beside each policy's mean output length: RLHF
    lengthens outputs and judges favour length (review2024), so a gain is read with both."""
    lc, lengths = e.get("lc_win_rate") or {}, e.get("lengths") or {}
    if not lengths:
        return ""
    refs = e.get("reference_lengths") or {}
    head = "| policy | " + " | ".join(f"{s} LC PvR | {s} length" for s in sets) + " |"
    lines = ["", "", "Length control: length-controlled PvR win rate (%) and mean output length (characters); "
             "references: " + ", ".join(f"{s} {mean(refs[s]):.0f}" for s in sets if refs.get(s)) + ".", "",
             head, "|---" * (2 * len(sets) + 1) + "|"]
    for p in F.ordered(lengths):
        cells = []
        for s in sets:
            v = (lc.get(p) or {}).get(s)
            cells += [fmt1(v), f"{mean(lengths[p][s]):.0f}" if lengths[p].get(s) else "–"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt1(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def diversity(rep: Sections, d: dict | None, e: dict | None) -> None:
    if not d:
        return
    pol = d["policies"]
    for kind, fig in (("per_input", "5"), ("across_input", "6")):  # scores in [0, 1] (a count would dwarf them)
        table = {p: {m: (v[kind]["mean"], v[kind]["std"]) for m, v in ms.items() if m != "content_distinct"}
                 for p, ms in pol.items()}
        rep.figure(f"diversity_{kind}", f"{kind.replace('_', '-')} diversity ({d['test_set']} inputs)",
                   f"{d['n_inputs']} inputs × {d['samples_per_input']} samples at τ = {d['temperature']}; "
                   f"bars ±1 std over {'inputs' if kind == 'per_input' else 'redraws'} (kirk2024 fig. {fig}).",
                   lambda ax, t=table: F.grouped_bars(ax, t, "diversity"))
    if e and e.get("pvr"):
        _tradeoff_grid(rep, d, e)
    metrics = sorted({m for ms in pol.values() for m in ms})
    lines = ["| policy | " + " | ".join(f"{m} per-input | {m} across-input" for m in metrics) + " |",
             "|---" * (2 * len(metrics) + 1) + "|"]
    for p in F.ordered(pol):
        cells = []
        for m in metrics:
            v = pol[p].get(m)
            cells += [_spread(v["per_input"]), _spread(v["across_input"])] if v else ["–", "–"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    rep.add("Output diversity", "\n".join(lines))


def _spread(v: dict) -> str:
    """mean ± std; "–" where the metric is undefined (ground-truth form when no two samples state the
    same facts)."""
    if v.get("mean") is None or not math.isfinite(v["mean"]):
        return "–"
    return f"{v['mean']:.3f} ± {v['std']:.3f}"


def _tradeoff_grid(rep: Sections, d: dict, e: dict) -> None:
    """kirk2024 fig. 25 in full: a row per test set (its PvR win rate), a column per diversity
    metric and kind; one point per policy."""
    pol, sets = d["policies"], [s for s in ordered_sets(e) if any(s in v for v in e["pvr"].values())]
    # the papers' metrics and the ground truth's content (form and the count of fact sets are in the table)
    shown = {m for ms in pol.values() for m in ms} - {"form", "content_distinct"}
    cols = [(m, k) for m in F.metrics_in_order(shown) for k in F.KINDS]
    if not sets or not cols:
        return
    where = {"id": "ID", "ood": "OOD"}
    cells = [[lambda ax, s=s, m=m, k=k: F.draw_tradeoff(ax, pol, e["pvr"], s, m, k) for m, k in cols] for s in sets]
    rep.grid("tradeoff", "Diversity against performance",
             f"Each policy's diversity on {d['n_inputs']} {d['test_set']} inputs (x, ±1 std) against its PvR win "
             "rate (y, ±1 SE) on every test set (rows), for every metric, per input and across inputs (columns) "
             "(kirk2024 fig. 25).", cells,
             col_titles=[f"{F.METRIC_LABEL.get(m, m)} {F.KINDS[k]}" for m, k in cols],
             row_titles=[f"{s} ({where.get(distribution(e, s), '?')}) PvR %" for s in sets],
             sharex="col", sharey="row")


def training_curves(rep: Sections, rm_rows: list[dict], online: dict[str, list[dict]],
                    summaries: dict[str, dict | None] | None = None) -> None:
    """RM accuracy, each on-policy method's curves (`online`: stage name -> its metrics.jsonl rows),
    with two or more methods their reward-against-KL paths, and the checkpoint each kept
    (`summaries`: stage name -> its manifest's metrics)."""
    kept = _kept_checkpoints(summaries or {})
    if kept:
        rep.add("On-policy training: the kept checkpoints", kept)
    rm_rows = [r for r in rm_rows if "val_accuracy" in r]
    if rm_rows:
        rep.figure("rm_accuracy", "Reward model validation accuracy",
                   "ID validation pairwise accuracy during RM training (kirk2024 fig. 23).",
                   lambda ax: F.draw_rm_accuracy(ax, rm_rows))
    for m, rows in online.items():
        rows = [r for r in rows if "rm_score" in r]
        if rows:
            name = F.label(m)
            rep.figure(f"{m}_curves", f"{name} training", "Rollout RM score, gold reward and KL to the SFT model "
                       "per step" + (" (kirk2024 fig. 24)." if m == "ppo" else "."),
                       lambda ax, rows=rows, name=name: F.draw_ppo(ax, rows, f"{name} step"))
    val = {m: [r for r in rows if "val_rm_score" in r and "val_kl" in r] for m, rows in online.items()}
    val = {m: rows for m, rows in val.items() if rows}
    if len(val) >= 2:
        rep.figure("online_frontier", "Reward against KL", "Every validation pass of each on-policy method: "
                   "reward against KL to the SFT model, from step 0 (the SFT model) to the last pass (star); "
                   "a method further up at the same KL buys more reward for the same drift (Gao et al. 2023).",
                   lambda ax: F.draw_frontier(ax, val))


def _kept_checkpoints(summaries: dict[str, dict | None]) -> str:
    """The validation numbers of the checkpoint each method kept (the policy every later stage
    uses), beside those of its last step, which the curves end on."""
    rows = []
    for m, s in summaries.items():
        sel = (s or {}).get("selected")
        if not sel:
            continue
        last = [fmt(s.get(f"final_{k}")) for k in ("val_rm_score", "val_kl", "val_gold")]
        rows.append(f"| {F.label(m)} | {sel.get('step')} of {s.get('steps', '?')} | {fmt(sel.get('val_rm_score'))} | "
                    f"{fmt(sel.get('val_kl'))} | {fmt(sel.get('val_gold'))} | " + " / ".join(last) + " |")
    if not rows:
        return ""
    return ("Each method keeps the checkpoint with the best validation RM score − β·KL (or its last, when so "
            "configured); every later stage uses the kept one:\n\n| method | kept step | val RM score | val KL | "
            "val gold | last step: RM / KL / gold |\n|---|---|---|---|---|---|\n" + "\n".join(rows))


def reward_models(rep: Sections, table: dict | None) -> None:
    if not table:
        return
    subsets = list(table["subsets"])
    lines = ["| reward model | " + " | ".join(subsets) + " | RewardBench-style |", "|---" * (len(subsets) + 2) + "|"]
    for name, row in table["models"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(row["accuracy"].get(s)) for s in subsets)
                     + f" | {fmt(row.get('rewardbench_score'))} |")
    text = "Pairwise accuracy against the annotators' labels:\n\n" + "\n".join(lines)
    bench = {name: row["rewardbench"] for name, row in table["models"].items() if "rewardbench" in row}
    if bench:
        sections = list(dict.fromkeys(k for r in bench.values() for k in r["sections"]))
        rows = ["| reward model | " + " | ".join(sections) + " | RewardBench score |", "|---" * (len(sections) + 2) + "|"]
        rows += [f"| {name} | " + " | ".join(f"{r['sections'][k]:.1f}" if k in r["sections"] else "–" for k in sections)
                 + f" | {r['score']:.1f} |" for name, r in bench.items()]
        text += ("\n\nRewardBench (ivison2024 table 13): sections in percent, each the mean of its subsets "
                 "weighted by RewardBench's example counts; the score weights Prior Sets 0.5:\n\n" + "\n".join(rows))
    rep.add("Reward models", text)
