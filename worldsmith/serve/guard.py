"""The one place where guardrails meet the server: every prompt before a job starts, every output before it is
written, every uploaded image before a play session starts from it.

A guard is any object with ``check_prompt(text) -> str | None`` (None: allowed; else one sentence saying why not)
and ``check_video(uint8 (T, H, W, 3)) -> str | None | np.ndarray`` (None: allowed as is; a sentence: withheld; an
array: allowed, and this video is written instead, e.g. with faces blurred). The server runs the guards it was given
in order (``create_app(settings, guards=[...])``), then worldsmith's own guardrails (``RailsGuard`` over
guard/rails.py: blocklist, classifier, NudeNet, face blur, audit log) unless ``ServeSettings.guardrail`` is off.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from worldsmith.guard.rails import Blocked, Guardrails

__all__ = ["Blocked", "Guard", "RailsGuard", "check_prompt", "check_video"]


class Guard(Protocol):
    def check_prompt(self, text: str) -> str | None: ...

    def check_video(self, video: np.ndarray) -> str | None | np.ndarray: ...


class RailsGuard:
    """worldsmith's guardrails as a server guard (decisions go to the rails' audit log)."""

    def __init__(self, rails: Guardrails) -> None:
        self.rails = rails

    def check_prompt(self, text: str) -> str | None:
        if not text.strip():
            return None
        verdict = self.rails.prompt_verdict(text)
        return None if verdict.allowed else verdict.reason

    def check_video(self, video: np.ndarray) -> str | None | np.ndarray:
        try:
            return self.rails.filter_video(video)
        except Blocked as e:
            return str(e).removeprefix("the output was withheld by the guardrail: ")


def check_prompt(guards: Sequence[Any], text: str) -> None:
    for guard in guards:
        why = guard.check_prompt(text)
        if why:
            raise Blocked(f"the prompt was refused by a guardrail: {why}")


def check_video(guards: Sequence[Any], video: np.ndarray) -> np.ndarray:
    """The video to write after every guard (raises ``Blocked`` when one withholds it)."""
    for guard in guards:
        result = guard.check_video(video)
        if isinstance(result, np.ndarray):
            video = result
        elif result:
            raise Blocked(f"the generated video was withheld by a guardrail: {result}")
    return video
