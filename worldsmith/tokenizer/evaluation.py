"""``worldsmith tokenizer eval``: PSNR, SSIM and a Fréchet distance on EfficientNet-lite0 frame features.

Input is shards (a directory of .tar shards, a glob, a .tar, a manifest or a curate output) or video files and
folders of them. Videos are scaled down to a short side of ``DEFAULT_VIDEO_SIDE`` unless a size is given (never
up; ``full_res`` keeps them as they are), and a video that does not decode is skipped with a warning. Every clip is
encoded and decoded whole; reconstructions are clamped to [-1, 1] like the uint8 video they would become.
PSNR and SSIM (worldsmith/eval/metrics.py) are averaged over all frames; the Fréchet distance compares the
pooled EfficientNet-lite0 features of all real frames with those of all reconstructed frames (worldsmith/eval/
features.py; like FID it is biased upwards on few frames, so compare numbers computed on the same clips).
A side-by-side mp4 (input | reconstruction | error x4) shows the first clips, one after another; clips of other
sizes are padded with black to the largest. A progress bar (clips) goes to stderr when it is a terminal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.errors import DataError, VideoError
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.eval.metrics import psnr, ssim
from worldsmith.io.video import encode_mp4, probe, to_uint8
from worldsmith.tokenizer.files import frame_chunks, video_files
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.tensors import frames_of

logger = logging.getLogger(__name__)

ERROR_GAIN = 4.0  # the error panel shows |recon - input| * 4
DEFAULT_VIDEO_SIDE = 256  # videos are evaluated at this short side by default (scaled down, never up)


def is_shard_source(path: str | Path) -> bool:
    text = str(path)
    p = Path(text)
    if any(ch in text for ch in "*?["):
        return True
    if p.is_file():
        return p.suffix in (".tar", ".parquet")
    return p.is_dir() and (any(p.glob("*.tar")) or (p / "manifest.parquet").is_file())


def shard_batches(shards: str, frames: int, size: int, max_clips: int, batch_size: int = 1,
                  fps: float | None = None) -> Iterator[dict]:  # fmt: skip
    """Batches of the first ``max_clips`` clips of shards: their first ``frames`` frames (resampled to ``fps``
    when given), resized and centre-cropped to ``size x size``, in shard order."""
    cfg = DatasetConfig(shards=shards, frames=frames, fps=fps, size=(size, size), temporal_crop="start",
                        shuffle=False, loop=False, arrays=[], drop_short=True)  # fmt: skip
    seen = 0
    for batch in make_loader(cfg, batch_size):
        keep = min(batch["video"].shape[0], max_clips - seen)
        yield {"video": batch["video"][:keep], "fps": float(batch["fps"][0]) if "fps" in batch else 10.0}
        seen += keep
        if seen >= max_clips:
            return


def video_side(path: Path, size: int | None, full_res: bool) -> int | None:
    """The short side to decode ``path`` at: ``size`` if given, else ``DEFAULT_VIDEO_SIDE`` when the video is
    larger (None: as stored)."""
    if size is not None or full_res:
        return size
    info = probe(path)
    return DEFAULT_VIDEO_SIDE if min(info.height, info.width) > DEFAULT_VIDEO_SIDE else None


def folder_batches(inputs: list[str | Path], model: CausalVideoTokenizer, frames: int, size: int | None,
                   max_clips: int, full_res: bool = False) -> Iterator[dict]:  # fmt: skip
    """One batch per video file: its first ``frames`` frames (cut to 1 + k*ct), cropped to the compression, at
    the short side ``video_side`` chooses; videos that do not decode are skipped with a warning."""
    ct = model.cfg.temporal_compression
    for path in video_files(inputs)[:max_clips]:
        chunks, n = [], 0
        try:
            for chunk in frame_chunks(path, model.cfg.spatial_compression, frames, video_side(path, size, full_res)):
                chunks.append(chunk)
                n += chunk.shape[2]
                if n >= frames:
                    break
            fps = probe(path).fps
        except VideoError as e:
            logger.warning("skipping %s: %s", path, e)
            continue
        if not chunks:
            logger.warning("skipping %s: it has no frames", path)
            continue
        usable = 1 + (min(n, frames) - 1) // ct * ct
        yield {"video": torch.cat(chunks, dim=2)[:, :, :usable], "fps": fps}


@torch.no_grad()
def evaluate_batches(model: CausalVideoTokenizer, batches: Iterable[dict], *, features: bool = True,
                     comparison: Path | None = None, comparison_clips: int = 4, total: int | None = None,
                     progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """Mean PSNR/SSIM over frames (and the feature Fréchet distance) of reconstructions of ``batches``; with
    ``progress``, a bar of clips (of ``total``) on stderr when it is a terminal."""
    device = next(model.parameters()).device
    psnrs, ssims, real, fake, shown = [], [], [], [], []
    clips, fps = 0, 10.0
    bar = tqdm(total=total, desc="eval", unit="clip", disable=None if progress else True)
    for batch in batches:
        x = batch["video"].to(device)
        y = model.decode(model.encode(x)).clamp(-1, 1)
        psnrs.append(psnr(y, x, reduction="none").cpu())
        ssims.append(ssim(y, x, reduction="none").cpu())
        if features:
            real.append(frame_features(frames_of(x)).cpu())
            fake.append(frame_features(frames_of(y)).cpu())
        if comparison is not None and len(shown) < comparison_clips:
            shown += [(a, b) for a, b in zip(x.cpu(), y.cpu())][: comparison_clips - len(shown)]
            fps = float(batch.get("fps", fps))
        clips += x.shape[0]
        bar.update(x.shape[0])
    bar.close()
    if not clips:
        raise DataError("no clips to evaluate: the data is empty or every clip is shorter than the frames asked for.")
    p, s = torch.cat(psnrs), torch.cat(ssims)
    result: dict[str, Any] = {"clips": clips, "frames": int(p.numel()), "psnr": float(p.mean()),
                              "psnr_min": float(p.min()), "ssim": float(s.mean())}  # fmt: skip
    if features:
        a, b = torch.cat(real), torch.cat(fake)
        result["fd"] = frechet_distance(a, b) if len(a) >= 2 else None
    if comparison is not None and shown:
        write_comparison([a for a, _ in shown], [b for _, b in shown], comparison, fps)
        result["video"] = str(comparison)
    return result


def write_comparison(real: torch.Tensor | Sequence[torch.Tensor], recon: torch.Tensor | Sequence[torch.Tensor],
                     path: str | Path, fps: float = 10.0) -> Path:  # fmt: skip
    """mp4 of clips (B, 3, T, H, W), or a list of (3, T, H, W) clips of any sizes and lengths, one after another,
    each frame ``input | reconstruction | error x4``; smaller clips are padded with black to the largest."""
    panels = []
    for a, b in zip(real, recon, strict=True):
        b = b.clamp(-1, 1)
        error = ((b - a).abs() * ERROR_GAIN).clamp(0, 1) * 2 - 1  # 0 error = black
        panels.append(torch.cat([a, b, error], dim=-1).cpu())  # (3, T, H, 3W)
    height, width = max(p.shape[-2] for p in panels), max(p.shape[-1] for p in panels)
    padded = [F.pad(p, (0, width - p.shape[-1], 0, height - p.shape[-2]), value=-1.0) for p in panels]
    frames = np.concatenate([to_uint8(p) for p in padded], axis=0)  # (sum T, H, 3W, 3)
    encode_mp4(frames, path, fps=fps)
    return Path(path)


def evaluate(run_dir: str | Path, data: list[str | Path], *, frames: int | None = None, size: int | None = None,
             max_clips: int = 16, video: str | Path | None = None, device: str = "cpu", full_res: bool = False,
             progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """Evaluate the tokenizer of ``run_dir`` on shards or a folder of videos; see the module docstring."""
    model = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    ct, cs = model.cfg.temporal_compression, model.cfg.spatial_compression
    frames = frames or 1 + 4 * ct
    if len(data) == 1 and is_shard_source(data[0]):
        if size is None or size % cs:
            raise DataError(f"evaluating shards needs --size, a multiple of {cs} (frames are centre-cropped to it).")
        frames = 1 + (frames - 1) // ct * ct
        batches, total = shard_batches(str(data[0]), frames, size, max_clips), max_clips
    else:
        batches = folder_batches(data, model, frames, size, max_clips, full_res)
        total = min(len(video_files(data)), max_clips)
    result = evaluate_batches(model, batches, comparison=Path(video) if video else None, total=total,
                              progress=progress)  # fmt: skip
    return {"tokenizer": model.cfg.name, "run": str(run_dir), **result}


def format_results(result: dict[str, Any]) -> str:
    """A two-column table of the metrics for the terminal."""
    rows = [("tokenizer", result["tokenizer"]), ("clips", result["clips"]), ("frames", result["frames"]),
            ("PSNR (dB)", f"{result['psnr']:.2f}"), ("PSNR min frame (dB)", f"{result['psnr_min']:.2f}"),
            ("SSIM", f"{result['ssim']:.4f}"),
            ("Fréchet distance", "n/a" if result.get("fd") is None else f"{result['fd']:.3f}")]  # fmt: skip
    if result.get("video"):
        rows.append(("side-by-side video", result["video"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
