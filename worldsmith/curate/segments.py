"""One long source split across workers: shot detection in segments, then the clips in segments.

Without this a source is split by one task, so a one-hour video keeps one worker busy for its whole split while
the others wait for its clips. With ``CurateConfig.segment_s`` > 0 (the local engine, more than one worker), a
source of more than two segments is planned as:

1. **detect** tasks, one per segment of about ``segment_s`` seconds: each decodes its frames plus a few frames of
   context on each side (seeking to the keyframe before them) and returns the detector's per-frame outputs
   (``split.detector_signals``). Segment starts are multiples of TransNetV2's window step (250 frames at the
   default window), so its windows fall exactly where they fall on the whole video: the outputs are the ones one
   task would compute, bit for bit (tests/test_curate_segments.py);
2. the driver joins them and finds the shots once (``split.spans_from_signals``, milliseconds);
3. **write** tasks, one per segment, cut and write the clips that *start* in their segment
   (``split_source(shots=..., own=...)``); the records are joined in frame order.

The result equals ``split_task`` on the whole source, so resume, the journal and the report see no difference;
only the wall time does. Anything unexpected (the container's frame count is not what decodes, a segment decodes
short) falls back to one ``split_task`` for the source, which then reports a damaged file as before. The Ray
engine still splits each source in one task (it parallelises across sources; a barrier between detection and
writing does not fit its one-pass Ray Data pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from worldsmith.curate import shot_detect
from worldsmith.curate.sources import Source
from worldsmith.curate.split import SplitConfig, spans_from_signals

ADAPTIVE_BEFORE, ADAPTIVE_AFTER = 4, 3  # frames the adaptive detector's statistics of a frame look back / ahead


def segment_unit(cfg: SplitConfig) -> int:
    """Segment starts are multiples of this many frames (TransNetV2's window step; 1 for the adaptive detector)."""
    return cfg.transnet_window - 2 * shot_detect._CONTEXT if cfg.detector == "transnetv2" else 1


def plan_segments(n: int, fps: float, cfg: SplitConfig, segment_s: float) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` covering ``[0, n)``: one range unless the source is longer than two segments."""
    unit = segment_unit(cfg)
    length = max(unit, round(segment_s * fps / unit) * unit) if segment_s > 0 and fps > 0 else n
    if n < 2 * length:
        return [(0, n)]
    starts = list(range(0, n, length))
    if n - starts[-1] < length // 2:  # a short tail joins the segment before it
        starts.pop()
    return [(a, b) for a, b in zip(starts, starts[1:] + [n])]


def context_range(a: int, b: int, n: int, cfg: SplitConfig, fps: float) -> tuple[int, int]:
    """The frames a segment ``[a, b)`` of ``n`` decodes: itself plus the detector's context on each side."""
    if cfg.detector == "transnetv2":
        before = after = shot_detect.segment_context(shot_detect.transnet_repeat(fps))
    else:
        before, after = ADAPTIVE_BEFORE, ADAPTIVE_AFTER
    return (a - before if a > 0 else 0), (min(n, b + after) if b < n else n)


def cut_signals(signals: dict[str, np.ndarray], a: int, b: int, lo: int, cfg: SplitConfig) -> dict[str, np.ndarray]:
    """A segment's own frames of its detector outputs (TransNetV2 already predicts only those)."""
    if cfg.detector == "transnetv2":
        return signals
    return {k: v[a - lo : b - lo] for k, v in signals.items()}


@dataclass
class SegmentedSplit:
    """The driver's bookkeeping of one source split in segments (see the module docstring).

    ``next_tasks()`` gives what to submit now, as ``(kind, index, function, args)``; the engine hands each
    finished task's result to ``done(kind, index, result)``, which returns the source's joined result
    (``split_task``'s dict) once the last write finished, else None.
    """

    src: Source
    segments: list[tuple[int, int]]
    n: int
    cfg: SplitConfig
    work_dir: str
    detect: Callable[..., dict[str, Any]]  # tasks.detect_task
    split: Callable[..., dict[str, Any]]  # tasks.split_task: the write step of a segment, or the whole source
    signals: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    detected: int = 0  # detect tasks finished (those that gave no signals mean: split the source in one task)
    _queue: list[tuple[str, int, Callable, tuple]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue = [("detect", i, self.detect, (self.src, self.cfg, a, b, self.n))
                       for i, (a, b) in enumerate(self.segments)]  # fmt: skip

    def next_tasks(self) -> list[tuple[str, int, Callable, tuple]]:
        out, self._queue = self._queue, []
        return out

    def done(self, kind: str, index: int, result: dict[str, Any]) -> dict[str, Any] | None:
        if kind == "whole":  # the fallback: one split_task did everything
            result["seconds"] += self.seconds
            result["cpu_seconds"] += self.cpu_seconds
            return result
        self.seconds += result.get("seconds", 0.0)
        self.cpu_seconds += result.get("cpu_seconds", 0.0)
        if kind == "detect":
            self.detected += 1
            if result.get("signals") is not None:
                self.signals[index] = result["signals"]
            if self.detected == len(self.segments):
                self._after_detection()
            return None
        self.results[index] = result
        if len(self.results) < len(self.segments):
            return None
        bad = next((r["bad"] for r in self.results.values() if r["bad"]), "")
        records = [] if bad else sorted((rec for r in self.results.values() for rec in r["records"]),
                                        key=lambda r: (r.start_frame, r.end_frame))  # fmt: skip
        return {"id": self.src.id, "records": records, "info": self.results[0]["info"] if not bad else {},
                "bad": bad, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}  # fmt: skip

    def _after_detection(self) -> None:
        if len(self.signals) < len(self.segments):  # a segment did not decode as planned
            self._queue = [("whole", 0, self.split, (self.src, self.cfg, self.work_dir))]
            return
        joined = {k: np.concatenate([self.signals[i][k] for i in range(len(self.segments))])
                  for k in self.signals[0]}  # fmt: skip
        shots = spans_from_signals(joined, self.cfg)
        self._queue = [("write", i, self.split, (self.src, self.cfg, self.work_dir, shots, seg))
                       for i, seg in enumerate(self.segments)]  # fmt: skip
