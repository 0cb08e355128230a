"""Numeric precision: whether this machine computes bfloat16 natively, and what a ``precision`` setting means.

Every place that offers ``precision: auto | fp32 | bf16`` asks here, so "auto" means one thing per use:

* inference (tokenizer encode/decode, shot detection): bf16 autocast on CUDA and on CPUs with native bf16
  (x86 AVX512-BF16 or AMX, Arm BF16), where matrix multiplies and convolutions run ~1.9x faster
  (benchmarks/RESULTS.md, tokenizer); fp32 elsewhere, where bf16 would be emulated and slower;
* training: bf16 on CUDA only. On a CPU bf16 changes what a run learns, so CPU training keeps fp32 unless asked
  (``--set train.precision=bf16``).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from worldsmith.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX, Arm BF16); None where unknown.

    Without it, bf16 autocast on a CPU is emulated and slower than fp32. Reads ``/proc/cpuinfo`` (Linux).
    """
    if cpuinfo is None:
        return _this_cpu_has_native_bf16()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.lru_cache(maxsize=1)
def _this_cpu_has_native_bf16() -> bool | None:
    try:
        return cpu_has_native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def check_precision(precision: str, name: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"{name} must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    return precision


def use_bf16(precision: str, device: torch.device | str = "cpu", *, training: bool = False) -> bool:
    """Whether ``precision`` means bf16 autocast on ``device`` (see the module doc for "auto")."""
    check_precision(precision)
    if precision != "auto":
        return precision == "bf16"
    kind = torch.device(device).type
    return kind == "cuda" or (not training and kind == "cpu" and cpu_has_native_bf16() is True)


def autocast(bf16: bool, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``bf16``, else nothing."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
