"""The shipped models: each small, with a card that says how to rebuild it; the base model generates by name and is
the start of post-training by name."""

from __future__ import annotations

import re

import pytest
import torch

from worldsmith.config import merge
from worldsmith.errors import ConfigError
from worldsmith.families import family_of, load_generator
from worldsmith.posttrain import posttrain_config
from worldsmith.weights import read_run_config
from worldsmith.zoo import resolve, shipped

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", sorted(shipped()))
def test_every_shipped_model_is_under_20_mb_with_a_card_naming_its_command_metrics_and_licence(name):
    folder = shipped()[name]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20_000_000
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {name}\n")
    for heading in ("## Reproduce", "## Metrics", "## Licence"):
        assert re.search(f"^{heading}", card, re.M), heading
    assert "worldsmith " in card.split("## Reproduce")[1]  # the command that rebuilds it
    config = read_run_config(folder)
    tokenizer = (config.get("data") or {}).get("tokenizer")
    assert tokenizer is None or tokenizer in shipped(), "a shipped model names its tokenizer by its shipped name"


def test_the_base_model_generates_by_name_and_post_trains_by_name():
    gen = load_generator("world-base")
    assert family_of(resolve("world-base")).name == "diffusion" and not gen.model.cfg.action_dim
    first = torch.rand(1, 3, 1, 64, 64) * 2 - 1
    video = gen.generate_videos(["The robot arm picks up the red cube."], video=first, frames=3,
                                sampling=merge(gen.Sampling(), {"steps": 2}), seed=0)[0]  # fmt: skip
    assert video.shape == (3, 3, 64, 64) and torch.isfinite(video).all()
    family, cfg = posttrain_config("action", "world-base", "data/arm")
    assert family.name == "diffusion" and cfg.init_from == "world-base" and cfg.data.actions
    base = gen.model.cfg.dit
    assert cfg.model.dit.next_frame_only and not base.next_frame_only  # the base's network, stepping frame by frame
    assert (cfg.model.dit.width, cfg.model.dit.depth, cfg.model.dit.patch) == (base.width, base.depth, base.patch)


def test_an_action_model_post_trains_further_keeping_its_conditions_once_the_fresh_action_width_is_set_again():
    # arm-action keeps a rollout origin, which needs an action width: the base's conditions and the user's
    # --set are merged before the config is checked, so the later layer completes the earlier one
    _, cfg = posttrain_config("action", "arm-action", "data/arm", overrides=["model.action_dim=7", "train.steps=9"])
    shipped_cfg = read_run_config(resolve("arm-action"))["model"]
    assert (cfg.model.action_dim, cfg.model.origin, cfg.model.tip) == (7, shipped_cfg["origin"], shipped_cfg["tip"])
    assert cfg.init_from == "arm-action" and cfg.train.steps == 9 and cfg.data.shards == "data/arm"
    with pytest.raises(ConfigError, match="model.action_dim"):  # without it: the one sentence of the config check
        posttrain_config("action", "arm-action", "data/arm")
