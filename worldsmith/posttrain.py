"""``worldsmith posttrain action|instruction``: a base world model trained further on a robot's own video.

Cosmos' recipe (arXiv 2501.03575, Sec. 6): start from a pre-trained world foundation model and train it on
action-labelled (or instruction-labelled) clips of one embodiment. Here a post-training run is an ordinary training
run of the base's family whose config starts from the base's: the same architecture and tokenizer (the base's
``model`` and ``data`` sections), its weights as the start (``init_from``), the new data, and per mode:

* ``action``: the clips' actions enter through the backbone's conditioning slot (a new, zero-initialised action
  embedder: the run starts as the base), captions dropped half of the time so the model follows actions alone;
* ``instruction``: the same data conditioned on the task instruction (the clip's caption) alone.

``lora_rank`` > 0 trains low-rank adapters of the backbone's blocks (and the new embedder) instead of every weight;
such a run saves only what it trained and names its base, which must stay where it was (or be a shipped model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldsmith import config as C
from worldsmith.errors import ConfigError
from worldsmith.families import family_of
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve

MODES = ("action", "instruction")
DEFAULTS = {  # per mode, applied over the base's config before the user's --set
    "action": {"data": {"actions": True}, "model": {"caption_dropout": 0.5, "video2world_prob": 1.0}},
    "instruction": {"data": {"actions": False}, "model": {"caption_dropout": 0.1, "video2world_prob": 1.0}},
}
TRAIN = {"steps": 3000, "lr": 5e-4, "warmup_steps": 100}  # post-training's own schedule (the base's is for pre-training)


def posttrain_config(mode: str, base: str | Path, data: str | None, *, lora_rank: int = 0,
                     config_yaml: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Any:  # fmt: skip
    """The family of ``base`` and the run config of a post-training of it: base config <- mode <- YAML <- --set."""
    if mode not in MODES:
        raise ConfigError(f"unknown post-training {mode!r}; choose one of: {', '.join(MODES)}.")
    base_dir = resolve(base)
    family, saved = family_of(base_dir), read_run_config(base_dir)
    model = {k: v for k, v in saved["model"].items() if k not in ("action_dim", "action_chunk", "lora")}
    start = {"model": model, "data": {k: v for k, v in (saved.get("data") or {}).items() if k != "shards"},
             "train": {**(saved.get("train") or {}), **TRAIN}}  # fmt: skip
    cfg = C.merge(family.run_config(model=family.preset(family.default_preset)), start)
    cfg = C.merge(cfg, DEFAULTS[mode] | {"init_from": str(base)})
    if lora_rank:
        cfg = C.merge(cfg, {"model": {"lora": {"rank": lora_rank, "base": str(base)}}})
    cfg = C.resolve(cfg, config_yaml, overrides)
    if data:
        cfg = C.merge(cfg, {"data": {"shards": str(data)}})
    return family, cfg
