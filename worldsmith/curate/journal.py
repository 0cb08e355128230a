"""The resume journal of a curation run: an append-only JSONL file under ``OUT/.work/``.

One line per finished item, written by the driver only, flushed and fsync'd before the next item counts as done:

  ``{"kind": "source", "id": ..., "records": [ClipRecord JSON ...], "info": {duration, fps, width, height}}``
      a source was split; ``records`` are its clips (clips the split stage already dropped included);
  ``{"kind": "bad", "id": ..., "path": ..., "reason": ...}``  a source could not be read;
  ``{"kind": "clip", "record": ClipRecord JSON}``  a clip went through ``process_clip`` (kept or dropped).

A kill can only tear the last line; ``Journal`` ignores a torn last line and cuts it off before appending, so
every line of the file is always a whole item. Rerunning reads the journal and skips every finished item: clip
keys depend only on the source and the span, so a re-split source yields the same keys and its processed clips
are found here.

``Driver`` is what an engine talks to: it journals each item the moment the engine hands it over, and answers
which clips of a split source still need processing.

``check_settings`` stores the run's settings (INPUT and every config value that changes the outputs) next to the
journal and refuses to resume into an OUT made with other settings.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.sources import Source
from worldsmith.errors import ConfigError

JOURNAL_NAME = "journal.jsonl"
SETTINGS_NAME = "settings.json"


@dataclass
class JournalState:
    """What earlier runs finished."""

    sources: dict[str, list[ClipRecord]] = field(default_factory=dict)  # source id -> its split records
    info: dict[str, dict[str, Any]] = field(default_factory=dict)  # source id -> duration, fps, size
    bad: dict[str, tuple[str, str]] = field(default_factory=dict)  # source id -> (path, reason)
    clips: dict[str, ClipRecord] = field(default_factory=dict)  # key -> processed record
    lines: int = 0


class Journal:
    """Append-only, fsync'd JSONL log of finished work (see the module docstring)."""

    def __init__(self, work_dir: str | os.PathLike) -> None:
        self.path = Path(work_dir) / JOURNAL_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = self._load()
        self._file = open(self.path, "ab")

    def _load(self) -> JournalState:
        """Read every whole line; cut a torn last line (a kill mid-write) off the file."""
        state = JournalState()
        if not self.path.exists():
            return state
        data = self.path.read_bytes()
        good_end = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn: written without its newline
            try:
                entry = json.loads(line)
            except ValueError:
                break  # torn or garbled: everything from here on is discarded
            self._apply(state, entry)
            good_end += len(line)
            state.lines += 1
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        return state

    @staticmethod
    def _apply(state: JournalState, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        if kind == "source":
            state.sources[entry["id"]] = [ClipRecord.from_json(r) for r in entry["records"]]
            state.info[entry["id"]] = entry.get("info", {})
        elif kind == "bad":
            state.bad[entry["id"]] = (entry["path"], entry["reason"])
        elif kind == "clip":
            rec = ClipRecord.from_json(entry["record"])
            state.clips[rec.key] = rec

    def append(self, entry: dict[str, Any]) -> None:
        """Write one item as one line and make it durable before returning."""
        line = json.dumps(entry, separators=(",", ":"), default=_json_default) + "\n"
        self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())
        self._apply(self.state, json.loads(line))
        self.state.lines += 1

    def source_done(self, source_id: str, records: list[ClipRecord], info: dict[str, Any]) -> None:
        self.append({"kind": "source", "id": source_id, "records": [r.to_json() for r in records], "info": info})

    def source_bad(self, source_id: str, path: str, reason: str) -> None:
        self.append({"kind": "bad", "id": source_id, "path": path, "reason": reason})

    def clip_done(self, rec: ClipRecord) -> None:
        self.append({"kind": "clip", "record": rec.to_json()})

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Driver:
    """Receives finished items from an engine, journals them, and says which clips of a split source to process."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.seconds: Counter[str] = Counter()  # stage -> wall seconds in tasks (summed over workers) or on the driver
        self.cpu: Counter[str] = Counter()  # stage -> CPU seconds, the same way (what does not depend on machine load)

    def source_finished(self, src: Source, result: dict[str, Any]) -> list[ClipRecord]:
        self.seconds["split"] += result.get("seconds", 0.0)
        self.cpu["split"] += result.get("cpu_seconds", 0.0)
        if result["bad"]:
            self.journal.source_bad(src.id, src.path or src.id, result["bad"])
            return []
        self.journal.source_done(src.id, result["records"], result["info"])
        return [r for r in result["records"] if r.kept and r.key not in self.journal.state.clips]

    def clip_finished(self, rec: ClipRecord, seconds: tuple[float, float]) -> None:
        """A processed clip and its task's (wall, CPU) seconds."""
        self.seconds["process"] += seconds[0]
        self.cpu["process"] += seconds[1]
        self.journal.clip_done(rec)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def check_settings(work_dir: Path, settings: dict[str, Any]) -> None:
    """Record the settings of a run; refuse to resume into a work dir made with other settings."""
    path = work_dir / SETTINGS_NAME
    text = json.dumps(settings, indent=2, sort_keys=True, default=str)
    if path.is_file():
        saved = json.loads(path.read_text())
        now = json.loads(text)
        diff = _diff(saved, now)
        if diff:
            shown = "; ".join(f"{k} was {_shown(a)}, now {_shown(b)}" for k, a, b in diff[:3])
            more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
            raise ConfigError(
                f"{work_dir.parent} already holds a curation run made with other settings ({shown}{more}); use a "
                "new --out directory, or the same input and settings to resume it."
            )
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


_UNSET = object()


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else repr(value)


def _diff(saved: Any, now: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, new value) for every value that differs (``_UNSET`` where a key is missing)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(saved) | set(now)):
            out += _diff(saved.get(k, _UNSET), now.get(k, _UNSET), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if saved == now else [(prefix.removeprefix("config."), saved, now)]
