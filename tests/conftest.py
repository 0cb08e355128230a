"""Fixtures shared by the test modules."""

from pathlib import Path

import pytest
import torch

from worldsmith import config as C
from worldsmith.families import FAMILIES
from worldsmith.worlds.generate import simulate


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module: its tensors are tiny, and on a shared 2-core machine OpenMP threads
    that spin-wait for each other make small ops several times slower. Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------
# tiny real data and tokenizers, shared by the family contract tests (tests/family_contract.py)
# ---------------------------------------------------------------------------------------------------------------
TINY = {"frames": 5, "size": 32}  # one latent frame after the first at ct=4: the smallest real video clip
QUICK_TRAIN = {"steps": 4, "batch_size": 2, "warmup_steps": 0, "lr_schedule": "constant", "log_every": 1,
               "ckpt_every": 2, "progress": False, "tensorboard": False, "ema_decay": 0.9}


@pytest.fixture(scope="session")
def arm_shards(tmp_path_factory) -> Path:
    """6 simulated arm-world episodes of 9 frames at 32x32 (seconds to make)."""
    out = tmp_path_factory.mktemp("arm") / "shards"
    simulate("arm", episodes=6, frames=9, size=32, fps=10.0, out=out, seed=0, workers=1, progress=False)
    return out


def _tokenizer_run(root: Path, preset: str, shards: Path) -> Path:
    family = FAMILIES["tokenizer"]
    cfg = family.resolve(preset, flags={"data": {"shards": str(shards), **TINY},
                                        "loss": {"l1": 1.0, "perceptual": 0.0}, "train": QUICK_TRAIN})
    family.train(C.merge(cfg, {"train": {"steps": 12}}), root)
    return root


@pytest.fixture(scope="session")
def cv_tokenizer(tmp_path_factory, arm_shards) -> Path:
    """A continuous cv4x8x8-tiny tokenizer run, trained for a few steps on ``arm_shards``."""
    return _tokenizer_run(tmp_path_factory.mktemp("cv"), "cv4x8x8-tiny", arm_shards)


@pytest.fixture(scope="session")
def ci_tokenizer(tmp_path_factory, arm_shards) -> Path:
    """A continuous image tokenizer run (ci8x8-tiny: one latent frame per video frame), briefly trained."""
    return _tokenizer_run(tmp_path_factory.mktemp("ci"), "ci8x8-tiny", arm_shards)


@pytest.fixture(scope="session")
def dv_tokenizer(tmp_path_factory, arm_shards) -> Path:
    """A discrete dv4x8x8-tiny tokenizer run (1,000 codes), trained for a few steps on ``arm_shards``."""
    return _tokenizer_run(tmp_path_factory.mktemp("dv"), "dv4x8x8-tiny", arm_shards)


@pytest.fixture(scope="session")
def diffusion_base(tmp_path_factory, arm_shards, ci_tokenizer) -> Path:
    """A tiny diffusion base run (Text2World + Video2World, no actions) on per-frame latents, briefly trained:
    the starting point of post-training tests and a text model for the server's tests. Read-only for its users."""
    root = tmp_path_factory.mktemp("diffusion-base") / "base"
    family = FAMILIES["diffusion"]
    flags = {"data": {"shards": str(arm_shards), "tokenizer": str(ci_tokenizer), "frames": 9, "size": 32,
                      "cache_latents": True, "cache_crops": 1, "window": 3},
             "model": {"max_cond_latents": 2}, "train": QUICK_TRAIN}  # fmt: skip
    family.train(family.resolve("tiny", flags=flags), root)
    return root
