"""The runtime of a training process: its device, rank and world size, decided once, in one place.

``torchrun --nproc_per_node=N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous
address); :func:`init_runtime` reads them, joins the group with NCCL on CUDA or gloo on CPU and picks this rank's
device (``cuda:LOCAL_RANK``). Without those variables everything here degrades to a single process (rank 0 of 1),
so the same script runs with plain ``python`` too.

The first call decides; every later call returns the same :class:`Runtime`. A training entry point calls it
before it builds anything that lives on a device (frozen tokenizer, text encoder, the model), so every helper
model lands on this rank's device; the Trainer asks it again and gets the same answer. Work that must happen once
per run (a latent or token cache on disk) goes through :func:`main_first`: rank 0 does it, the others wait.
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from worldsmith.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


_RUNTIME: list[Runtime] = []  # the one decision of this process (a list: no `global` statement needed)


def init_runtime(device: str = "auto") -> Runtime:
    """Join the torchrun process group (if launched by torchrun) and pick this rank's device, once per process.

    ``device``: ``"auto"`` (``cuda:LOCAL_RANK`` when CUDA is available, else CPU), ``"cpu"`` or ``"cuda"``
    (``"cuda:N"`` is taken as CUDA: under torchrun each rank uses its ``LOCAL_RANK``; alone, GPU N). Later calls
    return the first decision; asking for another device type then is an error.
    """
    if _RUNTIME:
        decided = _RUNTIME[0]
        wanted = "cuda" if device.startswith("cuda") else device
        if wanted != "auto" and wanted != decided.device.type:
            raise ConfigError(f"this process already runs on {decided.device}; it cannot switch to device {device!r}.")
        return decided
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but CUDA is not available; use device 'cpu' or 'auto'.")
    if use_cuda:
        index = local_rank if (world_size > 1 or ":" not in device) else int(device.split(":")[1])
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    launched = world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ  # torchrun, even with one process
    if launched and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, device_id=dev if use_cuda else None)
        # leave the group before the interpreter tears down: a gloo group still alive at exit can abort a rank in
        # C++ ("terminate called without an active exception", exit -6) after its work is done
        atexit.register(cleanup)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    _RUNTIME.append(Runtime(rank=rank, world_size=world_size, local_rank=local_rank, device=dev))
    return _RUNTIME[0]


def reset_runtime() -> None:
    """Forget the decision (tests that run several trainings with other devices in one process)."""
    _RUNTIME.clear()


def main_first(work: Callable[[], Any]) -> None:
    """Run ``work`` on rank 0 only (e.g. build a cache file); the other ranks wait until it is done."""
    if is_main():
        work()
    barrier()


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the rank that writes files and prints."""
    return get_rank() == 0


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if dist.is_initialized():
        dist.destroy_process_group()
    reset_runtime()


def _collective_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over all ranks (identity in a single process)."""
    if get_world_size() == 1:
        return values
    out = values.detach().to(_collective_device(), torch.float64).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / get_world_size()).to(values.device)


def gather_json(obj: Any) -> list[Any] | None:
    """Gather one JSON-serialisable object per rank onto rank 0 (``None`` elsewhere), without pickling.

    Each rank encodes ``obj`` as UTF-8 JSON bytes; the byte strings are padded to the longest one and gathered as
    uint8 tensors (every rank must call this).
    """
    if get_world_size() == 1:
        return [obj]
    dev = _collective_device()
    data = torch.tensor(list(json.dumps(obj).encode("utf-8")), dtype=torch.uint8, device=dev)
    length = torch.tensor([data.numel()], dtype=torch.int64, device=dev)
    lengths = [torch.zeros_like(length) for _ in range(get_world_size())]
    dist.all_gather(lengths, length)
    longest = int(max(int(n.item()) for n in lengths))
    padded = torch.zeros(longest, dtype=torch.uint8, device=dev)
    padded[: data.numel()] = data
    chunks = [torch.zeros_like(padded) for _ in range(get_world_size())]
    dist.all_gather(chunks, padded)  # all_gather works on gloo and NCCL alike (gather is gloo-only)
    if not is_main():
        return None
    return [json.loads(bytes(c[: int(n.item())].cpu().tolist()).decode("utf-8")) for c, n in zip(chunks, lengths)]
