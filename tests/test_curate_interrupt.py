"""`worldsmith curate` stopped by SIGTERM or Ctrl-C: one sentence, no traceback, no worker or semaphore left behind,
and the same command again finishes the run with every kept clip exactly once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from curate_inputs import make_input_folder, shard_keys
from worldsmith.curate import engine_local


def _journal_lines(out: Path) -> int:
    try:
        return (out / ".work" / "journal.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM unblocked and at their defaults, as in a terminal. A process that rendered
    with EGL before (an earlier test in the same pytest process) leaves them blocked, and children inherit that."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_when(cmd: list[str], ready, sig: int, group: bool, log: Path, timeout: float = 120.0):
    """Run ``cmd``; once ``ready()`` holds send ``sig`` (to its whole process group when ``group``, as a terminal's
    Ctrl-C does). Returns (exit code or None when it finished first, its processes seen then, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True,
                                preexec_fn=_default_signals)  # fmt: skip
        seen: list[psutil.Process] = []
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if ready():
                    seen = psutil.Process(proc.pid).children(recursive=True)
                    os.killpg(proc.pid, sig) if group else os.kill(proc.pid, sig)
                    proc.wait(timeout=60)
                    break
                time.sleep(0.01)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    _, alive = psutil.wait_procs(seen, timeout=30)  # workers and the resource tracker must go with the driver
    for p in alive:  # clean up after a failing run
        p.kill()
    code = None if not seen and proc.returncode == 0 else proc.returncode
    return code, alive, log.read_text(errors="replace")


def test_sigterm_and_ctrl_c_stop_cleanly_and_the_rerun_finishes(tmp_path):
    inputs = make_input_folder(tmp_path / "in", videos=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "worldsmith.cli", "curate", str(inputs), "--out", str(out), "--workers", "2",
           "--set", "progress=false", "--set", "split.detector=adaptive"]  # fmt: skip
    # 1. SIGTERM to the driver only (`kill PID`), once a first source is journaled
    code, alive, err = _interrupt_when(cmd, lambda: _journal_lines(out) >= 1, signal.SIGTERM, False, tmp_path / "1")
    assert code is not None, "the run finished before it was interrupted: the test did not test anything"
    assert code == 1 and "interrupted" in err and "run the same command again" in err, err
    assert "Traceback" not in err and "leaked" not in err and not alive, (err, alive)
    # 2. Ctrl-C in a terminal: SIGINT to the driver and its workers
    done = _journal_lines(out)
    code, alive, err = _interrupt_when(cmd, lambda: _journal_lines(out) > done, signal.SIGINT, True, tmp_path / "2")
    assert code is not None, "the rerun finished before it was interrupted"
    assert code == 1 and "interrupted" in err and "Traceback" not in err and "leaked" not in err and not alive, err
    # 3. the same command again finishes; every kept clip exactly once
    finished = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-2000:]
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    kept = Counter(r["key"] for r in rows if r["kept"])
    assert kept and shard_keys(out) == kept


def _ctrl_c_then_init() -> None:
    """A worker's initializer that gets Ctrl-C first, as a worker still importing does when the user presses it."""
    os.kill(os.getpid(), signal.SIGINT)
    engine_local._init_worker()


def test_a_ctrl_c_during_a_workers_start_up_is_discarded_there():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_ctrl_c_then_init) as pool:
        future = engine_local._submit(pool, os.getpid)  # a plain submit: KeyboardInterrupt, a broken pool
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before  # the driver's mask is back
        assert future.result(timeout=120) != os.getpid()  # the worker lived and ran the task
