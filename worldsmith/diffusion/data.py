"""Training data of the diffusion world model: clips -> tokenizer latents + caption states, live or cached.

Per batch: clips (B, 3, T, H, W) -> tokenizer latents (B, C, T', H', W') + MiniLM token states of the captions (+
fps in latent frames per second). With ``cache_latents`` every clip is encoded once, at ``cache_crops`` random
crops, into one safetensors file (rebuilt when the data settings, the tokenizer's weights or the crop settings
change); training then never decodes a video or runs the tokenizer: the fast path on a CPU. Under torchrun rank 0
builds the cache and the other ranks wait and read it (``worldsmith.train.runtime.main_first``), the same way the
autoregressive family builds its token set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from worldsmith.conditioning.camera import pack_camera, per_latent_frame
from worldsmith.conditioning.origin import origin_windows
from worldsmith.conditioning.tip import TIP_DROPOUT, body_of, tips
from worldsmith.conditioning.views import mirror_clips, mirror_order, stack_views
from worldsmith.conditioning.warp import rig_mounts, warp_views
from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_samples
from worldsmith.errors import ConfigError, DataError
from worldsmith.weights import load_tensors, read_metadata, save_tensors
from worldsmith.zoo import resolve


@dataclass
class DiffusionDataConfig:
    shards: str = ""  # training clips: a shard directory, glob, .tar or manifest.parquet
    tokenizer: str = ""  # run directory of a trained continuous tokenizer (cv*)
    frames: int = 17  # frames per training clip; must be 1 + k * the tokenizer's temporal compression
    size: int = 64  # frames are resized (short side) and centre-cropped to size x size
    fps: float | None = None  # resample clips to this rate; None keeps each clip's own
    num_workers: int = 0  # data loader processes (uncached path)
    cache_latents: bool = False  # encode every clip once (at cache_crops random crops) and train from the cache
    cache_crops: int = 4  # random temporal crops encoded per clip when caching
    window: int = 0  # latent frames per training sample, a random window of each cached crop; 0: the whole crop
    actions: bool = False  # read each clip's per-transition ``actions`` array (action-conditioned models)
    camera: bool = False  # read each clip's per-frame ``c2w`` and ``intrinsics`` (camera-controlled models)
    views: bool = False  # every synchronized view of a clip, encoded per view and stacked (multi-view models)
    trajectory: bool = False  # read each clip's per-frame ego states ``ego`` (trajectory-conditioned models)
    # read each clip's per-frame robot state and camera (``ee``, ``intrinsics``, ``c2w``: the arm world's) into the
    # cache as bodies (conditioning/tip.py; models with model.tip)
    body: bool = False
    # add every cached crop's left-right mirror image too (conditioning/views.py ``mirror_clips``): driving clips
    # whose turns lean one way teach both ways; needs a symmetric rig (front_left <-> front_right)
    mirror: bool = False
    # cache each clip's first frame warped to every frame's camera too (conditioning/warp.py; models with model.warp):
    # with views, every view's own, and the rig (each camera's pose on the car, from the ego states)
    warp: bool = False
    stats_batches: int = 8  # batches to measure the latents' mean and std on (uncached path)
    # a discrete (DV/DI) tokenizer run: its tokens of every cached clip condition the model (the diffusion decoder)
    token_tokenizer: str = ""

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 8 or self.num_workers < 0 or self.cache_crops < 1 or self.stats_batches < 1:
            raise ConfigError("data.frames >= 1, data.size >= 8, data.num_workers >= 0, data.cache_crops >= 1 and "
                              "data.stats_batches >= 1 are required.")  # fmt: skip
        if self.window < 0 or self.window == 1:
            raise ConfigError(f"data.window must be 0 (whole crops) or >= 2 latent frames, got {self.window}.")
        if self.window and not self.cache_latents:
            raise ConfigError("data.window takes windows of cached latents: set data.cache_latents=true too.")
        if self.mirror and not self.cache_latents:
            raise ConfigError("data.mirror adds mirrored copies of the clips to the latent cache: set "
                              "data.cache_latents=true too.")  # fmt: skip
        if self.body and (not self.cache_latents or self.mirror):
            raise ConfigError("data.body caches each clip's robot state with its latents: set data.cache_latents=true "
                              "(and data.mirror=false: a mirrored robot has no recorded pose).")  # fmt: skip
        if self.warp and not (self.cache_latents and (self.camera or self.views) and not self.mirror):
            raise ConfigError("data.warp caches the warped first frame of each clip with its latents: it needs "
                              "data.cache_latents=true, clips with cameras (data.camera=true, or data.views=true for "
                              "a rig) and data.mirror=false.")  # fmt: skip
        if self.token_tokenizer and not self.cache_latents:
            raise ConfigError("data.token_tokenizer encodes the clips' tokens into the latent cache: set "
                              "data.cache_latents=true too.")  # fmt: skip


class EncodedBatches:
    """Clip batches -> latent batches; keeps the clip loader's epoch and resumable position."""

    def __init__(self, loader, tokenizer, text_encoder) -> None:
        self.loader, self.tokenizer, self.text_encoder = loader, tokenizer, text_encoder

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        device = next(self.tokenizer.parameters()).device
        ct = self.tokenizer.cfg.temporal_compression
        for batch in self.loader:
            latents = encode_views(self.tokenizer, batch, device)  # (B, C, T', V*H', W')
            yield text_batch(latents, batch["caption"], batch["fps"] / ct, self.text_encoder, batch.get("actions"),
                             camera=camera_of(batch, ct), views=view_ids(batch), trajectory=batch.get("ego"))  # fmt: skip


def encode_views(tokenizer, batch: dict, device) -> torch.Tensor:
    """A clip batch's latents (B, C, T', H', W'); with its extra views (``views`` (B, V-1, 3, T, H, W)), every view
    encoded on its own and stacked along the height, front view first: (B, C, T', V*H', W')."""
    latents = tokenizer.encode(batch["video"].to(device))
    if "views" not in batch or batch["views"].shape[1] == 0:
        return latents
    extra = [tokenizer.encode(v.to(device)) for v in batch["views"].unbind(1)]
    return stack_views([latents, *extra])


def view_ids(batch: dict) -> torch.Tensor | None:
    """(B, V) view indices (0 = the main view) of a clip batch read with views, else None."""
    if "views" not in batch:
        return None
    b, v = batch["video"].shape[0], 1 + batch["views"].shape[1]
    return torch.arange(v).expand(b, v).clone()


def camera_of(batch: dict, chunk: int) -> torch.Tensor | None:
    """A clip batch's cameras packed per latent frame (B, T', 25) (conditioning/camera.py), or None without them."""
    if "c2w" not in batch:
        return None
    return per_latent_frame(pack_camera(batch["c2w"].float(), batch["intrinsics"].float()), chunk)


def text_batch(latents: torch.Tensor, captions: list[str], latent_fps: torch.Tensor, text_encoder,
               actions: torch.Tensor | None = None, tokens: dict[str, torch.Tensor] | None = None,
               camera: torch.Tensor | None = None, views: torch.Tensor | None = None,
               trajectory: torch.Tensor | None = None) -> dict:  # fmt: skip
    """A training batch: latents, MiniLM states of the captions, latent fps (+ actions (B, T-1, A), + the discrete
    tokens (B, T'', H'', W'') of the same clips and their DV decoding re-encoded (B, C, T', H', W'), + packed
    cameras per latent frame (B, T', 25), + view indices (B, V) of views stacked along H', + ego states per video
    frame (B, T, 4))."""
    emb = text_encoder.encode(list(captions))
    batch = {"latents": latents, "text": emb.tokens, "text_mask": emb.mask, "fps": latent_fps.float()}
    if tokens is not None:
        batch |= {"tokens": tokens["tokens"].long(), "dv_latents": tokens["dv_latents"].float()}
    if camera is not None:
        batch["camera"] = camera.float()
    if views is not None:
        batch["views"] = views.long()
    if trajectory is not None:
        batch["trajectory"] = trajectory.float()
    return batch if actions is None else batch | {"actions": actions.float()}


class CachedLatentBatches:
    """Shuffled batches of cached latents (and actions); the same batches for the same epoch (resume replays the
    epoch). With ``window`` each sample is a random window of that many latent frames of its crop (and the
    ``chunk`` actions of each latent frame in it), drawn per epoch from the seed. With ``origin`` > 0 each window
    also gets a rollout origin at most that many latent frames back (conditioning/origin.py): ``origin`` (B, C, H',
    W') its latent frame, ``travel`` (B, window, A + 1) the actions accumulated since it; with ``tip`` > 0 also
    ``tip`` (B, window, 3), the commanded fingertip of each frame from the origin's recorded pose (conditioning/tip.py),
    NaN (dropped) for a share ``TIP_DROPOUT`` of the windows."""

    def __init__(self, cache: dict[str, Any], batch_size: int, seed: int, text_encoder, window: int = 0,
                 chunk: int = 1, origin: int = 0, travel: str = "sum", tip: float = 0.0) -> None:  # fmt: skip
        self.cache, self.window, self.chunk, self.origin, self.travel = cache, window, chunk, origin, travel
        self.tip = tip
        if origin and "actions" not in cache:
            raise ConfigError("model.origin sums the actions since the origin: train on clips with actions "
                              "(data.actions=true).")  # fmt: skip
        if tip and "body" not in cache:
            raise ConfigError("model.tip needs each clip's robot state in the cache: set data.body=true (clips of the "
                              "arm world, which record ee, intrinsics and c2w).")  # fmt: skip
        self.batch_size, self.seed, self.epoch, self.text_encoder = batch_size, seed, 0, text_encoder
        frames = cache["latents"].shape[2]
        if window > frames:
            raise ConfigError(f"data.window ({window}) is longer than the cached crops ({frames} latent frames).")
        if window and "tokens" in cache and cache["tokens"].shape[1] != frames:
            raise ConfigError("data.window needs tokens on the latents' time grid (tokenizers of the same temporal "
                              "compression); set data.window=0.")  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        latents, actions, tokens = self.cache["latents"], self.cache.get("actions"), self.cache.get("tokens")
        cameras, views, ego = self.cache.get("camera"), self.cache.get("views"), self.cache.get("trajectory")
        warped = self.cache.get("warped")
        dv_latents = self.cache.get("dv_latents")
        n, bs = len(latents), min(self.batch_size, len(latents))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g)
        w = self.window or latents.shape[2]
        starts = torch.randint(0, latents.shape[2] - w + 1, (n,), generator=g)
        if self.origin:
            origins, trav = origin_windows(actions, starts, w, self.origin, self.chunk, g, self.travel)
        if self.tip:
            bodies = self.cache["body"][torch.arange(n), origins * self.chunk]  # (N, 33) at each window's origin
            tip = tips(bodies, trav[..., :6], self.tip)  # (N, w, 3)
            tip[torch.rand(n, generator=g) < TIP_DROPOUT] = float("nan")
        for i in range(0, n - bs + 1, bs):
            idx = order[i : i + bs]
            z = torch.stack([latents[j, :, starts[j] : starts[j] + w] for j in idx])  # (B, C, w, H', W')
            a = None
            if actions is not None:  # the actions leading into latent frames 1..w-1 of each window
                a = torch.stack([actions[j, starts[j] * self.chunk : (starts[j] + w - 1) * self.chunk] for j in idx])
            tok = None
            if tokens is not None:  # the same window of the clip's discrete tokens and of their DV decoding
                tok = {"tokens": torch.stack([tokens[j, starts[j] : starts[j] + w] for j in idx]),
                       "dv_latents": torch.stack([dv_latents[j, :, starts[j] : starts[j] + w] for j in idx])}
            cam = None if cameras is None else torch.stack([cameras[j, starts[j] : starts[j] + w] for j in idx])
            traj = None  # the ego states of the video frames the window covers
            if ego is not None:
                traj = torch.stack([ego[j, starts[j] * self.chunk : (starts[j] + w - 1) * self.chunk + 1] for j in idx])
            captions = [self.cache["captions"][j] for j in idx]
            batch = text_batch(z, captions, self.cache["fps"][idx], self.text_encoder, a, tok, cam,
                               None if views is None else views[idx], traj)  # fmt: skip
            if self.origin:
                batch |= {"origin": torch.stack([latents[j, :, origins[j]] for j in idx]), "travel": trav[idx]}
            if self.tip:
                batch["tip"] = tip[idx]
            if warped is not None:  # the crop's first frame warped to each frame of the window
                batch["warped"] = torch.stack([warped[j, :, starts[j] : starts[j] + w] for j in idx])
            yield batch


def dataset_config(data: DiffusionDataConfig, seed: int, *, loop: bool, shuffle: bool) -> DatasetConfig:
    return DatasetConfig(shards=data.shards, frames=data.frames, fps=data.fps, size=(data.size, data.size),
                         temporal_crop="random", shuffle=shuffle, seed=seed, loop=loop, views=data.views,
                         arrays=(["actions"] if data.actions else [])
                         + (["c2w", "intrinsics"] if data.camera or data.body or data.warp else [])
                         + (["ego"] if data.trajectory else []) + (["ee"] if data.body else []))  # fmt: skip


def cache_settings(data: DiffusionDataConfig, seed: int) -> dict[str, Any]:
    """What a latent cache was built from; a cache with other settings is rebuilt."""
    weights = resolve(data.tokenizer) / "model.safetensors"  # a retrained tokenizer invalidates the cache
    settings = {"shards": data.shards, "tokenizer": str(weights.resolve()), "weights_mtime_ns": weights.stat().st_mtime_ns,
                "frames": data.frames, "size": data.size, "fps": data.fps, "crops": data.cache_crops, "seed": seed,
                "actions": data.actions, **({"camera": True} if data.camera else {}),
                **({"views": True} if data.views else {}), **({"trajectory": True} if data.trajectory else {}),
                **({"mirror": True} if data.mirror else {}), **({"warp": True} if data.warp else {})}  # fmt: skip
    if data.token_tokenizer:
        tokens = resolve(data.token_tokenizer) / "model.safetensors"
        settings |= {"token_tokenizer": str(tokens.resolve()), "token_mtime_ns": tokens.stat().st_mtime_ns,
                     "dv_latents": True}
    return settings


@torch.no_grad()
def build_latent_cache(data: DiffusionDataConfig, tokenizer, path: Path, seed: int = 0, token_tokenizer=None) -> None:
    """Encode every clip at ``data.cache_crops`` random crops into ``path``, unless it holds them already; with
    ``token_tokenizer`` (a discrete tokenizer) its tokens of the same crops too."""
    meta = cache_settings(data, seed)
    if path.is_file() and json.loads(read_metadata(path).get("meta", "{}")) == meta:
        return
    device = next(tokenizer.parameters()).device
    ct = tokenizer.cfg.temporal_compression
    latents, actions, tokens, dv_latents, captions, fps, cameras, views, ego, bodies, warped, rigs = ([] for _ in range(12))
    order = mirror_order(rig_views(data.shards) if data.views else ["main"]) if data.mirror else None
    for crop in range(data.cache_crops):
        loader = make_loader(dataset_config(data, seed + crop, loop=False, shuffle=False), 8, data.num_workers)
        batches = iter(loader)
        if order is not None:  # each batch, then its mirror image
            batches = (b for batch in batches for b in (batch, mirror_clips(batch, order)))
        for batch in batches:
            latents.append(encode_views(tokenizer, batch, device).cpu())
            if token_tokenizer is not None:  # the DV tokens, and their DV decoding encoded by the continuous tokenizer
                tok = token_tokenizer.encode(batch["video"].to(device))
                tokens.append(tok.to(torch.int32).cpu())
                dv_latents.append(tokenizer.encode(token_tokenizer.decode(tok).clamp(-1, 1)).cpu())
            captions += list(batch["caption"])
            fps += (batch["fps"] / ct).tolist()
            if data.actions:
                actions.append(batch["actions"].float())
            if data.camera:
                cameras.append(camera_of(batch, ct))
            if data.warp:
                warped.append(warped_latents(tokenizer, batch, device).cpu())
                if data.views and data.trajectory:
                    rigs.append(rig_of(batch))
            if data.views:
                views.append(view_ids(batch))
            if data.trajectory:
                ego.append(batch["ego"].float())
            if data.body:
                bodies.append(body_of(batch["ee"], batch["intrinsics"], batch["c2w"]))
    if not latents:
        raise DataError(f"no clips of {data.frames} frames found in {data.shards}; check the path or lower data.frames.")
    tensors = {"latents": torch.cat(latents)} | ({"actions": torch.cat(actions)} if actions else {})
    if tokens:
        tensors |= {"tokens": torch.cat(tokens), "dv_latents": torch.cat(dv_latents)}
    if cameras:
        tensors["camera"] = torch.cat(cameras)
    if views:
        tensors["views"] = torch.cat(views)
    if ego:
        tensors["trajectory"] = torch.cat(ego)
    if bodies:
        tensors["body"] = torch.cat(bodies)
    if warped:
        tensors["warped"] = torch.cat(warped)
    if rigs:
        tensors |= {"rig": torch.cat([r[0] for r in rigs]), "rig_intrinsics": torch.cat([r[1] for r in rigs])}
    save_tensors(tensors, path, metadata={"meta": json.dumps(meta), "captions": json.dumps(captions),
                                          "fps": json.dumps(fps)})  # fmt: skip


def clip_cameras(batch: dict) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """A clip batch's views [(B, 3, T, H, W)] (the main one first), their cameras c2w (B, T, V, 4, 4) and
    intrinsics (B, V, 3, 3) (its first frame's)."""
    clips = [batch["video"], *(batch["views"].unbind(1) if "views" in batch else ())]
    b, t, v = clips[0].shape[0], clips[0].shape[2], len(clips)
    return clips, batch["c2w"].reshape(b, t, v, 4, 4), batch["intrinsics"].reshape(b, -1, v, 3, 3)[:, 0]


def warped_latents(tokenizer, batch: dict, device) -> torch.Tensor:
    """The latents (B, C, T', V*H', W') of each view's first frame warped to its camera at every frame (data.warp),
    stacked as ``encode_views`` stacks the views."""
    clips, c2w, K = clip_cameras(batch)
    warped = warp_views([c.to(device) for c in clips], c2w.to(device), K.to(device))
    return stack_views([tokenizer.encode(w) for w in warped])


def rig_of(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's rig at its first frame: camera-to-car poses (B, V, 4, 4) from its ego states, intrinsics (B, V, 3, 3)."""
    _, c2w, K = clip_cameras(batch)
    return rig_mounts(batch["ego"][:, 0], c2w[:, 0]).float(), K.float()


def rig_views(shards: str) -> list[str]:
    """The camera names of the first clip's views (its header's ``meta.views``), view 0 first."""
    for shard in list_shards(shards):
        for sample in iter_samples(shard, read=lambda ext: False):
            names = sample["__header__"].get("meta", {}).get("views")
            if not names:
                raise DataError(f"clip {sample['__key__']} does not name its views (meta.views), so data.mirror "
                                "cannot pair them; set data.mirror=false.")  # fmt: skip
            return list(names)
    raise DataError(f"no clips found in {shards}; check the path.")


def read_latent_cache(path: Path) -> dict[str, Any]:
    """{"latents" (N, C, T', H', W'), "captions" [N], "fps" (N,) latent frames per second (+ "actions" (N, T-1, A),
    + "tokens" (N, T'', H'', W'') and "dv_latents" (N, C, T', H', W'), + "camera" (N, T', 25), + "views" (N, V)
    view indices of views stacked along H', + "trajectory" (N, T, 4) ego states per video frame, + "body" (N, T, 33)
    robot state and camera per video frame, + "warped" (N, C, T', H', W') the first frame warped to every frame's
    camera, + "rig" (N, V, 4, 4) / "rig_intrinsics" (N, V, 3, 3) each view's camera-to-car pose and intrinsics)} of a
    cache file."""
    stored, tensors = read_metadata(path), load_tensors(path)
    return tensors | {"captions": json.loads(stored["captions"]), "fps": torch.tensor(json.loads(stored["fps"]))}
