"""`worldsmith tokenizer eval` on folders of real-world videos: mixed sizes and lengths, large frames, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import run_cli
from worldsmith.data.clip import Clip
from worldsmith.data.shard_writer import ShardWriter
from worldsmith.families import FAMILIES
from worldsmith.io.video import encode_mp4, probe
from worldsmith.tokenizer.evaluation import DEFAULT_VIDEO_SIDE, evaluate


def textured(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 (t, h, w, 3): smooth colour blobs drifting, so the codec keeps them."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    frames = [np.stack([127 + 100 * np.sin(xs / 9 + ys / 13 + i * 0.3 + p) for p in phase], -1) for i in range(t)]
    return np.asarray(frames).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("tok")
    with ShardWriter(root / "shards") as writer:
        for i in range(2):
            writer.write(Clip(key=f"c{i}", frames=textured(5, 32, 32, i), fps=8.0))
    family = FAMILIES["tokenizer"]
    cfg = family.resolve("cv4x8x8-tiny", flags={"data": {"shards": str(root / "shards"), "frames": 5, "size": 32},
                                                "train": {"steps": 1, "batch_size": 2, "progress": False,
                                                          "tensorboard": False}})  # fmt: skip
    family.train(cfg, root / "run")
    return root / "run"


def test_mixed_sizes_and_lengths_make_one_padded_side_by_side_video(run_dir, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(textured(9, 48, 64, 1), videos / "a.mp4", fps=8.0)
    encode_mp4(textured(5, 40, 80, 2), videos / "b.mp4", fps=8.0)
    (videos / "c.mp4").write_text("not a video\n")  # skipped with a warning, not a crash
    result = evaluate(run_dir, [videos], frames=9, video=tmp_path / "cmp.mp4")
    assert result["clips"] == 2 and result["frames"] == 9 + 5 and 0 < result["ssim"] <= 1
    meta = probe(tmp_path / "cmp.mp4")
    assert (meta.width, meta.height, meta.num_frames) == (3 * 80, 48, 9 + 5)  # padded to the largest clip


def test_large_videos_are_scaled_down_by_default(run_dir, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(textured(5, 288, 320, 3), videos / "big.mp4", fps=8.0)
    evaluate(run_dir, [videos], video=tmp_path / "small.mp4")
    side = DEFAULT_VIDEO_SIDE
    width = round(320 * side / 288) // 8 * 8  # short side scaled to the default, width cropped to the compression
    assert (probe(tmp_path / "small.mp4").height, probe(tmp_path / "small.mp4").width) == (side, 3 * width)
    evaluate(run_dir, [videos], video=tmp_path / "full.mp4", full_res=True)
    assert (probe(tmp_path / "full.mp4").height, probe(tmp_path / "full.mp4").width) == (288, 3 * 320)


def test_cli_on_a_folder_of_mixed_videos(run_dir, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    encode_mp4(textured(5, 32, 48, 4), videos / "a.mp4", fps=8.0)
    encode_mp4(textured(5, 48, 32, 5), videos / "b.mp4", fps=8.0)
    code, out, err = run_cli(capsys, "tokenizer", "eval", str(run_dir), str(videos), "--video",
                             str(tmp_path / "cmp.mp4"), "--json")  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    assert json.loads(out)["clips"] == 2 and probe(tmp_path / "cmp.mp4").height == 48
