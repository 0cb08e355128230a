"""`worldsmith demo --quick`: the whole platform end to end on built-in data, and resuming it."""

import json

from worldsmith.cli import main
from worldsmith.demo import quick_config, run_demo
from worldsmith.io.video import probe


def test_quick_demo_end_to_end_and_rerun(tmp_path, capsys):
    cfg = quick_config()
    summary = run_demo(cfg, tmp_path, progress=False)
    m = summary["metrics"]
    assert m["episodes"] == cfg.heldout and len(m["model"]["psnr_per_step"]) == cfg.rollout_frames
    assert 10 < m["model"]["psnr"] < 60 and 0 < m["model"]["ssim"] <= 1
    for name in ("index.html", "rollouts.mp4", "rollouts.png", "data_sheet.png", "metrics.json",
                 "run/model.safetensors", "run/config.yaml", "run/logs.jsonl"):
        assert (tmp_path / name).is_file(), name
    info = probe(tmp_path / "rollouts.mp4")
    assert info.num_frames == cfg.rollout_frames and info.width == 3 * cfg.size
    page = (tmp_path / "index.html").read_text()
    assert "rollouts.mp4" in page and "<svg" in page and "copy the last frame" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == m["model"]

    # running the same command again resumes: nothing is simulated or trained twice, results are identical
    mtime = (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns
    again = run_demo(cfg, tmp_path, progress=False)
    assert again["metrics"]["model"] == m["model"]
    assert (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns == mtime


def test_demo_dry_run_prints_resolved_config(capsys):
    try:
        main(["demo", "--quick", "--dry-run", "--set", "train.steps=3", "--set", "world=bounce"])
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert "steps: 3" in out and "world: bounce" in out and "model:" in out
