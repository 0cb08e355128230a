"""The curation run: INPUT -> split -> process (filter, annotate, sign) -> deduplicate -> shards + manifest + report.

``run_curation(input, out, cfg)`` is what ``worldsmith curate`` calls. The per-item stages (split one source,
process one clip; ``worldsmith.curate.tasks``) run in an engine: ``engine_local`` (spawned worker processes,
the default) or ``engine_ray`` (Ray Data). Everything global runs here on the driver: the journal, dedup, the
shards, the manifest and the report.

Resume: every finished source and clip is journaled (``journal.py``); running the same command again skips them,
and the final outputs are rebuilt from the journal: the shard writers skip keys their bucket already holds, the
manifest and the report are rewritten atomically. Settings that change the outputs are stored in
``OUT/.work/settings.json``; resuming with other settings is refused. Engine settings (engine, workers,
ray_address) may change between runs.

Interruption: SIGTERM is handled like Ctrl-C. The workers are stopped, the journal is closed (finished work kept)
and ``CurationInterrupted`` says to run the same command again; nothing is leaked (no orphan workers or
semaphores).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from worldsmith.config import to_dict
from worldsmith.curate.config import ENGINE_FIELDS, CurateConfig
from worldsmith.curate.dedup import deduplicate
from worldsmith.curate.engine_local import run_local
from worldsmith.curate.engine_ray import run_ray
from worldsmith.curate.journal import Driver, Journal, check_settings
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.report import write_report
from worldsmith.curate.shard import write_shards
from worldsmith.curate.sources import BadFile, Source, input_folder, resolve_input
from worldsmith.errors import ConfigError, WorldsmithError


class CurationInterrupted(WorldsmithError):
    """The run was stopped by Ctrl-C or SIGTERM; what finished is kept and a rerun resumes it."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def interruptible(out: Path) -> Iterator[None]:
    """Inside the block SIGTERM stops the run like Ctrl-C (the engines' ``finally`` blocks stop their workers), and
    either one becomes ``CurationInterrupted``. The handler is only installed from the main thread."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    try:
        yield
    except KeyboardInterrupt:
        raise CurationInterrupted(f"curation interrupted; the finished work is kept in {out / '.work'}: run the same "
                                  "command again to resume.") from None  # fmt: skip
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def settings_of(input_spec: str, cfg: CurateConfig) -> dict[str, Any]:
    """Everything that changes the outputs of a run (engine settings excluded)."""
    d = to_dict(cfg)
    return {"input": input_spec, "config": {k: v for k, v in d.items() if k not in ENGINE_FIELDS}}


def plan(input_spec: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[list[Source], list[BadFile]]:
    """Resolve INPUT (and check OUT is not inside an input folder) without writing anything."""
    folder = input_folder(input_spec)
    if out is not None and folder is not None:
        o = Path(out).expanduser().resolve()
        if o == folder or folder in o.parents:
            raise ConfigError(f"--out {out} is inside the input folder {folder}; write the outputs elsewhere "
                              "(the input folder is never modified).")  # fmt: skip
    return resolve_input(input_spec)


def _run_engine(todo_sources: list[Source], todo_clips: list[ClipRecord], cfg: CurateConfig, work: Path,
                driver: Driver) -> None:  # fmt: skip
    if not todo_sources and not todo_clips:
        return
    if cfg.engine == "ray":
        run_ray(todo_sources, todo_clips, cfg, work, driver)
    else:
        run_local(todo_sources, todo_clips, cfg, work, driver)


def run_curation(input_spec: str | os.PathLike, out: str | os.PathLike, cfg: CurateConfig) -> dict[str, Any]:
    """Curate INPUT into OUT (resumable: run it again to finish); returns a summary (see ``summarize``).

    Raises ``CurationInterrupted`` on Ctrl-C or SIGTERM (after stopping the workers)."""
    with interruptible(Path(out)):
        return _run(os.fspath(input_spec), Path(out), cfg)


def _run(input_spec: str, out: Path, cfg: CurateConfig) -> dict[str, Any]:
    started = time.perf_counter()
    # 1. resolve INPUT; refuse an OUT made with other settings
    sources, bad = plan(input_spec, out)
    work = out / ".work"
    check_settings(work, settings_of(os.path.abspath(input_spec), cfg))
    # 2. the per-item stages, skipping what the journal says is finished
    with Journal(work) as journal:
        st = journal.state
        todo_sources = [s for s in sources if s.id not in st.sources and s.id not in st.bad]
        todo_clips = [r for s in sources for r in st.sources.get(s.id, []) if r.kept and r.key not in st.clips]
        driver = Driver(journal)
        _run_engine(todo_sources, todo_clips, cfg, work, driver)
        st = journal.state
    # 3. every clip in source order, processed version where there is one
    records = [st.clips.get(r.key, r) for s in sources for r in st.sources.get(s.id, [])]
    bad = bad + [BadFile(*st.bad[s.id]) for s in sources if s.id in st.bad]
    # 4. deduplicate the kept clips (global, on the driver; deterministic)
    t, c = time.perf_counter(), time.process_time()
    kept = [r for r in records if r.kept]
    if kept:
        deduped = {r.key: r for r in deduplicate(kept, cfg.dedup)}
        records = [deduped.get(r.key, r) for r in records]
    driver.seconds["dedup"] += time.perf_counter() - t
    driver.cpu["dedup"] += time.process_time() - c
    # 5. shards of the kept clips, then the manifest of every clip
    t, c = time.perf_counter(), time.process_time()
    shard_of = write_shards(records, out, cfg.shard, progress=cfg.progress)
    driver.seconds["shards"] += time.perf_counter() - t
    driver.cpu["shards"] += time.process_time() - c
    summary = summarize(sources, bad, records, st.info, shard_of, time.perf_counter() - started, driver.seconds,
                        driver.cpu)
    summary.update(out=str(out), manifest=str(out / "manifest.parquet"), report=str(out / "report.html"))
    # 6. the report
    write_report(out, records, bad, summary, cfg)
    return summary


def summarize(sources: list[Source], bad: list[BadFile], records: list[ClipRecord], info: dict[str, dict],
              shard_of: dict[str, str], seconds: float, stage_seconds: Counter,
              stage_cpu: Counter | None = None) -> dict[str, Any]:  # fmt: skip
    """Counts per stage, hours in and out, and timing of a run."""
    kept = [r for r in records if r.kept]
    dropped = Counter(r.dropped_by for r in records if not r.kept)
    good_ids = {s.id for s in sources} & set(info)
    hours_in = sum(float(info[i].get("duration", 0.0)) for i in good_ids) / 3600
    frames_in = sum(int(info[i].get("frames", 0)) for i in good_ids)
    return {
        "sources": len(sources) + sum(1 for b in bad if b.path not in {s.id for s in sources}),
        "good_sources": len(good_ids),
        "bad_files": len(bad),
        "shots": len({(r.source, r.shot) for r in records}),
        "clips": len(records),
        "dropped": dict(sorted(dropped.items())),
        "duplicates": dropped.get("dedup", 0),
        "kept": len(kept),
        "shards": len(set(shard_of.values())),
        "hours_in": round(hours_in, 6),
        "hours_out": round(sum(r.duration for r in kept) / 3600, 6),
        "frames_in": frames_in,
        "seconds": round(seconds, 3),
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "stage_cpu_seconds": {k: round(v, 3) for k, v in (stage_cpu or {}).items()},
    }
