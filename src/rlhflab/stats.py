"""Small statistics shared across the library: one standard error, one clamped sigmoid."""

from __future__ import annotations

import math
from statistics import mean, stdev
from typing import Sequence


def standard_error(xs: Sequence[float]) -> float:
    """Sample standard deviation / √n (NaN for fewer than two values)."""
    if len(xs) < 2:
        return float("nan")
    return stdev(xs) / math.sqrt(len(xs))


def mean_se(values: Sequence[float]) -> dict:
    """{"mean", "se", "n"} of a list of values."""
    return {"mean": mean(values), "se": standard_error(values), "n": len(values)}


def sigmoid(z: float, clamp: float = 50.0) -> float:
    """σ(z) with z clamped to ±clamp, so huge gaps give 0/1 instead of an overflow."""
    return 1.0 / (1.0 + math.exp(-max(-clamp, min(clamp, z))))
