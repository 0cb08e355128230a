"""What ``worldsmith ar train|tokenize|generate`` run: training on token sets, and video generation from a run.

A training run's ``config.yaml`` has sections ``model`` (GPTConfig, from a preset; ``vocab_size`` and ``grid``
are set from the token set), ``train`` (the shared TrainConfig), ``data`` (ARDataConfig) and ``tokenizer`` (the
DV tokenizer run, needed to tokenize clips and to decode generated tokens). Resolved as preset <- YAML <- ``--set``
and run with the shared Trainer (DDP under torchrun). To resume, run the same command again.

Steps of ``train``: 1. tokenize ``data.shards`` into the token set (skipped when done); 2. load the token set and
fit the model's vocabulary and grid to it; 3. train next-token prediction on random windows of ``data.frames``
latent frames, a ``data.caption_dropout`` fraction of them without their caption.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsmith import config as C
from worldsmith.autoregressive.gpt import GPTConfig, VideoGPT
from worldsmith.autoregressive.sampling import SamplingConfig
from worldsmith.errors import CheckpointError, ConfigError
from worldsmith.train import TrainConfig


@dataclass
class ARDataConfig:
    tokens: str = ""  # token set folder (``tokenize`` writes it); empty: <run dir>/tokens
    shards: str = ""  # clip shards to tokenize into the token set first (needs ``tokenizer``); empty: use tokens as is
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size before tokenizing
    frames: int = 0  # latent frames per training window; 0: model.max_frames
    caption_dropout: float = 0.2  # fraction of samples trained unconditioned (no text); 1: never load the text encoder

    def __post_init__(self) -> None:
        if self.size < 8 or self.frames < 0 or not 0.0 <= self.caption_dropout <= 1.0:
            raise ConfigError("data.size >= 8, data.frames >= 0 and data.caption_dropout in [0, 1] are required.")


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=8, lr=1e-3, warmup_steps=200, weight_decay=0.1, betas=(0.9, 0.95),
                       ema_decay=0.999, log_every=25, ckpt_every=500)  # fmt: skip


@dataclass
class ARRunConfig:
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: ARDataConfig = field(default_factory=ARDataConfig)
    tokenizer: str = ""  # DV tokenizer run directory


def resolve_run_config(preset: str = "tiny", config_yaml: str | Path | None = None,
                       overrides: list[str] | tuple[str, ...] = (), *, data: str | None = None,
                       tokens: str | None = None, tokenizer: str | None = None) -> ARRunConfig:  # fmt: skip
    """preset <- YAML file <- --set overrides (<- --data / --tokens / --tokenizer)."""
    import worldsmith.autoregressive.presets  # noqa: F401  (registers the presets)

    cfg = C.resolve(ARRunConfig(model=C.preset("autoregressive", preset)), config_yaml, overrides)
    extra: dict[str, Any] = {"data": {}}
    if data:
        extra["data"]["shards"] = str(data)
    if tokens:
        extra["data"]["tokens"] = str(tokens)
    if tokenizer:
        extra["tokenizer"] = str(Path(tokenizer).resolve())
    return C.merge(cfg, extra)


def train(run_dir: str | Path, cfg: ARRunConfig, *, fresh: bool = False, progress: bool = True) -> dict[str, Any]:
    """Tokenize (if needed) and train (or resume) a VideoGPT into ``run_dir``; returns a summary."""
    from worldsmith.autoregressive.data import TokenBatches, load_token_set, tokenize_shards
    from worldsmith.train import Trainer, barrier, init_distributed, is_main, seed_everything

    run_dir = Path(run_dir)
    tokens_dir = Path(cfg.data.tokens) if cfg.data.tokens else run_dir / "tokens"
    progress = progress and cfg.train.progress
    # 1. tokenize the shards (rank 0 under torchrun; the others wait for it)
    if cfg.data.shards:
        if not cfg.tokenizer:
            raise ConfigError("data.shards needs a DV tokenizer run to tokenize them: pass --tokenizer RUN_DIR.")
        init_distributed(cfg.train.device)
        if is_main():
            tokenize_shards(cfg.tokenizer, cfg.data.shards, tokens_dir, size=cfg.data.size, progress=progress)
        barrier()
    elif not cfg.data.tokens:
        raise ConfigError("no training data: pass --data SHARDS with --tokenizer RUN, or --tokens TOKEN_SET.")
    # 2. fit the model to the token set
    index, clips = load_token_set(tokens_dir)
    model_cfg = dataclasses.replace(cfg.model, vocab_size=int(index["vocab_size"]), grid=tuple(index["grid"]))
    data_cfg = dataclasses.replace(cfg.data, tokens=str(tokens_dir.resolve()), size=index["size"])
    cfg = dataclasses.replace(cfg, model=model_cfg, tokenizer=cfg.tokenizer or index["tokenizer"], data=data_cfg)
    frames = cfg.data.frames or model_cfg.max_frames
    if frames > model_cfg.max_frames:
        raise ConfigError(f"data.frames ({frames}) must be <= model.max_frames ({model_cfg.max_frames}).")
    # 3. train
    text_encoder = None
    if cfg.data.caption_dropout < 1.0 and any(c.caption for c in clips):
        from worldsmith.conditioning.text import default_text_encoder

        text_encoder = default_text_encoder()
    data = TokenBatches(clips, frames, cfg.train.batch_size, seed=cfg.train.seed,
                        caption_dropout=cfg.data.caption_dropout, text_encoder=text_encoder)  # fmt: skip
    seed_everything(cfg.train.seed)
    model = VideoGPT(model_cfg)
    train_cfg = dataclasses.replace(cfg.train, progress=progress)
    trainer = Trainer(model, train_cfg, run_dir, data, full_config=C.to_dict(dataclasses.replace(cfg, train=train_cfg)),
                      model_config=model_cfg, resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "clips": len(data.clips),
            "last": result.last_logs}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# loading a run for generation
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class LoadedRun:
    model: VideoGPT
    tokenizer: Any  # CausalVideoTokenizer
    size: int  # frame size (square) the model was trained on


def load_run(run_dir: str | Path, tokenizer_run: str | Path | None = None, device: str = "cpu") -> LoadedRun:
    """The model of an autoregressive run and its DV tokenizer (from config.yaml, or ``tokenizer_run``)."""
    from worldsmith.tokenizer.model import CausalVideoTokenizer

    model = VideoGPT.from_pretrained(run_dir, device=device)
    config = C.load_yaml(Path(run_dir) / "config.yaml")
    tokenizer_run = tokenizer_run or config.get("tokenizer")
    if not tokenizer_run:
        raise CheckpointError(f"{run_dir}/config.yaml names no tokenizer run; pass the DV tokenizer run directory.")
    tokenizer = CausalVideoTokenizer.from_pretrained(tokenizer_run, device=device)
    if tokenizer.fsq is None or tokenizer.fsq.codebook_size != model.cfg.vocab_size:
        raise CheckpointError(f"the tokenizer in {tokenizer_run} ({tokenizer.cfg.name}) does not produce the "
                              f"{model.cfg.vocab_size} codes this model was trained on; pass the run's "
                              f"tokenizer.")  # fmt: skip
    size = int((config.get("data") or {}).get("size") or model.cfg.grid[0] * tokenizer.cfg.spatial_compression)
    return LoadedRun(model, tokenizer, size)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run with ``threads`` torch threads (None: unchanged), then restore. Token-by-token decoding on a CPU is
    fastest with 1: its ops are too small to split, and OpenMP threads stall when other jobs share the cores."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_prompts(prompts: list[str], device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """MiniLM token states (B, L, 384) and mask (B, L) of prompts; an empty prompt is unconditioned (mask False)."""
    from worldsmith.conditioning.text import default_text_encoder

    emb = default_text_encoder(device).encode(prompts)
    keep = torch.tensor([bool(p) for p in prompts], device=emb.mask.device)
    return emb.tokens, emb.mask & keep[:, None]


def generate_from_run(
    run_dir: str | Path,
    *,
    input_path: str | Path,
    prompt: str | None = None,
    frames: int = 16,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    out: str | Path,
    context_frames: int | None = None,
    samples: int = 1,
    tokenizer_run: str | Path | None = None,
    device: str = "cpu",
    compile: bool = False,
    threads: int | None = None,
) -> Path:
    """Continue the video (or image) ``input_path`` by ``frames`` frames and write context + rollout to ``out``.

    ``context_frames`` (default: all that fit the window) are taken from the end of the input; ``samples``
    rollouts are drawn in one batch and tiled side by side. Frames are decoded and written as they are generated.
    ``threads``: torch threads while generating (None: unchanged; 1 is fastest on a CPU, see ``torch_threads``).
    """
    from worldsmith.autoregressive.data import square_frames
    from worldsmith.autoregressive.generate import stream_video, trim_context
    from worldsmith.io.video import decode, encode_mp4, probe, to_tensor, to_uint8

    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    if frames < 1 or samples < 1 or (context_frames is not None and context_frames < 1):
        raise ConfigError("frames, samples and context_frames must be >= 1.")
    run = load_run(run_dir, tokenizer_run, device)
    # 1. the context: the last frames of the input that fit the window, at the training size
    ct = run.tokenizer.cfg.temporal_compression
    fit = 1 + max(run.model.cfg.max_frames - 2, 0) * ct  # video frames of max_frames - 1 latent frames
    video = square_frames(decode(input_path, size=run.size), run.size)  # (T, S, S, 3)
    video = video[-min(context_frames or fit, fit, len(video)) :]
    context = trim_context(to_tensor(video)[None], ct)  # (1, 3, T, S, S)
    context = context.expand(samples, -1, -1, -1, -1).to(device)
    # 2. the prompt
    text = text_mask = None
    if prompt:
        text, text_mask = encode_prompts([prompt], device)
    # 3. stream: context frames, then each generated frame as soon as it is decoded (rollouts side by side)
    generator = torch.Generator(device).manual_seed(seed)
    rollout = stream_video(run.model, run.tokenizer, context, frames, text=text, text_mask=text_mask,
                           sampling=sampling, generator=generator, compile=compile)  # fmt: skip

    def tiled(x: torch.Tensor) -> np.ndarray:  # (B, 3, H, W) -> (H, B*W, 3)
        return np.concatenate(list(to_uint8(x[:, :, None].cpu())[:, 0]), axis=1)

    def all_frames():
        for t in range(context.shape[2]):
            yield tiled(context[:, :, t])
        for frame in rollout:
            yield tiled(frame)

    info_fps = probe(input_path).fps
    out = Path(out)
    with torch_threads(threads):
        encode_mp4(all_frames(), out, fps=info_fps if info_fps > 0 else 10.0)
    return out
