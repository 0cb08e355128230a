"""An endless stream of training batches whose position can be saved and restored exactly.

The Trainer accepts three kinds of ``data``:

1. a callable ``data(epoch) -> Iterable[batch]`` (simplest; a fresh iterable per epoch);
2. an iterable (a ``DataLoader``, an ``IterableDataset`` ...) that yields the same batches for the same epoch
   after ``set_epoch(epoch)``. ``set_epoch`` is called on the object itself and, for a DataLoader, on its
   ``dataset``, ``sampler`` and ``batch_sampler`` when they have one (e.g. ``DistributedSampler``);
3. such an iterable that also has ``state_dict()`` / ``load_state_dict()`` (e.g. a stateful DataLoader): its
   state, which must describe the position of the next batch and be JSON-serialisable, is saved with each
   checkpoint and restored on resume (fast path, nothing is replayed).

Resume without ``state_dict`` replays the epoch: ``set_epoch(epoch)``, then the already consumed batches of that
epoch are drawn and dropped (slow for heavy pipelines; prefer kind 3 there). Before the epoch's iterator is
re-created, the global RNGs are put back to their state at the start of that epoch, so shuffling or worker seeds
drawn from the global RNG (plain ``DataLoader(shuffle=True)``) replay exactly too. The Trainer restores the
checkpoint-time RNG state afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from worldsmith.errors import DataError
from worldsmith.train.rng import capture_rng_state, restore_rng_state

_END = object()  # marks an exhausted epoch iterator


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (inside dicts, lists and tuples, recursively) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def count_samples(batch: Any) -> int | None:
    """Leading dimension of the first tensor found in ``batch`` (its number of samples), or None."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim > 0 else None
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        n = count_samples(v)
        if n is not None:
            return n
    return None


def _set_epoch(data: Any, epoch: int) -> None:
    targets = [data] + [getattr(data, name, None) for name in ("dataset", "sampler", "batch_sampler")]
    batch_sampler = getattr(data, "batch_sampler", None)
    targets.append(getattr(batch_sampler, "sampler", None))
    seen: set[int] = set()
    for t in targets:
        if t is not None and id(t) not in seen and callable(getattr(t, "set_epoch", None)):
            seen.add(id(t))
            t.set_epoch(epoch)


class DataStream:
    """Batches from ``data`` forever, epoch after epoch, tracking (epoch, batches consumed in the epoch)."""

    def __init__(self, data: Iterable[Any] | Callable[[int], Iterable[Any]]):
        if hasattr(data, "__iter__"):
            self._factory: Callable[[int], Iterable[Any]] | None = None
        elif callable(data):
            self._factory = data
        else:
            raise TypeError(f"data must be an iterable or a callable data(epoch) -> iterable, not {type(data)}.")
        self.data = data
        self.stateful = self._factory is None and all(
            callable(getattr(data, m, None)) for m in ("state_dict", "load_state_dict")
        )
        self.epoch = 0
        self.batch_in_epoch = 0
        self._epoch_rng: dict[str, Any] | None = None
        self._iter: Iterator[Any] | None = None

    def _start_epoch(self) -> None:
        self._epoch_rng = capture_rng_state()
        if self._factory is not None:
            self._iter = iter(self._factory(self.epoch))
        else:
            _set_epoch(self.data, self.epoch)
            self._iter = iter(self.data)
        self.batch_in_epoch = 0

    def _next_or_none(self) -> Any:
        assert self._iter is not None
        try:
            return next(self._iter)
        except StopIteration:
            return _END

    def __iter__(self) -> DataStream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._start_epoch()
        batch = self._next_or_none()
        if batch is _END:
            if self.batch_in_epoch == 0:
                raise DataError(f"the training data yielded no batches in epoch {self.epoch}; check it is not empty.")
            self.epoch += 1
            self._start_epoch()
            batch = self._next_or_none()
            if batch is _END:
                raise DataError(f"the training data yielded no batches in epoch {self.epoch}; check it is not empty.")
        self.batch_in_epoch += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position: epoch, batches consumed in it, the RNG at its start, the data's own state."""
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "epoch_rng": self._epoch_rng,
            "data": self.data.state_dict() if self.stateful else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly after the last batch counted in ``state`` (this may change the global RNG state)."""
        self.epoch = int(state["epoch"])
        consumed = int(state["batch_in_epoch"])
        if state.get("epoch_rng") is not None:
            restore_rng_state(state["epoch_rng"])
        if self.stateful and state.get("data") is not None:
            _set_epoch(self.data, self.epoch)
            self._epoch_rng = state.get("epoch_rng")
            self.data.load_state_dict(state["data"])  # type: ignore[union-attr]
            self._iter = iter(self.data)  # type: ignore[arg-type]
            self.batch_in_epoch = consumed
            return
        self._start_epoch()
        for i in range(consumed):
            if self._next_or_none() is _END:
                raise DataError(
                    f"the training data yields only {i} batches in epoch {self.epoch}, but the checkpoint had consumed "
                    f"{consumed}; the data changed since the checkpoint, so the run cannot resume exactly "
                    f"(restore the data or start over with --fresh)."
                )
        self.batch_in_epoch = consumed
