"""Scoring rollouts against the true continuation of held-out clips (e.g. simulated arm-world episodes).

For each clip long enough: the first ``context_frames`` frames condition the model (with the clip's caption), the
model rolls out ``frames`` frames, and these are compared with the clip's next ``frames`` frames: PSNR and SSIM
per frame (``worldsmith.eval.metrics``), and the Fréchet distance between EfficientNet-lite0 features of all
generated and all true frames (``worldsmith.eval.features``). The "copy the last context frame" floor is scored
the same way, so the numbers sit in one table with the diffusion model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsmith.autoregressive.config import SamplingConfig
from worldsmith.autoregressive.generate import ARGenerator
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError, DataError
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.eval.metrics import psnr, ssim
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor


def _clips(shards: str | Path, size: int, need: int, max_clips: int) -> list[tuple[np.ndarray, str]]:
    out = []
    for shard in list_shards(str(shards)):
        for clip in iter_shard(shard):
            if clip.num_frames >= need:
                out.append((fit_frames(clip.frames[:need], size, square=True), clip.caption))
            if len(out) == max_clips:
                return out
    return out


@torch.no_grad()
def score_rollouts(
    run_dir: str | Path,
    tokenizer_run_dir: str | Path | None,
    shards: str | Path,
    *,
    context_frames: int = 1,
    frames: int = 16,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    max_clips: int = 16,
    batch_size: int = 8,
    use_captions: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Mean PSNR, SSIM and feature Fréchet distance ``fd`` of rollouts vs the truth, plus per-step curves and the
    copy-last-frame floor. ``tokenizer_run_dir`` None: the tokenizer named in the run's config.yaml."""
    if context_frames < 1 or frames < 1:
        raise ConfigError(f"context_frames and frames must be >= 1, got {context_frames} and {frames}.")
    run = ARGenerator.from_run(run_dir, device, tokenizer=tokenizer_run_dir, threads=None)
    clips = _clips(shards, run.size, context_frames + frames, max_clips)
    if not clips:
        raise DataError(f"no clip in {shards} has the {context_frames + frames} frames needed for scoring.")
    sampling = sampling or SamplingConfig()
    generator = torch.Generator(device).manual_seed(seed)
    preds, truths, copies = [], [], []
    for i in range(0, len(clips), batch_size):
        chunk = clips[i : i + batch_size]
        video = to_tensor(np.stack([c for c, _ in chunk])).to(device)  # (B, 3, context + frames, S, S)
        prompts = [caption if use_captions else "" for _, caption in chunk]
        rollout = run.stream(video[:, :, :context_frames], frames, prompts, sampling, generator=generator)
        preds.append(torch.stack(list(rollout), dim=2).cpu())  # (B, 3, frames, S, S)
        truths.append(video[:, :, context_frames:].cpu())
        copies.append(video[:, :, context_frames - 1 : context_frames].expand_as(truths[-1]).cpu())
    pred, truth, copy = torch.cat(preds), torch.cat(truths), torch.cat(copies)  # (N, 3, frames, S, S)
    result: dict[str, Any] = {"clips": len(clips), "context_frames": context_frames, "frames": frames}
    for name, guess in (("model", pred), ("copy_last", copy)):
        per_psnr = psnr(guess, truth, reduction="none").view(len(clips), frames).mean(0)  # (frames,)
        per_ssim = ssim(guess, truth, reduction="none").view(len(clips), frames).mean(0)
        scores = {"psnr": float(per_psnr.mean()), "ssim": float(per_ssim.mean()),
                  "fd": _frechet(guess, truth),
                  "psnr_per_step": [round(float(v), 3) for v in per_psnr],
                  "ssim_per_step": [round(float(v), 4) for v in per_ssim]}  # fmt: skip
        if name == "model":
            result |= scores
        else:
            result["copy_last"] = scores
    return result


def _frechet(guess: torch.Tensor, truth: torch.Tensor) -> float | None:
    """Fréchet distance of EfficientNet-lite0 features of all frames; None for fewer than 2 frames or when the
    feature network's weights package is not installed."""
    if guess.shape[0] * guess.shape[2] < 2:
        return None
    to_frames = lambda v: v.permute(0, 2, 1, 3, 4).flatten(0, 1)  # (N, 3, T, H, W) -> (N*T, 3, H, W)
    try:
        return frechet_distance(frame_features(to_frames(guess)), frame_features(to_frames(truth)))
    except ConfigError:
        return None
