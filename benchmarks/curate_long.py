"""One long source on several workers: wall time of `worldsmith curate` with and without segmented splitting.

Before segments (``CurateConfig.segment_s``), one source was split by one worker whatever the worker count. This
makes one multi-shot 320x240 25 fps H.264 file of ``--minutes`` (benchmarks/curate.py's generator), curates it
with the default pipeline (TransNetV2) and ``--workers`` processes, once with ``segment_s=0`` (one split task per
source, the old behaviour) and once with the default ``segment_s``, checks that both runs keep the same clips with
the same frame ranges, and prints wall and CPU seconds and the wall-clock ratio.

    python benchmarks/curate_long.py [--minutes 6] [--workers N] [--workdir DIR] [--no-record]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from curate import curate_parser, measure  # benchmarks/curate.py
from results_md import machine, markers, update_section  # benchmarks/results_md.py
from worldsmith.curate.pipeline import CurateConfig, run_curation
from worldsmith.curate.synth import make_corpus

BEGIN, END = markers("curate_long")


def clips(out: Path) -> list[tuple]:
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    return sorted((r["key"], r["start_frame"], r["end_frame"], r["kept"]) for r in rows)


def main() -> None:
    args = curate_parser(__doc__, 6.0, "length of the one source file").parse_args()
    tmp = None if args.workdir else tempfile.TemporaryDirectory()
    work = args.workdir or Path(tmp.name)
    directory = work / f"long_{args.minutes:g}min"
    truth_file = directory / "truth.json"
    if not truth_file.is_file():
        print(f"generating one {args.minutes:g}-minute 320x240 multi-shot file in {directory} ...", flush=True)
        make_corpus(directory, minutes=args.minutes, size=(320, 240), seed=1, file_minutes=args.minutes)
    truth = json.loads(truth_file.read_text())[0]
    source = Path(truth["path"])
    default_segment = CurateConfig().segment_s
    rows, outs = [], {}
    for segment_s in (0.0, default_segment):
        out = work / f"out_segment{segment_s:g}"
        shutil.rmtree(out, ignore_errors=True)
        cfg = CurateConfig(workers=args.workers, progress=False, segment_s=segment_s)
        summary = {}
        wall, cpu = measure(lambda: summary.update(run_curation(source, out, cfg)))
        outs[segment_s] = out
        rows.append({"segment_s": segment_s, "wall": wall, "cpu": cpu, "kept": summary["kept"],
                     "clips": summary["clips"], "stage_cpu": summary["stage_cpu_seconds"]})  # fmt: skip
        print(rows[-1], flush=True)
    same = clips(outs[0.0]) == clips(outs[default_segment])
    minutes = summary["hours_in"] * 60
    lines = [
        f"## One long source on {args.workers} workers (`python benchmarks/curate_long.py`)",
        "",
        f"Machine: {machine()}; {os.cpu_count()} cores. One {minutes:.1f}-minute 320x240 25 fps H.264 file "
        f"(benchmarks/curate.py's generator), the default pipeline (TransNetV2), {args.workers} worker processes.",
        "",
        "| split | wall s | CPU s | kept of clips | CPU s per stage |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        name = "one task per source (`segment_s=0`)" if r["segment_s"] == 0 else \
            f"segments of ~{r['segment_s']:g} s (default)"  # fmt: skip
        lines.append(f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['kept']} of {r['clips']} | {r['stage_cpu']} |")
    lines += ["", f"Wall-clock speed-up from segments: **{rows[0]['wall'] / rows[1]['wall']:.2f}x**; the two runs "
              f"keep {'the same' if same else 'DIFFERENT'} clips with the same frame ranges."]  # fmt: skip
    text = "\n".join([BEGIN, *lines, END])
    print(text)
    if not same:
        raise SystemExit("the segmented run's clips differ from the one-task run's: not recorded")
    if not args.no_record:
        update_section("curate_long", text)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
