"""`worldsmith demo --quick`: the shipped action model asked "what if" on held-out scenes, scored, and rerun."""

import json

from worldsmith.cli import main
from worldsmith.demo import quick_config, run_demo
from worldsmith.io.video import probe


def test_quick_demo_end_to_end_and_rerun(tmp_path):
    cfg = quick_config()
    summary = run_demo(cfg, tmp_path, progress=False)
    m = summary["metrics"]
    assert m["episodes"] == 2 * cfg.scenes and m["frames"] == cfg.frames
    for row in ("model", "no_action", "copy_first", "tokenizer"):
        assert 5 < m[row]["psnr"] < 60 and -1 <= m[row]["ssim"] <= 1, row
        assert len(m[row]["psnr_per_step"]) == cfg.frames and m[row]["gripper_error_px"] >= 0, row
    assert m["discrimination_pairs"] == 2 * cfg.scenes and 0 <= m["action_discrimination"] <= 1
    assert m["sampling"] == {"steps": 3, "sampler": "euler"}  # the shipped action model's own defaults
    for name in ("index.html", "futures.mp4", "futures.png", "data_sheet.png", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    info = probe(tmp_path / "futures.mp4")  # one row per scene: truth A | model A | truth B | model B
    assert info.num_frames == cfg.frames + 1 and info.width == 4 * cfg.size and info.height == cfg.scenes * cfg.size
    page = (tmp_path / "index.html").read_text()
    assert "futures.mp4" in page and page.count("<svg") == 2 and "copy the first frame" in page
    assert "Action discrimination" in page and m["captions"][0] in page
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == m["model"]

    # running the same command again resumes: nothing is simulated twice, and the rollouts are the same
    shards = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.tar")}
    again = run_demo(cfg, tmp_path, progress=False)
    assert again["metrics"]["model"] == m["model"]
    assert {p: p.stat().st_mtime_ns for p in shards} == shards


def test_demo_dry_run_prints_resolved_config_and_refuses_a_model_without_actions(capsys, tmp_path):
    try:
        main(["demo", "--quick", "--dry-run", "--set", "scenes=3", "--set", "sampling={steps: 5}"])
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert "scenes: 3" in out and "model: arm-action" in out and "steps: 5" in out
    try:
        main(["demo", "--quick", "--out", str(tmp_path), "--set", "model=arm-tokenizer"])
    except SystemExit as e:
        assert e.code == 1
    assert "arm-tokenizer" in capsys.readouterr().err
