"""Random number generator state: seeding, JSON-safe capture/restore, and isolation for side jobs.

Exact resume needs every RNG the training step touches (Python ``random``, NumPy's global generator, torch CPU
and every CUDA device) saved with the checkpoint. The states are encoded as plain JSON (lists, base64 strings),
never pickled.
"""

from __future__ import annotations

import base64
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python, NumPy and torch (CPU and all CUDA devices) with ``seed + rank``; returns that seed.

    Each rank gets its own stream (different dropout masks and augmentations per data-parallel shard) while a
    run stays reproducible for a given seed and world size.
    """
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)  # also seeds every CUDA device
    return s


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def capture_rng_state() -> dict[str, Any]:
    """All global RNG states of this process as a JSON-serialisable dict."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt), "gauss_next": gauss},
        "numpy": {
            "name": name,
            "keys": base64.b64encode(np.asarray(keys, dtype=np.uint32).tobytes()).decode("ascii"),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch_cpu": _b64(torch.get_rng_state()),
        "torch_cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`. CUDA states are restored for as many devices as both sides have."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npst = state["numpy"]
    keys = np.frombuffer(base64.b64decode(npst["keys"]), dtype=np.uint32).copy()
    np.random.set_state((npst["name"], keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))
    torch.set_rng_state(_unb64(state["torch_cpu"]))
    cuda = state.get("torch_cuda") or []
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        for i in range(n):
            torch.cuda.set_rng_state(_unb64(cuda[i]), device=i)


@contextlib.contextmanager
def rng_isolated() -> Iterator[None]:
    """Run a side job (sampling, evaluation) without advancing the training RNG streams.

    Whatever the job draws, the global RNGs are back to their previous state afterwards, so how often hooks
    run never changes the training trajectory (and a resumed run needs not replay them).
    """
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)
