"""What every guardrail returns: a verdict (allow/block, the category, one sentence why, which check decided).

The contract shared by the pre-guard (prompts: guard/prompt.py), the post-guard (videos: guard/video.py), the audit
log (guard/audit.py) and every entry point that runs them (guard/rails.py: ``generate``, ``batch``, the server).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

# The unsafe categories of the pre-guard and the labelled prompt set (guard/data/prompts.jsonl), with the words a
# reason uses for each.
CATEGORIES = {
    "sexual": "sexual content",
    "minors": "sexual or abusive content involving minors",
    "violence": "graphic violence or gore",
    "self_harm": "self-harm or suicide",
    "hate": "hate or harassment of a protected group",
    "weapons": "weapons or explosives",
    "illegal": "instructions for crimes or other illegal acts",
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str | None = None  # a key of CATEGORIES when blocked (None when allowed)
    reason: str = ""  # one sentence a user reads: why it was blocked, or what was changed ("blurred 3 faces")
    source: str = ""  # the check that decided: blocklist, classifier, llm_judge, allow_list, nudity, faces, disabled
    scores: dict[str, float] = field(default_factory=dict)  # the deciding check's scores, for the audit log

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class VideoCheck:
    """The post-guard's result: the verdict and the video to write (faces blurred; the input when nothing changed)."""

    verdict: Verdict
    video: np.ndarray  # uint8 (T, H, W, 3)
    faces: int = 0  # face boxes blurred, summed over frames
    frames_checked: list[int] = field(default_factory=list)  # frame indices the nudity detector saw
