"""Peak memory of a stage: resident set size on the CPU (Linux's VmHWM, reset between stages through
/proc/self/clear_refs) and the CUDA allocator's peak, so a manifest says what a stage needed."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _vm_hwm_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Start a new peak measurement; False where the CPU peak cannot be reset (it then stays the
    process's lifetime peak)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        _CLEAR.write_text("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


def peak() -> dict[str, float]:
    """{"peak_rss_mb": …, and "peak_cuda_mb" on CUDA} since the last reset_peak."""
    rss = _vm_hwm_mb()
    if rss is None:  # ru_maxrss: KiB on Linux, bytes on macOS; never reset
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = raw / 2**20 if sys.platform == "darwin" else raw / 1024
    out = {"peak_rss_mb": round(rss, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def describe(memory: dict | None) -> str:
    """"812" or "812 (CUDA 2048)": a stage's peaks in MB, for the run summary."""
    mem = memory or {}
    text = f"{mem['peak_rss_mb']:.0f}" if "peak_rss_mb" in mem else "–"
    return text + (f" (CUDA {mem['peak_cuda_mb']:.0f})" if "peak_cuda_mb" in mem else "")
