"""What a run reports: ``logs.jsonl`` (one JSON object per logged step), TensorBoard events and a progress bar.

Only rank 0 reports; other ranks get a silent :class:`RunLog`. On resume from step ``k`` every record after ``k``
is dropped first (``logs.jsonl`` rewritten atomically, TensorBoard events purged from step ``k + 1``), so a
killed-and-resumed run leaves exactly the records an uninterrupted run would (timings aside).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from worldsmith.atomic import atomic_write_text
from worldsmith.train.runtime import all_reduce_mean

LOGS = "logs.jsonl"
RESERVED = frozenset({"step", "loss", "lr", "grad_norm", "samples_per_s", "time", "epoch"})  # the Trainer's keys


def read_logs(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``logs.jsonl`` (a torn last line from a crash is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def truncate_logs(path: str | Path, last_step: int) -> int:
    """Keep only records with ``step <= last_step`` (and drop torn lines); returns how many were dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = [json.dumps(r) for r in read_logs(path) if int(r.get("step", 0)) <= last_step]
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


def _scalar(value: Any) -> float | int | str | None:
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    try:
        return float(value)  # python floats, numpy scalars, 0-d / 1-element tensors
    except (TypeError, ValueError):
        return str(value)


class RunLog:
    """JSONL + TensorBoard + tqdm for one run; everything is a no-op when ``enabled`` is False."""

    def __init__(
        self,
        run_dir: str | Path,
        *,
        start_step: int,
        total_steps: int,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
    ):
        self.enabled = enabled
        self.path = Path(run_dir) / LOGS
        self._file = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        truncate_logs(self.path, start_step)
        self._file = self.path.open("a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=start_step + 1)
        if progress and sys.stderr.isatty():
            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one record (must hold ``step``) to logs.jsonl and TensorBoard; returns it as written."""
        if not self.enabled:
            return record
        rec = {k: _scalar(v) for k, v in record.items()}
        assert self._file is not None
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(rec["step"])
            for key, value in rec.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, step)
        if self._bar is not None and "loss" in rec:
            postfix = {"loss": f"{rec['loss']:.4g}"}
            if isinstance(rec.get("samples_per_s"), float) and math.isfinite(rec["samples_per_s"]):
                postfix["samples/s"] = f"{rec['samples_per_s']:.1f}"
            self._bar.set_postfix(postfix, refresh=False)
        return rec

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(steps)

    def message(self, text: str) -> None:
        """Print a one-line note for the user (above the progress bar when there is one)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._file is not None:
            self._file.close()
        self._bar = self._tb = self._file = None


class LossMeter:
    """Sums of the loss and the loss's logs since the last log step, kept on device (no sync per step).

    A log named like one of the Trainer's own keys (``loss``, ``lr`` ...) is recorded as ``model/NAME``.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.samples = 0
        self.started = time.perf_counter()
        self.paused = 0.0  # seconds spent in hooks and checkpoints, left out of samples/s

    def add(self, loss: torch.Tensor, logs: dict[str, Any], samples: int) -> None:
        self.count += 1
        self.samples += samples
        items = {"loss": loss.detach().float()}
        for k, v in logs.items():
            value = torch.as_tensor(v, device=loss.device).detach().float().mean()
            items[f"model/{k}" if k in RESERVED else k] = value
        for k, v in items.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def means(self) -> dict[str, float]:
        """Averages over micro-batches and, in a distributed run, over ranks (every rank must call this)."""
        keys = sorted(self.sums)
        values = all_reduce_mean(torch.stack([self.sums[k] for k in keys]) / max(self.count, 1))
        return dict(zip(keys, values.tolist()))
