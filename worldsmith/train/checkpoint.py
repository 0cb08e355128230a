"""Checkpoint files: safetensors weights, a JSON/YAML config, and the resumable ``train_state/`` directory.

A run directory::

    config.yaml          resolved config of the whole run: ``model:`` (the model's Config dataclass as a dict),
                         ``train:``, ``data:`` ... and ``model_class: "module:Class"`` (information only, never
                         imported)
    model.safetensors    the weights to use: EMA weights when EMA is on, else the raw ones (+ buffers)
    train_state/         raw weights, EMA, optimizer, step, RNG and data position (see write_train_state)
    logs.jsonl, tb/, samples/

Nothing is pickled: tensors go to safetensors, everything else to JSON/YAML. Every file is written atomically and
``train_state/`` is swapped in as a whole directory, so a crash at any moment leaves the previous checkpoint
loadable.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import safetensors.torch
import torch
from torch import nn

from worldsmith.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from worldsmith.config import from_dict, load_yaml, save_yaml, to_dict
from worldsmith.errors import CheckpointError, ConfigError

TRAIN_STATE = "train_state"
_OLD_TRAIN_STATE = f".{TRAIN_STATE}.old"  # left by a crash between atomic_dir's two renames
_ALIASES_KEY = "worldsmith.aliases"  # safetensors metadata: tied tensors stored once, {alias: stored name}
M = TypeVar("M", bound=nn.Module)


# ---------------------------------------------------------------------------------------------------------------
# safetensors with tied weights
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


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``model.load_state_dict(state)``, with a CheckpointError naming the first mismatching keys/shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch {shapes[:3]}" if shapes else ""]
        raise CheckpointError(
            f"weights in {source} do not fit {type(model).__name__} ({'; '.join(p for p in parts if p)}); "
            f"the checkpoint was made for a different model or config."
        )
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------------------
# optimizer state without pickle: tensors -> safetensors, the rest -> JSON
# ---------------------------------------------------------------------------------------------------------------
def encode_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict (keyed by parameter name or index) into tensors and a JSON-able rest.

    Tensor ``state[param][key]`` is stored as ``"{param}/{key}"``; non-tensor per-parameter values and the
    param_groups go to the JSON part.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    params = []
    for pid, pstate in state["state"].items():
        params.append(pid)
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    meta = {"params": params, "scalars": scalars, "param_groups": groups}
    try:
        json.dumps(meta)
    except TypeError as e:
        raise TypeError(f"optimizer state has a value that is neither a tensor nor JSON-serialisable: {e}") from None
    return tensors, meta


def decode_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_optimizer_state`."""
    state: dict[Any, dict[str, Any]] = {pid: dict(meta["scalars"].get(str(pid), {})) for pid in meta["params"]}
    pids = {str(pid): pid for pid in meta["params"]}
    for name, t in tensors.items():
        pid_str, key = name.rsplit("/", 1)  # parameter names may hold '/', state keys never do
        state[pids[pid_str]][key] = t
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------------------------
# train_state/
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TrainStateFiles:
    path: Path
    model: dict[str, torch.Tensor]  # raw weights and buffers
    ema: dict[str, torch.Tensor] | None  # fp32 EMA shadows by parameter name
    optimizer: dict[str, Any]  # optimizer state keyed by parameter name
    state: dict[str, Any]  # step, per-rank RNG and data position (see Trainer._state_json)


def find_train_state(run_dir: str | Path) -> Path | None:
    """The newest complete ``train_state`` directory of ``run_dir``, or None if the run never saved one.

    ``atomic_dir`` swaps directories with two renames (current -> ``.train_state.old``, new -> current); a crash
    between them leaves only ``.train_state.old``, which is then the latest complete checkpoint.
    """
    run_dir = Path(run_dir)
    for candidate in (run_dir / TRAIN_STATE, run_dir / _OLD_TRAIN_STATE):
        if candidate.is_dir():
            if not (candidate / "state.json").is_file():
                raise CheckpointError(f"{candidate} has no state.json, so it is incomplete; delete it to start over.")
            return candidate
    return None


def write_train_state(
    run_dir: str | Path,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write ``run_dir/train_state/`` as one atomic directory swap (call on one rank only).

    Files: ``model.safetensors`` (raw weights), ``ema.safetensors`` (if EMA is on), ``optimizer.safetensors`` +
    ``optimizer.json``, ``state.json``. Each file is fsynced before the directory is renamed into place.
    """
    run_dir = Path(run_dir)
    remove_stale_temporaries(run_dir)
    with atomic_dir(run_dir / TRAIN_STATE) as tmp:
        save_tensors(model, tmp / "model.safetensors")
        if ema is not None:
            save_tensors(ema, tmp / "ema.safetensors")
        opt_tensors, opt_meta = encode_optimizer_state(optimizer)
        save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        atomic_write_text(tmp / "optimizer.json", json.dumps(opt_meta))
        atomic_write_text(tmp / "state.json", json.dumps(state))
    # the new directory is in place: an old one left by an earlier crash between the renames is now stale
    shutil.rmtree(run_dir / _OLD_TRAIN_STATE, ignore_errors=True)
    return run_dir / TRAIN_STATE


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is unreadable ({e}); delete {path.parent} to start the run over.") from None


def read_state_json(path: str | Path) -> dict[str, Any]:
    """Only ``state.json`` of a train_state directory (step, RNG, data position)."""
    return _read_json(Path(path) / "state.json")


def read_train_state(path: str | Path) -> TrainStateFiles:
    path = Path(path)
    state = read_state_json(path)
    opt_meta = _read_json(path / "optimizer.json")
    ema_path = path / "ema.safetensors"
    return TrainStateFiles(
        path=path,
        model=load_tensors(path / "model.safetensors"),
        ema=load_tensors(ema_path) if ema_path.is_file() else None,
        optimizer=decode_optimizer_state(load_tensors(path / "optimizer.safetensors"), opt_meta),
        state=state,
    )


def remove_stale_temporaries(run_dir: str | Path) -> None:
    """Delete temporaries that a killed writer left in ``run_dir`` (``.NAME.*.tmp`` files and directories)."""
    for p in Path(run_dir).glob(".*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def remove_run_outputs(run_dir: str | Path) -> None:
    """Delete what a training run wrote in ``run_dir`` (for starting over); other files are left alone."""
    run_dir = Path(run_dir)
    for name in (TRAIN_STATE, _OLD_TRAIN_STATE, "tb", "samples"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in ("model.safetensors", "logs.jsonl", "config.yaml"):
        (run_dir / name).unlink(missing_ok=True)
    remove_stale_temporaries(run_dir)


# ---------------------------------------------------------------------------------------------------------------
# pretrained weights: model.safetensors + config.yaml
# ---------------------------------------------------------------------------------------------------------------
def class_path(cls: type) -> str:
    """``"module.path:ClassName"``, recorded in config.yaml for information only."""
    return f"{cls.__module__}:{cls.__qualname__}"


def save_pretrained(
    model: nn.Module, model_config: Any, run_dir: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write ``run_dir/model.safetensors`` and the ``model:`` / ``model_class:`` sections of ``config.yaml``.

    Other sections of an existing config.yaml (``train:``, ``data:`` ...) are kept. ``state_dict`` overrides the
    weights written (the Trainer passes the EMA weights); by default ``model.state_dict()``.
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    config = load_yaml(cfg_path) if cfg_path.is_file() else {}
    config["model_class"] = class_path(type(model))
    config["model"] = to_dict(model_config)
    save_yaml(config, cfg_path)
    save_tensors(model.state_dict() if state_dict is None else state_dict, run_dir / "model.safetensors")
    return run_dir / "model.safetensors"


def load_pretrained(
    model_cls: type[M], run_dir: str | Path, *, ema: bool = True, device: str | torch.device = "cpu"
) -> M:
    """Build ``model_cls(model_cls.Config(**config.yaml["model"]))`` and load weights from ``run_dir``.

    ``ema=True`` loads ``model.safetensors`` (EMA weights when the run used EMA); ``ema=False`` loads the raw
    weights from ``train_state/``. The model is returned on ``device`` in eval mode.
    """
    run_dir = Path(run_dir)
    config_cls = getattr(model_cls, "Config", None)
    if config_cls is None:
        raise TypeError(f"{model_cls.__name__} has no nested Config dataclass; load_pretrained needs model_cls.Config.")
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{run_dir} has no config.yaml, so it is not a worldsmith run directory; pass the directory a run wrote."
        )
    config = load_yaml(cfg_path)
    if not isinstance(config.get("model"), dict):
        raise CheckpointError(
            f"{cfg_path} has no 'model:' section; it was not written by save_pretrained or the Trainer."
        )
    model = model_cls(from_dict(config_cls, config["model"], "model"))
    if ema:
        weights = run_dir / "model.safetensors"
    else:
        state_dir = find_train_state(run_dir)
        if state_dir is None:
            raise CheckpointError(f"{run_dir} has no train_state/ with raw weights; load with ema=True instead.")
        weights = state_dir / "model.safetensors"
    load_into(model, load_tensors(weights), f"{weights} (saved for {config.get('model_class', 'an unknown class')})")
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------
# config compatibility on resume
# ---------------------------------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str) -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return {prefix: d}


def check_resumable(saved: dict[str, Any], new: dict[str, Any], ignore: dict[str, frozenset[str]]) -> None:
    """Raise ConfigError naming every key of the ``model`` / ``train`` sections that differs between runs.

    ``ignore`` maps a section to keys that may change (e.g. ``train.steps``). Both configs are compared as plain
    YAML values.
    """
    diffs = []
    for section in ("model", "train"):
        a, b = _flatten(saved.get(section, {}), section), _flatten(new.get(section, {}), section)
        for key in sorted(set(a) | set(b)):
            if key.partition(".")[2].split(".")[0] in ignore.get(section, frozenset()):
                continue
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                diffs.append(f"{key} (saved {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r})")
    if diffs:
        raise ConfigError(
            f"the run directory holds a run with a different config: {', '.join(diffs)}; "
            f"use the saved config to resume, or start over (--fresh / resume=False)."
        )
