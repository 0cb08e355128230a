"""Text2World and Video2World with a trained diffusion run: prompts and frames in, videos out.

``DiffusionGenerator.from_run(run_dir)`` loads the model (EMA weights), its tokenizer (named in ``generation.json``,
which training writes) and the MiniLM text encoder. Generation works chunk by chunk, each chunk being the clip
length the model was trained on:

1. encode the prompt (and the negative prompt for guidance);
2. Text2World: the first chunk is generated from noise. Video2World: the last ``1 + (k - 1) * ct`` frames of the
   given video are encoded into k condition latents (k <= model.max_cond_latents) and the chunk is generated
   around them (the causal tokenizer makes the first of them an image latent, as in training);
3. decode the chunk and append the frames after its condition frames;
4. long videos: repeat 2-3, each chunk conditioned on the last frames generated so far, until ``frames`` (a
   next-frame-only model steps one latent frame at a time in latent space instead: stepwise.py).

Returned videos include the given frames unchanged, followed by the generated ones. Nothing here imports training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from worldsmith.conditioning.camera import pack_camera, per_latent_frame, unpack_camera
from worldsmith.conditioning.origin import OriginState
from worldsmith.conditioning.tip import BODY_DIM, tips
from worldsmith.conditioning.text import default_text_encoder
from worldsmith.conditioning.warp import place_path, warp_first
from worldsmith import progress
from worldsmith.diffusion import multiview, stepwise
from worldsmith.diffusion.condition import Condition, guided_branches
from worldsmith.diffusion.config import SamplingConfig
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.diffusion.tokenizers import load_discrete_tokenizer, load_tokenizer  # noqa: F401 (re-exported)
from worldsmith.errors import CheckpointError, ConfigError, VideoError
from worldsmith.family import GenerationRequest
from worldsmith.io.frames import fit_frames, fit_intrinsics, pinhole_intrinsics
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.zoo import resolve

GENERATION_FILE = "generation.json"  # what generation needs beyond the weights: tokenizer run, clip geometry, fps
# How action-conditioned models sample by default (``--set`` overrides): on held-out arm episodes 3 Euler steps
# score 25.5 dB PSNR against 23.7 for 10 DPM++ steps (1 and 2 Euler steps: 25.5); the many-step samples put sharp
# but wrong detail where the next frame is uncertain, which the tokenizer decodes as speckle that compounds over a
# rollout (benchmarks/RESULTS.md, action models).
ACTION_SAMPLING = {"steps": 3, "sampler": "euler"}


@dataclass
class RolloutState:
    """What a step-by-step rollout carries between steps (memory bounded by the model's window)."""

    latents: torch.Tensor  # (B, C, k, H', W') the last k <= context latent frames, model space
    actions: torch.Tensor  # (B, (k - 1) * ct, A) the actions after the first of them
    count: int  # latent frames so far, the given ones included
    cond: Condition
    uncond: Condition | None
    generators: list[torch.Generator]  # one per rollout
    sampling: SamplingConfig
    window: int  # latent frames per model call, as in training
    context: int  # latent frames given per call
    origin: OriginState | None = None  # models with ``model.origin``: where the rollout started (conditioning/origin.py)

    def repeat(self, n: int) -> "RolloutState":
        """Each rollout ``n`` times (row i * n + j copies row i), each copy with its own generator seeded from
        row i's stream: the candidates of a planner branch from one present."""
        idx = torch.arange(self.latents.shape[0], device=self.latents.device).repeat_interleave(n)
        seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in self.generators for _ in range(n)]
        pick = lambda c: None if c is None else c.select(idx)  # noqa: E731
        return replace(self, latents=self.latents[idx], actions=self.actions[idx], cond=pick(self.cond),
                       uncond=pick(self.uncond), origin=None if self.origin is None else self.origin.select(idx),
                       generators=[torch.Generator(self.latents.device).manual_seed(x) for x in seeds])


class DiffusionGenerator:
    Sampling = SamplingConfig

    def __init__(self, model: DiffusionWorldModel, tokenizer: CausalVideoTokenizer, text_encoder, *, frames: int,
                 size: int, fps: float) -> None:  # fmt: skip
        self.model, self.tokenizer, self.text_encoder = model.eval(), tokenizer.eval(), text_encoder
        self.chunk_frames, self.size, self.fps = frames, size, fps
        self.ct = tokenizer.cfg.temporal_compression
        self.cs = tokenizer.cfg.spatial_compression * model.cfg.dit.patch  # pixels per latent token
        self.device = next(model.parameters()).device

    @classmethod
    def from_run(cls, run: str | Path, device: str | torch.device = "cpu") -> "DiffusionGenerator":
        run = resolve(run)
        path = Path(run) / GENERATION_FILE
        if not path.is_file():
            raise CheckpointError(f"{run} has no {GENERATION_FILE}, so it is not a finished diffusion run; train it "
                                  f"with `worldsmith train diffusion` first.")  # fmt: skip
        info = json.loads(path.read_text())
        model = DiffusionWorldModel.from_pretrained(run, device=device)
        tok = load_tokenizer(info["tokenizer"], device)
        return cls(model, tok, default_text_encoder(device), frames=info["frames"], size=info["size"], fps=info["fps"])

    def default_sampling(self) -> SamplingConfig:
        """The defaults this model samples with: few Euler steps for a conditioned or step-by-step model (actions,
        camera, views, or next-frame-only: an instruction model steps one frame at a time too), else SamplingConfig's.
        A warp-anchored model (``model.warp``) takes one step, the posterior mean of its correction to the warp (on
        orbit-camera better than 3 on every figure of `eval camera`; benchmarks/RESULTS.md, "Pans get a pose"); a
        camera one starts it at sigma 1, not 80, a level training saw (RESULTS.md: "Sampling from the warp")."""
        cfg = self.model.cfg
        stepwise = cfg.action_dim or cfg.camera or cfg.views or cfg.dit.next_frame_only
        steps = ({"steps": 1} | ({"sigma_max": 1.0} if cfg.camera else {})) if cfg.warp else {}
        return SamplingConfig(**ACTION_SAMPLING | steps) if stepwise else SamplingConfig()

    def planning_sampling(self) -> SamplingConfig:
        """How a planner imagines its candidates: one Euler step (25.5 dB on held-out rollouts, like 3 steps, at a
        third of the cost)."""
        return SamplingConfig(steps=1, sampler="euler")

    @property
    def rollout_context(self) -> int:
        """Latent frames a rollout step reads before the new one (at most)."""
        return self.model.cfg.max_cond_latents

    # -- the Generator protocol: uint8 frames in and out ------------------------------------------------------
    def generate(self, request: GenerationRequest, sampling: SamplingConfig | None = None) -> np.ndarray:
        """uint8 (frames, H, W, 3): Text2World, or the request's frames (resized to the model) and what follows;
        with actions, a rollout that takes one latent frame per step."""
        video = None
        if request.video is not None:
            video = to_tensor(fit_frames(request.video, self.size, self.cs))[None]  # (1, 3, k, H, W)
        if request.actions is not None or self.model.cfg.action_dim:
            if request.actions is None or video is None:
                raise ConfigError("this model is action-conditioned: give it a first frame (--input) and the actions "
                                  "to take (--actions), one per frame transition.")  # fmt: skip
            actions = torch.as_tensor(np.asarray(request.actions, dtype=np.float32))[None]  # (1, N, A)
            frames = request.frames or 1 + actions.shape[1]
            out = self.rollout(video, actions, frames, [request.prompt], sampling, request.seed)
        elif request.views is not None or request.trajectory is not None or self.model.cfg.views:
            return multiview.generate_request(self, request, sampling)
        elif request.camera is not None or self.model.cfg.camera:
            camera = self.camera_of(request)  # (1, N, 25) in the model's pixels
            out = self.generate_videos([request.prompt], video=video, frames=request.frames or camera.shape[1],
                                       sampling=sampling, seed=request.seed, camera=camera)  # fmt: skip
        else:
            out = self.generate_videos([request.prompt], video=video, frames=request.frames, sampling=sampling,
                                       seed=request.seed)  # fmt: skip
        return to_uint8(out[0].cpu())

    def camera_of(self, request: GenerationRequest) -> torch.Tensor:
        """The request's camera path packed per frame (1, N, 25), its K fitted to the frames the model sees."""
        if not self.model.cfg.camera:
            raise ConfigError("this model is not camera-controlled; drop --camera or use a model post-trained with "
                              "`worldsmith posttrain camera`.")  # fmt: skip
        if request.camera is None or request.video is None:
            raise ConfigError("this model is camera-controlled: give it a first frame (--input) and a camera path "
                              "(--camera: a named path such as orbit_left, or a JSON file of poses).")  # fmt: skip
        c2w = np.asarray(request.camera, dtype=np.float64)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) < 2:
            raise ConfigError(f"the camera path must hold >= 2 poses (N, 4, 4), got shape {c2w.shape}.")
        h, w = request.video.shape[1:3]
        K = request.intrinsics if request.intrinsics is not None else pinhole_intrinsics(50.0, h, w)
        K = fit_intrinsics(np.asarray(K, dtype=np.float64), h, w, self.size, self.cs)
        return pack_camera(torch.from_numpy(c2w), torch.from_numpy(K))[None].to(self.device)

    @torch.no_grad()
    def rollout(self, video: torch.Tensor, actions: torch.Tensor, frames: int, prompts: list[str],
                sampling: SamplingConfig | None = None, seed: int = 0,
                body: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Videos (B, 3, frames, H, W) in [-1, 1] that continue ``video`` (B, 3, k, H, W) under ``actions``
        (B, N, A): ``start_rollout`` then one ``next_latent`` per latent frame (row i draws its noise from seed + i),
        decoded at the end. ``body``: the robot's state at the first frame (models with ``model.tip``)."""
        ct = self.ct
        if actions.ndim != 3 or actions.shape[0] != video.shape[0] or actions.shape[2] != self.model.cfg.action_dim:
            raise ConfigError(f"actions must be (B={video.shape[0]}, N, {self.model.cfg.action_dim}) for this model, "
                              f"got {tuple(actions.shape)}.")  # fmt: skip
        latents = 1 + (frames - 1 + ct - 1) // ct  # latent frames covering the output
        if actions.shape[1] < (latents - 1) * ct:
            raise ConfigError(f"{frames} frames need {(latents - 1) * ct} actions (one per transition), got "
                              f"{actions.shape[1]}.")  # fmt: skip
        video = video[:, :, : 1 + (video.shape[2] - 1) // ct * ct].to(self.device, torch.float32)
        past = actions[:, : video.shape[2] - 1]  # the actions between the given frames (zeros past the last)
        past = torch.cat([past, past.new_zeros(past.shape[0], video.shape[2] - 1 - past.shape[1], past.shape[2])], 1)
        state = self.start_rollout(video, prompts, sampling, [seed + i for i in range(video.shape[0])], past, body)
        z = [state.latents]
        actions = actions.to(self.device)
        for n in range(state.count, latents):
            with progress.span(n - state.count, latents - state.count):
                z.append(self.next_latent(state, actions[:, (n - 1) * ct : n * ct]))
        out = self.tokenizer.decode(self.model.denormalize(torch.cat(z, dim=2))).clamp(-1, 1)[:, :, :frames]
        given_frames = min(video.shape[2], frames)
        return torch.cat([video[:, :, :given_frames], out[:, :, given_frames:]], dim=2)

    # -- step by step (environments, play) -------------------------------------------------------------------
    @torch.no_grad()
    def start_rollout(self, video: torch.Tensor, prompts: list[str], sampling: SamplingConfig | None = None,
                      seeds: list[int] | None = None, actions: torch.Tensor | None = None,
                      body: torch.Tensor | None = None) -> "RolloutState":  # fmt: skip
        """The state of ``B`` rollouts that continue ``video`` (B, 3, 1 + m * ct, H, W) in [-1, 1]; row i draws its
        noise from its own generator seeded with ``seeds[i]``, so a rollout does not depend on its batch.
        ``actions`` (B, m * ct, A): the actions taken between the given frames (zeros when not given: unknown), so
        that the first step's window places them at the given frames and the new action at the new frame.
        ``body`` (B, 33): the robot's state at the first given frame (conditioning/tip.py); a model with
        ``model.tip`` draws the commanded fingertip from it, and does without when it is not given."""
        if not self.model.cfg.action_dim:
            raise ConfigError("step-by-step rollouts need an action-conditioned model (post-train one with "
                              "`worldsmith posttrain action`).")  # fmt: skip
        if video.ndim != 5 or video.shape[1] != 3 or (video.shape[2] - 1) % self.ct:
            raise VideoError(f"a rollout starts from float video (B, 3, 1 + m * {self.ct}, H, W), got "
                             f"{tuple(video.shape)}.")  # fmt: skip
        s, b = sampling or self.default_sampling(), video.shape[0]
        seeds = list(range(b)) if seeds is None else list(seeds)
        if len(seeds) != b:
            raise ConfigError(f"start_rollout got {len(seeds)} seeds for {b} rollouts.")
        t_lat = 1 + (self.chunk_frames - 1) // self.ct  # the window the model was trained on, in latent frames
        context = min(s.context or self.model.cfg.max_cond_latents, t_lat - 1)
        cond, uncond = self.conditions(prompts, s)
        z = self.model.normalize(self.tokenizer.encode(video.to(self.device, torch.float32)))  # (B, C, L, H', W')
        past = (z.shape[2] - 1) * self.ct  # transitions between the given frames
        a_dim = self.model.cfg.action_dim
        if actions is None:
            actions = z.new_zeros(b, past, a_dim)
        elif tuple(actions.shape) != (b, past, a_dim):
            raise ConfigError(f"{video.shape[2]} given frames need the {past} actions between them, (B={b}, {past}, "
                              f"{a_dim}); got {tuple(actions.shape)}.")  # fmt: skip
        gens = [torch.Generator(self.device).manual_seed(int(x)) for x in seeds]
        actions = actions.to(self.device, torch.float32)
        m = self.model.cfg
        if body is not None and tuple(body.shape) != (b, BODY_DIM):
            raise ConfigError(f"body must be (B={b}, {BODY_DIM}): the robot's ee pose, intrinsics and camera pose at "
                              f"the first frame; got {tuple(body.shape)}.")  # fmt: skip
        body = None if body is None or not m.tip else body.to(self.device, torch.float32)
        origin = OriginState.start(z, actions, self.ct, m.origin, m.travel, body) if m.origin else None
        return RolloutState(latents=z, actions=actions, count=z.shape[2], cond=cond, uncond=uncond, generators=gens,
                            sampling=s, window=t_lat, context=context, origin=origin)

    @torch.no_grad()
    def next_latent(self, state: "RolloutState", actions: torch.Tensor) -> torch.Tensor:
        """Generate the next latent frame (B, C, 1, H', W') (model space) of ``state`` under ``actions``
        (B, ct, A), the actions leading into its frames. Its window is as in training: the last k latent frames
        given (noise-augmented at ``context_sigma``), the rest generated jointly and the first of them kept. An
        action not yet taken (inside the window, after the new frame) is zero: a rollout never sees the future."""
        ct, s, z = self.ct, state.sampling, state.latents
        if actions.shape != (z.shape[0], ct, self.model.cfg.action_dim):
            raise ConfigError(f"a rollout step takes actions (B={z.shape[0]}, {ct}, {self.model.cfg.action_dim}), "
                              f"got {tuple(actions.shape)}.")  # fmt: skip
        state.actions = torch.cat([state.actions, actions.to(self.device, torch.float32)], dim=1)
        b, k = z.shape[0], min(state.context, z.shape[2])
        window = state.actions[:, (z.shape[2] - k) * ct :]  # actions after the first given latent frame
        pad = (state.window - 1) * ct - window.shape[1]
        window = torch.cat([window, window.new_zeros(b, pad, window.shape[2])], dim=1)
        extras = {"actions": window}
        if state.origin is not None:
            travel = state.origin.window(actions.to(window), k, state.window)
            extras |= {"origin": state.origin.frame, "travel": travel}
            if self.model.cfg.tip:  # without the robot's state: NaN, which the embedder turns into nothing
                extras["tip"] = (travel.new_full((b, state.window, 3), float("nan")) if state.origin.body is None
                                 else tips(state.origin.body, travel[..., :6], self.model.cfg.tip))  # fmt: skip
        new = self.window_step(z[:, :, -k:], state.window, extras, state.cond, state.uncond, s, state.generators)
        # keep only what the next windows read: the last ``context`` latents and the actions after the first
        keep = min(state.context, z.shape[2] + 1)
        state.latents = torch.cat([z, new], dim=2)[:, :, -keep:]
        state.actions = state.actions[:, state.actions.shape[1] - (keep - 1) * ct :]
        state.count += 1
        if state.origin is not None:
            state.origin.advance(actions.to(window), state.latents, state.actions)
        return new

    def window_step(self, given: torch.Tensor, window: int, extras: dict, cond: Condition, uncond: Condition | None,
                    s: SamplingConfig, generators: list[torch.Generator]) -> torch.Tensor:  # fmt: skip
        """One sliding-window step as in training: ``given`` (B, C, k, H', W') model-space latents noise-augmented at
        ``context_sigma``, the rest of a ``window``-frame window generated under ``extras``; returns the first new
        latent frame (B, C, 1, H', W'). Row i draws its noise from ``generators[i]``."""
        b, k = given.shape[0], given.shape[2]
        full = torch.cat([given, given.new_zeros(b, given.shape[1], window - k, *given.shape[3:])], dim=2)
        sigma = torch.full((b,), s.context_sigma or self.model.cfg.cond_sigma, device=self.device)
        aug = torch.cat([torch.randn(full.shape[1:], generator=g, device=self.device)[None] for g in generators])
        noise = torch.cat([torch.randn(full.shape[1:], generator=g, device=self.device)[None] for g in generators])
        count = torch.full((b,), k, device=self.device)
        cond, uncond, scale = guided_branches(replace(cond, extras=extras),
                                              None if uncond is None else replace(uncond, extras=extras), s)  # fmt: skip
        step_cond = with_condition_frames(cond, full, count, sigma, aug)
        step_uncond = None if uncond is None else with_condition_frames(uncond, full, count, sigma, aug)
        x = self.model.generate(step_cond, tuple(full.shape[2:]), steps=s.steps, guidance=scale,
                                uncond=step_uncond, sampler=s.sampler, noise=noise, sigma_max=s.sigma_max)  # fmt: skip
        return x[:, :, k : k + 1]

    @torch.no_grad()
    def step_rollout(self, state: "RolloutState", actions: torch.Tensor) -> torch.Tensor:
        """The next ``ct`` frames (B, 3, ct, H, W) in [-1, 1] of ``state`` under ``actions`` (B, ct, A). With a
        per-frame tokenizer (ct = 1) each frame decodes alone, exactly as in ``rollout``; with ct > 1 the kept
        latents are decoded together and their last ct frames returned."""
        self.next_latent(state, actions)
        z = state.latents if self.ct > 1 else state.latents[:, :, -1:]
        return self.tokenizer.decode(self.model.denormalize(z)).clamp(-1, 1)[:, :, -self.ct :]

    # -- tensors ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_videos(self, prompts: list[str], *, video: torch.Tensor | None = None, frames: int | None = None,
                        sampling: SamplingConfig | None = None, seed: int = 0,
                        size: tuple[int, int] | None = None, camera: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Videos (B, 3, frames, H, W) in [-1, 1]: Text2World (``video=None``) or a continuation of ``video``;
        ``camera`` (B, >= frames, 25): the packed pose of every output frame (camera models; each chunk sees its
        own frames' poses)."""
        s = sampling or self.default_sampling()
        frames = frames or self.chunk_frames
        if video is not None:
            if video.ndim != 5 or video.shape[1] != 3 or video.shape[0] != len(prompts):
                raise VideoError(f"video must be float (B={len(prompts)}, 3, k, H, W), got {tuple(video.shape)}.")
            video = video.to(self.device, torch.float32)
            size = tuple(video.shape[-2:])
        size = size or (self.size, self.size)
        if size[0] % self.cs or size[1] % self.cs:
            raise ConfigError(f"frame size {size[0]}x{size[1]} must be a multiple of {self.cs} for this model.")
        if self.chunk_frames - 1 < self.ct:
            raise ConfigError("the model was trained on single latent frames, so it cannot continue a video.")
        generator = torch.Generator(self.device).manual_seed(seed)
        cond, uncond = self.conditions(prompts, s)
        if camera is not None and camera.shape[1] < frames:
            raise ConfigError(f"{frames} frames need {frames} camera poses, got {camera.shape[1]}.")
        chunks, have = 0, 0 if video is None else video.shape[2]
        while have < frames:  # how many chunks, for progress reports
            have = self.chunk_frames if have == 0 else have + self.new_frames(have)
            chunks += 1
        done = 0
        if video is None:
            with progress.span(0, chunks):  # 1. Text2World: the first chunk from noise
                video = self.chunk(*self.posed(cond, uncond, camera, 0, None), None, size, s, generator)
            done = 1
        if video.shape[2] < frames and self.model.cfg.dit.next_frame_only:  # latent frame by latent frame
            return stepwise.continue_video(self, video, frames, prompts, s, seed, camera)
        while video.shape[2] < frames:  # 2. Video2World chunks, each on the last frames so far
            n = self.context_frames(video.shape[2])
            with progress.span(done, chunks):
                new = self.chunk(*self.posed(cond, uncond, camera, video.shape[2] - n, video[:, :, :1]),
                                 video[:, :, -n:], size, s, generator)  # fmt: skip
            video = torch.cat([video, new[:, :, n : n + self.new_frames(video.shape[2])]], dim=2)
            done += 1
        return video[:, :, :frames]

    def posed(self, cond: Condition, uncond: Condition | None, camera: torch.Tensor | None, start: int,
              first: torch.Tensor | None) -> tuple[Condition, Condition | None]:  # fmt: skip
        """The conditions of the chunk starting at video frame ``start``: with its frames' poses per latent frame
        (the last pose repeats past the end of the path); for ``model.warp`` also the rollout's ``first`` frame
        (B, 3, 1, H, W) warped to those poses (conditioning/warp.py), encoded and normalised."""
        if camera is None:
            return cond, uncond
        idx = (torch.arange(start, start + self.chunk_frames, device=camera.device)).clamp_max(camera.shape[1] - 1)
        extras = {"camera": per_latent_frame(camera[:, idx].to(self.device), self.ct)}
        if self.model.cfg.warp:
            if first is None:
                raise ConfigError("this model warps the first frame along the camera path: give it a first frame.")
            c2w, K = unpack_camera(camera.to(self.device).double())  # (B, N, 4, 4): from the path's first pose
            c2w = place_path(c2w, self.model.cfg.warp_height, self.model.cfg.warp_pitch)
            clip = warp_first(first[:, :, 0].float(), K[:, 0], c2w[:, 0], c2w[:, idx])  # to the window's poses
            extras["warped"] = self.model.normalize(self.tokenizer.encode(clip))
        return replace(cond, extras=extras), None if uncond is None else replace(uncond, extras=extras)

    def conditions(self, prompts: list[str], s: SamplingConfig) -> tuple[Condition, Condition | None]:
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

    def chunk(self, cond: Condition, uncond: Condition | None, context: torch.Tensor | None, size: tuple[int, int],
              s: SamplingConfig, generator: torch.Generator) -> torch.Tensor:  # fmt: skip
        """One chunk of ``chunk_frames`` frames (B, 3, T, H, W) in [-1, 1], continuing ``context`` if given."""
        t_lat = 1 + (self.chunk_frames - 1) // self.ct
        cs = self.tokenizer.cfg.spatial_compression
        shape = (t_lat, size[0] // cs, size[1] // cs)
        cond, uncond, scale = guided_branches(cond, uncond, s)
        if context is not None:
            z = self.model.normalize(self.tokenizer.encode(context))  # (B, C, k, H', W')
            b, k = z.shape[0], z.shape[2]
            full = torch.cat([z, z.new_zeros(b, z.shape[1], t_lat - k, *shape[1:])], dim=2)  # (B, C, T', H', W')
            sigma = torch.full((b,), s.context_sigma or self.model.cfg.cond_sigma, device=self.device)
            noise = torch.randn(full.shape, generator=generator, device=self.device)
            given = torch.full((b,), k, device=self.device)
            cond = with_condition_frames(cond, full, given, sigma, noise)
            if uncond is not None:
                uncond = with_condition_frames(uncond, full, given, sigma, noise)
        x = self.model.generate(cond, shape, steps=s.steps, guidance=scale, uncond=uncond, sampler=s.sampler,
                                generator=generator, sigma_max=s.sigma_max)  # fmt: skip
        return self.tokenizer.decode(self.model.denormalize(x)).clamp(-1, 1)

    def new_frames(self, available: int) -> int:
        """Pixel frames a Video2World chunk adds after ``available`` frames: the rest of the window, or one latent
        frame's for a ``next_frame_only`` model (it predicts only the first frame after its context)."""
        return self.ct if self.model.cfg.dit.next_frame_only else self.chunk_frames - self.context_frames(available)

    def context_frames(self, available: int) -> int:
        """Pixel frames to condition on, given ``available`` frames: 1 + (k - 1) * ct for the largest usable k."""
        t_lat = 1 + (self.chunk_frames - 1) // self.ct
        k = min(self.model.cfg.max_cond_latents, 1 + (available - 1) // self.ct, t_lat - 1)
        return 1 + (k - 1) * self.ct

