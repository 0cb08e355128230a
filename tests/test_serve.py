"""The HTTP API (worldsmith/serve): every endpoint, the job queue (progress, cancel, time limit, 429), uploads
(probed and decoded), play sessions over the websocket, security (token, origins), JSON errors, guardrail hooks.

Real models throughout: the shipped ``arm-action`` (action rollouts, play) and a tiny Text2World run trained here.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from helpers import run_cli
from worldsmith.envs.evaluate import eval_seeds
from worldsmith.envs.world_model import BatchedWorldModelEnv
from worldsmith.errors import ConfigError
from worldsmith.io.encode import encode_mp4_bytes
from worldsmith.io.video import decode
from worldsmith.serve.app import create_app
from worldsmith.serve.models import load_models
from worldsmith.serve.settings import ServeSettings
from worldsmith.worlds.arm import ArmWorld
from worldsmith.worlds.base import WorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEED = eval_seeds(1)[0]
RIGHT = [0.0, 0.02, 0.0, 0.0, 0.0, 0.0, 1.0]
LONG_ACTIONS = [[0.0] * 7] * 63  # 64 frames at 50 steps: minutes, so it is still running when cancelled


class Refuse:
    """A guardrail for the tests: refuses prompts with "forbidden", and every output while ``videos`` is set."""

    videos = False

    def check_prompt(self, text: str) -> str | None:
        return "it names something forbidden." if "forbidden" in text else None

    def check_video(self, video: np.ndarray) -> str | None:
        if self.videos:
            return "it shows something withheld."
        return None


class Crash:
    def check_prompt(self, text: str) -> str | None:
        if text == "crash":
            raise RuntimeError("a bug with a secret /etc/path in its message")
        return None

    def check_video(self, video: np.ndarray) -> str | None:
        return None


@pytest.fixture(scope="module")
def models(tmp_path_factory, diffusion_base, one_torch_thread) -> dict:
    """The shipped arm-action and a tiny Text2World run (conftest's base, 4 training steps: real, not good),
    served under the name t2w."""
    t2w = tmp_path_factory.mktemp("t2w") / "t2w"
    t2w.symlink_to(diffusion_base, target_is_directory=True)
    return load_models(["arm-action", str(t2w)])


@pytest.fixture(scope="module")
def guard_state() -> Refuse:
    return Refuse()


@pytest.fixture(scope="module")
def client(models, guard_state, tmp_path_factory):
    settings = ServeSettings(work=tmp_path_factory.mktemp("serve"), workers=1, queue_size=1, max_sessions=1,
                             max_upload_bytes=200_000, max_frames=64)  # fmt: skip
    app = create_app(settings, models=models, guards=[guard_state, Crash()])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def wait(client, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    return body["error"]


def png_bytes(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def sim_first_frame(size: int = 64) -> np.ndarray:
    world = ArmWorld(WorldConfig(size=size))
    try:
        return world.reset(SEED)
    finally:
        world.close()


def data_url_frame(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


# -- models, health, pages ----------------------------------------------------------------------------------------
def test_health_and_models_describe_what_is_served(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and len(health["models"]) == 2 and health["play_sessions"]["limit"] == 1
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    arm = listed["arm-action"]
    assert arm["kinds"] == ["action"] and arm["playable"] and arm["world"] == "arm" and arm["action_dim"] == 7
    assert {c["key"] for c in arm["controls"]} >= set("wasdrfqe") | {" "}
    t2w = listed["t2w"]
    assert t2w["kinds"] == ["text2world", "video2world"] and not t2w["playable"] and "actions" in t2w["why_not_playable"]
    detail = client.get("/api/models/arm-action").json()
    assert "arm-action" in detail["card"] and detail["size"] == 64
    assert "no model named" in error_of(client.get("/api/models/nope"), 404)


def test_pages_and_docs_are_served(client):
    for path in ("/play", "/gallery"):
        page = client.get(path)
        assert page.status_code == 200 and "<script" in page.text
    assert client.get("/static/play.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/api/jobs" in client.get("/openapi.json").json()["paths"]
    assert "nothing at" in error_of(client.get("/api/nothing"), 404)
    assert "not allowed" in error_of(client.put("/api/health"), 405)


def test_starts_are_held_out_simulator_first_frames(client):
    body = client.get("/api/starts", params={"model": "arm-action", "count": 2}).json()
    assert [s["seed"] for s in body["starts"]] == eval_seeds(2)
    assert np.array_equal(data_url_frame(body["starts"][0]["image"]), sim_first_frame())
    assert "no simulator starts" in error_of(client.get("/api/starts", params={"model": "t2w"}), 404)
    error_of(client.get("/api/starts", params={"model": "arm-action", "count": 1000}), 422)


# -- uploads ------------------------------------------------------------------------------------------------------
def test_uploads_are_probed_and_decoded(client):
    image = client.post("/api/uploads", content=png_bytes(sim_first_frame()))
    assert image.status_code == 201, image.text
    assert image.json()["kind"] == "image" and image.json()["width"] == 64
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    video = client.post("/api/uploads", content=encode_mp4_bytes(frames, 10.0)).json()
    assert video["kind"] == "video" and video["frames"] == 6 and (video["width"], video["height"]) == (48, 32)


@pytest.mark.parametrize("body, headers, status, says", [
    (b"", {}, 400, "empty"),
    (b"this is not a video" * 10, {}, 415, "not an image or video"),
    (b"x" * 300_000, {}, 413, "limit"),
    (b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nabc\r\n--b--", {"content-type": "multipart/form-data; boundary=b"}, 415, "not a form"),
])  # fmt: skip
def test_bad_uploads_get_one_sentence(client, body, headers, status, says):
    assert says in error_of(client.post("/api/uploads", content=body, headers=headers), status)


def test_a_truncated_video_or_an_oversize_stream_is_refused_and_nothing_is_kept(client):
    data = encode_mp4_bytes(np.random.default_rng(1).integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), 10.0)
    before = {p.name for p in client.app.state.uploads.root.iterdir()}
    truncated = client.post("/api/uploads", content=data[: len(data) // 2])
    assert truncated.status_code in (415, 422) and error_of(truncated, truncated.status_code)

    def chunks():  # no Content-Length: the limit applies while the body arrives
        for _ in range(40):
            yield b"y" * 10_000

    assert "limit" in error_of(client.post("/api/uploads", content=chunks()), 413)
    assert {p.name for p in client.app.state.uploads.root.iterdir()} == before  # nothing left behind


# -- jobs ---------------------------------------------------------------------------------------------------------
def test_an_action_job_from_an_upload_rolls_out_the_given_actions(client):
    upload = client.post("/api/uploads", content=png_bytes(sim_first_frame())).json()
    job = client.post("/api/jobs", json={"model": "arm-action", "kind": "action", "input": upload["id"],
                                         "actions": [RIGHT] * 5, "seed": 3})  # fmt: skip
    assert job.status_code == 202 and job.json()["state"] in ("queued", "running")
    done = wait(client, job.json()["id"])
    assert done["state"] == "done" and done["progress"] == 1.0 and set(done["outputs"]) == {"video", "sheet"}
    video = client.get(done["outputs"]["video"])
    assert video.headers["content-type"] == "video/mp4"
    frames = decode(io.BytesIO(video.content))
    assert frames.shape == (6, 64, 64, 3)
    assert client.get(done["outputs"]["sheet"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no truth" in error_of(client.get(f"/api/jobs/{done['id']}/truth"), 404)
    assert error_of(client.get(f"/api/jobs/{done['id']}/..%2Fjob.json"), 404)  # no path reaches other files
    assert "not one of them" in error_of(client.get(f"/api/jobs/{done['id']}/job.json"), 404)
    assert any(j["id"] == done["id"] for j in client.get("/api/jobs").json())
    assert "already finished" in error_of(client.delete(f"/api/jobs/{done['id']}"), 409)


def test_a_policy_job_returns_the_simulators_video_as_truth(client):
    job = client.post("/api/jobs", json={"model": "arm-action", "kind": "action", "start_seed": SEED,
                                         "policy": "scripted", "task": "reach", "frames": 6}).json()  # fmt: skip
    done = wait(client, job["id"])
    assert done["state"] == "done" and set(done["outputs"]) == {"video", "truth", "sheet"}
    truth = decode(io.BytesIO(client.get(done["outputs"]["truth"]).content))
    model = decode(io.BytesIO(client.get(done["outputs"]["video"]).content))
    assert truth.shape == model.shape == (6, 64, 64, 3)
    assert np.abs(truth[0].astype(int) - sim_first_frame().astype(int)).mean() < 3  # the same start (after x264)


def test_text2world_and_video2world_jobs_report_progress(client):
    t2w = wait(client, client.post("/api/jobs", json={"model": "t2w", "kind": "text2world", "prompt": "an arm",
                                                      "steps": 3}).json()["id"])  # fmt: skip
    assert t2w["state"] == "done", t2w
    assert decode(io.BytesIO(client.get(t2w["outputs"]["video"]).content)).shape[1:] == (32, 32, 3)
    upload = client.post("/api/uploads", content=encode_mp4_bytes(
        np.random.default_rng(2).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), 10.0)).json()  # fmt: skip
    v2w = wait(client, client.post("/api/jobs", json={"model": "t2w", "kind": "video2world", "input": upload["id"],
                                                      "frames": 5, "steps": 2}).json()["id"])  # fmt: skip
    assert v2w["state"] == "done" and v2w["progress"] == 1.0, v2w


def test_a_running_job_is_cancelled_within_a_step_and_a_full_queue_says_429(client):
    long = {"model": "arm-action", "kind": "action", "start_seed": SEED, "actions": LONG_ACTIONS, "steps": 50}
    running = client.post("/api/jobs", json=long).json()
    deadline = time.monotonic() + 300
    while client.get(f"/api/jobs/{running['id']}").json()["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "running" in error_of(client.get(f"/api/jobs/{running['id']}/video"), 409)
    queued = client.post("/api/jobs", json=long)
    assert queued.status_code == 202  # queue_size=1: one may wait
    full = client.post("/api/jobs", json=long)
    assert "queue is full" in error_of(full, 429) and int(full.headers["retry-after"]) >= 1
    assert client.delete(f"/api/jobs/{queued.json()['id']}").json()["state"] == "cancelled"
    client.delete(f"/api/jobs/{running['id']}")
    done = wait(client, running["id"])
    assert done["state"] == "cancelled" and done["error"] == "the job was cancelled." and done["progress"] < 0.5


@pytest.mark.parametrize("body, says", [
    ({"model": "nope", "kind": "action"}, "no model named"),
    ({"model": "arm-action", "kind": "text2world", "prompt": "x"}, "does not do text2world"),
    ({"model": "arm-action", "kind": "action", "start_seed": 1}, "either actions"),
    ({"model": "arm-action", "kind": "action", "start_seed": 1, "actions": [[0.0] * 6]}, "7 numbers"),
    ({"model": "arm-action", "kind": "action", "start_seed": 1, "actions": [[0.0] * 7] * 64}, "over the server's limit"),
    ({"model": "arm-action", "kind": "action", "start_seed": 1, "policy": "teleport"}, "policy"),
    ({"model": "arm-action", "kind": "action", "input": "../../etc/passwd", "actions": [[0.0] * 7]}, "no upload has the id"),
    ({"model": "arm-action", "kind": "action", "actions": [[0.0] * 7]}, "needs a first frame"),
    ({"model": "t2w", "kind": "text2world", "frames": 65}, "over the server's limit"),
    ({"model": "t2w", "kind": "text2world", "steps": 51}, "over the server's limit"),
    ({"model": "t2w", "kind": "text2world", "prompt": "x" * 1001}, "characters"),
    ({"model": "t2w", "kind": "text2world", "start_seed": 3}, "no simulator starts"),
    ({"model": "t2w", "kind": "text2world", "temperature": 1.0}, "unknown field"),
    ({"model": "t2w", "kind": "sing"}, "kind"),
    ({"model": "t2w", "kind": "text2world", "frames": 1}, "frames"),
    ({"kind": "text2world"}, "'model' is missing"),
    ({"model": "t2w", "kind": "text2world", "prompt": "something forbidden"}, "refused by a guardrail"),
])  # fmt: skip
def test_bad_job_requests_get_422_with_one_sentence(client, body, says):
    assert says in error_of(client.post("/api/jobs", json=body), 422)


def test_bad_json_and_unknown_ids_are_4xx(client):
    bad = client.post("/api/jobs", content=b'{"model": ', headers={"content-type": "application/json"})
    assert "not valid JSON" in error_of(bad, 422)
    assert "no job has the id" in error_of(client.get("/api/jobs/0123"), 404)
    assert error_of(client.get("/api/jobs/..%2F..%2Fetc%2Fpasswd"), 404)
    assert "no job" in error_of(client.delete("/api/jobs/" + "f" * 32), 404)


def test_guardrails_see_every_output_and_internal_errors_are_one_sentence(client, guard_state):
    guard_state.videos = True
    try:
        job = client.post("/api/jobs", json={"model": "t2w", "kind": "text2world", "steps": 1}).json()
        done = wait(client, job["id"])
    finally:
        guard_state.videos = False
    assert done["state"] == "failed" and "withheld by a guardrail" in done["error"] and not done["outputs"]
    message = error_of(client.post("/api/jobs", json={"model": "t2w", "kind": "text2world", "prompt": "crash"}), 500)
    assert "internal error" in message and "/etc/path" not in message


def test_a_job_past_the_time_limit_fails_with_a_message(models, tmp_path):
    settings = ServeSettings(work=tmp_path, workers=1, job_timeout_s=0.5)
    with TestClient(create_app(settings, models=models)) as c:
        job = c.post("/api/jobs", json={"model": "arm-action", "kind": "action", "start_seed": SEED,
                                        "actions": LONG_ACTIONS, "steps": 50}).json()  # fmt: skip
        done = wait(c, job["id"])
    assert done["state"] == "failed" and "time limit of 0.5 s" in done["error"]
    assert json.loads((tmp_path / "jobs" / job["id"] / "job.json").read_text())["state"] == "failed"


# -- play ---------------------------------------------------------------------------------------------------------
def expected_rollout(models, actions: list[list[float]]) -> list[np.ndarray]:
    env = BatchedWorldModelEnv(models["arm-action"].generator, None, reader=None)
    frames = [env.reset(seeds=[SEED])[0][0]]
    for a in actions:
        frames.append(env.step(np.asarray([a], np.float32))[0][0])
    return frames


def test_a_play_session_steps_the_model_and_the_simulator(client, models):
    opened = client.post("/api/play", json={"model": "arm-action", "seed": SEED})
    assert opened.status_code == 201, opened.text
    session = opened.json()
    sid = session["session"]
    assert session["simulator"] and session["size"] == 64
    assert np.array_equal(data_url_frame(session["first"]["sim"]), sim_first_frame())
    assert "all 1 play sessions" in error_of(client.post("/api/play", json={"model": "arm-action", "seed": 1}), 429)
    want = expected_rollout(models, [RIGHT, RIGHT])
    with client.websocket_connect(f"/api/play/{sid}/ws") as ws:
        assert ws.receive_json()["type"] == "ready"
        got = []
        for i in range(2):
            ws.send_json({"type": "step", "id": i, "action": RIGHT})
            msg = ws.receive_json()
            assert msg["type"] == "frame" and msg["id"] == i and msg["step"] == i + 1 and msg["compute_ms"] > 0
            got.append(data_url_frame(msg["frame"]))
        for g, w in zip(got, want[1:]):  # the page shows exactly the model's rollout (thread counts may differ)
            assert np.abs(g.astype(int) - w.astype(int)).mean() < 0.5
        ws.send_json({"type": "step", "action": [1, 2]})
        assert "7 finite numbers" in ws.receive_json()["message"]
        ws.send_text("{not json")
        assert "must be JSON" in ws.receive_json()["message"]
        ws.send_json({"type": "dance"})
        assert "unknown message type" in ws.receive_json()["message"]
    recording = client.get(f"/api/play/{sid}/recording")
    assert recording.status_code == 200 and "attachment" in recording.headers["content-disposition"]
    frames = decode(io.BytesIO(recording.content))
    assert frames.shape == (3, 64, 64 + 2 + 64, 3)  # start + 2 steps; model | gap | simulator
    with client.websocket_connect(f"/api/play/{sid}/ws") as ws:  # reconnecting continues the session
        assert ws.receive_json()["step"] == 2
        ws.send_json({"type": "reset"})
        assert ws.receive_json()["step"] == 0
    assert client.delete(f"/api/play/{sid}").json()["closed"]
    with client.websocket_connect(f"/api/play/{sid}/ws") as ws:
        assert "no open play session" in ws.receive_json()["message"]
    assert "no open play session" in error_of(client.get(f"/api/play/{sid}/recording"), 404)


def test_play_from_an_uploaded_image_has_no_simulator(client):
    upload = client.post("/api/uploads", content=png_bytes(sim_first_frame())).json()
    session = client.post("/api/play", json={"model": "arm-action", "input": upload["id"]}).json()
    try:
        assert not session["simulator"] and session["first"]["sim"] is None
        with client.websocket_connect(f"/api/play/{session['session']}/ws") as ws:
            ws.receive_json()
            ws.send_json({"type": "step", "id": 1, "action": RIGHT})
            msg = ws.receive_json()
            assert msg["sim"] is None and data_url_frame(msg["frame"]).shape == (64, 64, 3)
    finally:
        client.delete(f"/api/play/{session['session']}")


@pytest.mark.parametrize("body, says", [
    ({"model": "t2w", "seed": 1}, "cannot be played"),
    ({"model": "arm-action"}, "one of them"),
    ({"model": "arm-action", "seed": 1, "input": "a" * 32}, "one of them"),
    ({"model": "arm-action", "input": "b" * 32}, "no upload has the id"),
    ({"model": "arm-action", "seed": 1, "task": "juggle"}, "task"),
])  # fmt: skip
def test_bad_play_requests_get_422(client, body, says):
    assert says in error_of(client.post("/api/play", json=body), 422)
    assert client.get("/api/health").json()["play_sessions"]["open"] == 0  # a failed start holds no place


# -- security -----------------------------------------------------------------------------------------------------
def test_an_exposed_server_needs_a_token(models, tmp_path):
    with pytest.raises(ConfigError, match="--token"):
        create_app(ServeSettings(work=tmp_path, host="0.0.0.0"), models=models)
    app = create_app(ServeSettings(work=tmp_path, host="0.0.0.0", token="s3cret"), models=models)
    with TestClient(app) as c:
        assert "requires a token" in error_of(c.get("/api/health"), 401)
        error_of(c.get("/api/health", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/health", params={"token": "s3cret"}).status_code == 200
        assert c.get("/play").status_code == 200  # the page itself holds no data; its calls carry the token
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect("/api/play/" + "a" * 32 + "/ws") as ws:
                ws.receive_json()
        with c.websocket_connect("/api/play/" + "a" * 32 + "/ws?token=s3cret") as ws:
            assert "no open play session" in ws.receive_json()["message"]


def test_cors_is_closed_and_foreign_pages_cannot_open_a_websocket(client):
    response = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/api/play/" + "a" * 32 + "/ws", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()


def test_the_cli_refuses_an_exposed_host_without_a_token_and_a_busy_port(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLDSMITH_TOKEN", raising=False)
    code, _, err = run_cli(capsys, "serve", "--host", "0.0.0.0", "--port", "1", "--work", str(tmp_path))
    assert code == 1 and "--token" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", "--port", str(port), "--work", str(tmp_path))
    assert code == 1 and "is in use" in err
