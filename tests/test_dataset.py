"""The streaming clip dataset: DDP x worker splitting, determinism, temporal crops and resampling, batching."""

from __future__ import annotations

import dataclasses
import itertools
import io
import json
import logging
import tarfile

import numpy as np
import pytest
import torch
from test_shards import gray_clip

from worldsmith.data import clip_sampling
from worldsmith.data.clip_sampling import take_transitions
from worldsmith.data.dataset import ClipDataset, DatasetConfig, collate, make_loader
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.errors import ConfigError, DataError

NUM_CLIPS = 12


def indices_of(video: torch.Tensor) -> list[int]:
    """Frame indices encoded by ``gray_clip`` from a float (3, T, H, W) sample video in [-1, 1]."""
    level = (video.mean(dim=(0, 2, 3)) + 1) / 2 * 255
    return [int(v) for v in torch.round((level - 5) / 10)]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """12 clips of 14..25 frames (fps 10) in 6 shards, each with one extra view."""
    out = tmp_path_factory.mktemp("many")
    with ShardWriter(out, max_clips_per_shard=2) as writer:
        for i in range(NUM_CLIPS):
            writer.write(gray_clip(f"c{i:02d}", t=14 + i, views=1))
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """7 clips in one shard: fewer shards than readers, so the split is per sample."""
    out = tmp_path_factory.mktemp("single")
    with ShardWriter(out) as writer:
        for i in range(7):
            writer.write(gray_clip(f"s{i}", t=10))
    return out


@pytest.fixture(scope="module")
def uneven(tmp_path_factory):
    """Shards of 5, 1 and 1 clips (three writer sessions): readers run out at different times."""
    out = tmp_path_factory.mktemp("uneven")
    for first, count in ((0, 5), (5, 1), (6, 1)):
        with ShardWriter(out) as writer:
            for i in range(first, first + count):
                writer.write(gray_clip(f"u{i}", t=8))
    return out


def epoch_keys(cfg: DatasetConfig, epoch: int = 0, *, world: int = 2, workers: int = 2) -> list[list[str]]:
    """Keys each rank's real DataLoader yields in one epoch."""
    per_rank = []
    for rank in range(world):
        loader = make_loader(cfg, batch_size=2, num_workers=workers, rank=rank, world_size=world)
        loader.dataset.set_epoch(epoch)
        per_rank.append([key for batch in loader for key in batch["key"]])
    return per_rank


@pytest.mark.parametrize("fixture, expected", [("many", NUM_CLIPS), ("single", 7)])
def test_two_ranks_two_workers_see_every_clip_once(fixture, expected, request):
    cfg = DatasetConfig(str(request.getfixturevalue(fixture)), frames=4, shuffle_buffer=4)
    ranks = epoch_keys(cfg)
    keys = [k for rank in ranks for k in rank]
    assert len(keys) == expected and len(set(keys)) == expected  # every clip, none twice
    assert all(ranks)  # both ranks got work
    assert epoch_keys(cfg) == ranks  # deterministic run to run, workers included
    assert epoch_keys(cfg, epoch=1) != ranks  # another epoch, another order


def test_determinism_and_epochs(many):
    cfg = DatasetConfig(str(many), frames=5, shuffle_buffer=3, views=True)

    def run(epoch: int) -> list[tuple[str, int, torch.Tensor]]:
        ds = ClipDataset(cfg, rank=0, world_size=1)
        ds.set_epoch(epoch)
        return [(s["key"], s["start"], s["video"]) for s in ds]

    first, again, other = run(0), run(0), run(1)
    assert [(k, s) for k, s, _ in first] == [(k, s) for k, s, _ in again]
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(first, again, strict=True))
    assert [k for k, _, _ in other] != [k for k, _, _ in first]
    assert sorted(k for k, _, _ in other) == sorted(k for k, _, _ in first)
    assert {k: s for k, s, _ in other} != {k: s for k, s, _ in first}  # crops change with the epoch
    unshuffled = [s["key"] for s in ClipDataset(dataclasses.replace(cfg, shuffle=False))]
    assert unshuffled == [f"c{i:02d}" for i in range(NUM_CLIPS)]


def test_frame_cache_keeps_the_stream_identical_and_respects_its_budget(many, monkeypatch):
    decodes = []
    real = clip_sampling.decode_video_member
    monkeypatch.setattr(clip_sampling, "decode_video_member",
                        lambda *a, **k: decodes.append(a[0]["__key__"]) or real(*a, **k))  # fmt: skip
    cfg = DatasetConfig(str(many), frames=5, shuffle_buffer=3, views=True, loop=True, size=(16, 16))

    def two_epochs(cache_mb: int) -> list[tuple[str, int, torch.Tensor, torch.Tensor]]:
        decodes.clear()
        stream = iter(ClipDataset(dataclasses.replace(cfg, cache_mb=cache_mb)))
        return [(s["key"], s["start"], s["video"], s["views"]) for s in itertools.islice(stream, 2 * NUM_CLIPS)]

    plain = two_epochs(0)
    assert len(decodes) == 2 * 2 * NUM_CLIPS  # main view and one extra view, every sample
    cached = two_epochs(64)
    assert len(decodes) == 2 * NUM_CLIPS  # the second epoch decodes nothing
    for (k1, s1, v1, w1), (k2, s2, v2, w2) in zip(plain, cached, strict=True):
        assert (k1, s1) == (k2, s2) and torch.equal(v1, v2) and torch.equal(w1, w2)
    decodes.clear()  # a budget that holds some clips only: those are reused, the others decoded again
    small = ClipDataset(dataclasses.replace(cfg, size=(128, 128), views=False, cache_mb=1))
    list(itertools.islice(iter(small), 2 * NUM_CLIPS))
    held = small._cache.clips
    assert 0 < len(held) < NUM_CLIPS and small._cache.used <= 2**20
    assert len(decodes) == 2 * NUM_CLIPS - len(held)
    with pytest.raises(ConfigError, match="cache_mb"):
        DatasetConfig(str(many), cache_mb=-1)


def test_random_crop_keeps_frames_views_and_arrays_aligned(many):
    cfg = DatasetConfig(str(many), frames=6, views=True, seed=7)
    starts = set()
    for s in ClipDataset(cfg):
        idx = list(range(s["start"], s["start"] + 6))
        starts.add(s["start"])
        assert indices_of(s["video"]) == idx
        view_level = (s["views"][0].mean(dim=(0, 2, 3)) + 1) / 2 * 255  # views are 245 - 10 * i
        assert torch.round((245 - view_level) / 10).int().tolist() == idx
        assert s["frame_id"][:, 0].tolist() == idx  # per frame: T rows
        assert s["actions"].tolist() == [[i, 1.0] for i in idx[:-1]]  # per transition: T - 1 rows
        assert s["fps"] == 10.0 and s["caption"] == f"clip {s['key']}"
    assert len(starts) > 3
    for crop, start in (("start", lambda t: 0), ("center", lambda t: (t - 6) // 2)):
        for s in ClipDataset(dataclasses.replace(cfg, temporal_crop=crop)):
            t = 14 + int(s["key"][1:])
            assert s["start"] == start(t) and indices_of(s["video"]) == list(range(start(t), start(t) + 6))


def test_fps_resampling_alignment(many):
    base = DatasetConfig(str(many), frames=5, fps=5.0)  # stride 2 over 10 fps clips
    for reduce, row in (("sum", lambda i: [2 * i + 1, 2]), ("mean", lambda i: [i + 0.5, 1])):
        for s in ClipDataset(dataclasses.replace(base, transition_reduce=reduce)):
            idx = [s["start"] + 2 * k for k in range(5)]
            assert indices_of(s["video"]) == idx and s["frame_id"][:, 0].tolist() == idx
            assert s["actions"].tolist() == [row(i) for i in idx[:-1]] and s["fps"] == 5.0
    s = next(iter(ClipDataset(dataclasses.replace(base, transition_reduce="stack"))))
    first = s["start"]
    assert s["actions"].shape == (4, 2, 2)
    assert s["actions"][:, :, 0].tolist() == [[i, i + 1] for i in range(first, first + 8, 2)]

    with pytest.raises(DataError, match="stride of 2.5 .* need a whole stride"):
        next(iter(ClipDataset(dataclasses.replace(base, fps=4.0))))
    for fps, offsets in ((4.0, [0, 3, 5, 8, 10]), (20.0, [0, 1, 1, 2, 2])):  # fractional stride, upsampling
        for s in ClipDataset(dataclasses.replace(base, fps=fps, arrays=["frame_id"])):
            idx = [s["start"] + o for o in offsets]
            assert indices_of(s["video"]) == idx and s["frame_id"][:, 0].tolist() == idx and "actions" not in s


def test_short_clips_are_dropped_or_padded(single):
    cfg = DatasetConfig(str(single), frames=13, temporal_crop="start")  # clips have 10 frames
    assert list(ClipDataset(cfg)) == []
    s = next(iter(ClipDataset(dataclasses.replace(cfg, drop_short=False))))
    assert indices_of(s["video"]) == list(range(10)) + [9, 9, 9]
    assert s["frame_id"][:, 0].tolist() == list(range(10)) + [9, 9, 9]
    assert s["actions"].tolist() == [[i, 1] for i in range(9)] + [[0, 0]] * 3  # padded transitions are zero


def test_resize_views_and_batches(many):
    cfg = DatasetConfig(str(many), frames=4, size=(16, 24), views=True, arrays=["actions"])
    batch = next(iter(make_loader(cfg, batch_size=3)))
    assert batch["video"].shape == (3, 3, 4, 16, 24) and batch["video"].dtype == torch.float32
    assert batch["views"].shape == (3, 1, 3, 4, 16, 24)
    assert batch["actions"].shape == (3, 3, 2) and "frame_id" not in batch
    assert batch["fps"].dtype == torch.float32 and batch["start"].dtype == torch.int64
    assert isinstance(batch["caption"], list) and len(batch["key"]) == 3
    assert float(batch["video"].min()) >= -1 and float(batch["video"].max()) <= 1
    s = next(iter(ClipDataset(dataclasses.replace(cfg, size=8, views=False))))
    assert s["video"].shape == (3, 4, 8, 8) and "views" not in s
    with pytest.raises(DataError, match="cannot batch 'video'"):
        collate([s, next(iter(ClipDataset(dataclasses.replace(cfg, size=12, views=False))))])


def test_loop_continues_with_the_next_epoch(single):
    cfg = DatasetConfig(str(single), frames=4, loop=True)
    stream = iter(ClipDataset(cfg))
    first, second = [next(stream)["key"] for _ in range(7)], [next(stream)["key"] for _ in range(7)]
    assert sorted(first) == sorted(second) == [f"s{i}" for i in range(7)]
    ds = ClipDataset(dataclasses.replace(cfg, loop=False))
    ds.set_epoch(1)
    assert [s["key"] for s in ds] == second


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_loader_state_resumes_exactly_without_replaying(uneven, single):
    cfg = DatasetConfig(str(uneven), frames=3, shuffle_buffer=4)
    full = [b["key"] for b in make_loader(cfg, batch_size=2, num_workers=3)]
    assert len(full) == 5  # workers hold 3, 1 and 1 batches: two run out early
    for done in range(len(full) + 1):
        loader = make_loader(cfg, batch_size=2, num_workers=3)
        batches = iter(loader)
        for _ in range(done):
            next(batches)
        state = loader.state_dict()
        del batches
        resumed = make_loader(cfg, batch_size=2, num_workers=3)
        resumed.set_epoch(0)
        resumed.load_state_dict(state)
        assert [b["key"] for b in resumed] == full[done:], done
        assert resumed.state_dict()["batches"] == len(full)

    # endless: skipping crosses epochs (whole ones are skipped reading headers only)
    endless = DatasetConfig(str(single), frames=3, shuffle_buffer=4, loop=True)
    stream = iter(make_loader(endless, batch_size=2, num_workers=2))
    full = [next(stream)["key"] for _ in range(14)]
    for done in (5, 9):
        resumed = make_loader(endless, batch_size=2, num_workers=2)
        resumed.load_state_dict({**resumed.state_dict(), "batches": done})
        stream = iter(resumed)
        assert [next(stream)["key"] for _ in range(14 - done)] == full[done:]
    with pytest.raises(DataError, match="batch_size"):
        make_loader(cfg, batch_size=3).load_state_dict(state)


def test_trainer_data_stream_resumes_through_the_loader_state(many):
    from worldsmith.train.data_stream import DataStream

    cfg = DatasetConfig(str(many), frames=3, shuffle_buffer=4)  # 12 clips: 6 batches per epoch
    full = DataStream(make_loader(cfg, batch_size=2, num_workers=2))
    keys = [next(full)["key"] for _ in range(9)]  # crosses into epoch 1
    interrupted = DataStream(make_loader(cfg, batch_size=2, num_workers=2))
    for _ in range(4):
        next(interrupted)
    state = json.loads(json.dumps(interrupted.state_dict()))  # checkpoints store it as JSON
    resumed = DataStream(make_loader(cfg, batch_size=2, num_workers=2))
    resumed.load_state_dict(state)
    assert [next(resumed)["key"] for _ in range(5)] == keys[4:]


def test_bad_samples_are_skipped_and_counted(many, tmp_path, caplog):
    with tarfile.open(many / "part-000000.tar") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for name, data in members:
            data = b"\x00not an mp4" if name == "c00.mp4" else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cfg = DatasetConfig(str(tmp_path / "bad.tar"), frames=4)
    with caplog.at_level(logging.WARNING):
        assert [s["key"] for s in ClipDataset(cfg)] == ["c01"]
    assert "c00" in caplog.text and "1 bad samples skipped" in caplog.text
    with pytest.raises(DataError, match="c00 .* does not decode"):
        list(ClipDataset(dataclasses.replace(cfg, strict=True)))


def test_config_and_data_mismatch_errors(many):
    for bad in (dict(frames=0), dict(temporal_crop="middle"), dict(size=(16,)), dict(fps=-1.0),
                dict(transition_reduce="max"), dict(arrays=["video"]), dict(shards="")):  # fmt: skip
        with pytest.raises(ConfigError):
            DatasetConfig(**{"shards": str(many), **bad})
    assert DatasetConfig(str(many), size=[16, 24]).size == (16, 24)  # YAML lists become tuples
    with pytest.raises(DataError, match="has no array \\['speed'\\]"):
        next(iter(ClipDataset(DatasetConfig(str(many), arrays=["speed"]))))
    with pytest.raises(ConfigError, match="rank and world_size"):
        ClipDataset(DatasetConfig(str(many)), rank=2, world_size=2)
    with pytest.raises(DataError, match="does not exist"):
        ClipDataset(DatasetConfig(str(many / "nope")))


def test_take_transitions_rule():
    actions = np.arange(10, dtype=np.float32)[:, None]  # transition t -> value t
    assert take_transitions(actions, np.array([2, 3, 4]), 1, "sum")[:, 0].tolist() == [2, 3]  # plain crop rule
    assert take_transitions(actions, np.array([0, 3, 6]), 3, "sum")[:, 0].tolist() == [3, 12]
    assert take_transitions(actions, np.array([0, 3, 6]), 3, "mean")[:, 0].tolist() == [1, 4]
    assert take_transitions(actions, np.array([7, 9, 10, 10]), 2, "sum")[:, 0].tolist() == [15, 9, 0]
