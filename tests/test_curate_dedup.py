"""Dedup stage: planted near-duplicates (re-encoded, resized, 5 % cropped, exact copies) are removed, distinct
clips kept; the result does not depend on the input order; keep policies are honoured."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from worldsmith.curate import dedup, synth
from worldsmith.curate.record import ClipRecord
from worldsmith.errors import ConfigError
from worldsmith.io import video

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZE = (128, 96)  # (W, H)
COPIES = ("crf35", "half", "crop5", "copy")


def _round_trip(frames: np.ndarray, crf: int = 18, size=None) -> np.ndarray:
    return video.decode(video.encode_mp4_bytes(frames, 25, crf=crf), size=size)


def _record(key: str, frames: np.ndarray, cfg: dedup.DedupConfig, n: int) -> ClipRecord:
    hashes, embedding = dedup.clip_signature(frames, cfg)
    rec = ClipRecord(key=key, source=f"/videos/{key[:3]}.mp4", start_frame=0, end_frame=n, start_s=0.0,
                     end_s=n / 25, fps=25.0, width=frames.shape[2], height=frames.shape[1])  # fmt: skip
    rec.phash, rec.embedding = hashes, embedding
    return rec


@pytest.fixture(scope="module")
def planted() -> list[ClipRecord]:
    """12 distinct clips (every shot kind, different scenes); clips d00 and d01 each get 4 planted copies.

    Originals are the longest clips (record length), so the default ``longest`` policy must keep them."""
    cfg = dedup.DedupConfig()
    records = []
    for i in range(12):
        shot = synth.render_shot(synth.SHOT_KINDS[i % len(synth.SHOT_KINDS)], 24, SIZE, seed=300 + i)
        records.append(_record(f"d{i:02d}", _round_trip(shot), cfg, 60))
        if i < 2:
            w, h = SIZE
            dy, dx = round(0.025 * h), round(0.025 * w)  # 5 % cropped away in all
            variants = {
                "crf35": _round_trip(shot, crf=35),
                "half": _round_trip(shot, size=(h // 2, w // 2)),
                "crop5": _round_trip(np.ascontiguousarray(shot[:, dy : h - dy, dx : w - dx])),
                "copy": _round_trip(shot),
            }
            records += [_record(f"d{i:02d}_{name}", frames, cfg, 50) for name, frames in variants.items()]
    return records


def _dropped(records: list[ClipRecord]) -> dict[str, str]:
    return {r.key: r.reason for r in records if r.dropped_by == "dedup"}


def _planted_keys() -> set[str]:
    return {f"d{i:02d}_{name}" for i in range(2) for name in COPIES}


def test_signature_shapes_and_phash():
    frames = synth.render_shot("moving", 10, (64, 48), seed=1)
    hashes, embedding = dedup.clip_signature(frames, dedup.DedupConfig(frames=3))
    assert len(hashes) == 3 and all(-(2**63) <= h < 2**63 for h in hashes)  # int64 range (Arrow/Parquet)
    assert len(embedding) == 1280 and abs(np.linalg.norm(embedding) - 1) < 1e-6
    assert len(dedup.clip_signature(frames[:1], dedup.DedupConfig(frames=4))[0]) == 4  # fewer frames than samples
    flat = np.full((32, 32, 3), 90, np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, 0).repeat(3, 2)
    assert dedup.phash(flat) != dedup.phash(ramp)
    bright = np.clip(ramp.astype(int) + 20, 0, 255).astype(np.uint8)
    assert bin((dedup.phash(ramp) ^ dedup.phash(bright)) & (2**64 - 1)).count("1") <= 4
    with pytest.raises(ValueError, match="uint8"):
        dedup.clip_signature(np.zeros((0, 8, 8, 3), np.uint8), dedup.DedupConfig())


def test_removes_planted_copies_and_keeps_distinct_clips(planted):
    records = dedup.deduplicate(copy.deepcopy(planted), dedup.DedupConfig())
    dropped = _dropped(records)
    precision = len(set(dropped) & _planted_keys()) / max(1, len(dropped))
    recall = len(set(dropped) & _planted_keys()) / len(_planted_keys())
    print(f"\ndedup on planted set: precision {precision:.2f} recall {recall:.2f}")
    assert set(dropped) == _planted_keys()
    assert all(reason.startswith(f"near-duplicate of {key[:3]} (") for key, reason in dropped.items())


@pytest.mark.parametrize("step", ["phash", "semantic"])
def test_each_step_alone_finds_the_copies(planted, step):
    cfg = dedup.DedupConfig(phash=step == "phash", semantic=step == "semantic", min_cluster_size=4)
    dropped = _dropped(dedup.deduplicate(copy.deepcopy(planted), cfg))
    assert set(dropped) == _planted_keys()
    assert all(("pHash" if step == "phash" else "SemDeDup cosine") in reason for reason in dropped.values())


def test_same_result_for_any_input_order(planted):
    cfg = dedup.DedupConfig(min_cluster_size=3, keep="centroid_far")
    reference = _dropped(dedup.deduplicate(copy.deepcopy(planted), cfg))
    for seed in range(3):
        shuffled = copy.deepcopy(planted)
        random.Random(seed).shuffle(shuffled)
        result = dedup.deduplicate(shuffled, cfg)
        assert [r.key for r in result] == [r.key for r in shuffled]  # records come back in the order given
        assert _dropped(result) == reference


def test_keep_policies(planted):
    group = [r for r in copy.deepcopy(planted) if r.key.startswith("d00")]  # d00 and its 4 copies
    survivors = {}
    for policy in ("longest", "first", "sharpest"):
        records = copy.deepcopy(group)
        for r in records:
            r.scores["sharpness"] = 5.0 if r.key == "d00_half" else 1.0
        if policy == "first":
            records[0].end_frame = 10  # no longer the longest: "first" must not care
        kept = [r.key for r in dedup.deduplicate(records, dedup.DedupConfig(keep=policy)) if r.kept]
        survivors[policy] = kept
    assert survivors == {"longest": ["d00"], "first": ["d00"], "sharpest": ["d00_half"]}
    records = copy.deepcopy(group)
    far = dedup.deduplicate(records, dedup.DedupConfig(keep="centroid_far", phash=False))
    assert sum(r.kept for r in far) == 1


def test_dropped_and_unsigned_records_are_left_alone(planted):
    records = copy.deepcopy(planted[:5])  # d00 and its copies
    records[0].drop("motion", "static clip")
    records[1].phash, records[1].embedding = [], []
    dedup.deduplicate(records, dedup.DedupConfig())
    assert records[0].dropped_by == "motion" and records[1].kept
    assert sum(r.dropped_by == "dedup" for r in records) == 2  # of d00_half, d00_crop5, d00_copy one is kept
    assert dedup.deduplicate(records[:1], dedup.DedupConfig()) == records[:1]


def test_config_errors():
    with pytest.raises(ConfigError, match="dedup.keep"):
        dedup.DedupConfig(keep="random")
    with pytest.raises(ConfigError, match="eps"):
        dedup.DedupConfig(eps=1.5)
