"""Checkpoint files: safetensors weights, a JSON/YAML config, and the resumable ``train_state/`` directory.

A run directory::

    config.yaml          resolved config of the whole run: ``model:`` (the model's Config dataclass as a dict),
                         ``train:``, ``data:`` ... and ``model_class: "module:Class"`` (information only, never
                         imported)
    model.safetensors    the weights to use: EMA weights when EMA is on, else the raw ones (+ buffers)
    train_state/         raw weights, EMA, optimizer, step, RNG, data position, and a loss's trainable networks
                         with their optimizer (see write_train_state)
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
from typing import Any

import torch

from worldsmith.atomic import atomic_dir, atomic_write_text
from worldsmith.errors import CheckpointError, ConfigError
from worldsmith.weights import load_tensors, save_tensors

TRAIN_STATE = "train_state"
_OLD_TRAIN_STATE = f".{TRAIN_STATE}.old"  # left by a crash between atomic_dir's two renames


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
    state: dict[str, Any]  # step, per-rank RNG and data position (see Trainer.save_checkpoint)
    loss: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None  # a loss's trainable networks + optimizer


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
    loss: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> Path:
    """Write ``run_dir/train_state/`` as one atomic directory swap (call on one rank only).

    Files: ``model.safetensors`` (raw weights), ``ema.safetensors`` (if EMA is on), ``optimizer.safetensors`` +
    ``optimizer.json``, ``state.json``, and for a loss with trainable networks ``loss.safetensors`` +
    ``loss_optimizer.safetensors`` / ``.json``. Each file is fsynced before the directory is renamed into place.
    """
    run_dir = Path(run_dir)
    remove_stale_temporaries(run_dir)
    with atomic_dir(run_dir / TRAIN_STATE) as tmp:
        save_tensors(model, tmp / "model.safetensors")
        if ema is not None:
            save_tensors(ema, tmp / "ema.safetensors")
        _save_optimizer(optimizer, tmp, "optimizer")
        if loss is not None:
            save_tensors(loss[0], tmp / "loss.safetensors")
            _save_optimizer(loss[1], tmp, "loss_optimizer")
        atomic_write_text(tmp / "state.json", json.dumps(state))
    # the new directory is in place: an old one left by an earlier crash between the renames is now stale
    shutil.rmtree(run_dir / _OLD_TRAIN_STATE, ignore_errors=True)
    return run_dir / TRAIN_STATE


def _save_optimizer(optimizer: dict[str, Any], folder: Path, name: str) -> None:
    tensors, meta = encode_optimizer_state(optimizer)
    save_tensors(tensors, folder / f"{name}.safetensors")
    atomic_write_text(folder / f"{name}.json", json.dumps(meta))


def _read_optimizer(folder: Path, name: str) -> dict[str, Any]:
    return decode_optimizer_state(load_tensors(folder / f"{name}.safetensors"), _read_json(folder / f"{name}.json"))


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
    ema_path, loss_path = path / "ema.safetensors", path / "loss.safetensors"
    return TrainStateFiles(
        path=path,
        model=load_tensors(path / "model.safetensors"),
        ema=load_tensors(ema_path) if ema_path.is_file() else None,
        optimizer=_read_optimizer(path, "optimizer"),
        state=state,
        loss=(load_tensors(loss_path), _read_optimizer(path, "loss_optimizer")) if loss_path.is_file() else None,
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
    """Raise ConfigError naming every key of the ``model`` / ``loss`` / ``train`` sections that differs between runs.

    ``ignore`` maps a section to keys that may change (e.g. ``train.steps``). Both configs are compared as plain
    YAML values. A key the saved run does not have (an option added to worldsmith after it was written) is no
    difference when its new value is "off" (False, 0, "", None or empty): new options default to the behaviour
    runs had before them, so such a run resumes after an upgrade.
    """
    diffs = []
    for section in ("model", "loss", "train"):
        a, b = _flatten(saved.get(section, {}), section), _flatten(new.get(section, {}), section)
        for key in sorted(set(a) | set(b)):
            if key.partition(".")[2].split(".")[0] in ignore.get(section, frozenset()):
                continue
            if key not in a and key in b and b[key] in (False, 0, "", None, [], {}):
                continue
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                diffs.append(f"{key} (saved {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r})")
    if diffs:
        raise ConfigError(
            f"the run directory holds a run with a different config: {', '.join(diffs)}; "
            f"use the saved config to resume, or start over (--fresh / resume=False)."
        )
