"""Every model family joins the family contract (tests/family_contract.py) with a tiny config on real arm clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import QUICK_TRAIN, TINY
from family_contract import FamilyContract

from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.families import FAMILIES
from worldsmith.family import GenerationRequest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def first_clip(shards: Path, frames: int) -> np.ndarray:
    return next(iter_shard(list_shards(str(shards))[0])).frames[:frames]  # uint8 (frames, 32, 32, 3)


def test_every_family_is_in_the_registry_and_tested_here():
    tested = {cls.name for cls in FamilyContract.__subclasses__()}
    assert tested == set(FAMILIES) == {"tokenizer", "diffusion", "autoregressive", "decoder"}


def arm_actions(shards: Path, n: int) -> np.ndarray:
    return next(iter_shard(list_shards(str(shards))[0])).arrays["actions"][:n]  # float32 (n, 7)


class TestTokenizerFamily(FamilyContract):
    name = "tokenizer"
    returns_given_frames = False  # it returns its reconstruction

    def config(self, data):
        return self.family.resolve("cv4x8x8-tiny", flags={"data": {"shards": str(data["arm_shards"]), **TINY},
                                                           "loss": {"perceptual": 0.0}, "train": QUICK_TRAIN})

    def request(self, data):
        return GenerationRequest(video=first_clip(data["arm_shards"], 9), fps=10.0)


class TestDiffusionFamily(FamilyContract):
    name = "diffusion"
    needs = ("cv_tokenizer",)
    sampling = {"steps": 2}

    def config(self, data):
        flags = {"data": {"shards": str(data["arm_shards"]), "tokenizer": str(data["cv_tokenizer"]), **TINY,
                          "cache_latents": True, "cache_crops": 1}, "train": QUICK_TRAIN}  # fmt: skip
        return self.family.resolve("tiny", flags=flags)

    def request(self, data):
        return GenerationRequest(prompt="the robot arm moves", video=first_clip(data["arm_shards"], 1), frames=9)


class TestDiffusionActionVariant(FamilyContract):
    """The action-conditioned variant: a config (data.actions) and an embedder in the slot, per-frame latents."""

    name = "diffusion"
    needs = ("ci_tokenizer",)
    sampling = {"steps": 2}

    def config(self, data):
        flags = {"data": {"shards": str(data["arm_shards"]), "tokenizer": str(data["ci_tokenizer"]), "frames": 9,
                          "size": 32, "cache_latents": True, "cache_crops": 1, "window": 3, "actions": True},
                 "model": {"max_cond_latents": 2}, "train": QUICK_TRAIN}  # fmt: skip
        return self.family.resolve("tiny", flags=flags)

    def request(self, data):
        shards = data["arm_shards"]
        return GenerationRequest(video=first_clip(shards, 1), actions=arm_actions(shards, 6))  # 7 frames out


class TestAutoregressiveFamily(FamilyContract):
    name = "autoregressive"
    needs = ("dv_tokenizer",)
    sampling = {"top_k": 20}

    def config(self, data):
        flags = {"data": {"shards": str(data["arm_shards"]), "size": TINY["size"]}, "tokenizer": str(data["dv_tokenizer"]),
                 "model": {"dim": 32, "depth": 1, "heads": 2, "kv_heads": 1, "max_frames": 3},
                 "train": QUICK_TRAIN}  # fmt: skip
        return self.family.resolve("tiny", flags=flags)

    def request(self, data):
        return GenerationRequest(prompt="the robot arm moves", video=first_clip(data["arm_shards"], 1), frames=5)


class TestAutoregressiveActionVariant(FamilyContract):
    """The GPT conditioned on actions (4 per latent frame with the dv4x8x8 tokenizer), through the same slot."""

    name = "autoregressive"
    needs = ("dv_tokenizer",)
    sampling = {"top_k": 20}

    def config(self, data):
        flags = {"data": {"shards": str(data["arm_shards"]), "size": TINY["size"], "actions": True},
                 "tokenizer": str(data["dv_tokenizer"]),
                 "model": {"dim": 32, "depth": 1, "heads": 2, "kv_heads": 1, "max_frames": 3},
                 "train": QUICK_TRAIN}  # fmt: skip
        return self.family.resolve("tiny", flags=flags)

    def request(self, data):
        shards = data["arm_shards"]
        return GenerationRequest(video=first_clip(shards, 1), actions=arm_actions(shards, 8))  # 9 frames out


class TestDecoderFamily(FamilyContract):
    """The diffusion decoder: DV tokens -> CV latents, a token embedder in the diffusion model's slot."""

    name = "decoder"
    needs = ("cv_tokenizer", "dv_tokenizer")
    sampling = {"steps": 2}
    returns_given_frames = False  # it returns the clip reconstructed through its tokens

    def config(self, data):
        flags = {"data": {"shards": str(data["arm_shards"]), "tokenizer": str(data["cv_tokenizer"]),
                          "token_tokenizer": str(data["dv_tokenizer"]), **TINY}, "train": QUICK_TRAIN}  # fmt: skip
        return self.family.resolve("tiny", flags=flags)

    def request(self, data):
        return GenerationRequest(video=first_clip(data["arm_shards"], 9), fps=10.0)
