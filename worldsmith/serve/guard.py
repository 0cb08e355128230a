"""The one place where guardrails meet the server: every prompt before a job or session starts, every output
before it is written. A guard is any object with ``check_prompt(text) -> str | None`` and
``check_video(uint8 (T, H, W, 3)) -> str | None`` (None: allowed; else one sentence saying why not); the server runs
the guards it was given in order (``create_app(settings, guards=[...])``). worldsmith's own guards (pre-guard
keyword and classifier filters, post-guard video checks) are built in their own issue and plug in here.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from worldsmith.errors import WorldsmithError


class Blocked(WorldsmithError):
    """A guardrail refused a prompt or an output."""


class Guard(Protocol):
    def check_prompt(self, text: str) -> str | None: ...

    def check_video(self, video: np.ndarray) -> str | None: ...


def check_prompt(guards: Sequence[Any], text: str) -> None:
    for guard in guards:
        why = guard.check_prompt(text)
        if why:
            raise Blocked(f"the prompt was refused by a guardrail: {why}")


def check_video(guards: Sequence[Any], video: np.ndarray) -> None:
    for guard in guards:
        why = guard.check_video(video)
        if why:
            raise Blocked(f"the generated video was withheld by a guardrail: {why}")
