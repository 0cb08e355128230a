"""``worldsmith train diffusion``: the diffusion world model trained on clip shards through a trained tokenizer.

A run's ``config.yaml`` has ``model`` (WorldModelConfig, from a preset), ``train`` (the shared TrainConfig) and
``data`` (DiffusionDataConfig), resolved as preset <- YAML <- ``--set`` <- flags (``Family.resolve``). To resume,
run the same command again.

Steps of ``train``: 1. decide the device (``init_runtime``) and load the frozen tokenizer and text encoder onto it;
2. the data: cached latents (rank 0 encodes, the others wait) or clips encoded on the fly; 3. before the first step
measure the latents' per-channel mean and std (buffers saved with the weights) and write ``generation.json`` (the
tokenizer and clip geometry generation uses); 4. train, writing a Video2World preview every ``sample_every`` steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worldsmith import config as C
from worldsmith.atomic import atomic_write_text
from worldsmith.conditioning.text import default_text_encoder
from worldsmith.conditioning.warp import typical_rig, typical_start
from worldsmith.data.dataset import make_loader
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import WorldModelConfig
from worldsmith.diffusion.data import (CachedLatentBatches, DiffusionDataConfig, EncodedBatches, build_latent_cache,
                                       dataset_config, read_latent_cache)  # fmt: skip
from worldsmith.diffusion.generate import GENERATION_FILE, load_discrete_tokenizer, load_tokenizer
from worldsmith.diffusion.losses import RESERVED, extras_of, rollout_world_model_loss, world_model_loss
from worldsmith.diffusion.model import EMBEDDERS, DiffusionWorldModel, with_condition_frames
from worldsmith.errors import ConfigError, DataError
from worldsmith.io.video import encode_mp4, to_uint8
from worldsmith.nn.lora import is_adapter
from worldsmith.train.checkpoint import find_train_state
from worldsmith.train.rng import seed_everything
from worldsmith.train.runtime import init_runtime, main_first
from worldsmith.train.train_config import TrainConfig
from worldsmith.train.trainer import Trainer
from worldsmith.zoo import resolve

CACHE_FILE = "latent_cache.safetensors"


def default_train_config() -> TrainConfig:
    return TrainConfig(steps=20000, batch_size=8, lr=3e-4, warmup_steps=500, weight_decay=0.0, ema_decay=0.999,
                       log_every=25, ckpt_every=1000)  # fmt: skip


@dataclass
class DiffusionRunConfig:
    model: WorldModelConfig = field(default_factory=WorldModelConfig)
    train: TrainConfig = field(default_factory=default_train_config)
    data: DiffusionDataConfig = field(default_factory=DiffusionDataConfig)
    init_from: str = ""  # a run (or shipped name) whose weights start this one: post-training (`worldsmith posttrain`)


def load_base(model: DiffusionWorldModel, run: str) -> None:
    """Start ``model`` from the weights of ``run`` (its latent statistics included); only what post-training adds
    (condition embedders, LoRA adapters) may be missing there, and nothing may be left over."""
    state = DiffusionWorldModel.from_pretrained(resolve(run)).state_dict()
    missing, unexpected = model.load_state_dict(state, strict=False)
    new = [k for k in missing if not (k.startswith(EMBEDDERS) or is_adapter(k))]
    if new or unexpected:
        raise ConfigError(f"the weights of {run} do not fit this model (missing {new[:3]}, unexpected {unexpected[:3]}); "
                          f"post-train from a run of the same architecture.")  # fmt: skip


def check_geometry(cfg: DiffusionRunConfig, tok_cfg) -> WorldModelConfig:
    """The model config fitted to the tokenizer (latent channels), after checking frames and size fit both."""
    ct, cs, p, data = tok_cfg.temporal_compression, tok_cfg.spatial_compression, cfg.model.dit.patch, cfg.data
    if (data.frames - 1) % ct:
        raise ConfigError(f"data.frames must be 1 + k*{ct} for the {tok_cfg.name} tokenizer (e.g. {1 + 4 * ct}), "
                          f"got {data.frames}.")  # fmt: skip
    if data.size % (cs * p):
        raise ConfigError(f"data.size must be a multiple of {cs * p} (tokenizer compression {cs} x patch {p}), got {data.size}.")
    t, h, w = tok_cfg.latent_shape(data.frames, data.size, data.size)
    t = data.window or t  # the latent frames one sample holds
    if cfg.model.rollout_depth and (not data.window or data.window - cfg.model.rollout_depth < 2):
        raise ConfigError(f"model.rollout_depth {cfg.model.rollout_depth} needs data.window = the model's window + "
                          f"{cfg.model.rollout_depth} latent frames (e.g. {3 + cfg.model.rollout_depth} for a 3-frame "
                          f"model); got data.window {data.window}.")  # fmt: skip
    if cfg.model.rollout_depth and data.token_tokenizer:  # window_batch does not cut a decoder's tokens
        raise ConfigError("rollout training is for world models that roll out frame by frame; a diffusion decoder "
                          "(data.token_tokenizer) is not one: set model.rollout_depth=0.")  # fmt: skip
    tt, th, tw = cfg.model.dit.max_latent
    if cfg.model.dit.abs_pos and (t > tt or h > th or w > tw):
        raise ConfigError(f"model.dit.max_latent {[tt, th, tw]} is smaller than the training latents {[t, h, w]}; raise it.")
    return C.merge(cfg.model, {"dit": {"latent_channels": tok_cfg.latent_channels}})


def fit_actions(cfg: DiffusionRunConfig, batch: dict, chunk: int) -> dict[str, int]:
    """The model's action settings fitted to the data: the action width of its clips, ``chunk`` per latent frame."""
    if not cfg.data.actions:
        if cfg.model.action_dim:
            raise ConfigError(f"model.action_dim is {cfg.model.action_dim} but data.actions is off; set "
                              f"data.actions=true (clips with an actions array) or model.action_dim=0.")  # fmt: skip
        return {}
    width = int(batch["actions"].shape[-1])
    if cfg.model.action_dim not in (0, width):
        raise ConfigError(f"model.action_dim is {cfg.model.action_dim} but the clips carry {width} numbers per action.")
    return {"action_dim": width, "action_chunk": chunk}


def fit_camera(cfg: DiffusionRunConfig, stride: int) -> dict[str, Any]:
    """The model's camera settings fitted to the data: on when the clips' cameras are read, ``stride`` image pixels
    (the tokenizer's spatial compression) per latent pixel."""
    if cfg.model.camera and not cfg.data.camera:
        raise ConfigError("model.camera is on but data.camera is off; set data.camera=true (clips with c2w and "
                          "intrinsics arrays, e.g. `worldsmith sim orbit`) or model.camera=false.")  # fmt: skip
    return {"camera": True, "camera_stride": stride} if cfg.data.camera else {}


def fit_views(cfg: DiffusionRunConfig, batch: dict, chunk: int) -> dict[str, Any]:
    """The model's multi-view and trajectory settings fitted to the data: as many view embeddings as the clips have
    views (at least what the model knew), the trajectory grouped ``chunk`` frames per latent frame."""
    out: dict[str, Any] = {}
    if cfg.model.views and not cfg.data.views:
        raise ConfigError("model.views is set but data.views is off; set data.views=true (clips with synchronized "
                          "views, e.g. `worldsmith sim drive`) or model.views=0.")  # fmt: skip
    if cfg.model.trajectory and not cfg.data.trajectory:
        raise ConfigError("model.trajectory is on but data.trajectory is off; set data.trajectory=true (clips with "
                          "an ego array, e.g. `worldsmith sim drive`) or model.trajectory=false.")  # fmt: skip
    if cfg.data.views:
        out["views"] = max(cfg.model.views, int(batch["views"].shape[1]))
    if cfg.data.trajectory:
        out |= {"trajectory": True, "action_chunk": chunk}
    return out


def camera_windows(camera: torch.Tensor | None, window: int, clips: int = 256) -> torch.Tensor | None:
    """Cached cameras per latent frame of whole clips (N, T', 25) -> the training windows of ``window`` latent frames
    of the first ``clips`` clips (M, window, 25), on which the camera embedder measures its scale."""
    if camera is None:
        return None
    w = min(window, camera.shape[1])
    return camera[:clips].unfold(1, w, 1).permute(0, 1, 3, 2).reshape(-1, w, camera.shape[-1])


@torch.no_grad()
def write_preview(model: DiffusionWorldModel, tokenizer, batch: dict, out_dir: Path, fps: float) -> dict[str, float]:
    """Video2World from the first latent frame of ``batch``; writes truth | generation side by side as preview.mp4."""
    device = next(model.parameters()).device
    x0 = model.normalize(batch["latents"].to(device).float())  # (B, C, T', H', W')
    b = x0.shape[0]
    extras = extras_of(model, {k: v.to(device) for k, v in batch.items() if k not in RESERVED})
    cond = Condition(batch["text"].to(device), batch["text_mask"].to(device), fps=batch["fps"].to(device), extras=extras)
    cond = with_condition_frames(cond, x0, torch.ones(b, dtype=torch.long, device=device),
                                 torch.full((b,), model.cfg.cond_sigma, device=device))  # fmt: skip
    x = model.generate(cond, tuple(x0.shape[2:]), steps=10, generator=torch.Generator(device).manual_seed(0))
    truth, fake = (tokenizer.decode(model.denormalize(z)).clamp(-1, 1) for z in (x0, x))  # (B, 3, T, H, W)
    side = torch.cat([truth, fake], dim=-1).permute(1, 2, 3, 0, 4).flatten(3)  # (3, T, H, B*2W)
    encode_mp4(to_uint8(side.cpu()), out_dir / "preview.mp4", fps=fps)
    return {"latent_mse": float((x - x0)[:, :, 1:].square().mean())}


def train(cfg: DiffusionRunConfig, run_dir: str | Path, *, fresh: bool = False,
          model_class: type[DiffusionWorldModel] = DiffusionWorldModel) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) the diffusion world model (or a subclass: the diffusion decoder) into ``run_dir``; returns
    a summary with the last logs."""
    if not cfg.data.shards:
        raise ConfigError("no training data: pass --data with a shard directory (e.g. from `worldsmith sim arm --out DIR`).")
    run_dir = Path(run_dir)
    # 1. the device, then the frozen helpers on it
    device = init_runtime(cfg.train.device).device
    tok = load_tokenizer(cfg.data.tokenizer, device)
    token_tok = load_discrete_tokenizer(cfg.data.token_tokenizer, device) if cfg.data.token_tokenizer else None
    cfg = C.merge(cfg, {"model": C.to_dict(check_geometry(cfg, tok.cfg))})
    text_encoder = default_text_encoder(device)
    ct = tok.cfg.temporal_compression
    # 2. the data: cached latents or clips encoded on the fly
    if cfg.model.tip and not cfg.data.body:  # the commanded fingertip starts from each clip's recorded robot state
        cfg = C.merge(cfg, {"data": {"body": True}})
    if cfg.model.warp and not cfg.data.warp:  # the warped first frames are cached with the latents
        cfg = C.merge(cfg, {"data": {"warp": True}})
    if cfg.data.cache_latents:
        main_first(lambda: build_latent_cache(cfg.data, tok, run_dir / CACHE_FILE, cfg.train.seed, token_tok))
        cache = read_latent_cache(run_dir / CACHE_FILE)
        origin = {"origin": cfg.model.origin, "travel": cfg.model.travel, "tip": cfg.model.tip}
        data = CachedLatentBatches(cache, cfg.train.batch_size, cfg.train.seed, text_encoder, cfg.data.window, ct, **origin)
        sample_latents, clip_fps = cache["latents"], float(cache["fps"].median()) * ct
        sample_extras = {"dv_latents": cache["dv_latents"]} if "dv_latents" in cache else {}
        sample_actions, sample_ego = cache.get("actions"), cache.get("trajectory")
        sample_camera = camera_windows(cache.get("camera"), cfg.data.window or cache["latents"].shape[2])
        sample_rig = (cache["rig"], cache["rig_intrinsics"]) if "rig" in cache else None
        preview = next(iter(CachedLatentBatches(cache, 4, cfg.train.seed + 1, text_encoder, cfg.data.window, ct, **origin)))
        sample = next(iter(CachedLatentBatches(cache, 1024, cfg.train.seed + 2, text_encoder, cfg.data.window, ct,
                                               **origin))) if cfg.model.origin else {}  # fmt: skip
        sample_travel, sample_tip = sample.get("travel"), sample.get("tip")
    else:
        if cfg.model.origin:
            raise ConfigError("model.origin trains on windows of cached latents: set data.cache_latents=true and "
                              "data.window.")  # fmt: skip
        loader = make_loader(dataset_config(cfg.data, cfg.train.seed, loop=True, shuffle=True), cfg.train.batch_size,
                             cfg.data.num_workers, drop_last=True)  # fmt: skip
        data = EncodedBatches(loader, tok, text_encoder)
        stats = make_loader(dataset_config(cfg.data, cfg.train.seed + 1, loop=False, shuffle=True), cfg.train.batch_size)
        batches = [b for _, b in zip(range(cfg.data.stats_batches), EncodedBatches(stats, tok, text_encoder))]
        if not batches:
            raise DataError(f"no clips of {cfg.data.frames} frames found in {cfg.data.shards}.")
        sample_latents, sample_extras = torch.cat([b["latents"].cpu() for b in batches]), {}
        sample_actions = torch.cat([b["actions"] for b in batches]) if cfg.data.actions else None
        sample_ego = torch.cat([b["trajectory"] for b in batches]) if cfg.data.trajectory else None
        sample_camera = torch.cat([b["camera"] for b in batches]) if cfg.data.camera else None
        sample_rig = None  # data.warp caches: the uncached path has no rig
        clip_fps = float(torch.cat([b["fps"] for b in batches]).median()) * ct
        preview = {k: v[:4] for k, v in batches[0].items()}
    fitted = fit_actions(cfg, preview, ct) | fit_camera(cfg, tok.cfg.spatial_compression) | fit_views(cfg, preview, ct)
    if cfg.model.warp and sample_camera is not None and not cfg.model.warp_height:  # where relative paths start
        fitted |= dict(zip(("warp_height", "warp_pitch"), typical_start(sample_camera)))
    if cfg.model.warp and sample_rig is not None:  # a rig (data.views): where each camera rides on the car
        fitted |= typical_rig(*sample_rig)
    cfg = C.merge(cfg, {"model": fitted})
    seed_everything(cfg.train.seed)
    model = model_class(cfg.model)
    # 3. the start (a base run's weights, or fresh latent statistics; a resumed run loads its own) and generation
    starting = find_train_state(run_dir) is None or fresh  # else the checkpoint holds every statistic
    if cfg.init_from:
        load_base(model, cfg.init_from)
    elif starting:
        model.set_latent_stats(sample_latents, sample_extras)
    if starting and cfg.model.action_dim:
        model.embedder("actions").set_scale(sample_actions)
    if starting and cfg.model.origin:
        model.embedder("travel").set_scale(sample_travel)
    if starting and cfg.model.tip:
        model.embedder("tip").set_scale(sample_tip)
    if starting and cfg.model.trajectory:
        model.embedder("trajectory").set_scale(sample_ego)
    if starting and cfg.model.camera and sample_camera is not None:
        model.embedder("camera").set_scale(sample_camera, tuple(sample_latents.shape[-2:]))
    # what one window of the model covers (rollout training reads rollout_depth more latent frames per sample)
    frames = 1 + (cfg.data.window - cfg.model.rollout_depth - 1) * ct if cfg.data.window else cfg.data.frames
    generation = {"tokenizer": run_reference(cfg.data.tokenizer), "frames": frames, "size": cfg.data.size,
                  "fps": cfg.data.fps or clip_fps}  # fmt: skip
    if cfg.data.token_tokenizer:
        generation["token_tokenizer"] = run_reference(cfg.data.token_tokenizer)
    main_first(lambda: _write_json(run_dir / GENERATION_FILE, generation))
    # 4. train; every train.sample_every steps a Video2World preview (truth | generation) goes to samples/
    loss = rollout_world_model_loss if cfg.model.rollout_depth else world_model_loss
    trainer = Trainer(model, loss, cfg.train, run_dir, data, full_config=C.to_dict(cfg),
                      sample_fn=lambda m, step, out: write_preview(m, tok, preview, out, generation["fps"]),
                      resume=not fresh)  # fmt: skip
    result = trainer.fit()
    return {"run_dir": str(run_dir), "steps": result.step, "resumed_from": result.resumed_from,
            "already_complete": result.already_complete, "last": result.last_logs}  # fmt: skip


def run_reference(run: str) -> str:
    """How generation.json names a run: a shipped model by its name, a run directory by its absolute path."""
    return str(Path(run).resolve()) if Path(run).is_dir() else str(run)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(value, indent=2))
