"""What ``worldsmith tokenizer train|encode|decode`` run: training runs, and video <-> latent files, streaming.

Training (``train``): ``config.yaml`` of a run has sections ``model`` (TokenizerConfig, from a preset), ``train``
(the shared TrainConfig) and ``data`` (TokenizerDataConfig); resolved as preset <- YAML <- ``--set`` and run with
the shared Trainer. To resume, run the same command again. ``init_from`` starts from another run's weights (e.g.
the adversarial fine-tuning stage: ``--init-from RUN --set model.loss.adversarial=0.1``).

Latent files (``encode`` / ``decode``): one safetensors file per video holding ``latents`` (C, T', H', W') float
or ``tokens`` (T', H', W') int64, with metadata (tokenizer, frames, fps, height, width). Both directions stream
through ``encode_stream`` / ``decode_stream``, so memory does not grow with the video length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from worldsmith import config as C
from worldsmith.errors import ConfigError, DataError
from worldsmith.train import TrainConfig
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.tokenizer_config import TokenizerConfig

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif", ".png", ".jpg", ".jpeg")


@dataclass
class TokenizerDataConfig:
    shards: str = ""  # training clips: a shard directory, glob, .tar or manifest.parquet
    frames: int = 17  # frames per training clip; must be 1 + k * temporal_compression
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size
    fps: float | None = None  # resample clips to this rate; None keeps each clip's own
    num_workers: int = 0  # data loader processes
    cache_mb: int = 1024  # keep decoded training clips in memory up to this many MB (per loader process); 0: off
    eval_shards: str = ""  # held-out clips scored every train.eval_every steps (PSNR, SSIM)
    eval_clips: int = 8

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8 or self.num_workers < 0 or self.eval_clips < 1 or self.cache_mb < 0:
            raise ConfigError("data.frames >= 1, data.size >= 8, data.num_workers >= 0, data.eval_clips >= 1 and "
                              "data.cache_mb >= 0 are required.")


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=4, lr=5e-4, warmup_steps=100, weight_decay=0.0, ema_decay=0.998,
                       log_every=25, ckpt_every=500)  # fmt: skip


@dataclass
class TokenizerRunConfig:
    model: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: TokenizerDataConfig = field(default_factory=TokenizerDataConfig)
    init_from: str = ""  # run directory whose model.safetensors initializes this run (fine-tuning stages)


def resolve_run_config(
    preset: str = "cv4x8x8-small", config_yaml: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
    data: str | None = None, init_from: str | None = None,
) -> TokenizerRunConfig:
    """preset <- YAML file <- --set overrides (<- --data / --init-from), then checked against the model."""
    C.load_all_presets()
    cfg = TokenizerRunConfig(model=C.preset("tokenizer", preset))
    cfg = C.resolve(cfg, config_yaml, overrides)
    if data:
        cfg = C.merge(cfg, {"data": {"shards": str(data)}})
    if init_from:
        cfg = C.merge(cfg, {"init_from": str(init_from)})
    ct, cs = cfg.model.temporal_compression, cfg.model.spatial_compression
    if (cfg.data.frames - 1) % ct:
        raise ConfigError(f"data.frames must be 1 + k*{ct} for the {cfg.model.name} tokenizer (e.g. {1 + 4 * ct}), "
                          f"got {cfg.data.frames}.")
    if cfg.data.size % cs:
        raise ConfigError(f"data.size must be a multiple of the spatial compression {cs}, got {cfg.data.size}.")
    return cfg


def dataset_config(data: TokenizerDataConfig, shards: str, *, train: bool, seed: int = 0):
    from worldsmith.data.dataset import DatasetConfig

    return DatasetConfig(shards=shards, frames=data.frames, fps=data.fps, size=(data.size, data.size),
                         temporal_crop="random" if train else "start", shuffle=train, seed=seed, loop=train,
                         arrays=[], drop_short=True, cache_mb=data.cache_mb if train else 0)  # fmt: skip


def load_init_weights(model: CausalVideoTokenizer, run_dir: str | Path) -> None:
    """Copy the weights of another run into ``model``; only a discriminator that run lacked may be missing."""
    from worldsmith.train.checkpoint import CheckpointError, load_tensors

    state = load_tensors(Path(run_dir) / "model.safetensors")
    state = {k: v for k, v in state.items() if not k.startswith("discriminator.") or model.discriminator is not None}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("discriminator.")]
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {run_dir} do not fit this tokenizer (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            f"--init-from needs a run of the same architecture."
        )


def train(run_dir: str | Path, cfg: TokenizerRunConfig, *, fresh: bool = False) -> dict[str, Any]:
    """Train (or resume) a tokenizer into ``run_dir``; returns a summary with the last logged metrics."""
    from worldsmith.data.dataset import make_loader
    from worldsmith.train import Trainer, seed_everything
    from worldsmith.tokenizer.evaluation import evaluate_batches, shard_batches

    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with a shard directory (e.g. `worldsmith sim arm --out DIR`).")
    seed_everything(cfg.train.seed)
    model = CausalVideoTokenizer(cfg.model)
    if cfg.init_from:
        load_init_weights(model, cfg.init_from)
    loader = make_loader(dataset_config(cfg.data, cfg.data.shards, train=True, seed=cfg.train.seed),
                         cfg.train.batch_size, cfg.data.num_workers)  # fmt: skip

    def eval_fn(m: CausalVideoTokenizer, step: int) -> dict[str, float]:
        scores = evaluate_batches(m, shard_batches(cfg.data.eval_shards, cfg.data, cfg.data.eval_clips), features=False)
        return {"psnr": scores["psnr"], "ssim": scores["ssim"]}

    def sample_fn(m: CausalVideoTokenizer, step: int, out_dir: Path) -> dict[str, float]:
        from worldsmith.tokenizer.evaluation import write_comparison

        batch = next(iter(shard_batches(cfg.data.eval_shards or cfg.data.shards, cfg.data, 4, batch_size=4)))
        x = batch["video"].to(next(m.parameters()).device)
        write_comparison(x, m.decode(m.encode(x)), out_dir / "recon.mp4", batch["fps"])
        return {}

    trainer = Trainer(model, cfg.train, run_dir, loader, full_config=C.to_dict(cfg), model_config=cfg.model,
                      sample_fn=sample_fn, eval_fn=eval_fn if cfg.data.eval_shards else None,
                      resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "last": result.last_logs}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# video files <-> latent files
# ---------------------------------------------------------------------------------------------------------------
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
    from worldsmith.io.video import iter_frames, to_tensor

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


def encode_file(
    model: CausalVideoTokenizer, path: Path, out: Path, *, size: int | None = None, chunk: int = 16
) -> dict[str, Any]:
    """Stream one video through the encoder into ``out`` (safetensors); returns its metadata."""
    from worldsmith.io.video import probe
    from worldsmith.train.checkpoint import save_tensors

    device = next(model.parameters()).device
    seen = {"frames": 0, "shape": None}

    def chunks() -> Iterator[torch.Tensor]:
        for x in frame_chunks(path, model.cfg.spatial_compression, chunk, size):
            seen["frames"] += x.shape[2]
            seen["shape"] = tuple(x.shape[3:])
            yield x.to(device)

    pieces = [z.cpu() for z in model.encode_stream(chunks(), chunk_frames=chunk)]
    if not pieces:
        raise DataError(f"{path} has no frames.")
    latents = torch.cat(pieces, dim=1 if model.fsq is not None else 2)[0]
    height, width = seen["shape"]
    meta = {"tokenizer": model.cfg.name, "source": str(path), "frames": str(seen["frames"]),
            "fps": str(probe(path).fps), "height": str(height), "width": str(width)}  # fmt: skip
    save_tensors({"tokens" if model.fsq is not None else "latents": latents.contiguous()}, out, metadata=meta)
    return {"file": str(out), "frames": seen["frames"], "latent_shape": list(latents.shape)}


def encode(run_dir: str | Path, inputs: list[str | Path], out_dir: str | Path, *, size: int | None = None,
           device: str = "cpu", chunk: int = 16) -> list[dict]:  # fmt: skip
    """Encode every input video into ``out_dir/<name>.safetensors``."""
    model = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    out_dir = Path(out_dir)
    files = video_files(inputs)
    return [encode_file(model, p, out_dir / f"{p.stem}.safetensors", size=size, chunk=chunk) for p in files]


def decode(run_dir: str | Path, inputs: list[str | Path], out_dir: str | Path, *, device: str = "cpu",
           chunk_latents: int = 2) -> list[dict]:  # fmt: skip
    """Decode latent files written by ``encode`` into ``out_dir/<name>.mp4`` (trimmed to the source length)."""
    import safetensors

    from worldsmith.io.video import encode_mp4, to_uint8
    from worldsmith.train.checkpoint import load_tensors

    model = CausalVideoTokenizer.from_pretrained(run_dir, device=device)
    results = []
    for path in [Path(p) for p in inputs]:
        tensors = load_tensors(path)
        key = "tokens" if model.fsq is not None else "latents"
        if key not in tensors:
            raise DataError(f"{path} holds no '{key}' tensor: it was not written by `worldsmith tokenizer encode` "
                            f"with a {model.cfg.name} tokenizer.")
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("tokenizer", model.cfg.name) != model.cfg.name:
            raise DataError(f"{path} was encoded by a {meta['tokenizer']} tokenizer, not {model.cfg.name}; "
                            f"decode it with that run.")
        total = int(meta.get("frames", 0)) or None
        z = tensors[key][None].to(device)

        def frames() -> Iterator[np.ndarray]:
            left = total
            for video in model.decode_stream([z], chunk_latents=chunk_latents):
                for frame in to_uint8(video[0].cpu()):
                    if left is not None and left <= 0:
                        return
                    left = None if left is None else left - 1
                    yield frame

        out = Path(out_dir) / f"{path.stem}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        encode_mp4(frames(), out, fps=float(meta.get("fps", 24.0)))
        results.append({"file": str(out), "frames": total})
    return results
