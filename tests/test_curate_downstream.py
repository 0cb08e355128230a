"""The output of `worldsmith curate` is accepted by every command that takes data: inspect, training, the loaders."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from curate_inputs import make_input_folder
from helpers import run_cli
from worldsmith.curate.pipeline import CurateConfig, run_curation
from worldsmith.data.dataset import DatasetConfig, make_loader
from worldsmith.data.inspect import inspect
from worldsmith.data.manifest import list_shards, read_manifest, read_manifest_rows
from worldsmith.errors import DataError

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false", "--set", "train.log_every=1"]


@pytest.fixture(scope="module")
def curated(tmp_path_factory, one_torch_thread):
    root = make_input_folder(tmp_path_factory.mktemp("input"), videos=2)
    out = tmp_path_factory.mktemp("curated") / "out"
    run_curation(root, out, CurateConfig(workers=1, progress=False))
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    kept = {r["key"]: r["shard"] for r in rows if r["kept"]}
    assert kept and len(kept) < len(rows)  # some clips dropped, so "kept only" is tested
    return out, kept


def test_shards_of_a_curate_output_are_its_kept_clips(curated):
    out, kept = curated
    shards = sorted(out / s for s in set(kept.values()))
    assert sorted(list_shards(out)) == sorted(list_shards(out / "manifest.parquet")) == shards
    for given in (out, out / "manifest.parquet"):
        rows = read_manifest_rows(given)
        assert {r["key"]: r["shard"] for r in rows} == kept  # shard paths relative to the curate folder
        assert all(r["num_views"] == 1 and r["bytes"] > 0 for r in rows)
    assert read_manifest(out).num_rows == len(kept)


def test_inspect_accepts_the_folder_and_its_manifest(curated, tmp_path):
    out, kept = curated
    for given in (out, out / "manifest.parquet"):
        stats = inspect(str(given), tmp_path / "sheet.png", sheet_clips=2)
        assert stats["clips"] == len(kept) and stats["manifest"] == "ok" and stats["bad_samples"] == 0
        assert stats["shards"] == len(set(kept.values())) and (tmp_path / "sheet.png").is_file()


def test_the_loader_reads_every_kept_clip_once(curated):
    out, kept = curated
    for given in (out, out / "manifest.parquet"):
        cfg = DatasetConfig(shards=str(given), frames=4, size=(32, 32), shuffle=False, drop_short=True)
        keys = [k for batch in make_loader(cfg, batch_size=2) for k in batch["key"]]
        assert sorted(keys) == sorted(kept)


def test_cli_inspect_and_training_take_a_curate_output(curated, capsys, tmp_path):
    out, kept = curated
    code, text, err = run_cli(capsys, "data", "inspect", str(out), "--json", "--out", str(tmp_path / "s.png"))
    assert code == 0 and json.loads(text)["clips"] == len(kept), err
    code, text, err = run_cli(capsys, "train", "tokenizer", "--out", str(tmp_path / "run"), "--data",
                              str(out / "manifest.parquet"), "--preset", "cv4x8x8-tiny", "--set", "train.steps=1",
                              "--set", "train.batch_size=2", "--set", "data.frames=5", "--set", "data.size=32",
                              *QUIET)  # fmt: skip
    assert code == 0 and json.loads(text)["steps"] == 1, err


def test_a_curate_output_that_kept_nothing_says_so(curated, tmp_path):
    out, _ = curated
    table = pq.read_table(out / "manifest.parquet")
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(table.set_column(table.column_names.index("kept"), "kept", [[False] * table.num_rows]),
                   empty / "manifest.parquet")  # fmt: skip
    with pytest.raises(DataError, match="no .tar shards"):
        list_shards(empty)
    with pytest.raises(DataError, match="lists no shards"):
        list_shards(empty / "manifest.parquet")
