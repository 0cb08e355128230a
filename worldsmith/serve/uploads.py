"""Uploaded images and videos: streamed to the server's work folder under a random id (the client's file name is
never used), size-capped while they arrive, then probed and decoded in full so a truncated or non-video file is
refused before any job reads it."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from worldsmith.atomic import atomic_write_text
from worldsmith.errors import VideoError
from worldsmith.io.video import decode, iter_frames, probe

ID = re.compile(r"^[0-9a-f]{32}$")


class TooLarge(VideoError):
    """The upload is over the size limit."""


class NotMedia(VideoError):
    """The upload is not an image or video at all (as opposed to a damaged or oversized one)."""


class Uploads:
    def __init__(self, root: Path, *, max_bytes: int, max_frames: int, max_side: int, keep: int) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_frames, self.max_side, self.keep = max_bytes, max_frames, max_side, keep
        self._lock = threading.Lock()

    def folder(self, upload_id: str) -> Path | None:
        """The folder of an upload, or None for an unknown or malformed id (ids are 32 hex digits, so no id can
        name a path outside the uploads folder)."""
        if not isinstance(upload_id, str) or not ID.match(upload_id):
            return None
        path = self.root / upload_id
        return path if (path / "meta.json").is_file() else None

    def meta(self, upload_id: str) -> dict[str, Any] | None:
        folder = self.folder(upload_id)
        return json.loads((folder / "meta.json").read_text()) if folder else None

    async def receive(self, chunks: AsyncIterator[bytes]) -> Path:
        """Write the request body to a new folder, stopping with TooLarge past ``max_bytes``."""
        folder = self.root / f".incoming-{uuid.uuid4().hex}"
        folder.mkdir()
        size = 0
        try:
            with open(folder / "file", "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(f"the upload is larger than the server's limit of {self.max_bytes // 2**20} "
                                       f"MB; send a shorter or smaller video.")  # fmt: skip
                    f.write(chunk)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if size == 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise VideoError("the upload is empty; send the bytes of an image or video file as the request body.")
        return folder

    def validate(self, folder: Path) -> dict[str, Any]:
        """Probe and decode every frame of the received file (holding one frame at a time); on success the upload
        gets its id, else the folder is deleted and a VideoError says what is wrong."""
        path = folder / "file"
        try:
            try:
                info = probe(path)
            except VideoError:
                raise NotMedia("the upload is not an image or video that can be read; send a PNG, JPEG or an "
                               "MP4/WebM/MOV video.") from None  # fmt: skip
            if max(info.width, info.height) > self.max_side:
                raise VideoError(f"the upload is {info.width}x{info.height}; the server takes at most "
                                 f"{self.max_side} pixels a side.")  # fmt: skip
            count = 0
            try:
                for _ in iter_frames(path):
                    count += 1
                    if count > self.max_frames:
                        break
            except VideoError as e:
                why = str(e).replace(str(path), "it").rstrip(".")
                raise VideoError(f"the upload does not decode ({why}); send the whole, undamaged file.") from None
            if count > self.max_frames:
                raise VideoError(f"the upload has more than {self.max_frames} frames; trim it and send it again.")
            if not info.is_image and info.num_frames and count < info.num_frames - 1:
                raise VideoError(f"the upload is truncated: {count} of its {info.num_frames} frames decode; send "
                                 f"the whole file.")  # fmt: skip
            meta = {"kind": "image" if info.is_image else "video", "frames": count, "width": info.width,
                    "height": info.height, "fps": info.fps, "codec": info.codec, "bytes": path.stat().st_size}  # fmt: skip
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        upload_id = uuid.uuid4().hex
        atomic_write_text(folder / "meta.json", json.dumps(meta))
        os.replace(folder, self.root / upload_id)
        self._prune()
        return {"id": upload_id, **meta}

    def frames(self, upload_id: str, *, first: int | None = None, last: int | None = None) -> np.ndarray:
        """uint8 (k, H, W, 3): the ``first`` k frames, or the ``last`` k, or all of them."""
        folder, meta = self.folder(upload_id), self.meta(upload_id)
        if folder is None or meta is None:
            raise VideoError(f"no upload has the id {upload_id!r}; upload the file first (POST /api/uploads).")
        start = max(0, meta["frames"] - last) if last else 0
        return decode(folder / "file", start=start, end=first)

    def _prune(self) -> None:
        with self._lock:
            folders = sorted((p for p in self.root.iterdir() if ID.match(p.name)), key=lambda p: p.stat().st_mtime)
            for old in folders[: max(0, len(folders) - self.keep)]:
                shutil.rmtree(old, ignore_errors=True)

