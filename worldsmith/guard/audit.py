"""The guardrails' audit log: one JSON line per decision (time, entry point, verdict, category, reason, prompt hash).

Each record is written with a single ``write`` on a file opened with O_APPEND and then fsync'd, under a process-wide
lock, so records from concurrent jobs or processes never interleave and a crash leaves only whole lines (a torn last
line, should the disk fill, is skipped by ``read_audit``). Prompts are never stored, only their SHA-256, so a log
can be shared without the prompts it judged.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from worldsmith.errors import DataError
from worldsmith.guard.verdict import Verdict

_LOCK = threading.Lock()


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, entry: str, kind: str, verdict: Verdict, prompt: str | None = None, **extra) -> dict:
        """Append one decision; ``kind``: prompt, upsampled_prompt or video."""
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "entry": entry, "kind": kind,
               "verdict": "allow" if verdict.allowed else "block", "category": verdict.category,
               "reason": verdict.reason, "source": verdict.source,
               "prompt_sha256": prompt_hash(prompt) if prompt is not None else None, **extra}  # fmt: skip
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with _LOCK:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as e:
                raise DataError(f"cannot write the guardrail audit log {self.path} ({e.strerror}); pass "
                                f"--audit-log with a writable path.") from None  # fmt: skip
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return row


def read_audit(path: str | Path) -> list[dict]:
    """The log's records (a torn last line is skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
