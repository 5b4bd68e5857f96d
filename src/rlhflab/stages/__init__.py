"""The stage registry, in topological order. A new stage is one file plus one line here."""

from rlhflab.stages import (bon, comparisons, data, diversity, downstream, dpo, eval, gguf, grpo, kl_sweep, online_dpo,
                            ppo, pretrain, report, rloo, rm, rm_eval, sft)

REGISTRY = [
    gguf.STAGE,
    data.STAGE,
    pretrain.STAGE,
    sft.STAGE,
    comparisons.STAGE,
    rm.STAGE,
    rm.PROXY_STAGE,
    rm_eval.STAGE,
    bon.STAGE,
    ppo.STAGE,
    dpo.STAGE,
    rloo.STAGE,
    grpo.STAGE,
    online_dpo.STAGE,
    diversity.STAGE,
    eval.STAGE,
    kl_sweep.STAGE,
    downstream.STAGE,
    report.STAGE,
]
