"""``TokenizerGenerator``: the tokenizer behind the family ``Generator`` protocol (worldsmith/family.py).

A tokenizer generates nothing new: given a video it returns its reconstruction (encode, then decode), which is
what the demo, the benchmarks and the shared family tests ask of it. Frames stream through ``encode_stream`` /
``decode_stream``, so any number of frames works (the tail is padded inside the stream and trimmed here); the
frame height and width must be multiples of the spatial compression. Imports nothing from worldsmith.train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldsmith.family import GenerationRequest
from worldsmith.io.video import to_tensor, to_uint8
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.tokenizer.tensors import TokenizerInputError
from worldsmith.zoo import resolve


@dataclass
class Sampling:
    """Reconstruction is deterministic: there is nothing to set."""


class TokenizerGenerator:
    Sampling = Sampling
    fps: float | None = None  # the output keeps the frame rate of the request's video

    def __init__(self, model: CausalVideoTokenizer) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu") -> "TokenizerGenerator":
        return cls(CausalVideoTokenizer.from_pretrained(resolve(run), device=device))

    @torch.no_grad()
    def generate(self, request: GenerationRequest, sampling: Sampling | None = None) -> np.ndarray:
        """uint8 (T, H, W, 3): the reconstruction of ``request.video`` (T, H, W, 3); the seed changes nothing."""
        if request.video is None:
            raise TokenizerInputError("the tokenizer reconstructs a given video, so pass one as "
                                      "GenerationRequest(video=uint8 frames (T, H, W, 3)).")  # fmt: skip
        x = to_tensor(request.video)[None].to(self.device)  # (1, 3, T, H, W) in [-1, 1]
        self.model.check_video(x[:, :, :1])  # one sentence about the frame size before any work
        latents = self.model.encode_stream([x])
        video = torch.cat(list(self.model.decode_stream(latents)), dim=2)  # (1, 3, T + padding, H, W)
        return to_uint8(video[0, :, : x.shape[2]].cpu())  # (T, H, W, 3)
