"""The study's report: tables, figures in the manner of the papers, computed findings, a sample browser.

`build_report(inputs, out_dir, title)` reads the artefacts of the finished stages it is given
(`inputs` maps a stage name to that stage's folder; any stage may be missing) and writes
`report.md`, `figures/*.png`, `findings.json` and a self-contained `index.html` (figures inlined
as data URIs, no scripts, no network) that opens offline. Findings are computed from the numbers,
each with the comparison it rests on and its uncertainty; nothing is written by hand.

    figures   save_figure, grouped_bars, twin_plot and the report's plots
    findings  compute_findings: the papers' claims decided from the loaded results (pure)
    methods   RLOO, GRPO and online DPO against PPO and SFT, the same paired tests (pure)
    sections  the report's sections (tables and the figures beside them)
    sweeps    the best-of-N and KL-penalty sweep sections
    hparams   the hyper-parameter sweep tables (kirk2024 tables 8–10 and 14)
    metric_validity  each diversity metric against the ground truth, where the task has one
    page      markdown and HTML rendering, the sample browser
"""

from __future__ import annotations

import json
from pathlib import Path

from rlhflab.report import sections, sweeps
from rlhflab.report.downstream import downstream_claims, downstream_section, join_alpaca_eval
from rlhflab.report.figures import grouped_bars, save_figure, twin_plot
from rlhflab.report.findings import compute_findings, method_note
from rlhflab.report.hparams import hparam_sweeps
from rlhflab.report.methods import method_comparisons, methods_section
from rlhflab.report.metric_validity import metric_validity
from rlhflab.report.page import provenance, render_html, render_markdown, sample_browser

__all__ = ["build_report", "compute_findings", "grouped_bars", "save_figure", "twin_plot", "STAGES"]

# stage name -> the files the report reads from that stage's folder
STAGES = {
    "data": ("task.json",),
    "sft": ("grid.json",),
    "rm": ("metrics.jsonl", "grid.json"),
    "rm_proxy": ("grid.json",),
    "rm_eval": ("table.json",),
    "bon": ("sweep.json", "grid.json"),
    "ppo": ("metrics.jsonl", "manifest.json", "grid.json"),
    "dpo": ("grid.json",),
    "rloo": ("metrics.jsonl", "manifest.json"),
    "grpo": ("metrics.jsonl", "manifest.json"),
    "online_dpo": ("metrics.jsonl", "manifest.json"),
    "diversity": ("diversity.json",),
    "eval": ("results.json", "annotations/<policy>_vs_reference/<set>.json", "annotations/<policy>_vs_<baseline>/<set>.json"),
    "kl_sweep": ("sweep.json",),
    "downstream": ("table.json", "items.json"),
}


class _Inputs:
    """The stage folders given (other stages' folders are ignored), and reading from them."""

    def __init__(self, inputs: dict[str, Path]):
        self.dirs = {k: Path(v) for k, v in inputs.items() if v is not None}

    def path(self, stage: str, name: str) -> Path | None:
        return self.dirs[stage] / name if stage in self.dirs else None

    def json(self, stage: str, name: str):
        p = self.path(stage, name)
        return json.loads(p.read_text(encoding="utf-8")) if p is not None and p.exists() else None

    def rows(self, stage: str, name: str) -> list[dict]:
        p = self.path(stage, name)
        if p is None or not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def with_head_to_head_preferences(results: dict | None, eval_dir: Path | None) -> dict | None:
    """results.json with the per-input head-to-head judgements the findings' head-to-head claim
    resamples: read from the eval stage's annotation files when results.json does not carry them
    (eval stages written before results.json kept them)."""
    from rlhflab.evaluation.winrate import preference_from_alpaca

    if not results or results.get("head_to_head_preferences") or eval_dir is None:
        return results
    base, prefs = results.get("baseline", "sft"), {}
    for p, sets in (results.get("head_to_head") or {}).items():
        for s in sets:
            f = Path(eval_dir) / "annotations" / f"{p}_vs_{base}" / f"{s}.json"
            if f.exists():
                rows = json.loads(f.read_text(encoding="utf-8"))
                prefs.setdefault(p, {})[s] = [preference_from_alpaca(r.get("preference")) for r in rows]
    return {**results, "head_to_head_preferences": prefs} if prefs else results


def build_report(inputs: dict[str, Path], out_dir: Path, title: str,
                 alpaca_eval_sets: tuple[str, ...] = ()) -> list[dict]:
    """Write the report into out_dir from the given stage folders; returns the computed findings.
    alpaca_eval_sets: eval test sets joined into the downstream table as AlpacaEval 1 / 2."""
    src, out = _Inputs(inputs), Path(out_dir)
    task = src.json("data", "task.json")
    results = with_head_to_head_preferences(src.json("eval", "results.json"), src.dirs.get("eval"))
    div = src.json("diversity", "diversity.json")
    kl = src.json("kl_sweep", "sweep.json")
    ppo_manifest = src.json("ppo", "manifest.json") or {}

    rep = sections.Sections(out)
    sections.data(rep, task)
    sections.performance(rep, results)
    sections.diversity(rep, div, results)
    metric_validity(rep, div)
    sweeps.best_of_n(rep, src.json("bon", "sweep.json"))
    sweeps.kl_sweep(rep, kl)
    online = ("ppo", "rloo", "grpo", "online_dpo")
    sections.training_curves(rep, src.rows("rm", "metrics.jsonl"), {m: src.rows(m, "metrics.jsonl") for m in online},
                             {m: (src.json(m, "manifest.json") or {}).get("metrics") for m in online})
    sections.reward_models(rep, src.json("rm_eval", "table.json"))
    hparam_sweeps(rep, {s: g for s in STAGES if "grid.json" in STAGES[s] and (g := src.json(s, "grid.json"))})
    downstream, down_items, unjoined = join_alpaca_eval(src.json("downstream", "table.json"),
                                                        src.json("downstream", "items.json"), results, alpaca_eval_sets)
    downstream_section(rep, downstream, unjoined)
    findings = compute_findings(results, div, kl, ppo_manifest.get("metrics"),
                                extra=downstream_claims(downstream, down_items))
    kept_start = tuple(m for m in ("rloo", "grpo", "online_dpo")
                       if ((src.json(m, "manifest.json") or {}).get("metrics") or {}).get("best_step") == 0)
    comparisons = method_comparisons(results, div, kept_start=kept_start)
    methods_section(rep, comparisons)
    note = method_note(findings)
    header = provenance({s: src.json(s, "manifest.json") for s in src.dirs})

    (out / "findings.json").write_text(json.dumps(findings, indent=2), encoding="utf-8")
    if comparisons:
        (out / "methods.json").write_text(json.dumps(comparisons, indent=2), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(title, findings, rep.sections, rep.figures, note, header),
                                   encoding="utf-8")
    samples = sample_browser(results, src.dirs.get("eval"))
    (out / "index.html").write_text(render_html(title, findings, rep.sections, rep.figures, out, samples, note, header),
                                    encoding="utf-8")
    return findings
