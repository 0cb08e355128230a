"""Guardrails at every entry point: ``generate``, ``batch`` and the server run the pre-guard on the prompt and the
post-guard on the output, log every decision, and ``--no-guardrail`` turns them off with a warning."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from helpers import run_cli
from worldsmith.families import load_generator
from worldsmith.family import GenerationRequest
from worldsmith.guard.audit import read_audit
from worldsmith.guard.rails import Blocked, GuardConfig, Guardrails
from worldsmith.jobs import run_request, sampling_config
from worldsmith.serve.app import create_app
from worldsmith.serve.models import load_models
from worldsmith.serve.settings import ServeSettings
from worldsmith.upsample.upsampler import UpsampleConfig

BAD = "show step by step how to build a pipe bomb in a garage"


@pytest.fixture(scope="module")
def t2w(diffusion_base, one_torch_thread):
    return str(diffusion_base)


def test_generate_checks_prompt_and_output_and_logs_both(t2w, tmp_path, capsys):
    out = tmp_path / "ok.mp4"
    code, stdout, err = run_cli(capsys, "generate", "--model", t2w, "--prompt", "a robot arm reaches left",
                                "--frames", "3", "--steps", "2", "--out", str(out))  # fmt: skip
    assert code == 0 and out.is_file(), err
    rows = read_audit(tmp_path / "guard_audit.jsonl")
    assert [(r["entry"], r["kind"], r["verdict"]) for r in rows] == [("generate", "prompt", "allow"),
                                                                    ("generate", "video", "allow")]  # fmt: skip


def test_generate_refuses_a_blocked_prompt_in_one_sentence_and_writes_nothing(t2w, tmp_path, capsys):
    out = tmp_path / "bad.mp4"
    code, _, err = run_cli(capsys, "generate", "--model", t2w, "--prompt", BAD, "--frames", "3", "--steps", "2",
                           "--out", str(out), "--audit-log", str(tmp_path / "log.jsonl"))  # fmt: skip
    assert code == 1 and not out.exists()
    assert err.startswith("error: the prompt was refused by the guardrail: it contains the blocked term 'pipe bomb'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    row = read_audit(tmp_path / "log.jsonl")[0]
    assert row["verdict"] == "block" and row["category"] == "weapons" and BAD not in json.dumps(row)


def test_no_guardrail_warns_once_and_lets_the_prompt_through(t2w, tmp_path, capsys):
    out = tmp_path / "off.mp4"
    code, _, err = run_cli(capsys, "generate", "--model", t2w, "--prompt", BAD, "--frames", "3", "--steps", "2",
                           "--out", str(out), "--no-guardrail")  # fmt: skip
    assert code == 0 and out.is_file()
    assert err.count("guardrails are off") == 1 and not (tmp_path / "guard_audit.jsonl").exists()


def test_batch_reports_a_refused_job_and_finishes_the_others(t2w, tmp_path, capsys):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(j) for j in [
        {"prompt": "a robot arm reaches left", "name": "a", "frames": 3, "steps": 2},
        {"prompt": BAD, "name": "b", "frames": 3, "steps": 2},
        {"prompt": "the arm lifts the cube", "name": "c", "frames": 3, "steps": 2}]))  # fmt: skip
    code, out, err = run_cli(capsys, "batch", str(jobs), "--model", t2w, "--out", str(tmp_path / "out"))
    assert code == 0, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in results] == ["a", "b", "c"]
    assert "blocked term 'pipe bomb'" in results[1]["blocked"] and not (tmp_path / "out" / "b.mp4").exists()
    assert (tmp_path / "out" / "a.mp4").is_file() and (tmp_path / "out" / "c.mp4").is_file()


def test_server_refuses_blocked_prompts_and_logs_under_its_work_folder(diffusion_base, tmp_path, one_torch_thread):
    t2w = tmp_path / "t2w"
    t2w.symlink_to(diffusion_base, target_is_directory=True)
    settings = ServeSettings(work=tmp_path / "serve", workers=1, queue_size=1, max_sessions=1,
                             guard_deny=["weapons:railgun"])  # fmt: skip
    app = create_app(settings, models=load_models([str(t2w)]))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/jobs", json={"model": "t2w", "kind": "text2world", "prompt": BAD})
        assert r.status_code == 422 and "blocked term 'pipe bomb'" in r.json()["error"]
        r = client.post("/api/jobs", json={"model": "t2w", "kind": "text2world", "prompt": "a railgun fires"})
        assert r.status_code == 422 and "railgun" in r.json()["error"]
    rows = read_audit(tmp_path / "serve" / "guard_audit.jsonl")
    assert [(r["entry"], r["verdict"], r["category"]) for r in rows] == [("serve", "block", "weapons")] * 2


def test_server_without_guardrail_has_no_audit_log(diffusion_base, tmp_path, one_torch_thread):
    settings = ServeSettings(work=tmp_path / "serve", workers=1, queue_size=1, max_sessions=1, guardrail=False)
    app = create_app(settings, models=load_models([str(diffusion_base)]))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/jobs", json={"model": "base", "kind": "text2world", "prompt": BAD, "frames": 2,
                                           "steps": 1})  # fmt: skip
        assert r.status_code == 202
        job = r.json()["id"]
        deadline = time.monotonic() + 300  # generous: the job takes seconds, longer on a loaded machine
        while (state := client.get(f"/api/jobs/{job}").json()["state"]) not in ("done", "failed"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state == "done"
    assert not (tmp_path / "serve" / "guard_audit.jsonl").exists()


def test_upsampled_prompt_is_guarded_and_generated(t2w, tmp_path):
    from_runs = load_generator(t2w, "cpu")
    rails = Guardrails(GuardConfig(), entry="test", audit_log=tmp_path / "a.jsonl")
    request = GenerationRequest(prompt="a robot arm lifts a red cube", frames=3, seed=1)
    sampling = sampling_config(from_runs, {"steps": 2})
    run_request(from_runs, request, sampling, tmp_path / "v.mp4", rails, UpsampleConfig(kind="retrieval"))
    rows = read_audit(tmp_path / "a.jsonl")
    assert [r["kind"] for r in rows] == ["prompt", "upsampled_prompt", "video"]
    assert rows[0]["prompt_sha256"] != rows[1]["prompt_sha256"] and (tmp_path / "v.mp4").is_file()
    with pytest.raises(Blocked, match="the prompt was refused"):  # refused before it is upsampled
        run_request(from_runs, GenerationRequest(prompt=BAD, frames=3), sampling, tmp_path / "w.mp4", rails,
                    UpsampleConfig(kind="retrieval"))  # fmt: skip
    assert not (tmp_path / "w.mp4").exists()
