"""Shared by the benchmark scripts: each owns one section of benchmarks/RESULTS.md between HTML markers."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT_DIR = RESULTS.parents[1]  # the repository


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def update_section(name: str, section: str, path: Path = RESULTS) -> None:
    """Replace section ``name`` of RESULTS.md (``section`` includes its markers) or append it; others stay."""
    from worldsmith.atomic import atomic_write_text

    begin, end = markers(name)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, text)


def machine() -> str:
    """CPU model and Python version, for the heading of a results section."""
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    return f"{cpu}, Python {platform.python_version()}"


def publish(name: str, section: str, results: dict, json_path: Path | None, write: bool) -> None:
    """The common end of a benchmark: results as JSON (optional), the section on stdout and into RESULTS.md."""
    import json

    from worldsmith.atomic import atomic_write_text

    if json_path:
        atomic_write_text(json_path, json.dumps(results, indent=2))
    print(section)
    if write:
        update_section(name, section)


def run_worldsmith(args: list[str], log: dict, name: str, threads: int) -> None:
    """Run ``worldsmith ARGS`` (printed first) from the repository root, recording its command and wall time under
    ``name`` in ``log``: the steps of a recipe benchmark (foundation.py, camera.py)."""
    print("$ worldsmith " + shlex.join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worldsmith.cli", *args], cwd=ROOT_DIR, env=env, check=True)
    log[name] = {"command": "worldsmith " + shlex.join(args), "seconds": round(time.perf_counter() - start, 1)}


def logged_max(run_dir: Path, key: str) -> float:
    """The largest ``key`` in a run's own log (``step``: how far it trained; 0 when it has no log yet)."""
    log = Path(run_dir) / "logs.jsonl"
    lines = log.read_text().splitlines() if log.exists() else []
    return max((json.loads(line).get(key, 0) for line in lines if line.strip()), default=0)


def train_minutes(run_dir: Path) -> float:
    """Training wall time of a run from its own log (a resumed or skipped step's wall time says nothing)."""
    return logged_max(run_dir, "time") / 60


def sets(*values: str) -> list[str]:
    """``--set`` flags of a worldsmith command: sets("a=1", "b=2") -> ["--set", "a=1", "--set", "b=2"]."""
    return [x for s in values for x in ("--set", s)]


def _follow(m: dict) -> str:
    return f"{100 * m['instruction_following']:.0f}% of {m['instruction_episodes']}" if "instruction_following" in m else "-"


ROLLOUT_COLUMNS = {  # columns of a rollouts table: header -> the cell from one run of a `worldsmith eval rollouts` report
    "PSNR dB": lambda m: f"{m['psnr']:.2f} ± {m['psnr_sem']:.2f}",
    "SSIM": lambda m: f"{m['ssim']:.3f}",
    "FD": lambda m: f"{m['fd']:.0f}",
    "gripper px": lambda m: f"{m.get('gripper_error_px', float('nan')):.2f}",
    "objects px": lambda m: f"{m.get('object_error_px', float('nan')):.2f}",
    "named object px": lambda m: f"{m.get('named_object_error_px', float('nan')):.2f}",
    "other objects px": lambda m: f"{m.get('other_objects_error_px', float('nan')):.2f}",
    "named object moved": _follow,
}


def rollout_table(report: dict, rows: list[tuple[str, str]], columns: list[str]) -> list[str]:
    """A markdown table of ``worldsmith eval rollouts`` runs: one line per (label, run key) present in ``report``,
    the ``columns`` of ROLLOUT_COLUMNS."""
    lines = ["| rollout | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, key in rows:
        if key in report:
            lines.append(f"| {label} | " + " | ".join(ROLLOUT_COLUMNS[c](report[key]) for c in columns) + " |")
    return lines
