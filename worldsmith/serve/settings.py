"""The server's settings: where it writes, who may call it, and the bounds on what one request may ask."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from worldsmith.errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "WORLDSMITH_TOKEN"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class ServeSettings:
    work: Path = Path("worldsmith-serve")  # jobs/ and uploads/ live here; nothing is read or written outside it
    models: list[str] = field(default_factory=lambda: ["arm-action"])  # run folders or shipped names
    host: str = "127.0.0.1"
    token: str | None = None  # required on every request (header, or ?token= for pages and websockets) when set
    cors_origins: list[str] = field(default_factory=list)  # closed by default
    # capacity: jobs run on `workers` threads with `queue_size` more waiting; beyond that a 429 with Retry-After.
    # Half the cores run jobs, so a play session keeps a core to itself on a busy server.
    workers: int = field(default_factory=lambda: max(1, cores() // 2))
    queue_size: int = 8
    max_sessions: int = field(default_factory=lambda: max(1, cores()))  # play sessions open at once
    threads: int = 1  # intra-op torch threads of each job worker and play session (see serve/play.py)
    job_timeout_s: float = 600.0
    session_idle_s: float = 120.0  # a play session without a message for this long is closed
    session_max_s: float = 3600.0
    # per-request bounds
    max_frames: int = 64
    max_steps: int = 50
    max_guidance: float = 20.0
    max_prompt_chars: int = 1000
    max_upload_bytes: int = 50 * 2**20
    max_upload_frames: int = 900
    max_upload_side: int = 3840
    max_record_frames: int = 3000  # a play session's recording keeps its first this many frames
    keep_jobs: int = 200  # finished jobs (and their files) kept; older ones are deleted
    keep_uploads: int = 100
    # guardrails (worldsmith.guard): on unless turned off; decisions go to work/guard_audit.jsonl
    guardrail: bool = True
    guard_allow: list[str] = field(default_factory=list)  # terms that exempt a prompt from every check
    guard_deny: list[str] = field(default_factory=list)  # terms always blocked

    def __post_init__(self) -> None:
        self.work = Path(self.work)

    @property
    def exposed(self) -> bool:
        return self.host not in LOCAL_HOSTS

    def check_exposure(self) -> None:
        """A ConfigError when the server would be reachable beyond this machine without a token."""
        if self.exposed and not self.token:
            raise ConfigError(f"binding to {self.host} exposes the server beyond this machine; pass --token (or set "
                              f"{TOKEN_ENV}) so that every request must carry it.")  # fmt: skip
