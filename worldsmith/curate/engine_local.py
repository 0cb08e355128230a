"""The local streaming engine (default): a pool of spawned worker processes, bounded work in flight.

The driver keeps at most ``max_in_flight`` tasks submitted (default 2 per worker). It prefers processing clips
over splitting new sources, so the queue of written-but-unprocessed clips stays short: memory is bounded by the
tasks in flight, whatever the size of the input. Each finished item goes to the ``Driver`` (journal) at once, so
a kill loses at most the tasks in flight. Workers are spawned (not forked: torch, OpenMP and GL state must not
cross a fork) with one torch/OpenCV thread each. ``workers=1`` runs everything in this process, in order.
Workers ignore Ctrl-C (the terminal sends it to them too): the driver stops them when it is interrupted or fails,
without waiting for the tasks in flight (a rerun redoes those).

A long source is split by several workers at once (``curate/segments.py``, ``segment_s``): its detect and write
tasks go first when there is room, so it finishes as soon as it can.

Progress: one tqdm bar per stage (sources split, clips processed) with items/s and ETA; the clip bar's total
grows as sources are split.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm import tqdm

from worldsmith.curate.config import CurateConfig
from worldsmith.curate.journal import Driver
from worldsmith.curate.record import ClipRecord
from worldsmith.curate.sources import Source
from worldsmith.curate.segments import SegmentedSplit
from worldsmith.curate.tasks import one_thread, plan_split, process_task, split_task
from worldsmith.errors import WorldsmithError


def _bars(n_sources: int, n_clips: int, enabled: bool) -> tuple[tqdm, tqdm]:
    split_bar = tqdm(total=n_sources, desc="split  ", unit="source", disable=not enabled, position=0, leave=True)
    clip_bar = tqdm(total=n_clips, desc="process", unit="clip", disable=not enabled, position=1, leave=True)
    return split_bar, clip_bar


def _init_worker() -> None:
    # the driver decides; no traceback from every worker on Ctrl-C. SIGINT was blocked since the spawn
    # (``_submit``): ignoring it first discards one that came during the imports
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    one_thread()


def _submit(pool: ProcessPoolExecutor, fn, *args) -> Future:
    """``pool.submit`` with SIGINT blocked in this thread. A submit may spawn a worker, and a spawned worker spends
    seconds importing before ``_init_worker`` ignores Ctrl-C: it inherits the blocked mask, so a Ctrl-C the terminal
    sends it then waits, and is discarded, instead of raising KeyboardInterrupt in its imports. The driver still gets
    its own Ctrl-C (at the latest when the mask is restored)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(fn, *args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_local(sources: list[Source], clips: list[ClipRecord], cfg: CurateConfig, work: Path, driver: Driver) -> None:
    """Split ``sources`` and process ``clips`` plus every clip the splits yield, journaling each as it finishes."""
    planned: dict[str, SegmentedSplit | None] = {}  # source id -> its segmented split, planned for the worker count

    def plan(src: Source) -> SegmentedSplit | None:  # each source is planned (probed) once; the pool takes it over
        return planned.pop(src.id) if src.id in planned else plan_split(src, cfg.split, str(work), cfg.segment_s)

    items = len(sources) + len(clips)
    if items < cfg.num_workers:  # a few long sources still keep every worker busy
        planned = {src.id: plan(src) for src in sources}
        items += sum(len(p.segments) - 1 for p in planned.values() if p is not None)
    workers = max(1, min(cfg.num_workers, items))
    split_bar, clip_bar = _bars(len(sources), len(clips), cfg.progress)
    try:
        if workers == 1:
            _run_inline(sources, clips, cfg, work, driver, split_bar, clip_bar)
        else:
            _run_pool(sources, clips, cfg, work, driver, workers, split_bar, clip_bar, plan)
    finally:
        split_bar.close()
        clip_bar.close()


def _run_inline(sources, clips, cfg, work, driver, split_bar, clip_bar) -> None:
    one_thread()
    todo = collections.deque(clips)
    pending = collections.deque(sources)
    while todo or pending:
        if todo:
            rec, seconds = process_task(todo.popleft(), cfg.filters, cfg.annotate, cfg.dedup)
            driver.clip_finished(rec, seconds)
            clip_bar.update(1)
        else:
            src = pending.popleft()
            new = driver.source_finished(src, split_task(src, cfg.split, str(work)))
            todo.extend(new)
            clip_bar.total += len(new)
            clip_bar.refresh()
            split_bar.update(1)


def _run_pool(sources, clips, cfg, work, driver, workers, split_bar, clip_bar, plan) -> None:
    limit = cfg.max_in_flight or 2 * workers
    todo: collections.deque[ClipRecord] = collections.deque(clips)
    pending: collections.deque[Source] = collections.deque(sources)
    ready: collections.deque[tuple[SegmentedSplit, tuple]] = collections.deque()  # next tasks of segmented sources
    in_flight: dict[Future, tuple[str, object]] = {}
    ctx = multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # inherited by the spawned workers
    try:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)

    def source_done(src: Source, result: dict) -> None:
        new = driver.source_finished(src, result)
        todo.extend(new)
        clip_bar.total += len(new)
        clip_bar.refresh()
        split_bar.update(1)

    finished = False
    try:
        while todo or pending or in_flight or ready:
            # 1. fill the window: the next steps of sources split in segments, then clips (keeps the queue of
            #    written clips short), then new sources
            while len(in_flight) < limit and (ready or todo or pending):
                if ready:
                    state, (kind, index, fn, args) = ready.popleft()
                    in_flight[_submit(pool, fn, *args)] = ("segment", (state, kind, index))
                elif todo:
                    rec = todo.popleft()
                    in_flight[_submit(pool, process_task, rec, cfg.filters, cfg.annotate, cfg.dedup)] = ("clip", rec)
                else:
                    src = pending.popleft()
                    state = plan(src)
                    if state is None:
                        in_flight[_submit(pool, split_task, src, cfg.split, str(work))] = ("source", src)
                    else:
                        ready.extend((state, task) for task in state.next_tasks())
            # 2. journal whatever finished; a split source adds its clips to the queue
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                kind, item = in_flight.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise WorldsmithError("a curation worker process died (out of memory?); run the same command "
                                          "again to resume, with fewer --workers if it repeats.") from None  # fmt: skip
                if kind == "source":
                    source_done(item, result)
                elif kind == "segment":
                    state, step, index = item
                    joined = state.done(step, index, result)
                    ready.extend((state, task) for task in state.next_tasks())
                    if joined is not None:
                        source_done(state.src, joined)
                else:
                    driver.clip_finished(*result)
                    clip_bar.update(1)
        finished = True
    finally:
        for fut in in_flight:
            fut.cancel()
        if not finished:  # interrupted or failed: stop the workers now rather than after their tasks
            for proc in list((pool._processes or {}).values()):  # the executor has no public way to do this
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
