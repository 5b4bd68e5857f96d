"""Reduced precision for inference passes: sampling, reward-model scoring and PPO's reference.

`model.inference_autocast` picks it: `auto` runs those passes under bf16 autocast on a CUDA device
that supports bf16 and in the model's own dtype everywhere else (this CPU has no fast bf16:
autocast there is ~13x slower than float32), `bf16` forces it, `off` never uses it. Training
passes (the losses' forwards, PPO's old log-probs and values) keep the model's dtype, so an
update's ratio compares like with like.

The mode is set for the length of one stage by the pipeline (`inference_mode`), which puts
`model.inference_autocast` in every stage's cache key.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch

Mode = Literal["auto", "bf16", "off"]
_mode: Mode = "auto"


@contextlib.contextmanager
def inference_mode(mode: Mode) -> Iterator[None]:
    """Use `mode` for every inference pass inside the block."""
    global _mode
    if mode not in ("auto", "bf16", "off"):
        raise ValueError(f"model.inference_autocast must be auto, bf16 or off, not {mode!r}")
    previous, _mode = _mode, mode
    try:
        yield
    finally:
        _mode = previous


def uses_bf16(device: torch.device | str, mode: Mode | None = None) -> bool:
    """Whether inference passes on `device` run under bf16 autocast in `mode` (default: the current one)."""
    mode = _mode if mode is None else mode
    device = torch.device(device)
    if mode == "off":
        return False
    if mode == "bf16":
        return True
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def inference_autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for an inference pass on `device` (a no-op when bf16 is not in use)."""
    device = torch.device(device)
    if not uses_bf16(device):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
