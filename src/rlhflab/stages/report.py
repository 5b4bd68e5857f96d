"""`report` stage: `runs/<experiment>/report/` with index.html (self-contained), report.md, figures
and computed findings, from whichever study artefacts this config produces."""

from __future__ import annotations

from rlhflab.pipeline import Stage, StageContext
from rlhflab.report import STAGES, build_report

SOURCES = tuple(STAGES)  # the stages whose files the report reads


def run(ctx: StageContext) -> dict:
    inputs = {s: ctx.input(s) for s in SOURCES if ctx.has_input(s)}
    findings = build_report(inputs, ctx.out, ctx.run_dir.name, tuple(ctx.cfg.downstream.alpaca_eval_sets)) \
        if ctx.is_main else []
    verdicts = [f["verdict"] for f in findings]
    return {"findings_reproduced": verdicts.count("reproduced"), "findings_contradicted": verdicts.count("contradicted"),
            "findings_inconclusive": verdicts.count("inconclusive"),
            "findings_checked": sum(v != "not run" for v in verdicts)}


STAGE = Stage(name="report", needs=lambda cfg: [], wants=lambda cfg: list(SOURCES),
              reads=("downstream.alpaca_eval_sets",), run=run,
              headline=("findings_reproduced", "findings_contradicted", "findings_inconclusive", "findings_checked"))
