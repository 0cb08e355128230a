"""Progress of a long computation, reported to whoever asked for it, and a way to stop it.

Library code calls ``report(fraction)`` at natural points (each sampler step, each generated frame); nothing happens
unless a caller installed a hook with ``reporting(fn)`` in the same thread (a context variable, so concurrent jobs
in different threads each see their own). ``span(i, n)`` maps the reports of an inner loop into the i-th of n equal
parts of the outer one, so nested loops give one fraction from 0 to 1. A hook may raise ``Cancelled`` (e.g. a
server's job was cancelled or ran out of time): the computation stops at its next report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from worldsmith.errors import WorldsmithError

_HOOK: ContextVar[tuple[Callable[[float], None], float, float] | None] = ContextVar("worldsmith_progress", default=None)


class Cancelled(WorldsmithError):
    """A computation was stopped by its caller (cancelled, or past its time limit)."""


def report(fraction: float) -> None:
    """Tell the installed hook (if any) that ``fraction`` (0..1) of the current part is done."""
    hook = _HOOK.get()
    if hook is not None:
        fn, lo, hi = hook
        fn(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0))


@contextmanager
def reporting(fn: Callable[[float], None]) -> Iterator[None]:
    """Send this thread's reports to ``fn(fraction)`` inside the block."""
    token = _HOOK.set((fn, 0.0, 1.0))
    try:
        yield
    finally:
        _HOOK.reset(token)


@contextmanager
def span(i: int, n: int) -> Iterator[None]:
    """Inside the block, reports cover the i-th of n equal parts of the enclosing range (and report its start)."""
    hook = _HOOK.get()
    if hook is None or n <= 0:
        yield
        return
    fn, lo, hi = hook
    width = (hi - lo) / n
    token = _HOOK.set((fn, lo + width * i, lo + width * (i + 1)))
    try:
        report(0.0)
        yield
    finally:
        _HOOK.reset(token)
