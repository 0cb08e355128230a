"""Video and image I/O on PyAV (conventions: see ``worldsmith.io.video``)."""

from worldsmith.errors import VideoError
from worldsmith.io.video import (
    Source,
    VideoInfo,
    contact_sheet,
    decode,
    encode_mp4,
    encode_mp4_bytes,
    iter_frames,
    probe,
    to_tensor,
    to_uint8,
)

__all__ = [
    "Source",
    "VideoError",
    "VideoInfo",
    "contact_sheet",
    "decode",
    "encode_mp4",
    "encode_mp4_bytes",
    "iter_frames",
    "probe",
    "to_tensor",
    "to_uint8",
]
