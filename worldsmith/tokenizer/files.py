"""Video files <-> latent files, streaming: what ``worldsmith tokenizer encode|decode`` run.

A latent file is one safetensors file per video holding ``latents`` (C, T', H', W') float or ``tokens``
(T', H', W') int64, with metadata (tokenizer, source, frames, fps, height, width). Both directions stream through
``encode_stream`` / ``decode_stream``, so memory does not grow with the video length. ``precision`` ("auto" = bf16
autocast where the machine computes bf16 natively, ~1.9x faster; worldsmith/precision.py) only changes the
arithmetic inside the network: files always hold float32 latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from worldsmith.errors import DataError
from worldsmith.io.video import encode_mp4, iter_frames, probe, to_tensor, to_uint8
from worldsmith.precision import autocast, use_bf16
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.weights import load_tensors, read_metadata, save_tensors

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif", ".png", ".jpg", ".jpeg")


def video_files(inputs: list[str | Path]) -> list[Path]:
    """Video files named directly or found (non-recursively) in the given folders, sorted; DataError if none."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item} does not exist; pass video files or folders of videos.")
    if not files:
        raise DataError(f"no videos found in {', '.join(map(str, inputs))} (looked for {', '.join(VIDEO_SUFFIXES)}).")
    return files


def frame_chunks(path: Path, multiple: int, chunk: int, size: int | None = None) -> Iterator[torch.Tensor]:
    """(1, 3, t, H, W) chunks in [-1, 1] of a video, centre-cropped so H and W are multiples of ``multiple``."""
    frames: list[np.ndarray] = []
    for frame in iter_frames(path, size=size):
        h, w = frame.shape[0] // multiple * multiple, frame.shape[1] // multiple * multiple
        if h == 0 or w == 0:
            raise DataError(f"{path} has frames of {frame.shape[0]}x{frame.shape[1]}, smaller than {multiple} pixels.")
        top, left = (frame.shape[0] - h) // 2, (frame.shape[1] - w) // 2
        frames.append(frame[top : top + h, left : left + w])
        if len(frames) == chunk:
            yield to_tensor(np.stack(frames))[None]
            frames = []
    if frames:
        yield to_tensor(np.stack(frames))[None]


def encode_file(model: CausalVideoTokenizer, path: Path, out: Path, *, size: int | None = None, chunk: int = 16,
                bf16: bool = False) -> dict[str, Any]:  # fmt: skip
    """Stream one video through the encoder into ``out`` (safetensors); returns its metadata."""
    device = next(model.parameters()).device
    seen = {"frames": 0, "shape": None}

    def chunks() -> Iterator[torch.Tensor]:
        for x in frame_chunks(path, model.cfg.spatial_compression, chunk, size):
            seen["frames"] += x.shape[2]
            seen["shape"] = tuple(x.shape[3:])
            yield x.to(device)

    with torch.inference_mode(), autocast(bf16, device):
        pieces = [z.cpu() if model.fsq is not None else z.float().cpu() for z in model.encode_stream(chunks(), chunk)]
    if not pieces:
        raise DataError(f"{path} has no frames.")
    latents = torch.cat(pieces, dim=1 if model.fsq is not None else 2)[0]
    height, width = seen["shape"]
    meta = {"tokenizer": model.cfg.name, "source": str(path), "frames": str(seen["frames"]),
            "fps": str(probe(path).fps), "height": str(height), "width": str(width)}  # fmt: skip
    save_tensors({"tokens" if model.fsq is not None else "latents": latents.contiguous()}, out, metadata=meta)
    return {"file": str(out), "frames": seen["frames"], "latent_shape": list(latents.shape)}


def encode_videos(run_dir: str | Path, inputs: list[str | Path], out_dir: str | Path, *, size: int | None = None,
                  device: str = "cpu", chunk: int = 16, precision: str = "auto") -> list[dict]:  # fmt: skip
    """Encode every input video into ``out_dir/<name>.safetensors``."""
    bf16 = use_bf16(precision, device)
    model = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    out_dir = Path(out_dir)
    files = video_files(inputs)
    return [encode_file(model, p, out_dir / f"{p.stem}.safetensors", size=size, chunk=chunk, bf16=bf16)
            for p in files]  # fmt: skip


def decode_file(model: CausalVideoTokenizer, path: Path, out: Path, *, chunk_latents: int = 2,
                bf16: bool = False) -> dict[str, Any]:  # fmt: skip
    """Decode one latent file written by :func:`encode_file` into the mp4 ``out`` (trimmed to the source length)."""
    tensors = load_tensors(path)
    key = "tokens" if model.fsq is not None else "latents"
    if key not in tensors:
        raise DataError(f"{path} holds no '{key}' tensor: it was not written by `worldsmith tokenizer encode` "
                        f"with a {model.cfg.name} tokenizer.")  # fmt: skip
    meta = read_metadata(path)
    if meta.get("tokenizer", model.cfg.name) != model.cfg.name:
        raise DataError(f"{path} was encoded by a {meta['tokenizer']} tokenizer, not {model.cfg.name}; "
                        f"decode it with that run.")  # fmt: skip
    total = int(meta.get("frames", 0)) or None
    z = tensors[key][None].to(next(model.parameters()).device)

    def frames() -> Iterator[np.ndarray]:
        left, videos = total, iter(model.decode_stream([z], chunk_latents=chunk_latents))
        while True:
            with torch.inference_mode(), autocast(bf16, z.device):  # entered per chunk: never held across a yield
                video = next(videos, None)
            if video is None:
                return
            for frame in to_uint8(video[0].float().cpu()):
                if left is not None and left <= 0:
                    return
                left = None if left is None else left - 1
                yield frame

    out.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(frames(), out, fps=float(meta.get("fps", 24.0)))
    return {"file": str(out), "frames": total}


def decode_latent_files(run_dir: str | Path, inputs: list[str | Path], out_dir: str | Path, *, device: str = "cpu",
                        chunk_latents: int = 2, precision: str = "auto") -> list[dict]:  # fmt: skip
    """Decode latent files written by :func:`encode_videos` into ``out_dir/<name>.mp4``."""
    bf16 = use_bf16(precision, device)
    model = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    paths = [Path(p) for p in inputs]
    return [decode_file(model, p, Path(out_dir) / f"{p.stem}.mp4", chunk_latents=chunk_latents, bf16=bf16)
            for p in paths]  # fmt: skip
