"""How a model and its loss are wrapped for training: LossStep, activation checkpointing, DDP, FSDP2, full state.

Model hooks (all optional):

* ``checkpoint_modules() -> Iterable[nn.Module]``: the blocks to recompute in backward when
  ``activation_checkpointing`` is on (typically the transformer blocks).
* ``fsdp_modules() -> Iterable[nn.Module]``: the units FSDP2 shards one by one; defaults to
  ``checkpoint_modules()``.

DDP synchronises gradients only through ``forward``, and FSDP2 all-gathers parameters in forward hooks, so the
Trainer never calls ``loss(model, batch)`` directly: it calls :class:`LossStep`, one module whose ``forward`` is the
loss and whose submodules are the model and (when it is a module) the loss with its own networks. DDP, FSDP2 (as
the root) and ``torch.compile`` wrap that. FSDP2 runs on GPUs (NCCL) and on CPUs (gloo) alike.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from worldsmith.errors import CheckpointError, ConfigError


class LossStep(nn.Module):
    """``forward(batch) == loss(model, batch)``: one module around the model and its loss (with the loss's own
    networks when it is a module), which DDP, FSDP2 (as the root) and ``torch.compile`` wrap."""

    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, Any], Any]):
        super().__init__()
        self.model, self.loss = model, loss  # a loss that is an nn.Module registers as a submodule

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.loss(self.model, batch)


def _hook_modules(model: nn.Module, *names: str) -> list[nn.Module] | None:
    for name in names:
        fn = getattr(model, name, None)
        if callable(fn):
            mods = list(fn())
            bad = [type(m).__name__ for m in mods if not isinstance(m, nn.Module)]
            if bad:
                raise TypeError(f"{type(model).__name__}.{name}() must return nn.Modules, got {bad[:3]}.")
            return mods
    return None


def _checkpointed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    forward = type(self).forward
    if not torch.is_grad_enabled():
        return forward(self, *args, **kwargs)
    # non-reentrant checkpointing; the RNG state is replayed in the recomputation, so dropout masks match
    return checkpoint(forward, self, *args, use_reentrant=False, **kwargs)


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Make every module of ``model.checkpoint_modules()`` recompute its activations in backward.

    Only the instance's ``forward`` is replaced (parameter names and state dicts are unchanged). Returns the number
    of modules wrapped; applying it twice is harmless.
    """
    mods = _hook_modules(model, "checkpoint_modules")
    if mods is None:
        raise ConfigError(
            f"activation_checkpointing is on but {type(model).__name__} has no checkpoint_modules() method listing "
            f"its blocks; add one or set train.activation_checkpointing=false."
        )
    for m in mods:
        if "forward" not in m.__dict__:
            m.forward = types.MethodType(_checkpointed_forward, m)  # type: ignore[method-assign]
    return len(mods)


def broadcast_from_main(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers, as DDP does when it wraps a model (FSDP2 does not)."""
    seen: set[int] = set()
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                dist.broadcast(t, src=0)


def apply_fsdp(step: LossStep, bf16: bool, device: torch.device) -> None:
    """Shard the model of ``step`` with FSDP2: ``fully_shard`` on each unit of the model's ``fsdp_modules()`` /
    ``checkpoint_modules()``, then on ``step`` as the root (its forward is the loss, so the root's all-gather
    covers every parameter outside the units, the loss's own networks included). Rank 0's weights are broadcast
    first, so every rank starts from the same model, as under DDP. Needs an initialised process group (NCCL on
    GPUs, gloo on CPUs).

    The device mesh is every rank on ``device``'s type (the runtime's decision; torch's default would be the
    machine's accelerator even for a CPU run). With ``bf16`` parameters are all-gathered in bf16 and gradients
    reduced in fp32.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor import init_device_mesh

    model = step.model
    units = _hook_modules(model, "fsdp_modules", "checkpoint_modules")
    if not units:
        raise ConfigError(
            f"train.fsdp is on but {type(model).__name__} lists no fsdp_modules() or checkpoint_modules() to shard "
            f"one by one; add one of these methods or set train.fsdp=false."
        )
    broadcast_from_main(step)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    param_dtype = torch.bfloat16 if bf16 else None
    unit_policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for unit in units:
        fully_shard(unit, mesh=mesh, mp_policy=unit_policy)
    # the batch holds targets too: leave its dtypes alone at the root
    root_policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32, cast_forward_inputs=False)
    fully_shard(step, mesh=mesh, mp_policy=root_policy)


@contextlib.contextmanager
def gathered(root: nn.Module | None) -> Iterator[None]:
    """The FSDP root's own parameters (those outside the units) all-gathered, so the model can run a forward
    outside the root's (the eval and sample hooks); the units gather themselves in their own forward hooks.
    ``None`` (no FSDP): nothing to do. Every rank must enter it together."""
    if root is None:
        yield
        return
    root.unshard()
    try:
        yield
    finally:
        root.reshard()


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """FSDP2's ``no_sync``: skip the reduce-scatter on non-final gradient-accumulation micro-steps."""
    fn = getattr(model, "set_requires_gradient_sync", None)
    if fn is not None:
        fn(enabled)


# ---------------------------------------------------------------------------------------------------------------
# full (unsharded) state dicts keyed by parameter name; under FSDP every rank must call these together
# ---------------------------------------------------------------------------------------------------------------
def _dcp_options(load: bool) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions  # heavy import: only under FSDP

    return StateDictOptions(full_state_dict=True, cpu_offload=not load)


def full_model_state(model: nn.Module, sharded: bool = False) -> dict[str, torch.Tensor]:
    """The whole state dict of ``model`` (under FSDP gathered to CPU, complete on rank 0 only)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_dcp_options(load=False))
    return model.state_dict()


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str, sharded: bool = False,
                     names: set[str] | None = None) -> None:  # fmt: skip
    """Load a full state dict (on every rank) into a plain, DDP-wrapped or FSDP-sharded model.

    ``names``: the part of the model's state dict that ``state`` holds (a loss module's trainable networks, not
    its frozen ones); by default all of it. A state that does not fit is one CheckpointError naming the first keys.
    """
    expected = {k: v for k, v in model.state_dict().items() if names is None or k in names}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch {shapes[:3]}" if shapes else ""]  # fmt: skip
        raise CheckpointError(f"weights in {source} do not fit {type(model).__name__} "
                              f"({'; '.join(p for p in parts if p)}); the checkpoint was made for a different model "
                              f"or config: resume with the saved config, or start over with --fresh.")  # fmt: skip
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=names is None))
    else:
        model.load_state_dict(state, strict=names is None)


def _names_by_index(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, sharded: bool = False) -> dict[str, Any]:
    """Optimizer state keyed by parameter name: ``{"state": {name: {...}}, "param_groups": [{"params": [names]}]}``.

    The same layout as ``torch.distributed.checkpoint``'s full optimizer state dict, so checkpoints move freely
    between single-process, DDP and FSDP runs.
    """
    if sharded:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_dcp_options(load=False))
    sd = optimizer.state_dict()
    names = _names_by_index(model, optimizer)
    return {
        "state": {names[i]: st for i, st in sd["state"].items()},
        "param_groups": [dict(g, params=[names[i] for i in g["params"]]) for g in sd["param_groups"]],
    }


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], sharded: bool = False
) -> None:
    if sharded:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_dcp_options(load=True))
        return
    index = {n: i for i, n in enumerate(_names_by_index(model, optimizer))}
    saved = [n for g in state["param_groups"] for n in g["params"]]
    if sorted(saved) != sorted(index) or [len(g["params"]) for g in state["param_groups"]] != [
        len(g["params"]) for g in optimizer.param_groups
    ]:
        raise CheckpointError(
            "the saved optimizer state covers different parameters than the model; start over with --fresh."
        )
    optimizer.load_state_dict(
        {
            "state": {index[n]: st for n, st in state["state"].items()},
            "param_groups": [dict(g, params=[index[n] for n in g["params"]]) for g in state["param_groups"]],
        }
    )


def _is_dtensor(t: torch.Tensor) -> bool:
    # checked without importing torch.distributed.tensor (a second of import time) unless FSDP loaded it already
    return hasattr(t, "device_mesh") and hasattr(t, "full_tensor")


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy of the whole tensor (all-gathers a DTensor shard; collective under FSDP)."""
    return (t.full_tensor() if _is_dtensor(t) else t.detach()).to("cpu")


def shard_like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``ref``: sharded the same way if ``ref`` is a DTensor, else moved to its device."""
    if _is_dtensor(ref):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(ref.device, ref.dtype), ref.device_mesh, ref.placements)
    return full.to(ref.device, ref.dtype)
