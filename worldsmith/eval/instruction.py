"""Instruction following on the arm world: does the object the instruction names move, and do the others stay?

An arm clip's caption is written from the simulator's state (``worlds/arm.py``, ``caption``): "The robot arm picks
up the green block and holds it up.", "... pushes the yellow ball to the left.", "... moves above the blue block.";
the clip's ``objects`` meta lists the scene's objects in the order of its ``pixels`` array. The *named* object is the
first one the caption says the arm picks up or pushes. A rollout is scored on it when the truth moves that object at
least ``MOVE_PX`` pixels (at 64x64) within the rollout's frames (otherwise the instruction's effect lies beyond the
horizon, or the instruction moves nothing, as a reach). On the rollout's frames the state reader's object peaks give,
per generated step:

* ``named_object_error_px``: the distance from the named object's true position to the nearest read object;
* ``other_objects_error_px``: the same, averaged over the scene's other objects;

and at the last frame ``instruction_following``, 1 when the named object moved as the instruction says (its start is
empty: once each other object has taken its nearest read object, none lies within half the named object's true
displacement of its start; and a read object lies within half that displacement of its true end) while every other
object stayed (a read object within ``STAY_PX`` of each) and 0 otherwise. The share over
episodes is reported beside the floors (copying the first frame scores 0 by construction) and the tokenizer's
reconstruction (the ceiling, which also measures the reader's own misses).
"""

from __future__ import annotations

import numpy as np

from worldsmith.eval.reader_train import confident_peaks

MOVE_PX = 3.0  # px at 64x64: the truth must move the named object at least this far within the rollout
STAY_PX = 3.0  # px at 64x64: an object 'stays' when a read object lies within this of its true position
VERBS = ("picks up the ", "pushes the ")
FOLLOW_KEYS = ("named_object_error_px", "other_objects_error_px", "instruction_following")


def named_object(caption: str, objects: list[str]) -> int | None:
    """Index in ``objects`` of the first object the caption says the arm picks up or pushes; None when it names
    none (a reach, an exploration) or names an object not in the list."""
    text = (caption or "").lower()
    starts = [i + len(v) for v in VERBS for i in [text.find(v)] if i >= 0]
    if not starts:
        return None
    rest = text[min(starts) :]
    matches = [(len(o), j) for j, o in enumerate(objects) if rest.startswith(o.lower())]
    return max(matches)[1] if matches else None


def follow_scores(errors: np.ndarray, found: np.ndarray, scores: np.ndarray, start: np.ndarray, path: np.ndarray,
                  named: int | None, scale: float = 1.0) -> dict[str, np.ndarray] | None:  # fmt: skip
    """Per-step named / other object errors (F,) and the follow flag of one rollout, or None when it is not scored.

    errors (F, N): each true object's distance to the nearest read object at each generated step (object_errors);
    found (K, 2) and scores (K,): the reader's object peaks on the last generated frame; start (N, 2): the true object
    pixels at the first (given) frame; path (F, N, 2): the true pixels at each generated step; ``scale``: pixels per
    pixel at 64x64."""
    if named is None or named >= path.shape[1]:
        return None
    moved = float(np.linalg.norm(path[-1, named] - start[named]))
    if moved < MOVE_PX * scale:
        return None
    frames, n = path.shape[:2]
    others = [j for j in range(n) if j != named]
    went = left_start(found, scores, start[named], path[-1, others], moved / 2, STAY_PX * scale)
    went = went and errors[-1, named] < moved / 2
    stayed = bool(np.all(errors[-1, others] < STAY_PX * scale)) if others else True
    return {"named_object_error_px": errors[:, named],
            "other_objects_error_px": errors[:, others].mean(axis=1) if others else np.full(frames, np.nan),
            "instruction_following": np.full(frames, float(went and stayed))}  # fmt: skip


def left_start(found: np.ndarray, scores: np.ndarray, start: np.ndarray, others: np.ndarray, radius: float,
               stay: float, confident: float = 0.25) -> bool:  # fmt: skip
    """No read object within ``radius`` of ``start`` once each other object (others (M, 2), true pixels) has taken
    its nearest read object within ``stay``: a neighbour a few pixels away does not count as the named object
    still being there. found (K, 2), scores (K,): one frame's peaks (the confident ones, as object_errors)."""
    peaks = confident_peaks(found, scores, confident)
    free = np.ones(len(peaks), bool)
    for point in others:
        d = np.linalg.norm(peaks - point, axis=-1)
        if d.min() < stay:
            free[int(d.argmin())] = False
    return not free.any() or float(np.linalg.norm(peaks[free] - start, axis=-1).min()) > radius
