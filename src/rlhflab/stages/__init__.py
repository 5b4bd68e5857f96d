"""The stage registry, in topological order. A new stage is one file plus one line here."""

from rlhflab.stages import data, pretrain, sft

REGISTRY = [
    data.STAGE,
    pretrain.STAGE,
    sft.STAGE,
]
