"""Video decode and dataset throughput.

1. Decode frames/s of ``worldsmith.io.video.decode`` vs bare PyAV on the same 256p H.264 file (goal: ratio >= 0.8).
   Bare PyAV is measured two ways: the textbook loop (``frame.to_ndarray(format="rgb24")`` per frame, stacked)
   and the same loop with FFmpeg's frame threading on; the ratio is taken against the faster of the two.
2. ClipDataset clips/s through a torch DataLoader with 2 workers, on shards of simulated bounce-world clips.

    python benchmarks/io.py [--frames 300] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.io.video import decode, encode_mp4
from worldsmith.worlds.generate import simulate


def make_video(path: Path, frames: int, height: int = 256, width: int = 456) -> None:
    """A textured, moving test pattern (hard enough for the encoder not to make it trivially cheap)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        dy, dx = (3 * t) % height, (5 * t) % width
        frame = texture[dy : dy + height, dx : dx + width].copy()
        blob = (yy - height / 2 - 60 * np.sin(t / 10)) ** 2 + (xx - width / 2 - 120 * np.cos(t / 15)) ** 2 < 40**2
        frame[blob] = (255, 80, 20)
        video[t] = frame
    encode_mp4(video, path, fps=30, crf=23, preset="veryfast")


def bare_pyav(path: Path, threads: bool) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads:
            stream.thread_type = "AUTO"
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_decode(frames: int, repeats: int, workdir: Path) -> dict:
    path = workdir / "bench_256p.mp4"
    make_video(path, frames)
    ours = decode(path)
    assert ours.shape == (frames, 256, 456, 3) and np.array_equal(ours, bare_pyav(path, threads=True))
    t_plain = best_of(lambda: bare_pyav(path, threads=False), repeats)
    t_threaded = best_of(lambda: bare_pyav(path, threads=True), repeats)
    t_ours = best_of(lambda: decode(path), repeats)
    bare_best = min(t_plain, t_threaded)
    return {
        "file": "456x256 H.264 crf23, %d frames" % frames,
        "pyav_plain_fps": frames / t_plain,
        "pyav_threaded_fps": frames / t_threaded,
        "worldsmith_fps": frames / t_ours,
        "ratio_vs_best_bare_pyav": bare_best / t_ours,
    }


def bench_dataset(workdir: Path, episodes: int = 32, batches: int = 40) -> dict:
    shards = workdir / "bounce"
    simulate("bounce", episodes=episodes, frames=32, size=64, fps=10, out=shards, seed=0, progress=False, shard_size=8)
    cfg = DatasetConfig(shards=str(shards), frames=16, size=64, loop=True, arrays=["actions"])
    loader = make_loader(cfg, batch_size=4, num_workers=2)
    it = iter(loader)
    next(it)  # workers started, first batch decoded
    t = time.perf_counter()
    clips = 0
    for _ in range(batches):
        batch = next(it)
        clips += batch["video"].shape[0]
    dt = time.perf_counter() - t
    del it
    return {"dataset": f"{episodes} bounce clips 64x64x32, 16-frame crops, batch 4, 2 workers",
            "clips_per_s": clips / dt, "frames_per_s": clips * 16 / dt, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                  "decode": bench_decode(args.frames, args.repeats, Path(tmp)),
                  "dataset": bench_dataset(Path(tmp))}
    d = result["decode"]
    print(f"decode {d['file']}: worldsmith {d['worldsmith_fps']:.0f} frames/s, bare PyAV "
          f"{d['pyav_plain_fps']:.0f} (threaded {d['pyav_threaded_fps']:.0f}); ratio {d['ratio_vs_best_bare_pyav']:.2f} (goal >= 0.8)")
    s = result["dataset"]
    print(f"dataset {s['dataset']}: {s['clips_per_s']:.1f} clips/s ({s['frames_per_s']:.0f} frames/s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
