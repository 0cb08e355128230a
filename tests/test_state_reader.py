"""The state reader: sub-pixel peak reading, the arm's ground-truth pixels, and a reader that learns to read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.eval.reader_train import ReaderRunConfig, load_frames, object_errors, reader_error, train_reader
from worldsmith.eval.state_reader import StateReader, StateReaderConfig, arm_truth, peaks, refine, target_heatmaps
from worldsmith.config import merge

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_peaks_are_read_back_to_a_fraction_of_a_pixel():
    points = torch.tensor([[[10.3, 20.7], [25.5, 5.2]]])  # (1, 2, 2) as (u, v)
    heat = target_heatmaps(points, torch.ones(1, 2), (32, 32), sigma=1.0)  # (1, 32, 32)
    found = refine(heat, peaks(heat, 2), window=5)  # strongest first
    error = (found[0][:, None] - points[0][None]).norm(dim=-1).min(dim=1).values
    assert error.max() < 0.05, found


def test_objects_are_read_at_the_nearest_confident_peak():
    truth = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 1.0]]])  # the last two stacked: one peak
    found = np.array([[[10.0, 1.0], [0.0, 2.0], [30.0, 30.0]]])
    scores = np.array([[0.9, 0.6, 0.1]])  # the third is not confident
    assert object_errors(found, scores, truth, np.ones((1, 3), bool)).tolist() == [2.0, 1.0, 0.0]


def test_arm_truth_puts_the_gripper_and_objects_inside_the_frame(arm_shards):
    clip = next(iter_shard(list_shards(str(arm_shards))[0]))
    gripper, objects = arm_truth(clip.arrays)
    size = clip.frames.shape[1]
    assert gripper.shape == (clip.num_frames, 2) and objects.shape[0] == clip.num_frames
    assert ((gripper > -size) & (gripper < 2 * size)).all()
    moved = np.linalg.norm(np.diff(gripper, axis=0), axis=-1)
    assert moved.max() > 0.5  # the scripted arm moves, and its projected fingertip with it


def test_a_reader_learns_to_read_the_frames_it_was_trained_on(arm_shards, tmp_path):
    cfg = merge(ReaderRunConfig(), {"model": {"width": 16, "levels": 2}, "data": {"shards": str(arm_shards),
                "augment": 0.0}, "train": {"steps": 150, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10,
                "ema_decay": 0.0, "log_every": 50, "ckpt_every": 150, "progress": False, "tensorboard": False}})
    before = reader_error(StateReader(cfg.model), load_frames(str(arm_shards), max_clips=2))
    train_reader(cfg, tmp_path / "reader")
    model = StateReader.from_pretrained(tmp_path / "reader")
    after = reader_error(model, load_frames(str(arm_shards), max_clips=2))
    print(before, after)
    assert after["gripper_px"] < 3.0 and after["gripper_px"] < before["gripper_px"] / 3
    assert after["object_px"] < before["object_px"]


def test_config_errors():
    from worldsmith.errors import ConfigError

    with pytest.raises(ConfigError, match="odd window"):
        StateReaderConfig(window=4)
    with pytest.raises(ConfigError, match="divide by 16"):
        StateReader(StateReaderConfig())(torch.zeros(1, 3, 40, 40))
