"""Playing a camera model: keys move the camera of the shipped orbit-camera, one generated frame per move, with the
orbit simulator rendering the same poses beside it (serve/play.py, diffusion/stepwise.py: CameraRollout)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from worldsmith.diffusion.stepwise import CameraRollout
from worldsmith.errors import ConfigError
from worldsmith.serve.app import create_app
from worldsmith.serve.models import load_models
from worldsmith.serve.settings import ServeSettings
from worldsmith.worlds.base import WorldConfig
from worldsmith.worlds.orbit import OrbitWorld, camera_c2w, move_camera, velocity_bounds

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEED = 5000003  # a held-out orbit scene
LEFT, RIGHT = [0.0, 0.0, 0.0, 0.2, 0.0], [0.0, 0.0, 0.0, -0.2, 0.0]  # turn left / right (rad/s)


@pytest.fixture(scope="module")
def served():
    return load_models(["orbit-camera"])


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    settings = ServeSettings(work=tmp_path_factory.mktemp("serve"), workers=1, queue_size=1, max_sessions=1)
    with TestClient(create_app(settings, models=served, guards=[]), raise_server_exceptions=False) as c:
        yield c


def frame_of(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def play(client, action: list[float], steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The model's and the simulator's frames of a session from SEED stepped ``steps`` times with ``action``."""
    session = client.post("/api/play", json={"model": "orbit-camera", "seed": SEED})
    assert session.status_code == 201, session.text
    sid = session.json()["session"]
    model, sim = [], []
    try:
        with client.websocket_connect(f"/api/play/{sid}/ws") as ws:
            assert ws.receive_json()["type"] == "ready"
            for i in range(steps):
                ws.send_json({"type": "step", "id": i, "action": action})
                msg = ws.receive_json()
                assert msg["type"] == "frame", msg
                model.append(frame_of(msg["frame"]))
                sim.append(frame_of(msg["sim"]))
            ws.send_json({"type": "step", "action": [1, 2, 3, 4, 5, 6, 7]})
            assert "5 finite numbers" in ws.receive_json()["message"]
    finally:
        client.delete(f"/api/play/{sid}")
    return model, sim


def test_the_camera_state_moves_as_the_simulator_moves_its_camera():
    world = OrbitWorld(WorldConfig(size=32, views=1))
    try:
        world.reset(3)
        cam = world.cam.copy()
        for action in ([0.3, 0.2, -0.1, 0.2, -0.1], [9.0, 0, 0, 0, 0], LEFT):  # 9 m/s: clipped to the bound
            world.step(np.array(action))
            cam = move_camera(cam, action, world.cfg.fps, *velocity_bounds())
            assert np.allclose(camera_c2w(cam), world.c2w_world(0), atol=1e-9)
    finally:
        world.close()


def test_a_camera_model_is_playable_with_camera_keys_and_orbit_starts(client):
    (model,) = client.get("/api/models").json()
    assert model["playable"] and model["world"] == "orbit" and model["play_dim"] == 5 and "camera" in model["conditions"]
    assert {c["key"] for c in model["controls"]} >= {"w", "a", "s", "d", "q", "e"}
    starts = client.get("/api/starts?model=orbit-camera&count=2").json()["starts"]
    assert len(starts) == 2 and frame_of(starts[0]["image"]).shape == (128, 128, 3)


def test_keys_turn_the_generated_camera_beside_the_simulator(client, served):
    left, sim_left = play(client, LEFT, 3)
    right, _ = play(client, RIGHT, 3)
    world = OrbitWorld(WorldConfig(size=128, fps=served["orbit-camera"].fps, views=1))
    try:  # the simulator beside the model renders the poses the keys moved to
        first = world.reset(SEED)
        K, c2w0, cam0 = world.K, world.c2w_world(0), world.cam.copy()
        truth = [world.step(np.array(LEFT)) for _ in range(3)]
    finally:
        world.close()
    assert all(np.array_equal(a, b) for a, b in zip(sim_left, truth))
    rollout = CameraRollout(served["orbit-camera"].generator)  # the page shows exactly the model's frames
    rollout.reset(first, K, c2w0)
    pose = camera_c2w(move_camera(cam0, LEFT, served["orbit-camera"].fps, *velocity_bounds()))
    assert np.abs(rollout.step(pose).astype(int) - left[0]).mean() < 0.5  # (thread counts may differ)
    assert np.abs(left[-1].astype(int) - right[-1]).mean() > 3  # turning left and right end in different views
    # the model follows its turn: its last frame is closer to the simulator's left turn than the right turn's is
    assert np.abs(left[-1].astype(int) - truth[-1]).mean() < np.abs(right[-1].astype(int) - truth[-1]).mean()


def test_camera_play_from_an_uploaded_image_has_no_simulator(client):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(buf, format="PNG")
    upload = client.post("/api/uploads", content=buf.getvalue()).json()
    session = client.post("/api/play", json={"model": "orbit-camera", "input": upload["id"]}).json()
    try:
        assert not session["simulator"] and session["first"]["sim"] is None
        assert frame_of(session["first"]["frame"]).shape == (128, 128, 3)  # the image fitted to the model
        with client.websocket_connect(f"/api/play/{session['session']}/ws") as ws:
            ws.receive_json()
            ws.send_json({"type": "step", "id": 1, "action": [0.3, 0.0, 0.0, 0.0, 0.0]})
            msg = ws.receive_json()
            assert msg["sim"] is None and frame_of(msg["frame"]).shape == (128, 128, 3)
            assert msg["info"]["camera"][2] > 0.3  # placed at the model's typical height above the floor
    finally:
        client.delete(f"/api/play/{session['session']}")


def test_camera_play_errors(client, served):
    r = client.post("/api/play", json={"model": "orbit-camera", "seed": SEED, "task": "reach"})
    assert r.status_code == 422 and "no tasks" in r.json()["error"]
    with pytest.raises(ConfigError, match="call reset"):
        CameraRollout(served["orbit-camera"].generator).step(np.eye(4))
    with pytest.raises(ConfigError, match="uint8 \\(128, 128, 3\\)"):
        CameraRollout(served["orbit-camera"].generator).reset(np.zeros((64, 64, 3), np.uint8), np.eye(3), np.eye(4))
