"""Tag accuracy of the curation annotators on generated clips whose camera motion and content type are known.

Clips (H.264, 320x240, 12 fps, 3 s unless said otherwise), for each seed:

1. natural-looking shots from ``worldsmith.curate.synth.render_shot`` (textured scene, moving shapes, sensor noise)
   of every camera kind: static, moving (camera still, shapes move), pan, fast_pan, zoom, fast_zoom;
2. the same camera kinds over flat-shaded cartoon scenes (a few flat colour regions and shapes, no noise), which
   the video-type tag must call ``graphics``;
3. simulator footage: ``worldsmith sim`` worlds rendered at 64x64 and upscaled x4 (bicubic), which the quality
   filter must not drop as blurry; and natural shots blurred (Gaussian, sigma 2.5), which it must drop;
4. blur across resolutions: natural shots rendered at a short side of 64 and 256, the 64 ones upscaled x4
   (bicubic) to 256, all of which must be kept, and each of the 64 and 256 ones blurred at its own resolution
   (Gaussian, sigma 2.5), which must be dropped;
5. photos (the ones that ship in scikit-image: astronaut, coffee, chelsea the cat, rocket) as 3-second stills
   with a slow pan, at a short side of 256 (kept), upscaled x4 from 64 (kept), blurred (sigma 2.5, dropped);
   their captions must name what they show (a word from ``PHOTO_OBJECTS``) or no object at all (type ``natural``);
6. cel-shaded animation: outlined discs, some two-tone (cel) shaded, some shaded by a gradient, moving over a
   gradient sky, still camera, no noise; as rendered and upscaled x3 from 80 pixels (type ``graphics``).

Truth: camera ``static`` for static, moving and 6. (a still camera, discs moving both ways over a plain sky),
``pan`` for (fast_)pan (synth pans are mostly horizontal), ``zoom`` for (fast_)zoom (a ``tilt`` counts as ``pan``);
type ``natural`` for 1. and 5., ``graphics`` for 2., 6. and the simulator clips. The annotators run as
``worldsmith curate`` runs them (``process.decode_working``, the native motion-vector scan, ``camera_motion``,
the default video-type classifier, ``quality_verdict``) with the default config. Prints the accuracy per tag,
the confusions, the margins of the camera tag's dominance test, the blur verdicts per resolution, the objects the
captions name, and a few captions.

    python benchmarks/curate_tags.py [--seeds 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

from worldsmith import config as C
from worldsmith.curate.camera_motion import camera_motion
from worldsmith.curate.captions import offline_caption
from worldsmith.curate.config import CurateConfig
from worldsmith.curate.motion import clip_motion, motion_scores, scan_native
from worldsmith.curate.process import AnnotateConfig, FilterConfig, decode_working
from worldsmith.curate.quality import quality_scores, quality_verdict
from worldsmith.curate.synth import render_shot
from worldsmith.curate.synth_animation import render_cel
from worldsmith.curate.video_type import default_classifier
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.io.encode import encode_mp4
from worldsmith.io.video import probe
from worldsmith.worlds.generate import simulate

KINDS = ("static", "moving", "pan", "fast_pan", "zoom", "fast_zoom")
CAMERA_TRUTH = {"static": "static", "moving": "static", "pan": "pan", "fast_pan": "pan", "zoom": "zoom",
                "fast_zoom": "zoom"}  # fmt: skip
SIZE, FPS, FRAMES = (320, 240), 12.0, 36
PHOTO_OBJECTS = {"astronaut": ("space", "suit", "astronaut", "person"),
                 "coffee": ("cup", "coffee", "espresso", "mug"), "chelsea": ("cat", "tabby", "kitten", "lynx"),
                 "rocket": ("rocket", "missile", "projectile", "shuttle")}  # words a right caption may use


def cartoon_shot(kind: str, frames: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """A flat-shaded cartoon shot uint8 (frames, H, W, 3): flat colour regions on a canvas the camera crops."""
    rng = np.random.default_rng(seed)
    width, height = size
    cw, ch = 4 * width, 2 * height
    canvas = np.empty((ch, cw, 3), np.uint8)
    canvas[:] = rng.integers(60, 230, 3)
    for _ in range(int(rng.integers(25, 40))):  # flat blobs and boxes: the scenery
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y, r = int(rng.integers(0, cw)), int(rng.integers(0, ch)), int(rng.integers(12, 60))
        if rng.random() < 0.5:
            cv2.circle(canvas, (x, y), r, color, -1)
        else:
            cv2.rectangle(canvas, (x - r, y - r // 2), (x + r, y + r // 2), color, -1)
    sprites = rng.uniform(0.2, 0.8, (3, 2)) * (width, height)
    vel = (rng.uniform(-1, 1, (3, 2)) * 3.0) if kind != "static" else np.zeros((3, 2))
    sign = 1 if rng.random() < 0.5 else -1
    speed = (0.04 if kind == "fast_pan" else 0.012) * width  # px per frame
    end = 0.4 if kind == "fast_zoom" else 0.85
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        x0, y0, w, h = 1.5 * width, height / 2, width, height
        if kind in ("pan", "fast_pan"):
            x0 = 1.5 * width + sign * speed * i
        elif kind in ("zoom", "fast_zoom"):
            s = 1.0 + (end - 1.0) * i / max(frames - 1, 1)
            w, h = width * s, height * s
            x0, y0 = 1.5 * width + (width - w) / 2, height / 2 + (height - h) / 2
        crop = canvas[int(y0) : int(y0 + h), int(x0) : int(x0 + w)]
        img = cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST) if crop.shape[:2] != (height, width) else crop
        img = img.copy()
        for (sx, sy), c in zip(sprites + vel * i, ((250, 40, 40), (40, 40, 250), (250, 250, 40))):
            cv2.circle(img, (int(sx) % width, int(sy) % height), 18, c, -1)
        out[i] = img
    return out


def sim_clips(work: Path) -> list[np.ndarray]:
    """Simulator episodes rendered at 64x64, upscaled x4 (what a dataset of upscaled renders looks like)."""
    out = work / "sim"
    for world in ("arm", "bounce", "drive"):
        if not (out / world).exists():
            simulate(world, episodes=1, frames=FRAMES, size=64, fps=FPS, out=out / world, seed=1, workers=1,
                     progress=False)  # fmt: skip
    clips = [c.frames for world in ("arm", "bounce", "drive") for s in list_shards(out / world) for c in iter_shard(s)]
    return [np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_CUBIC) for f in c]) for c in clips]


def scaled(frames: np.ndarray, short: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """uint8 (T, H, W, 3) resized so the short side is ``short`` (aspect kept)."""
    h, w = frames.shape[1:3]
    size = (round(w * short / min(h, w)), round(h * short / min(h, w)))
    return np.stack([cv2.resize(f, size, interpolation=interpolation) for f in frames])


def blurred(frames: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def photo_clip(name: str, short: int) -> np.ndarray:
    """A scikit-image photo as a 3-second clip, the camera panning slowly across it, short side ``short``."""
    import skimage.data  # photos that ship in the scikit-image wheel

    img = getattr(skimage.data, name)()
    w = img.shape[1]
    crop = int(0.85 * w)
    starts = np.linspace(0, w - crop, FRAMES).round().astype(int)
    return scaled(np.stack([img[:, i : i + crop] for i in starts]), short)


def cel_shot(seed: int, frames: int = FRAMES, size: tuple[int, int] = SIZE) -> np.ndarray:
    return render_cel(frames, size, seed)


def resolution_clips(seeds: int) -> list[tuple[str, np.ndarray, bool]]:
    """(name, frames, should be kept) for the blur-across-resolutions groups 4. and 5. of the module doc."""
    out = []
    for seed in range(seeds):
        small = render_shot("moving", FRAMES, (85, 64), seed=seed)
        large = render_shot("moving", FRAMES, (341, 256), seed=seed)
        out += [(f"res-sharp64-{seed}", small, True), (f"res-sharp256-{seed}", large, True),
                (f"res-up64to256-{seed}", scaled(small, 256, cv2.INTER_CUBIC), True),
                (f"res-blur64-{seed}", blurred(small), False), (f"res-blur256-{seed}", blurred(large), False)]
    for name in PHOTO_OBJECTS:
        sharp = photo_clip(name, 256)
        out += [(f"photo-{name}-sharp256", sharp, True),
                (f"photo-{name}-up64to256", scaled(scaled(sharp, 64), 256, cv2.INTER_CUBIC), True),
                (f"photo-{name}-blur256", blurred(sharp), False)]
    return out


def annotate(path: Path, filters: FilterConfig, annot: AnnotateConfig, classifier) -> dict:
    """The tags and quality verdict ``worldsmith curate`` would give the clip at ``path``."""
    info = probe(path)
    frames, rate = decode_working(str(path), info.fps, filters, info)
    scan = scan_native(str(path), filters.motion.use_motion_vectors, rotation=info.rotation)
    track = clip_motion(scan, frames, rate, filters.motion)
    tags = camera_motion(track, annot.camera, frames, rate)
    probs = classifier(frames)
    q = quality_scores(frames, scan.lumas, filters.quality)
    tags["video_type"] = max(probs, key=probs.get)
    facts = {"duration": len(frames) / rate, **tags, **motion_scores(track, filters.motion),
             "brightness": q["brightness"]}  # fmt: skip
    return {**tags, "quality": quality_verdict(q, filters.quality), "sharpness": q["sharpness"],
            "caption": offline_caption(frames, facts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="filters/annotate overrides "
                    "(e.g. filters.motion.use_motion_vectors=false)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="curate_tags_"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = C.resolve(CurateConfig(), None, args.set)
    filters, annot = cfg.filters, cfg.annotate
    classifier = default_classifier(filters.video_type)
    # 1. the clips and their truth: (name, frames, camera truth or None, type truth, should pass quality)
    clips = []
    for seed in range(args.seeds):
        for kind in KINDS:
            clips.append((f"natural-{kind}-{seed}", render_shot(kind, FRAMES, SIZE, seed=seed),
                          CAMERA_TRUTH[kind], "natural", True))  # fmt: skip
            clips.append((f"cartoon-{kind}-{seed}", cartoon_shot(kind, FRAMES, SIZE, seed),
                          CAMERA_TRUTH[kind], "graphics", True))  # fmt: skip
        clips.append((f"blurred-{seed}", blurred(render_shot("moving", FRAMES, SIZE, seed)), None, None, False))
        cel = cel_shot(seed)
        clips.append((f"cel-{seed}", cel, "static", "graphics", True))
        clips.append((f"cel-up-{seed}", scaled(scaled(cel, 80), 240, cv2.INTER_CUBIC), "static", "graphics", True))
    clips += [(f"sim-upscaled-{i}", c, None, "graphics", True) for i, c in enumerate(sim_clips(work))]
    clips += [(name, frames, None, "natural" if name.startswith("photo-") else None, keep)
              for name, frames, keep in resolution_clips(args.seeds)]
    # 2. annotate each
    started, rows = time.perf_counter(), []
    for name, frames, cam, kind, passes in clips:
        path = work / f"{name}.mp4"
        encode_mp4(frames, path, fps=FPS)
        rows.append((name, cam, kind, passes, annotate(path, filters, annot, classifier)))
    # 3. accuracy
    merged = {"tilt": "pan"}  # synth pans go in a random direction, mostly but not always horizontal
    cam_rows = [(c, merged.get(r["camera_motion"], r["camera_motion"])) for _, c, _, _, r in rows if c is not None]
    type_rows = [(k, r["video_type"]) for _, _, k, _, r in rows if k is not None]
    q_rows = [(p, r["quality"] is None or not r["quality"].startswith("blurry")) for _, _, _, p, r in rows]
    print(f"{len(rows)} clips in {time.perf_counter() - started:.1f} s ({work})")
    for label, pairs in (("camera motion", cam_rows), ("video type", type_rows), ("blur verdict", q_rows)):
        right = sum(a == b for a, b in pairs)
        print(f"{label:<14} {right}/{len(pairs)} = {100 * right / max(len(pairs), 1):.1f} %")
        wrong = Counter(f"{a} -> {b}" for a, b in pairs if a != b)
        if wrong:
            print("   confusions: " + ", ".join(f"{k}: {v}" for k, v in wrong.most_common()))
    ratio = {n: r["camera_support"] / max(r["camera_rival"], 1e-3) for n, c, _, _, r in rows if c is not None}
    low = min((x, n) for n, x in ratio.items() if CAMERA_TRUTH.get(n.split("-")[1]) in ("pan", "zoom"))
    print(f"camera support / rival (dominance {annot.camera.dominance}): moving camera at least {low[0]:.2f} "
          f"({low[1]}); still camera, moving objects: " + " ".join(
              f"{n} {x:.2f}" for n, x in ratio.items() if n.startswith(("cel", "cartoon-moving", "natural-moving"))))
    for group in ("natural-", "cartoon-", "cel-", "sim-", "blurred-", "res-", "photo-"):
        sub = [(n, r) for n, *_, r in rows if n.startswith(group)]
        cams = Counter(r["camera_motion"] for _, r in sub)
        print(f"{group[:-1]:<8} camera {dict(cams)}; types {dict(Counter(r['video_type'] for _, r in sub))}; "
              f"sharpness {np.median([r['sharpness'] for _, r in sub]):.1f}; "
              f"blurry {sum(bool(r['quality']) and r['quality'].startswith('blurry') for _, r in sub)}/{len(sub)}")
    # 4. blur verdict per resolution group, and the objects the captions name
    res = [(n, p, r) for n, _, _, p, r in rows if n.startswith(("res-", "photo-"))]
    for kind in ("sharp64", "sharp256", "up64to256", "blur64", "blur256"):
        sub = [(p, r) for n, p, r in res if f"-{kind}" in n]
        right = sum(p == (r["quality"] is None or not r["quality"].startswith("blurry")) for p, r in sub)
        print(f"blur verdict {kind:<10} {right}/{len(sub)} right; sharpness "
              + " ".join(f"{r['sharpness']:.2f}" for _, r in sub))
    named = [(n, r["caption"]) for n, _, _, _, r in rows if n.startswith("photo-") and "-blur" not in n]
    right = sum(any(w in c.lower() for w in PHOTO_OBJECTS[n.split("-")[1]]) for n, c in named)
    wrong = sum(" shows " in c and not any(w in c.lower() for w in PHOTO_OBJECTS[n.split("-")[1]]) for n, c in named)
    print(f"photo captions: {right}/{len(named)} name what the photo shows, {wrong} name something else")
    other = [n for n, _, _, _, r in rows if not n.startswith("photo-") and " shows " in r["caption"]]
    generated = sum(not x[0].startswith("photo-") for x in rows)
    print(f"generated clips whose caption names an object: {len(other)}/{generated}"
          + (f" ({', '.join(other[:6])})" if other else ""))
    shown = [f"{n}: {r['caption'].split(' shows ')[1].split('.')[0]}" for n, *_, r in rows if " shows " in r["caption"]]
    print("objects named: " + ("; ".join(shown) or "none"))
    for name, *_, r in rows[:: max(1, len(rows) // 4)]:
        print(f"{name}: {r['caption']}")


if __name__ == "__main__":
    main()
