"""`worldsmith demo --quick`: the whole platform end to end on built-in data, and resuming it."""

import json

from worldsmith.cli import main
from worldsmith.demo import quick_config, run_demo
from worldsmith.io.video import probe


def test_quick_demo_end_to_end_and_rerun(tmp_path, capsys):
    cfg = quick_config()
    summary = run_demo(cfg, tmp_path, progress=False)
    m = summary["metrics"]
    n = cfg.clip_frames - 1  # generated frames after the given first one
    assert m["episodes"] == cfg.heldout and len(m["model"]["psnr_per_step"]) == n
    for row in ("model", "tokenizer", "copy_first"):
        assert 5 < m[row]["psnr"] < 60 and -1 <= m[row]["ssim"] <= 1, row
    assert len(m["captions"]) == cfg.heldout and all(m["captions"])
    for name in ("index.html", "rollouts.mp4", "rollouts.png", "data_sheet.png", "metrics.json",
                 "tokenizer/model.safetensors", "tokenizer/config.yaml", "world_model/model.safetensors",
                 "world_model/config.yaml", "world_model/logs.jsonl"):
        assert (tmp_path / name).is_file(), name
    info = probe(tmp_path / "rollouts.mp4")
    assert info.num_frames == cfg.clip_frames and info.width == 3 * cfg.size and info.height == cfg.heldout * cfg.size
    page = (tmp_path / "index.html").read_text()
    assert "rollouts.mp4" in page and page.count("<svg") == 3 and "copy the first frame" in page
    assert m["captions"][0] in page
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == m["model"]

    # running the same command again resumes: nothing is simulated or trained twice, results are identical
    mtimes = {d: (tmp_path / d / "model.safetensors").stat().st_mtime_ns for d in ("tokenizer", "world_model")}
    again = run_demo(cfg, tmp_path, progress=False)
    assert again["metrics"]["model"] == m["model"]
    assert {d: (tmp_path / d / "model.safetensors").stat().st_mtime_ns for d in mtimes} == mtimes


def test_demo_dry_run_prints_resolved_config(capsys):
    try:
        main(["demo", "--quick", "--dry-run", "--set", "diffusion.train.steps=3", "--set", "world=bounce"])
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert "steps: 3" in out and "world: bounce" in out and "tokenizer:" in out and "diffusion:" in out
