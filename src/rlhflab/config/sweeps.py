"""The `sweep` section: stages run over grids of config values (kirk2024 appendix E.3/E.4)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from rlhflab.config.base import Section


class StageSweep(Section):
    """One stage run over a grid of config values, one point selected on ID validation
    (kirk2024 appendix E.3: loss for SFT, accuracy for RMs, reward for RL)."""

    grid: dict[str, list[Any]] = Field(
        description="dotted config key -> values, e.g. {sft.optim.lr: [3.0e-4, 1.0e-4, 3.0e-5]}; several keys "
        "make their cartesian product")
    select: Literal["best", "config"] = Field(
        "best", description="best: the point best on the stage's validation metric feeds downstream; config: "
        "the configured values do (an ablation: the table lists every point, e.g. kirk2024 table 14's freezing)")

    @model_validator(mode="after")
    def _check(self) -> "StageSweep":
        if not self.grid:
            raise ValueError("grid: name at least one key and its values")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{key}: list at least one value")
            if len({repr(v) for v in values}) != len(values):
                raise ValueError(f"grid.{key}: values repeat")
        if math.prod(len(v) for v in self.grid.values()) > 64:
            raise ValueError("grid: more than 64 points; split the sweep")
        return self


class Sweeps(Section):
    """Stage sweeps (off unless set). The swept stage reruns once per point and publishes the selected
    point; every point's metrics are kept in `<stage>/grid.json` and shown in the report."""

    sft: StageSweep | None = None
    rm: StageSweep | None = None
    rm_proxy: StageSweep | None = None
    ppo: StageSweep | None = None
    dpo: StageSweep | None = None
    rloo: StageSweep | None = None
    grpo: StageSweep | None = None
    online_dpo: StageSweep | None = None
    bon: StageSweep | None = None
