"""`report` stage: `runs/<experiment>/report/` with index.html (self-contained), report.md, figures
and computed findings, from whichever study artefacts this config produces."""

from __future__ import annotations

from rlhflab.pipeline import Stage, StageContext
from rlhflab.report import build_report

SOURCES = ("rm", "rm_eval", "bon", "ppo", "dpo", "diversity", "eval", "kl_sweep")


def _needs(cfg) -> list[str]:
    enabled = {"rm_eval": True, "rm": True, "bon": cfg.bon.enabled, "ppo": cfg.ppo.enabled,
               "dpo": cfg.dpo.enabled, "diversity": cfg.diversity.enabled, "eval": cfg.eval.enabled,
               "kl_sweep": cfg.kl_sweep.enabled}
    return [s for s in SOURCES if enabled[s]]


def run(ctx: StageContext) -> dict:
    # the report reads finished artefacts by their final names, so point it at the run folder
    findings = build_report(ctx.run_dir, ctx.out) if ctx.is_main else []
    return {"findings_reproduced": sum(f["reproduced"] is True for f in findings),
            "findings_checked": sum(f["reproduced"] is not None for f in findings)}


STAGE = Stage(name="report", needs=_needs, reads=(), run=run, version="1")
