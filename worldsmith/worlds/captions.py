"""Caption grammar shared by the worlds: directions relative to the camera, lists, articles, counts."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def direction_words(shift: np.ndarray, right: np.ndarray, away: np.ndarray) -> str:
    """A planar displacement in words relative to a viewer: "to the left", "away from the camera", or both.

    ``right`` and ``away`` are the viewer's right and viewing directions (3-D; only x, y are used).
    """
    r, a = np.asarray(right, float)[:2], np.asarray(away, float)[:2]
    r, a = r / max(np.linalg.norm(r), 1e-9), a / max(np.linalg.norm(a), 1e-9)
    x, y = float(np.dot(shift[:2], r)), float(np.dot(shift[:2], a))
    side = "to the right" if x > 0 else "to the left"
    depth = "away from the camera" if y > 0 else "toward the camera"
    if abs(x) > 2 * abs(y):
        return side
    if abs(y) > 2 * abs(x):
        return depth
    return f"{side} and {depth}"


def join_phrases(items: Sequence[str]) -> str:
    """``["a", "b", "c"] -> "a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def with_article(phrase: str) -> str:
    """``"orange ball" -> "an orange ball"``, ``"red cube" -> "a red cube"``."""
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def count_phrase(n: int, noun: str) -> str:
    """``(1, "red car") -> "a red car"``, ``(2, "traffic cone") -> "two traffic cones"``."""
    if n == 1:
        return with_article(noun)
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    return f"{words.get(n, str(n))} {noun}s"
