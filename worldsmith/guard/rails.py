"""Guardrails at the entry points: ``generate``, ``batch`` and the server all go through ``Guardrails``.

One object per entry point: ``check_prompt`` runs the pre-guard on a prompt (and on its upsampled form) and raises
``Blocked`` with one sentence when it is refused; ``filter_video`` runs the post-guard on an output and returns the
video to write (faces blurred) or raises ``Blocked``. Every decision is appended to the audit log. On by default;
``GuardConfig(enabled=False)`` (``--no-guardrail``, the server's ``--no-guardrail``) turns every check off, and
``warning`` is the one line the entry point prints when it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worldsmith.errors import WorldsmithError
from worldsmith.guard.audit import AuditLog
from worldsmith.guard.prompt import PromptGuard, PromptGuardConfig
from worldsmith.guard.verdict import Verdict
from worldsmith.guard.video import VideoGuard, VideoGuardConfig

OFF_WARNING = "warning: guardrails are off (--no-guardrail): prompts and outputs are not checked or logged."


class Blocked(WorldsmithError):
    """A guardrail refused a prompt or an output."""


@dataclass
class GuardConfig:
    enabled: bool = True
    prompt: PromptGuardConfig = field(default_factory=PromptGuardConfig)
    video: VideoGuardConfig = field(default_factory=VideoGuardConfig)
    audit_log: str | None = None  # JSONL of every decision (None: the entry point's default)


class Guardrails:
    def __init__(self, cfg: GuardConfig | None = None, entry: str = "api", audit_log: str | Path | None = None) -> None:
        self.cfg = cfg or GuardConfig()
        self.entry = entry
        path = self.cfg.audit_log or audit_log
        self.audit = AuditLog(path) if path and self.cfg.enabled else None
        self._prompt: PromptGuard | None = None
        self._video: VideoGuard | None = None

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    @property
    def warning(self) -> str | None:
        return None if self.cfg.enabled else OFF_WARNING

    def prompt_verdict(self, text: str, kind: str = "prompt") -> Verdict:
        """The pre-guard's verdict on a prompt, logged (kind: prompt or upsampled_prompt)."""
        if self._prompt is None:
            self._prompt = PromptGuard(self.cfg.prompt)
        verdict = self._prompt.check(text)
        if self.audit:
            self.audit.record(self.entry, kind, verdict, prompt=text)
        return verdict

    def check_prompt(self, text: str, kind: str = "prompt") -> None:
        """Raise ``Blocked`` when the pre-guard refuses ``text`` (an empty prompt has nothing to check)."""
        if not self.cfg.enabled or not text.strip():
            return
        verdict = self.prompt_verdict(text, kind)
        if not verdict.allowed:
            what = "upsampled prompt" if kind == "upsampled_prompt" else "prompt"
            raise Blocked(f"the {what} was refused by the guardrail: {verdict.reason} Rephrase it, or add an allow "
                          f"term if this is a false alarm.")  # fmt: skip

    def filter_video(self, video: np.ndarray, prompt: str = "", kind: str = "video") -> np.ndarray:
        """The video to write: the post-guard's (faces blurred); ``Blocked`` when it is withheld."""
        if not self.cfg.enabled:
            return video
        if self._video is None:
            self._video = VideoGuard(self.cfg.video)
        check = self._video.check(video)
        if self.audit:
            self.audit.record(self.entry, kind, check.verdict, prompt=prompt or None, faces=check.faces,
                              frames_checked=len(check.frames_checked))  # fmt: skip
        if not check.verdict.allowed:
            raise Blocked(f"the output was withheld by the guardrail: {check.verdict.reason}")
        return check.video
