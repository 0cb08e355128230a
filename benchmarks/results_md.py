"""Shared by the benchmark scripts: each owns one section of benchmarks/RESULTS.md between HTML markers."""

from __future__ import annotations

import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


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
