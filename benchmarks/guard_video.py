"""The video post-guard on images that ship or that the project makes: face-blur recall, false boxes, NudeNet.

Face sets (nothing downloaded; scikit-image ships every image used here):

* faces: the 100 faces of scikit-image's ``lfw_subset.npy`` (25 x 25 gray, tightly cropped), resized to each of
  ``--sizes`` px and pasted at a random spot into a frame of a simulated world (arm, drive at 64 / 128 / 256
  px; a face is only pasted into frames at least 4/3 of its size), plus the two photographs with a face
  (``astronaut``, ``camera``; face boxes drawn by hand) at 512, 256 and 128 px;
* face-free: the 100 non-faces of ``lfw_subset.npy`` pasted the same way, frames of all four worlds untouched,
  and 13 face-free photographs (coffee, chelsea, rocket, ...) at 512, 256 and 128 px (short side);
* clips: 60 faces pasted into 8 consecutive frames of a world episode, drifting 2 px a frame, to measure what
  carrying boxes to neighbouring frames adds.

A face counts as covered when the redacted pixels (the boxes grown by the margin) cover at least 80 % of its
ground-truth box; recall is the share of faces covered. The false-positive rate is the share of face-free frames
with any box. Times are CPU ms per frame on one thread (cv2 and ONNX Runtime each set to 1 thread).

NudeNet is run on every frame above: its nudity score (the highest exposed-part detection) on benign frames is
the check's false-positive rate; its FACE_* boxes are measured as a second face detector. Nudity recall is not
measured: no legally distributable, offline, labelled set of nude images ships in any installed package.

    python benchmarks/guard_video.py [--out guard_video.json] [--sweep] [--quick]

Measured (2 shared cores, seed 0, 406 face frames, 547 face-free frames, 60 clips): face recall 0.948 (24 px
0.88, 32 px 0.95, 48 / 64 px 0.98, photographs 6 / 6); clips 0.923 of frames covered by their own boxes, 0.933
with boxes carried to neighbours; false-positive rate 0.042 (worlds 0.028, LFW non-faces 0.02-0.06, photographs
0.128). Haar 64-75 ms, NudeNet 30-34 ms per frame (1 thread). NudeNet's nudity score: 0 of 953 benign frames at
0.4 or more (4 at 0.25, the highest 0.33 "FEMALE_BREAST_EXPOSED" on a drive frame with a pasted face); its FACE_*
boxes cover 0.39 of faces with no false boxes, and added nothing measurable to the Haar recall.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

import worldsmith  # noqa: F401  (MUJOCO_GL before mujoco)
from worldsmith.atomic import atomic_write_text
from worldsmith.guard.faces import FaceConfig, carry_boxes, detect_faces, grow
from worldsmith.guard.nudity import NUDITY_CLASSES, detect_frame, frame_score
from worldsmith.worlds.generate import record_episode

FACE_PHOTOS = {"astronaut": (182, 62, 86, 104), "camera": (188, 95, 68, 100)}  # hand-drawn boxes at 512 px
FREE_PHOTOS = ("coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field", "coins",
               "page", "moon", "brick", "grass", "gravel", "horse")  # fmt: skip
COVER = 0.8  # a face is covered when redaction covers this share of its box
NUDENET_FACE = 0.4  # the NudeNet FACE_* score the guard uses (VideoGuardConfig.nudenet_faces)


def rgb(image: np.ndarray) -> np.ndarray:
    image = image if image.ndim == 3 else np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8) if image.dtype == np.uint8 else \
        np.ascontiguousarray((image[..., :3] * 255).round().astype(np.uint8))  # fmt: skip


def resized(image: np.ndarray, short: int) -> tuple[np.ndarray, float]:
    scale = short / min(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC), scale


def worlds(names: tuple[str, ...], sizes: tuple[int, ...], episodes: int, frames: int) -> dict:
    """{(world, size): list of frames} from ``episodes`` episodes each, every 4th frame."""
    out = {}
    for name in names:
        for size in sizes:
            clips = [record_episode(name, 1000 + e, frames, size=size).frames for e in range(episodes)]
            out[name, size] = [f for c in clips for f in c[::4]]
    return out


def paste(frame: np.ndarray, patch: np.ndarray, side: int, rng: np.random.Generator, at=None) -> tuple:
    face = rgb(cv2.resize(patch.astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 1))
    h, w = frame.shape[:2]
    x, y = at if at is not None else (int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1)))
    out = frame.copy()
    out[y : y + side, x : x + side] = face
    return out, (x, y, side, side)


def datasets(seed: int, sizes: tuple[int, ...], world_sizes: tuple[int, ...], quick: bool) -> dict:
    import skimage
    import skimage.data

    rng = np.random.default_rng(seed)
    lfw = np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))
    n = 25 if quick else 100
    faces_lfw, free_lfw = lfw[:n], lfw[100 : 100 + n]
    backgrounds = worlds(("arm", "drive"), world_sizes, 2, 24)
    plain = worlds(("bounce", "orbit"), world_sizes, 1, 24)
    pos, neg = [], []
    for group, patches, target in (("faces", faces_lfw, pos), ("lfw_nonfaces", free_lfw, neg)):
        for side in sizes:
            keys = [k for k in backgrounds if k[1] * 3 >= side * 4]
            for i, patch in enumerate(patches):
                key = keys[int(rng.integers(len(keys)))]
                frames = backgrounds[key]
                frame, box = paste(frames[int(rng.integers(len(frames)))], patch, side, rng)
                target.append({"group": f"{group}@{side}px", "where": f"{key[0]}{key[1]}", "frame": frame, "box": box})
    for name, box in FACE_PHOTOS.items():
        for short in (512, 256, 128):
            image, scale = resized(rgb(getattr(skimage.data, name)()), short)
            pos.append({"group": f"photo@{short}px", "where": name, "frame": image,
                        "box": tuple(round(v * scale) for v in box)})  # fmt: skip
    for (name, size), frames in {**backgrounds, **plain}.items():
        neg += [{"group": "worlds", "where": f"{name}{size}", "frame": f} for f in frames]
    for name in FREE_PHOTOS:
        for short in (512, 256, 128):
            neg.append({"group": "photos", "where": name, "frame": resized(rgb(getattr(skimage.data, name)()), short)[0]})
    clips = []
    for i, patch in enumerate(faces_lfw[: 15 if quick else 60]):
        key = list(backgrounds)[i % len(backgrounds)]
        side = [s for s in sizes if key[1] * 3 >= s * 4][i % 2]
        episode = record_episode(key[0], 2000 + i, 8, size=key[1]).frames
        x0, y0 = int(rng.integers(0, key[1] - side - 14)), int(rng.integers(0, key[1] - side - 14))
        pasted = [paste(f, patch, side, rng, (x0 + 2 * t, y0 + 2 * t)) for t, f in enumerate(episode)]
        clips.append({"frames": [p[0] for p in pasted], "boxes": [p[1] for p in pasted]})
    return {"pos": pos, "neg": neg, "clips": clips}


def coverage(boxes: list, gt: tuple, shape: tuple, margin: float) -> float:
    mask = np.zeros(shape[:2], bool)
    for b in boxes:
        x, y, w, h = grow(b, margin, shape[1], shape[0])
        mask[y : y + h, x : x + w] = True
    x, y, w, h = gt
    return float(mask[y : y + h, x : x + w].mean())


def rate(values: list[bool]) -> float:
    return float(np.mean(values)) if values else float("nan")


def by_group(rows: list[dict], key: str) -> dict:
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r[key])
    return {g: {"rate": rate(v), "n": len(v)} for g, v in sorted(groups.items())}


def face_eval(cfg: FaceConfig, data: dict, extra: dict | None = None) -> dict:
    """Haar recall and false boxes; ``extra`` maps a frame id to more boxes (NudeNet faces) to add."""
    extra = extra or {}
    cpu, n = time.process_time(), 0
    pos = []
    for r in data["pos"]:
        boxes = detect_faces(r["frame"], cfg) + extra.get(id(r["frame"]), [])
        n += 1
        pos.append({"group": r["group"], "covered": coverage(boxes, r["box"], r["frame"].shape, cfg.margin) >= COVER})
    neg = []
    for r in data["neg"]:
        n += 1
        neg.append({"group": r["group"], "boxed": bool(detect_faces(r["frame"], cfg) + extra.get(id(r["frame"]), []))})
    ms = (time.process_time() - cpu) * 1000 / n
    per_frame, carried = [], []
    for clip in data["clips"]:
        own = [detect_faces(f, cfg) for f in clip["frames"]]
        shape = clip["frames"][0].shape
        per_frame += [coverage(b, gt, shape, cfg.margin) >= COVER for b, gt in zip(own, clip["boxes"])]
        near = carry_boxes(own, cfg)
        carried += [coverage(b, gt, shape, cfg.margin) >= COVER for b, gt in zip(near, clip["boxes"])]
    return {
        "recall": rate([r["covered"] for r in pos]), "recall_by_group": by_group(pos, "covered"),
        "false_positive_rate": rate([r["boxed"] for r in neg]), "false_positives_by_group": by_group(neg, "boxed"),
        "clip_recall_per_frame": rate(per_frame), "clip_recall_carried": rate(carried),
        "ms_per_frame": ms, "frames": n,
    }  # fmt: skip


def nudenet_eval(data: dict, margin: float) -> dict:
    """NudeNet on every benign frame: nudity scores (false positives) and its FACE_* boxes as a face detector."""
    detect_frame(data["neg"][0]["frame"])  # load the model outside the timing
    cpu, rows, faces = time.process_time(), [], {}
    for kind in ("pos", "neg"):
        for r in data[kind]:
            found = detect_frame(r["frame"], threads=1)
            score, part = frame_score(found, NUDITY_CLASSES)
            faces[id(r["frame"])] = [tuple(d["box"]) for d in found if d["class"].startswith("FACE_")
                                     and d["score"] >= NUDENET_FACE]  # fmt: skip
            rows.append({"kind": kind, "group": r["group"], "score": score, "part": part, "found": found, "r": r})
    ms = (time.process_time() - cpu) * 1000 / len(rows)
    scores = np.array([r["score"] for r in rows])
    worst = max(rows, key=lambda r: r["score"])
    pos = [{"group": r["group"], "covered": coverage(faces[id(r["r"]["frame"])], r["r"]["box"], r["r"]["frame"].shape,
                                                     margin) >= COVER} for r in rows if r["kind"] == "pos"]  # fmt: skip
    neg = [{"group": r["group"], "boxed": bool(faces[id(r["r"]["frame"])])} for r in rows if r["kind"] == "neg"]
    return {
        "frames": len(rows), "ms_per_frame": ms,
        "nudity_false_positive_rate": {str(t): float((scores >= t).mean()) for t in (0.25, 0.4, 0.5, 0.7)},
        "max_nudity_score": float(scores.max()), "max_nudity_part": worst["part"],
        "max_nudity_where": f"{worst['group']} {worst['r']['where']}",
        "classes_seen": sorted({d["class"] for r in rows for d in r["found"]}),
        "face_recall": rate([p["covered"] for p in pos]), "face_recall_by_group": by_group(pos, "covered"),
        "face_false_positive_rate": rate([p["boxed"] for p in neg]),
        "nudity_recall": "not measured: no legal, offline, labelled nude image set ships in any installed package",
    }, faces  # fmt: skip


def timing(cfg: FaceConfig, data: dict) -> dict:
    """CPU ms per frame of the Haar detector and of NudeNet (1 thread each) on simulated-world frames, by size."""
    sizes: dict[int, list] = {}
    for r in data["neg"]:
        if r["group"] == "worlds":
            sizes.setdefault(r["frame"].shape[0], []).append(r["frame"])
    out = {}
    detect_frame(data["neg"][0]["frame"], threads=1)  # load the model outside the timing
    for size, frames in sorted(sizes.items()):
        frames = frames[:20]
        cpu = time.process_time()
        for f in frames:
            detect_faces(f, cfg)
        haar = (time.process_time() - cpu) * 1000 / len(frames)
        cpu = time.process_time()
        for f in frames:
            detect_frame(f, threads=1)
        out[f"{size}px"] = {"haar_ms": haar, "nudenet_ms": (time.process_time() - cpu) * 1000 / len(frames)}
    return out


SWEEP = [
    {"min_neighbors": 3}, {"min_neighbors": 5}, {"profile": ()}, {"min_side": 320}, {"min_side": 192},
    {"equalize": True}, {"scale_factor": 1.2}, {"margin": 0.15},
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--sizes", nargs="+", type=int, default=[24, 32, 48, 64])
    parser.add_argument("--world-sizes", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="also evaluate the FaceConfig variants in SWEEP")
    parser.add_argument("--quick", action="store_true", help="25 faces and non-faces instead of 100")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    data = datasets(args.seed, tuple(args.sizes), tuple(args.world_sizes), args.quick)
    print(f"{len(data['pos'])} face frames, {len(data['neg'])} face-free frames, {len(data['clips'])} clips", flush=True)
    cfg = FaceConfig()
    result = {"config": dataclasses.asdict(cfg), "cover": COVER, "haar": face_eval(cfg, data)}
    show("haar (default FaceConfig)", result["haar"])
    result["ms_per_frame"] = timing(cfg, data)
    print("CPU ms per world frame (1 thread):", json.dumps(result["ms_per_frame"]), flush=True)
    result["nudenet"], nn_faces = nudenet_eval(data, cfg.margin)
    nn = result["nudenet"]
    print(f"nudenet: {nn['ms_per_frame']:.1f} ms/frame; nudity score >= 0.5 on {nn['nudity_false_positive_rate']['0.5']:.3f}"
          f" of {nn['frames']} benign frames (max {nn['max_nudity_score']:.2f} {nn['max_nudity_part']}); "
          f"FACE_* recall {nn['face_recall']:.3f}, false boxes {nn['face_false_positive_rate']:.3f}")  # fmt: skip
    result["haar+nudenet"] = face_eval(cfg, data, nn_faces)
    show("haar + nudenet faces (when NudeNet ran on the frame)", result["haar+nudenet"])
    if args.sweep:
        result["sweep"] = []
        for change in SWEEP:
            r = face_eval(dataclasses.replace(cfg, **change), data)
            result["sweep"].append({"change": change, **r})
            show(f"sweep {change}", r)
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2))


def show(title: str, r: dict) -> None:
    groups = ", ".join(f"{g} {v['rate']:.2f}" for g, v in r["recall_by_group"].items())
    false = ", ".join(f"{g} {v['rate']:.3f}" for g, v in r["false_positives_by_group"].items())
    print(f"{title}: recall {r['recall']:.3f} ({groups}); clip recall {r['clip_recall_per_frame']:.3f} per frame, "
          f"{r['clip_recall_carried']:.3f} carried; false-positive rate {r['false_positive_rate']:.3f} ({false}); "
          f"{r['ms_per_frame']:.1f} ms/frame", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
