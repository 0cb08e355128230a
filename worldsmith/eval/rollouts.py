"""``worldsmith eval rollouts``: a world model's rollouts from held-out first frames, scored against the simulator.

For every held-out clip: the model gets the first frame (and the clip's actions, or its instruction) and generates
``frames`` more; each generated frame is compared with the simulator's frame. Figures, per step and as means:

* ``psnr``, ``ssim`` (eval/metrics.py) and ``fd``, the Fréchet distance of EfficientNet-lite0 features of all
  generated frames against all true ones (eval/features.py);
* ``gripper_error_px`` and ``object_error_px``: where the state reader (state_reader.py) sees the gripper and the
  objects in the generated frame, against their true pixels (objects matched one to one);
* floors: ``copy_first`` (the first frame repeated: a model that predicts no change), ``no_action`` (the same model
  with every action zero), ``no_state`` (a model that draws the commanded fingertip, conditioning/tip.py, without
  the robot's recorded state), ``no_instruction`` (a model without actions, steered by the caption: the same model with
  an empty one) and, with ``base``, the base model before post-training (Video2World from the caption);
  ceiling: ``tokenizer``, the tokenizer's own reconstruction of the truth (no latent model can beat it; an
  autoregressive model with a diffusion decoder: the truth's tokens through that decoder);
* ``one_step`` (optional): every frame generated from the true frames before it and its action, not from the
  model's own frames: the error of one step; the gap to ``model`` is what compounding over the rollout adds;
* instruction following (with a reader; eval/instruction.py): whether the object the caption names moves to its
  true place while the others stay, and the per-step errors of the named and the other objects;
* ``action_discrimination``: for clips simulated in pairs (``worldsmith sim --branches 2``: one scene, two policies),
  the share of rollouts closer (pixel MSE) to their own truth than to the other branch's truth;
* spreads: the standard error of each mean over episodes (``*_sem``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from worldsmith.conditioning.tip import body_kwargs, body_of
from worldsmith.data.clip import Clip
from worldsmith.errors import ConfigError, DataError
from worldsmith.eval.features import frame_features, frechet_distance
from worldsmith.eval.metrics import psnr, ssim
from worldsmith.eval.instruction import FOLLOW_KEYS, follow_scores, named_object
from worldsmith.eval.reader_train import object_errors
from worldsmith.eval.state_reader import StateReader, arm_truth
from worldsmith.io.frames import fit_frames
from worldsmith.io.video import to_tensor, to_uint8


def rollout_batch(generator, clips: list[Clip], frames: int, *, actions: str, prompts: bool, sampling: Any,
                  seed: int, state: bool = True) -> np.ndarray:  # fmt: skip
    """uint8 (B, frames + 1, H, W, 3): each clip's first frame and ``frames`` generated ones.
    ``actions``: "own" (the clip's), "zero" or "none" (a model without actions); ``state``: give a model that
    draws the commanded fingertip the robot's recorded state at the first frame."""
    size = generator.size
    first = torch.stack([to_tensor(fit_frames(c.frames[:1], size, square=True)) for c in clips])  # (B, 3, 1, S, S)
    text = [c.caption if prompts else "" for c in clips]
    if actions == "none":
        videos = generator.generate_videos(text, video=first, frames=frames + 1, sampling=sampling, seed=seed)
    else:
        a = torch.stack([torch.from_numpy(c.arrays["actions"][:frames]) for c in clips]).float()  # (B, frames, A)
        videos = generator.rollout(first, a if actions == "own" else torch.zeros_like(a), frames + 1, text,
                                   sampling, seed, **(body_batch(generator, clips, 0) if state else {}))  # fmt: skip
    return np.stack([to_uint8(v.cpu()) for v in videos])


def body_batch(generator, clips: list[Clip], frame: int) -> dict:
    """``{"body": (B, 33)}``, the robot's state at ``frame`` of each clip (conditioning/tip.py) from the clips'
    recorded ``ee``, ``intrinsics`` and ``c2w``, for a model that draws the commanded fingertip (``model.tip``);
    ``{}`` for other models or clips without them."""
    keys = ("ee", "intrinsics", "c2w")
    bodies = [body_of(*(torch.from_numpy(np.asarray(c.arrays[k][frame])) for k in keys))
              if all(k in c.arrays for k in keys) else None for c in clips]  # fmt: skip
    return body_kwargs(generator, bodies)


def one_step_batch(generator, clips: list[Clip], frames: int, *, sampling: Any, seed: int) -> np.ndarray:
    """uint8 (B, frames + 1, H, W, 3): each clip's first frame, then every frame t + 1 generated from the *true*
    frames up to t (as many as the model's context) and the action taken at t: the model's error one step ahead,
    before errors compound (teacher forcing). Step-by-step models with a per-frame tokenizer only."""
    size, n_ctx = generator.size, generator.rollout_context
    video = torch.stack([to_tensor(fit_frames(c.frames[: frames + 1], size, square=True)) for c in clips])
    acts = torch.stack([torch.from_numpy(c.arrays["actions"][:frames]) for c in clips]).float()  # (B, frames, A)
    out = [video[:, :, :1]]
    for t in range(frames):
        lo = max(0, t + 1 - n_ctx)
        seeds = [seed + 1000 * t + i for i in range(len(clips))]
        state = generator.start_rollout(video[:, :, lo : t + 1], [""] * len(clips), sampling, seeds, acts[:, lo:t],
                                        **body_batch(generator, clips, lo))  # fmt: skip
        out.append(generator.step_rollout(state, acts[:, t : t + 1]).cpu())
    return np.stack([to_uint8(v) for v in torch.cat(out, dim=2)])


def truth_of(clips: list[Clip], frames: int, size: int) -> np.ndarray:
    return np.stack([fit_frames(c.frames[: frames + 1], size, square=True) for c in clips])  # (N, F + 1, S, S, 3)


def per_step_scores(videos: np.ndarray, truth: np.ndarray, clips: list[Clip], reader: StateReader | None,
                    frames: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Per episode and generated step (N, F): psnr, ssim (+ gripper_error_px, object_error_px with a reader)."""
    n = len(videos)
    v, t = to_tensor_batch(videos[:, 1:]), to_tensor_batch(truth[:, 1:])  # (N, 3, F, S, S)
    out = {"psnr": psnr(v, t, reduction="none").reshape(n, frames).numpy(),
           "ssim": ssim(v, t, reduction="none").reshape(n, frames).numpy()}  # fmt: skip
    if reader is not None:
        grip, objs = np.zeros((n, frames)), np.zeros((n, frames))
        follow = {k: np.full((n, frames), np.nan) for k in FOLLOW_KEYS}  # NaN: an episode the figure skips
        device = next(reader.parameters()).device
        scale = videos.shape[2] / clips[0].frames.shape[1]
        for i, clip in enumerate(clips):
            g_true, o_all = arm_truth(clip.arrays)
            g_true, o_true = g_true[1 : frames + 1] * scale, o_all[1 : frames + 1] * scale
            x = to_tensor(videos[i, 1:]).transpose(0, 1).to(device)  # (F, 3, S, S)
            g, o, sc = reader.read(x)
            o, sc = o.cpu().numpy(), sc.cpu().numpy()
            grip[i] = np.linalg.norm(g.cpu().numpy() - g_true, axis=-1)
            errors = object_errors(o, sc, o_true, np.ones(o_true.shape[:2], bool)).reshape(frames, -1)  # (F, N)
            objs[i] = errors.mean(axis=1)
            named = named_object(clip.caption, list(clip.meta.get("objects") or []))
            scored = follow_scores(errors, o[-1], sc[-1], o_all[0] * scale, o_true, named, videos.shape[2] / 64)
            for k, v in (scored or {}).items():
                follow[k][i] = v
        out |= {"gripper_error_px": grip, "object_error_px": objs}
        out |= {k: v for k, v in follow.items() if np.isfinite(v).all(axis=1).any()}
    return out


def to_tensor_batch(videos: np.ndarray) -> torch.Tensor:
    return torch.stack([to_tensor(v) for v in videos])  # (N, 3, T, H, W)


def summarize(scores: dict[str, np.ndarray], videos: np.ndarray, truth_features: torch.Tensor) -> dict[str, Any]:
    """Means, per-step curves and standard errors over episodes; the Fréchet distance over all generated frames."""
    out: dict[str, Any] = {}
    for name, values in scores.items():
        values = values[np.isfinite(values).all(axis=1)]  # the episodes the figure applies to (instruction.py)
        per_episode = values.mean(axis=1)
        out[name] = float(values.mean())
        out[f"{name}_sem"] = float(per_episode.std(ddof=1) / np.sqrt(len(per_episode))) if len(per_episode) > 1 else 0.0
        if name == "instruction_following":  # one flag per episode, at its last frame
            out["instruction_episodes"] = len(per_episode)
        else:
            out[f"{name}_per_step"] = [round(float(x), 3) for x in values.mean(axis=0)]
    frames = to_tensor_batch(videos[:, 1:]).permute(0, 2, 1, 3, 4).flatten(0, 1)  # (N*F, 3, S, S)
    out["fd"] = frechet_distance(frame_features(frames), truth_features) if len(frames) > 1 else None
    return out


def discrimination(videos: np.ndarray, truth: np.ndarray, clips: list[Clip]) -> dict[str, Any] | None:
    """Share of rollouts closer to their own truth than to their sibling branch's (same scene, other actions)."""
    scenes: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(clips):
        if "branch" in c.meta and c.meta.get("seed") is not None:
            scenes[(c.meta.get("world_seed"), c.meta["seed"])].append(i)
    wins, pairs = 0, 0
    for members in scenes.values():
        for a in members:
            for b in members:
                if a == b:
                    continue
                gen = videos[a, 1:].astype(np.float32)
                own = np.mean((gen - truth[a, 1:]) ** 2)
                other = np.mean((gen - truth[b, 1:]) ** 2)
                wins, pairs = wins + int(own < other), pairs + 1
    return {"action_discrimination": wins / pairs, "discrimination_pairs": pairs} if pairs else None


@torch.no_grad()
def evaluate_rollouts(generator, clips: list[Clip], *, frames: int = 16, reader: StateReader | None = None,
                      sampling: Any = None, seed: int = 0, batch_size: int = 16, base=None,
                      videos_out: dict | None = None, one_step: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every figure of the module docstring for ``clips`` (each at least ``frames + 1`` frames long); the
    rollouts themselves (uint8 (N, frames + 1, H, W, 3) by name) go into ``videos_out`` when given. ``one_step``:
    also score each frame predicted from the true frames before it (``one_step_batch``)."""
    clips = [c for c in clips if c.num_frames > frames]
    if not clips:
        raise DataError(f"no held-out clip has the {frames + 1} frames a {frames}-frame rollout is scored on.")
    has_actions = bool(getattr(generator.model.cfg, "action_dim", 0))
    if has_actions and any("actions" not in c.arrays for c in clips):
        raise ConfigError("the model is action-conditioned but the held-out clips carry no actions array.")
    size = generator.size
    truth = truth_of(clips, frames, size)
    truth_features = frame_features(to_tensor_batch(truth[:, 1:]).permute(0, 2, 1, 3, 4).flatten(0, 1))
    if one_step and not (has_actions and hasattr(generator, "start_rollout") and getattr(generator, "ct", 1) == 1):
        raise ConfigError("one-step scores need a step-by-step action model with a per-frame tokenizer.")
    runs = {"model": ("own" if has_actions else "none", not has_actions, True)}
    if has_actions and body_batch(generator, clips[:1], 0):  # the model without the robot's state
        runs["no_state"] = ("own", False, False)
    if has_actions:
        runs["no_action"] = ("zero", False, True)
    else:  # a model steered by the caption (the instruction): the floor is the same model without it
        runs["no_instruction"] = ("none", False, True)
    videos: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(0, len(clips), batch_size):
        chunk = clips[i : i + batch_size]
        for name, (acts, prompts, state) in runs.items():
            videos[name].append(rollout_batch(generator, chunk, frames, actions=acts, prompts=prompts,
                                              sampling=sampling, seed=seed + i, state=state))  # fmt: skip
        if one_step:
            videos["one_step"].append(one_step_batch(generator, chunk, frames, sampling=sampling, seed=seed + i))
        if base is not None:
            videos["base"].append(rollout_batch(base, chunk, frames, actions="none", prompts=True, sampling=None,
                                                seed=seed + i))  # fmt: skip
    stacked = {name: np.concatenate(v) for name, v in videos.items()}
    tok = generator.tokenizer
    through = getattr(generator, "reconstruct", None) or (lambda x: tok.decode(tok.encode(x)).clamp(-1, 1))
    recon = np.stack([to_uint8(through(to_tensor(t)[None].to(generator.device))[0].cpu()) for t in truth])
    stacked["tokenizer"] = recon
    stacked["copy_first"] = np.repeat(truth[:, :1], frames + 1, axis=1)
    if videos_out is not None:
        videos_out.update(stacked)
    report: dict[str, Any] = {"episodes": len(clips), "frames": frames}
    for name, vids in stacked.items():
        report[name] = summarize(per_step_scores(vids, truth, clips, reader, frames), vids, truth_features)
        report[name] |= {"frame_change": frame_change(vids), "truth_frame_change": frame_change(truth)}
    report |= {k: v for k, v in report["model"].items() if not isinstance(v, list)}
    report["floor_copy_first_psnr"] = report["copy_first"]["psnr"]
    report["ceiling_tokenizer_psnr"] = report["tokenizer"]["psnr"]
    if "no_action" in report:
        report["floor_no_action_psnr"] = report["no_action"]["psnr"]
    if "no_state" in report:
        report["floor_no_state_psnr"] = report["no_state"]["psnr"]
    if "no_instruction" in report:
        report["floor_no_instruction_psnr"] = report["no_instruction"]["psnr"]
    if "base" in report:
        report["floor_base_psnr"] = report["base"]["psnr"]
    report |= discrimination(stacked["model"], truth, clips) or {}
    return report


def frame_change(videos: np.ndarray) -> float:
    """Mean absolute change between consecutive frames (0-255), to tell a frozen rollout from a moving one."""
    v = videos.astype(np.float32)
    return float(np.abs(np.diff(v, axis=1)).mean())
