"""``worldsmith posttrain action|instruction|camera|views``: a base world model trained further on its user's own video.

Cosmos' recipe (arXiv 2501.03575, Sec. 6): start from a pre-trained world foundation model and train it on
action-labelled (or instruction-labelled) clips of one embodiment. Here a post-training run is an ordinary training
run of the base's family whose config starts from the base's: the same architecture and tokenizer (the base's
``model`` and ``data`` sections), its weights as the start (``init_from``), the new data, and per mode:

* ``action``: the clips' actions enter through the backbone's conditioning slot (a new, zero-initialised action
  embedder: the run starts as the base), captions dropped half of the time so the model follows actions alone; a
  diffusion base with frame stacking is post-trained ``next_frame_only`` (the same weights; each step predicts the
  one frame after its context, as rollouts use it, at a third of the compute);
* ``instruction``: the same data conditioned on the task instruction (the clip's caption) alone, captions dropped
  10 % of the time (the floor without them); a diffusion base with frame stacking is post-trained
  ``next_frame_only`` as for actions (rollouts step one frame at a time either way);
* ``views`` (diffusion): every synchronized camera of a clip generated jointly (views stacked, a new zero-initialised
  view embedding each, joint attention across views; conditioning/views.py), conditioned on the ego vehicle's
  trajectory through a new zero-initialised modulation embedder; the view count comes from the data; a base with
  frame stacking is post-trained ``next_frame_only``, each frame's trajectory its step from the frame before; with
  ``--set model.warp=true`` each view is anchored at its first frame warped along the trajectory (the rig measured
  on the clips), as the camera mode's warp models are (benchmarks/RESULTS.md, "Multi-view anchored at the warp");
* ``camera`` (diffusion): the clips' camera poses (``c2w`` + ``intrinsics`` per frame) enter as Plücker rays
  through a new, zero-initialised token embedder (conditioning/camera.py), so a user can move the camera through a
  generated world; captions dropped half of the time. A base with frame stacking is post-trained ``next_frame_only``
  with each frame's rays relative to the frame before it (``camera_reference: previous``: the step's motion, what
  the one predicted frame needs; benchmarks/RESULTS.md, camera section).

``lora_rank`` > 0 trains low-rank adapters of the backbone's blocks (and the new embedder) instead of every weight,
in either family (the DiT's or the GPT's blocks); such a run saves only what it trained and names its base, which
must stay where it was (or be a shipped model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldsmith import config as C
from worldsmith.errors import ConfigError
from worldsmith.families import family_of
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve

MODES = ("action", "instruction", "camera", "views")
DEFAULTS = {  # per family and mode, applied over the base's config before the user's --set
    "diffusion": {
        "action": {"data": {"actions": True}, "model": {"caption_dropout": 0.5, "video2world_prob": 1.0}},
        "instruction": {"data": {"actions": False}, "model": {"caption_dropout": 0.1, "video2world_prob": 1.0}},
        "camera": {"data": {"actions": False, "camera": True},
                   "model": {"caption_dropout": 0.5, "video2world_prob": 1.0}},
        "views": {"data": {"actions": False, "views": True, "trajectory": True},
                  "model": {"caption_dropout": 0.5, "video2world_prob": 1.0}},
    },
    "autoregressive": {
        "action": {"data": {"actions": True, "caption_dropout": 0.5}},
        "instruction": {"data": {"actions": False, "caption_dropout": 0.1}},
    },
}
FRESH = {"model": ("action_dim", "action_chunk", "camera", "camera_stride", "camera_every_block", "camera_reference", "warp", "warp_height", "warp_pitch", "rig_mounts", "rig_intrinsics", "views", "trajectory", "trajectory_reference", "lora"), "data": ("shards", "tokens")}  # set anew, not the base's
# modes whose diffusion post-training on a base with frame stacking is next-frame-only, and what goes with it
STEPWISE = {"action": {}, "instruction": {}, "camera": {"camera_reference": "previous"},
            "views": {"trajectory_reference": "previous"}}
TRAIN = {"steps": 3000, "lr": 5e-4, "warmup_steps": 100}  # post-training's own schedule (the base's is for pre-training)


def posttrain_config(mode: str, base: str | Path, data: str | None, *, lora_rank: int = 0,
                     config_yaml: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Any:  # fmt: skip
    """The family of ``base`` and the run config of a post-training of it: base config <- mode <- YAML <- --set."""
    if mode not in MODES:
        raise ConfigError(f"unknown post-training {mode!r}; choose one of: {', '.join(MODES)}.")
    base_dir = resolve(base)
    family, saved = family_of(base_dir), read_run_config(base_dir)
    if family.name not in DEFAULTS:
        raise ConfigError(f"{base} is a {family.name} model; post-training takes a diffusion or autoregressive one.")
    if mode not in DEFAULTS[family.name]:
        raise ConfigError(f"{mode} post-training is available for diffusion models; {base} is a {family.name} one.")
    fields = {f for f in family.run_config.__dataclass_fields__ if f != "init_from"}
    start = {k: v for k, v in saved.items() if k in fields}
    for section, keys in FRESH.items():
        start[section] = {k: v for k, v in (start.get(section) or {}).items() if k not in keys}
    start["train"] = {**(start.get("train") or {}), **TRAIN}
    # every layer as a nested mapping, merged and checked once: a condition the base keeps (e.g. its rollout origin)
    # may need a fresh key the user sets again (its action width), which an intermediate config would lack
    preset = family.run_config(model=family.preset(family.default_preset))
    layers = [start, DEFAULTS[family.name][mode] | {"init_from": str(base)}]
    if family.name == "diffusion" and mode in STEPWISE:
        dit = (start.get("model") or {}).get("dit") or {}
        if dit.get("anchor_frames", preset.model.dit.anchor_frames):  # a base with frame stacking steps one frame
            # at a time in a third of the compute (dit.py, next_frame_only)
            layers.append({"model": {"dit": {"next_frame_only": True}, **STEPWISE[mode]}})
    if lora_rank:
        if not hasattr(preset.model, "lora"):
            raise ConfigError(f"LoRA post-training is available for world models; {base} is a {family.name} one.")
        layers.append({"model": {"lora": {"rank": lora_rank, "base": str(base)}}})
    layers += [C.load_yaml(config_yaml) if config_yaml is not None else {}, C.parse_overrides(overrides)]
    if data:
        layers.append({"data": {"shards": str(data)}})
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = C.deep_merge(merged, layer)
    return family, C.merge(preset, merged)
