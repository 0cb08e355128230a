"""Annotators: camera-motion tags on generated camera moves; captions (offline, and an OpenAI-compatible client
tested against a fake server started here on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from curate_clips import camera_clip, write, write_rotated
from worldsmith.curate.camera_motion import CameraMotionConfig, camera_motion
from worldsmith.curate.captions import CaptionConfig, CaptionError, OpenAICaptioner, dominant_colours, offline_caption
from worldsmith.curate.dedup import DedupConfig
from worldsmith.curate.motion import MotionConfig, flow_track, scan_native
from worldsmith.curate.process import AnnotateConfig, FilterConfig, caption_clip, decode_working, process_clip
from worldsmith.curate.record import ClipRecord
from worldsmith.io.video import probe

FPS = 12
MOVES = {  # generated move -> expected (camera_motion, camera_direction)
    "static": ("static", ""), "pan_right": ("pan", "right"), "pan_left": ("pan", "left"), "tilt_up": ("tilt", "up"),
    "tilt_down": ("tilt", "down"), "zoom_in": ("zoom", "in"), "zoom_out": ("zoom", "out"), "orbit": ("orbit", "right"),
}  # fmt: skip


@pytest.fixture(scope="module")
def moves(tmp_path_factory):
    d = tmp_path_factory.mktemp("moves")
    return {kind: write(camera_clip(kind, frames=30, seed=3), d / f"{kind}.mp4", FPS) for kind in MOVES}


@pytest.mark.parametrize("kind", list(MOVES))
def test_camera_motion_tags_from_motion_vectors_and_from_flow(moves, kind):
    cfg = CameraMotionConfig()
    from_mvs = camera_motion(scan_native(moves[kind]).track, cfg)
    frames, rate = decode_working(moves[kind], FPS, FilterConfig())
    from_flow = camera_motion(flow_track(frames, rate, MotionConfig()), cfg)
    for tags in (from_mvs, from_flow):
        assert (tags["camera_motion"], tags["camera_direction"]) == MOVES[kind], tags
    if kind.startswith("pan") or kind.startswith("tilt"):  # 2 px/frame at 12 fps on a 200 px diagonal
        assert from_mvs["camera_speed"] == pytest.approx(0.12, rel=0.1)


def test_orbit_needs_the_centre_to_lag_the_background():
    """Pan and orbit move the background alike; only the central subject's residual motion separates them."""
    cfg = CameraMotionConfig()
    pan = camera_motion(flow_track(camera_clip("pan_right", frames=16, seed=3)[::2], 6, MotionConfig()), cfg)
    orbit = camera_motion(flow_track(camera_clip("orbit", frames=16, seed=3)[::2], 6, MotionConfig()), cfg)
    assert abs(pan["camera_parallax"]) < 0.2 < cfg.orbit_ratio < orbit["camera_parallax"]


# ---------------------------------------------------------------------------------------------------------------
# offline captions
# ---------------------------------------------------------------------------------------------------------------
def test_offline_caption_describes_what_was_measured():
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[..., 1] = 200  # green
    frames[:, :24, :, 2] = 220  # top half: cyan (green + blue)
    frames[:, :24, :, 1] = 200
    assert set(dominant_colours(frames)) == {"green", "cyan"}
    facts = {"duration": 4.0, "video_type": "natural", "camera_motion": "pan", "camera_direction": "left",
             "motion": 0.1, "brightness": 0.2}
    text = offline_caption(frames, facts)
    assert text.startswith("A 4.0-second clip of natural-looking footage, with the camera panning left.")
    assert "moderate motion" in text.lower() and "dark" in text and "green" in text
    assert offline_caption(frames, {}).startswith("A clip of video.")


# ---------------------------------------------------------------------------------------------------------------
# OpenAI-compatible captioner against a fake server
# ---------------------------------------------------------------------------------------------------------------
class FakeVLM(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: answers the scripted statuses in order, then 200 with a caption."""

    script: list[int] = []
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        status = type(self).script.pop(0) if type(self).script else 200
        if status != 200:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b'{"error": "scripted failure"}')
            return
        answer = {"choices": [{"message": {"role": "assistant", "content": "  A red ball rolls\nacross grass. "}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeVLM.script, FakeVLM.requests = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def config(base_url: str, **kw) -> CaptionConfig:
    return CaptionConfig(captioner="openai", base_url=base_url, model="tiny-vlm", api_key_env="WS_TEST_VLM_KEY",
                         frames=3, timeout_s=5.0, backoff_s=0.01, **kw)


def test_openai_captioner_sends_frames_as_jpeg_data_uris(server, monkeypatch):
    monkeypatch.setenv("WS_TEST_VLM_KEY", "sk-test")
    frames = camera_clip("pan_right", size=(48, 64), frames=8)
    assert OpenAICaptioner(config(server))(frames) == "A red ball rolls across grass."
    (req,) = FakeVLM.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    body = req["body"]
    assert body["model"] == "tiny-vlm" and body["max_tokens"] > 0
    (message,) = body["messages"]
    assert message["role"] == "user" and message["content"][0]["type"] == "text"
    images = [part["image_url"]["url"] for part in message["content"][1:]]
    assert len(images) == 3 and all(url.startswith("data:image/jpeg;base64,") for url in images)
    jpeg = cv2.imdecode(np.frombuffer(base64.b64decode(images[0].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (48, 64, 3)
    assert np.abs(jpeg[..., ::-1].astype(int) - frames[0]).mean() < 12  # the first frame, RGB order kept


def test_openai_captioner_retries_429_and_5xx_then_succeeds(server, monkeypatch):
    monkeypatch.delenv("WS_TEST_VLM_KEY", raising=False)
    FakeVLM.script = [429, 503]
    assert OpenAICaptioner(config(server, retries=2))(np.zeros((2, 32, 32, 3), np.uint8)).startswith("A red ball")
    assert len(FakeVLM.requests) == 3 and FakeVLM.requests[0]["auth"] is None  # no key set: no header


def test_openai_captioner_failures_are_one_clear_error(server):
    FakeVLM.script = [500, 500, 500]
    with pytest.raises(CaptionError, match=r"failed after 3 attempts \(HTTP 500"):
        OpenAICaptioner(config(server, retries=2))(np.zeros((2, 32, 32, 3), np.uint8))
    FakeVLM.script = [401]
    with pytest.raises(CaptionError, match=r"refused the request, HTTP 401.*WS_TEST_VLM_KEY"):
        OpenAICaptioner(config(server, retries=2))(np.zeros((2, 32, 32, 3), np.uint8))
    assert len(FakeVLM.requests) == 4  # a 401 is not retried
    with pytest.raises(CaptionError, match="failed after 1 attempts"):  # nothing listens on port 9 (discard)
        OpenAICaptioner(config("http://127.0.0.1:9/v1", retries=0))(np.zeros((1, 32, 32, 3), np.uint8))


def test_caption_clip_falls_back_or_fails_as_configured(server):
    frames = camera_clip("pan_left", size=(48, 64), frames=6)
    rec = ClipRecord("c1", "src.mp4", 0, 6, 0.0, 0.5, 12.0, 64, 48)
    FakeVLM.script = [500, 500]
    caption_clip(rec, frames, {"duration": 0.5}, config(server, retries=1, on_error="offline"))
    assert rec.caption_source == "offline" and rec.caption.startswith("A 0.5-second clip")
    assert "HTTP 500" in rec.tags["caption_error"]
    FakeVLM.script = [500, 500]
    with pytest.raises(CaptionError):
        caption_clip(rec, frames, {}, config(server, retries=1, on_error="fail"))
    caption_clip(rec, frames, {}, config(server))
    assert rec.caption == "A red ball rolls across grass." and rec.caption_source == "vlm"


def test_process_clip_captions_through_the_endpoint(one_torch_thread, server, moves):
    annotate = AnnotateConfig(caption=config(server))
    filters = FilterConfig()
    filters.video_type.enabled = False
    path = moves["pan_left"]
    rec = ClipRecord("c2", path, 0, 30, 0.0, 2.5, FPS, 160, 120, path=path)

    rec = process_clip(rec, filters, annotate, DedupConfig())
    assert rec.kept and rec.phash
    assert rec.caption == "A red ball rolls across grass." and rec.caption_source == "vlm"
    assert rec.tags["camera_motion"] == "pan" and len(FakeVLM.requests) == 1


def test_motion_vectors_follow_the_display_rotation(tmp_path):
    """A pan stored sideways in a phone clip (display matrix 90 degrees counter-clockwise) is a tilt on screen:
    the codec's vectors, turned like the frames, give the same tags as optical flow on the decoded frames."""
    path = write_rotated(camera_clip("pan_right", frames=24, seed=3), tmp_path / "phone.mp4", ccw=90)
    info = probe(path)
    assert info.rotation == 270 and (info.width, info.height) == (120, 160)
    scan = scan_native(path, rotation=info.rotation)
    assert (scan.track.width, scan.track.height) == (120, 160)
    frames, rate = decode_working(path, FPS, FilterConfig(), info)
    from_flow = camera_motion(flow_track(frames, rate, MotionConfig()), CameraMotionConfig())
    from_mvs = camera_motion(scan.track, CameraMotionConfig())
    assert (from_mvs["camera_motion"], from_mvs["camera_direction"]) == ("tilt", "up") == (
        from_flow["camera_motion"], from_flow["camera_direction"])
