"""Weights on disk: safetensors files, and a model's ``save_pretrained`` / ``from_pretrained`` (no pickle anywhere).

A run directory (what training writes, what generation reads)::

    config.yaml          ``model_class: "module:Class"`` (information only, never imported), ``model:`` (the
                         model's Config dataclass as a dict), and what training adds (``train:``, ``data:`` ...)
    model.safetensors    the weights to use (EMA weights when training kept an EMA) and buffers
    train_state/         training's own files (raw weights, optimizer, RNG ...; worldsmith.train.checkpoint)

A model class joins by inheriting :class:`Pretrained` and naming its config dataclass ``Config``. Every file is
written atomically. Inference code needs only this module, never the training package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import safetensors.torch
import torch
from torch import nn

from worldsmith.atomic import atomic_write_bytes
from worldsmith.config import from_dict, load_yaml, save_yaml, to_dict
from worldsmith.errors import CheckpointError

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
RAW_WEIGHTS = ("train_state/model.safetensors", ".train_state.old/model.safetensors")  # newest first
_ALIASES_KEY = "worldsmith.aliases"  # safetensors metadata: tied tensors stored once, {alias: stored name}
M = TypeVar("M", bound=nn.Module)


# ---------------------------------------------------------------------------------------------------------------
# safetensors files (tied weights stored once)
# ---------------------------------------------------------------------------------------------------------------
def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (any device) to a safetensors file atomically.

    Entries that are the very same tensor (tied weights, e.g. an embedding shared with the output head) are stored
    once and recorded as aliases in the metadata; :func:`load_tensors` restores them.
    """
    stored: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    by_view: dict[tuple, str] = {}
    storages: set[tuple] = set()
    for name, t in tensors.items():
        t = t.detach()
        view = (t.device, t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() > 0 and view in by_view:
            aliases[name] = by_view[view]
            continue
        by_view[view] = name
        storage = (t.device, t.untyped_storage().data_ptr())
        cpu = t.to("cpu").contiguous()
        # safetensors refuses tensors that share memory: copy partial views of an already stored storage
        stored[name] = cpu.clone() if (storage in storages and t.numel() > 0) else cpu
        storages.add(storage)
    meta = dict(metadata or {})
    if aliases:
        meta[_ALIASES_KEY] = json.dumps(aliases)
    atomic_write_bytes(path, safetensors.torch.save(stored, metadata=meta or None))


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file written by :func:`save_tensors` (any safetensors file works)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"weights file {path} does not exist; train the model first or pass the right run directory."
        )
    try:
        with safetensors.safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); delete it and save again.") from None
    for alias, name in json.loads(meta.get(_ALIASES_KEY, "{}")).items():
        tensors[alias] = tensors[name]
    return tensors


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist.")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); delete it and write it again.") from None


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``model.load_state_dict(state)``, with a CheckpointError naming the first mismatching keys/shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch {shapes[:3]}" if shapes else ""]  # fmt: skip
        raise CheckpointError(
            f"weights in {source} do not fit {type(model).__name__} ({'; '.join(p for p in parts if p)}); "
            f"the checkpoint was made for a different model or config."
        )
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------------------
# run directories
# ---------------------------------------------------------------------------------------------------------------
def class_path(cls: type) -> str:
    """``"module.path:ClassName"``, recorded in config.yaml for information only."""
    return f"{cls.__module__}:{cls.__qualname__}"


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The config.yaml of a run directory as a dict; one clear sentence when there is none."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {CONFIG}, so it is not a worldsmith run directory; pass the folder "
                              f"a training run wrote.")  # fmt: skip
    return load_yaml(path)


def save_pretrained(model: nn.Module, model_config: Any, run_dir: str | Path,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:  # fmt: skip
    """Write ``run_dir/model.safetensors`` and the ``model:`` / ``model_class:`` sections of ``config.yaml``.

    Other sections of an existing config.yaml (``train:``, ``data:`` ...) are kept. ``state_dict`` overrides the
    weights written (training passes the EMA weights); by default ``model.state_dict()``.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    config = load_yaml(cfg_path) if cfg_path.is_file() else {}
    config["model_class"] = class_path(type(model))
    config["model"] = to_dict(model_config)
    save_yaml(config, cfg_path)
    save_tensors(model.state_dict() if state_dict is None else state_dict, run_dir / WEIGHTS)
    return run_dir / WEIGHTS


def load_pretrained(model_cls: type[M], run_dir: str | Path, *, ema: bool = True,
                    device: str | torch.device = "cpu") -> M:  # fmt: skip
    """Build ``model_cls(model_cls.Config(**config.yaml["model"]))`` and load its weights from ``run_dir``.

    ``ema=True`` loads ``model.safetensors`` (EMA weights when the run kept an EMA); ``ema=False`` the raw weights
    of the last training checkpoint. ``model_cls.upgrade(config, state)``, when defined, may rewrite an older
    run's model config and weights first. Returned on ``device`` in eval mode.
    """
    run_dir = Path(run_dir)
    config_cls = getattr(model_cls, "Config", None)
    if config_cls is None:
        raise TypeError(f"{model_cls.__name__} has no nested Config dataclass; load_pretrained needs model_cls.Config.")
    config = read_run_config(run_dir)
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{run_dir / CONFIG} has no 'model:' section; it was not written by save_pretrained "
                              f"or by training.")  # fmt: skip
    if ema:
        weights = run_dir / WEIGHTS
    else:
        found = [run_dir / p for p in RAW_WEIGHTS if (run_dir / p).is_file()]
        if not found:
            raise CheckpointError(f"{run_dir} has no train_state/ with raw weights; load with ema=True instead.")
        weights = found[0]
    state, model_config = load_tensors(weights), dict(config["model"])
    upgrade = getattr(model_cls, "upgrade", None)
    if upgrade is not None:
        model_config, state = upgrade(model_config, state, run_dir)
    model = model_cls(from_dict(config_cls, model_config, "model"))
    load_into(model, state, f"{weights} (saved for {config.get('model_class', 'an unknown class')})")
    return model.to(device).eval()


class Pretrained:
    """Mixin of every worldsmith model: ``Model.from_pretrained(run_dir)`` and ``model.save_pretrained(run_dir)``.

    The class names its config dataclass ``Config`` and keeps the instance's config in ``self.cfg``.
    """

    Config: type
    cfg: Any

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str | torch.device = "cpu", ema: bool = True):
        """The model saved in ``run_dir`` (config.yaml + model.safetensors), on ``device``, in eval mode."""
        return load_pretrained(cls, run_dir, ema=ema, device=device)

    def save_pretrained(self, run_dir: str | Path) -> Path:
        """Write ``model.safetensors`` (what ``pretrained_state`` keeps of the state, when the model defines it:
        a LoRA model its adapters) and the ``model:`` section of ``config.yaml`` into ``run_dir``."""
        state = self.state_dict()
        keep = getattr(self, "pretrained_state", None)
        return save_pretrained(self, self.cfg, run_dir, keep(state) if callable(keep) else state)
