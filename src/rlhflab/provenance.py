"""What produced an artefact: the package versions and the machine, recorded in every manifest.

Runs are bit-identical on one machine and differ across CPU families: another float kernel (AVX2
or AVX-512 GEMMs, oneDNN's bf16 paths) rounds differently, and one rounding apart is enough for a
sampled token to differ, after which the two runs draw different texts. So every stage's manifest
records the machine it ran on, and the report names the machines its numbers came from.

`machine()` reads the CPU's name and instruction-set flags from /proc/cpuinfo (Linux) or the
platform module elsewhere, and the ISA level torch's CPU kernels dispatch to.
"""

from __future__ import annotations

import functools
import platform
from importlib import metadata
from pathlib import Path

# flags that change which kernels run (bf16 and int8 matrix units, the widest vectors)
NOTABLE_FLAGS = (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX"))


def _cpuinfo(text: str) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_family(vendor: str, arch: str, capability: str, flags: set[str]) -> str:
    """A short name for the class of CPU whose kernels a run used, e.g. "AMD x86_64 AVX2" or
    "Intel x86_64 AVX512 +AVX512-BF16 +AMX": runs with one family name may be compared bit for bit."""
    maker = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or "unknown")
    extras = "".join(f" +{name}" for flag, name in NOTABLE_FLAGS if flag in flags)
    return f"{maker} {arch} {capability}{extras}"


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """{"cpu", "family", "cores", "torch_cpu_capability", "gpu"} for this process's machine."""
    import os

    import torch

    info: dict[str, str] = {}
    try:
        info = _cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    flags = set(info.get("flags", "").split())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "family": cpu_family(info.get("vendor_id", ""), platform.machine(), capability, flags),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "torch_cpu_capability": capability, "gpu": gpu}


def describe(m: dict | None) -> str:
    """One line for a person: "Intel(R) Xeon(R) Processor (Intel x86_64 AVX512 +AVX512-BF16 +AMX, 2 cores)"."""
    if not m:
        return "unknown machine (written before rlhflab recorded it)"
    text = f"{m.get('cpu', '?')} ({m.get('family', '?')}, {m.get('cores', '?')} cores)"
    return text + (f", GPU {m['gpu']}" if m.get("gpu") else "")


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit of rlhflab's own source when it runs from a checkout (`pip install -e .`), with
    "-dirty" when files differ from it; None for an installed wheel or without git."""
    import subprocess

    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """The versions of what computes the numbers, and rlhflab's commit when it runs from a checkout."""
    out = {"python": platform.python_version()}
    if (commit := source_commit()) is not None:
        out["rlhflab_commit"] = commit
    for pkg in ("rlhflab", "torch", "transformers", "tokenizers", "accelerate", "datasets", "peft",
                "sentence-transformers", "pydantic"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
