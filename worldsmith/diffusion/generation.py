"""Text2World and Video2World generation with a trained run: prompts and frames in, uint8 videos out.

``WorldGenerator.from_run(run_dir)`` loads the model (EMA weights), its tokenizer (from ``generation.json``) and
the MiniLM text encoder. Generation works chunk by chunk, each chunk being the clip length the model was trained
on (``frames``):

1. encode the prompt (and the negative prompt for guidance);
2. Text2World: the first chunk is generated from noise. Video2World: the last ``1 + (k - 1) * ct`` frames of the
   given video are encoded into k condition latents (k <= model.max_cond_latents) and the chunk is generated
   around them (the causal tokenizer makes the first of them an image latent, as in training);
3. decode the chunk and append the frames after its condition frames;
4. long videos: repeat 2-3, each chunk conditioned on the last frames generated so far, until ``frames``.

Returned videos include the given frames unchanged, followed by the generated ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.diffusion.pipeline import GENERATION_FILE, load_tokenizer
from worldsmith.errors import CheckpointError, ConfigError, VideoError


@dataclass
class Sampling:
    steps: int = 10
    guidance: float = 1.0  # classifier-free guidance scale; 1 = conditional prediction only
    sampler: str = "dpm++2m"  # euler | heun | dpm++2m
    negative_prompt: str | None = None  # the unconditional branch of guidance; None = no text
    seed: int = 0


class WorldGenerator:
    def __init__(self, model: DiffusionWorldModel, tokenizer, text_encoder, *, frames: int, size: int, fps: float):
        self.model, self.tokenizer, self.text_encoder = model.eval(), tokenizer.eval(), text_encoder
        self.chunk_frames, self.size, self.fps = frames, size, fps
        self.ct = tokenizer.cfg.temporal_compression
        self.cs = tokenizer.cfg.spatial_compression * model.cfg.dit.patch
        self.device = next(model.parameters()).device

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> "WorldGenerator":
        from worldsmith.conditioning.text import default_text_encoder

        path = Path(run_dir) / GENERATION_FILE
        if not path.is_file():
            raise CheckpointError(f"{run_dir} has no {GENERATION_FILE}, so it is not a finished diffusion run; train it "
                                  f"with `worldsmith train diffusion` first.")  # fmt: skip
        info = json.loads(path.read_text())
        model = DiffusionWorldModel.from_pretrained(run_dir, device=device)
        tok = load_tokenizer(info["tokenizer"], device)
        return cls(model, tok, default_text_encoder(device), frames=info["frames"], size=info["size"], fps=info["fps"])

    # -- conditions -------------------------------------------------------------------------------------------
    def conditions(self, prompts: list[str], s: Sampling) -> tuple[Condition, Condition | None]:
        """(condition, unconditional branch) for a batch of prompts at the generator's frame rate."""
        emb = self.text_encoder.encode(prompts)
        fps = torch.full((len(prompts),), self.fps / self.ct, device=self.device)
        cond = Condition(emb.tokens.to(self.device), emb.mask.to(self.device), fps=fps)
        if s.guidance == 1.0:
            return cond, None
        if s.negative_prompt is None:
            return cond, cond.without_text()
        neg = self.text_encoder.encode([s.negative_prompt] * len(prompts))
        return cond, cond.with_text(neg.tokens.to(self.device), neg.mask.to(self.device))

    # -- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def chunk(self, cond: Condition, uncond: Condition | None, context: torch.Tensor | None, size: tuple[int, int],
              s: Sampling, generator: torch.Generator) -> torch.Tensor:  # fmt: skip
        """One chunk of ``chunk_frames`` frames (B, 3, T, H, W) in [-1, 1], continuing ``context`` if given."""
        t_lat = 1 + (self.chunk_frames - 1) // self.ct
        shape = (t_lat, size[0] // self.tokenizer.cfg.spatial_compression, size[1] // self.tokenizer.cfg.spatial_compression)
        if context is not None:
            z = self.model.normalize(self.tokenizer.encode(context))  # (B, C, k, H', W')
            k = z.shape[2]
            full = torch.cat([z, z.new_zeros(z.shape[0], z.shape[1], t_lat - k, *shape[1:])], dim=2)
            sigma = torch.full((z.shape[0],), self.model.cfg.cond_sigma, device=self.device)
            noise = torch.randn(full.shape, generator=generator, device=self.device)
            cond = with_condition_frames(cond, full, torch.full((z.shape[0],), k, device=self.device), sigma, noise)
            if uncond is not None:
                uncond = with_condition_frames(uncond, full, torch.full((z.shape[0],), k, device=self.device), sigma, noise)
        x = self.model.generate(cond, shape, steps=s.steps, guidance=s.guidance, uncond=uncond, sampler=s.sampler,
                                generator=generator)  # fmt: skip
        return self.tokenizer.decode(self.model.denormalize(x)).clamp(-1, 1)

    def context_frames(self, available: int) -> int:
        """Pixel frames to condition on, given ``available`` frames: 1 + (k - 1) * ct for the largest usable k."""
        t_lat = 1 + (self.chunk_frames - 1) // self.ct
        k = min(self.model.cfg.max_cond_latents, 1 + (available - 1) // self.ct, t_lat - 1)
        return 1 + (k - 1) * self.ct

    @torch.no_grad()
    def generate(self, prompts: list[str], *, video: torch.Tensor | None = None, frames: int | None = None,
                 sampling: Sampling | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:  # fmt: skip
        """Videos (B, 3, frames, H, W) in [-1, 1]: Text2World (``video=None``) or a continuation of ``video``."""
        s = sampling or Sampling()
        frames = frames or self.chunk_frames
        if video is not None:
            video = video.to(self.device, torch.float32)
            size = tuple(video.shape[-2:])
        size = size or (self.size, self.size)
        if size[0] % self.cs or size[1] % self.cs:
            raise ConfigError(f"frame size {size[0]}x{size[1]} must be a multiple of {self.cs} for this model.")
        if self.chunk_frames - 1 < self.ct:
            raise ConfigError("the model was trained on single latent frames, so it cannot continue a video.")
        generator = torch.Generator(self.device).manual_seed(s.seed)
        cond, uncond = self.conditions(prompts, s)
        if video is None:
            video = self.chunk(cond, uncond, None, size, s, generator)  # 1. Text2World: the first chunk from noise
        while video.shape[2] < frames:  # 2. Video2World chunks, each on the last frames so far
            n = self.context_frames(video.shape[2])
            new = self.chunk(cond, uncond, video[:, :, -n:], size, s, generator)
            video = torch.cat([video, new[:, :, n:]], dim=2)
        return video[:, :, :frames]

    def video2world(self, first_frames, prompt: str = "", *, frames: int | None = None, steps: int = 10,
                    guidance: float = 1.0, seed: int = 0, sampler: str = "dpm++2m",
                    negative_prompt: str | None = None) -> np.ndarray:  # fmt: skip
        """uint8 (frames, H, W, 3): the given first frames (uint8 (k, H, W, 3) or float (3, k, H, W)) + the rest."""
        from worldsmith.io.video import to_tensor, to_uint8

        if isinstance(first_frames, np.ndarray):
            first_frames = to_tensor(first_frames)
        if first_frames.ndim != 4 or first_frames.shape[0] != 3:
            raise VideoError(f"first frames must be uint8 (k, H, W, 3) or float (3, k, H, W), got {tuple(first_frames.shape)}.")
        s = Sampling(steps=steps, guidance=guidance, sampler=sampler, negative_prompt=negative_prompt, seed=seed)
        out = self.generate([prompt], video=first_frames[None], frames=frames, sampling=s)
        return to_uint8(out[0].cpu())

    def text2world(self, prompt: str, *, frames: int | None = None, size: tuple[int, int] | None = None,
                   steps: int = 10, guidance: float = 1.0, seed: int = 0, sampler: str = "dpm++2m",
                   negative_prompt: str | None = None) -> np.ndarray:  # fmt: skip
        from worldsmith.io.video import to_uint8

        s = Sampling(steps=steps, guidance=guidance, sampler=sampler, negative_prompt=negative_prompt, seed=seed)
        return to_uint8(self.generate([prompt], frames=frames, sampling=s, size=size)[0].cpu())


def video2world(model_run_dir: str | Path, first_frames, *, prompt: str = "", frames: int | None = None,
                steps: int = 10, guidance: float = 1.0, seed: int = 0, sampler: str = "dpm++2m",
                device: str = "cpu") -> np.ndarray:  # fmt: skip
    """One-call Video2World from a run directory: uint8 (frames, H, W, 3) starting with ``first_frames``."""
    gen = WorldGenerator.from_run(model_run_dir, device=device)
    return gen.video2world(first_frames, prompt, frames=frames, steps=steps, guidance=guidance, seed=seed, sampler=sampler)


# ---------------------------------------------------------------------------------------------------------------
# files in, mp4 out (what `worldsmith generate` and `worldsmith diffusion batch` run)
# ---------------------------------------------------------------------------------------------------------------
def read_input(path: str | Path, gen: WorldGenerator) -> torch.Tensor:
    """An image or video file as float (3, T, H, W) in [-1, 1]: short side resized to the model's size, centre-
    cropped to a multiple of the model's latent patch."""
    from worldsmith.io.video import decode, to_tensor

    frames = decode(path, size=gen.size)  # uint8 (T, H, W, 3)
    h, w = frames.shape[1] // gen.cs * gen.cs, frames.shape[2] // gen.cs * gen.cs
    if h == 0 or w == 0:
        raise VideoError(f"{path} is smaller than {gen.cs} pixels after resizing; use a larger image or video.")
    top, left = (frames.shape[1] - h) // 2, (frames.shape[2] - w) // 2
    return to_tensor(np.ascontiguousarray(frames[:, top : top + h, left : left + w]))


def write_video(video: torch.Tensor, out: str | Path, fps: float) -> Path:
    """float (3, T, H, W) in [-1, 1] -> an mp4 at ``out`` (atomically)."""
    from worldsmith.io.video import encode_mp4, to_uint8

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    encode_mp4(to_uint8(video.cpu()), out, fps=fps)
    return out


def generate_from_run(
    run_dir: str | Path, *, prompt: str = "", input_path: str | Path | None = None, frames: int | None = None,
    steps: int = 10, guidance: float = 1.0, seed: int = 0, out: str | Path, negative_prompt: str | None = None,
    sampler: str = "dpm++2m", device: str = "cpu", generator: WorldGenerator | None = None,
) -> Path:  # fmt: skip
    """Generate one video from a diffusion run directory into ``out`` (mp4); Video2World when ``input_path``."""
    gen = generator or WorldGenerator.from_run(run_dir, device=device)
    video = read_input(input_path, gen)[None] if input_path else None
    s = Sampling(steps=steps, guidance=guidance, sampler=sampler, negative_prompt=negative_prompt, seed=seed)
    return write_video(gen.generate([prompt], video=video, frames=frames, sampling=s)[0], out, gen.fps)


BATCH_KEYS = ("prompt", "input", "frames", "steps", "guidance", "seed", "sampler", "negative_prompt", "name")


def read_jobs(jsonl: str | Path) -> list[dict]:
    """Lines of a JSONL file of generation jobs; each needs "prompt" and may set the other BATCH_KEYS."""
    from worldsmith.errors import DataError

    path = Path(jsonl)
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a JSONL file with one {{\"prompt\": ...}} object per line.")
    jobs = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {i} is not valid JSON ({e.msg}).") from None
        if not isinstance(job, dict) or not isinstance(job.get("prompt"), str):
            raise DataError(f"{path} line {i} must be an object with a string \"prompt\".")
        unknown = sorted(set(job) - set(BATCH_KEYS))
        if unknown:
            raise DataError(f"{path} line {i} has unknown keys {unknown}; allowed: {', '.join(BATCH_KEYS)}.")
        jobs.append(job | {"name": str(job.get("name", f"{len(jobs):05d}"))})
    return jobs


def generate_batch(run_dir: str | Path, jsonl: str | Path, out_dir: str | Path, *, device: str = "cpu",
                   **defaults) -> list[dict]:  # fmt: skip
    """Run every job of ``jsonl`` into ``out_dir/<name>.mp4``; existing outputs are kept (run again to resume)."""
    jobs = read_jobs(jsonl)
    gen = WorldGenerator.from_run(run_dir, device=device)
    results = []
    for job in jobs:
        out = Path(out_dir) / f"{job['name']}.mp4"
        if not out.is_file():
            args = defaults | {k: v for k, v in job.items() if k not in ("name", "input")}
            generate_from_run(run_dir, input_path=job.get("input"), out=out, generator=gen, **args)
        results.append({"name": job["name"], "file": str(out)})
    return results
