"""Curation throughput on a generated multi-shot corpus, against bare decoding and PySceneDetect, in one run.

1. Corpus: ``--minutes`` (default 10) of multi-shot 320x240 25 fps H.264 video from ``worldsmith.curate.synth``
   (cuts, fades, dissolves, flashes, static / moving / panning / zooming / shaky shots), cached in the work dir.
2. Floor: bare PyAV decoding of the same files (``frame.to_ndarray("rgb24")`` per frame, one thread).
3. worldsmith: the full ``worldsmith curate`` pipeline (split with TransNetV2, quality / motion / text / video-type
   filters, camera motion, offline captions, dedup, shards, manifest, report) with ``--workers`` processes; then
   the same with ``split.detector=adaptive`` (the classical detector, as the peer uses).
4. Peer: PySceneDetect's own CLI, ``scenedetect -i FILE detect-adaptive split-video`` (detect with its adaptive
   detector, cut with the ffmpeg binary), one file after the other. Only split: it neither filters nor shards.

Each row gives wall-clock frames/s and video-hours per core-hour, where core-hours are CPU seconds (this process
and its children, ffmpeg included) / 3600, so the figure does not depend on how busy the machine was.

    python benchmarks/curate.py [--minutes 10] [--workers N] [--workdir DIR] [--no-record]

PySceneDetect is installed by ``make bench`` (``pip install --no-deps scenedetect==0.7.2 click platformdirs``);
split-video needs ``ffmpeg`` on PATH. The row says so when either is missing. RESULTS.md is only updated when the
corpus has at least 10 minutes (a smaller ``--minutes`` is a dry run).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from results_md import machine, markers, update_section  # benchmarks/results_md.py
from worldsmith.curate.pipeline import CurateConfig, run_curation
from worldsmith.curate.synth import make_corpus

BEGIN, END = markers("curate")


def cpu_seconds() -> float:
    """CPU time of this process and of its (finished) children, ffmpeg and worker processes included."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn()``."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def corpus(workdir: Path, minutes: float) -> tuple[list[Path], int, float]:
    """The corpus files (made once per --minutes), total frames and seconds of video."""
    directory = workdir / f"corpus_{minutes:g}min"
    truth_file = directory / "truth.json"
    if truth_file.is_file():
        truths = json.loads(truth_file.read_text())
    else:
        print(f"generating {minutes:g} minutes of 320x240 multi-shot video in {directory} ...", flush=True)
        truths = make_corpus(directory, minutes=minutes, size=(320, 240), seed=0)
    files = [Path(t["path"]) for t in truths]
    frames, seconds = 0, 0.0
    for f in files:
        with av.open(str(f)) as c:
            s = c.streams.video[0]
            frames += s.frames
            seconds += float(s.frames / s.average_rate)
    return files, frames, seconds


def bare_decode(files: list[Path]) -> None:
    for f in files:
        with av.open(str(f)) as c:
            for frame in c.decode(video=0):
                frame.to_ndarray(format="rgb24")


def worldsmith_curate(files: list[Path], out: Path, workers: int, detector: str) -> dict:
    listing = out.parent / "inputs.txt"
    listing.write_text("\n".join(str(f) for f in files) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    cfg = CurateConfig(workers=workers, progress=False)
    cfg.split = dataclasses.replace(cfg.split, detector=detector)
    return run_curation(listing, out, cfg)


def scenedetect_peer(files: list[Path], out: Path) -> str:
    """Run the peer's CLI on every file; '' on success, else why it could not run."""
    exe = Path(sys.executable).with_name("scenedetect")
    if not exe.exists() and shutil.which("scenedetect") is None:
        return "PySceneDetect is not installed (pip install --no-deps scenedetect==0.7.2 click platformdirs)"
    if shutil.which("ffmpeg") is None:
        return "the ffmpeg binary is missing (PySceneDetect's split-video needs it: apt-get install ffmpeg)"
    cmd0 = str(exe) if exe.exists() else "scenedetect"
    shutil.rmtree(out, ignore_errors=True)
    for f in files:
        done = subprocess.run([cmd0, "-q", "-i", str(f), "-o", str(out / f.stem), "detect-adaptive", "split-video"],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            return f"scenedetect failed on {f.name}: {done.stderr.strip()[-300:]}"
    return ""


def row(name: str, frames: int, video_s: float, wall: float, cpu: float, note: str = "") -> dict:
    return {"name": name, "frames_per_s": frames / wall, "wall_s": wall, "cpu_s": cpu,
            "video_hours_per_core_hour": (video_s / 3600) / (cpu / 3600), "note": note}  # fmt: skip


def markdown(rows: list[dict], info: dict) -> str:
    lines = [
        BEGIN,
        "## Curation (`python benchmarks/curate.py`)",
        "",
        f"Machine: {machine()}; {info['cores']} cores, worldsmith with {info['workers']} worker processes. Corpus: "
        f"{info['minutes']:.1f} min of generated multi-shot 320x240 25 fps H.264 video ({info['frames']} frames, "
        f"{info['files']} files; cuts, fades, dissolves, flashes, fast pans and zooms). Core-hours are CPU time "
        "(process + children), so they do not depend on machine load.",
        "",
        "| what | frames/s (wall) | video-hours per core-hour | wall s | CPU s | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['name']} | - | - | - | - | not run: {r['missing']} |")
        else:
            lines.append(f"| {r['name']} | {r['frames_per_s']:.0f} | {r['video_hours_per_core_hour']:.2f} | "
                         f"{r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['note']} |")  # fmt: skip
    s = info.get("summary")
    if s:
        lines += ["", f"Default run: worldsmith kept {s['kept']} of {s['clips']} clips ({s['hours_out'] * 60:.1f} of "
                      f"{s['hours_in'] * 60:.1f} min; dropped: {s['dropped']}); CPU seconds per stage, summed over "
                      f"workers: {s.get('stage_cpu_seconds') or s['stage_seconds']}. Shot detection dominates: the "
                      "adaptive row differs from the default only in the detector, and TransNetV2 alone costs what "
                      "the next section measures (ms per frame of video, one thread)."]  # fmt: skip
    if info.get("load") is not None:
        lines += ["", f"Load average during the worldsmith runs: {info['load']} on {info['cores']} cores (other jobs "
                      "shared the machine when it is above the worker count): wall-clock frames/s are then "
                      "pessimistic; the CPU-time columns much less so."]  # fmt: skip
    lines.append(END)
    return "\n".join(lines)


def curate_parser(doc: str, minutes: float, minutes_help: str) -> argparse.ArgumentParser:
    """The options both curation benchmarks take: --minutes, --workers, --workdir, --no-record."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=minutes, help=minutes_help)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the video and outputs here (default: temp)")
    parser.add_argument("--no-record", action="store_true", help="do not update benchmarks/RESULTS.md")
    return parser


def main() -> None:
    parser = curate_parser(__doc__, 10.0, "minutes of video in the corpus (>= 10 to record)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="re-render RESULTS from a --json of an earlier run")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        update_section("curate", markdown(saved["rows"], saved["info"]))
        return
    tmp = None if args.workdir else tempfile.TemporaryDirectory()
    workdir = args.workdir or Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    files, frames, video_s = corpus(workdir, args.minutes)
    print(f"corpus: {len(files)} files, {frames} frames, {video_s / 60:.1f} min", flush=True)
    rows = []
    # 1. the floor: bare decoding
    wall, cpu = measure(lambda: bare_decode(files))
    rows.append(row("bare PyAV decode (floor)", frames, video_s, wall, cpu, "decode only, 1 thread"))
    print(rows[-1], flush=True)
    # 2. the full worldsmith pipeline: default (TransNetV2) and with the classical adaptive detector
    summary: dict = {}
    loads = [os.getloadavg()[0]]
    for detector, label in (("transnetv2", "TransNetV2"), ("adaptive", "adaptive detector")):
        result: dict = {}
        wall, cpu = measure(lambda: result.update(worldsmith_curate(files, workdir / f"curated_{detector}",
                                                                    args.workers, detector)))  # fmt: skip
        summary = summary or result
        name = "worldsmith curate (full pipeline, default)" if detector == "transnetv2" else f"worldsmith curate, {label}"
        rows.append(row(name, frames, video_s, wall, cpu, f"split ({label}) + filters + captions + dedup + shards, "
                        f"{args.workers} workers; kept {result['kept']} of {result['clips']} clips"))  # fmt: skip
        print(rows[-1], flush=True)
        loads.append(os.getloadavg()[0])
    # 3. the peer
    why = ""
    wall, cpu = measure(lambda: rows.append({"why": scenedetect_peer(files, workdir / "scenedetect")}))
    why = rows.pop()["why"]
    name = "PySceneDetect 0.7.2 `detect-adaptive split-video`"
    rows.append({"name": name, "missing": why} if why else
                row(name, frames, video_s, wall, cpu, "split only (adaptive detector + ffmpeg), 1 process"))  # fmt: skip
    print(rows[-1], flush=True)
    info = {"minutes": video_s / 60, "frames": frames, "files": len(files), "workers": args.workers,
            "cores": os.cpu_count(), "summary": summary, "load": f"{min(loads):.1f}-{max(loads):.1f}"}  # fmt: skip
    text = markdown(rows, info)
    print(text)
    if not args.no_record and video_s >= 600:
        update_section("curate", text)
    elif not args.no_record:
        print(f"not recorded: the corpus has {video_s / 60:.1f} min of video, RESULTS needs >= 10 min.")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "info": info}, indent=2, default=str))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
