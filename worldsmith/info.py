"""``worldsmith info``: versions, threads, accelerators, and what worlds, model families and presets exist."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

import torch

from worldsmith import __version__
from worldsmith.families import FAMILIES
from worldsmith.worlds.registry import world_names


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def collect_info() -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "worldsmith": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {
            name: _version(name)
            for name in ("torch", "numpy", "av", "mujoco", "transformers", "safetensors", "pyarrow", "gymnasium")
        },
        "threads": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "cuda": {
            "available": cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        },
        "mps": mps,
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
        "worlds": world_names(),
        "presets": {name: list(family.presets) for name, family in FAMILIES.items()},
    }


def format_info(info: dict[str, Any]) -> str:
    lines = [f"worldsmith {info['worldsmith']}  (python {info['python']}, {info['platform']})", "packages:"]
    lines += [f"  {k:<13} {v}" for k, v in info["packages"].items()]
    t = info["threads"]
    lines.append(f"threads:       {t['cpu_count']} CPUs, torch uses {t['torch_threads']}")
    c = info["cuda"]
    cuda = f"yes: {', '.join(c['devices'])} (bf16: {'yes' if c['bf16'] else 'no'})" if c["available"] else "no"
    lines.append(f"CUDA:          {cuda}")
    lines.append(f"MPS:           {'yes' if info['mps'] else 'no'}")
    lines.append(f"MuJoCo GL:     {info['mujoco_gl'] or '(default)'}")
    lines.append(f"worlds:        {', '.join(info['worlds'])}")
    lines.append("model presets:")
    for family, names in info["presets"].items():
        lines.append(f"  {family:<13} {', '.join(names)}")
    if not info["presets"]:
        lines.append("  (none)")
    return "\n".join(lines)
