"""Configs of the autoregressive world model: ``GPTConfig`` (the network), ``SamplingConfig`` (how tokens are
drawn) and the named sizes ``PRESETS``, shared by the CLI, the tests and the benchmark.

``vocab_size`` and ``grid`` are placeholders in the presets: training sets them from the DV tokenizer and the
frame size.

=======  =====  =====  =====  ========  ==========  ======  =====================================================
size     dim    depth  heads  kv heads  max frames  params  use
=======  =====  =====  =====  ========  ==========  ======  =====================================================
tiny     128    4      4      2         8           1.2M    tests; real-time play at 64x64 on a 2-core CPU
small    256    8      8      4         8           8.1M    64x64 sim worlds on a CPU
base     768    16     12     4         16          128M    GPU; Cosmos-like width at a tenth of the depth
=======  =====  =====  =====  ========  ==========  ======  =====================================================

(parameters with the dv4x8x8-tiny vocabulary of 1,000 codes and a 8x8 grid.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from worldsmith.errors import ConfigError
from worldsmith.nn.lora import LoRAConfig
from worldsmith.nn.rope import axis_dims


@dataclass
class GPTConfig:
    vocab_size: int = 1000  # codes of the DV tokenizer (product of its FSQ levels); set from the tokenizer
    grid: tuple[int, int] = (8, 8)  # latent tokens per frame (H', W'); set from the tokenizer and the frame size
    max_frames: int = 8  # latent frames in the attention window (training crop and generation context)
    dim: int = 256
    depth: int = 6
    heads: int = 8
    kv_heads: int = 4  # grouped-query attention: every heads / kv_heads query heads share one key/value head
    mlp_hidden: int = 0  # SwiGLU hidden width; 0: 8/3 * dim rounded up to a multiple of 32
    text_dim: int = 384  # width of the text encoder's token states (MiniLM)
    rope_theta: float = 10000.0
    z_loss: float = 1e-4  # weight of the log(Z)^2 auxiliary loss (PaLM, Chowdhery et al. 2022, Sec. 5)
    action_dim: int = 0  # actions per transition (e.g. 7 for the arm); 0: no action conditioning
    action_chunk: int = 1  # actions per latent frame: the tokenizer's temporal compression (set at training)
    head: str = "flat"  # "flat": one softmax over all codes; "factorized": the FSQ digits one by one (heads.py)
    fsq_levels: tuple[int, ...] = ()  # the tokenizer's FSQ levels (set at training); needed by the factorized head
    head_hidden: int = 0  # width of the factorized head's digit states; 0: dim
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # rank > 0: post-train low-rank adapters of the blocks only

    def __post_init__(self) -> None:
        self.grid = tuple(self.grid)  # type: ignore[assignment]
        if self.vocab_size < 2 or len(self.grid) != 2 or min(self.grid) < 1 or self.max_frames < 1:
            raise ConfigError("model.vocab_size >= 2, model.grid = [H', W'] >= 1 and model.max_frames >= 1 are "
                              "required.")
        if self.depth < 1 or self.heads < 1 or self.dim % self.heads:
            raise ConfigError(f"model.dim ({self.dim}) must split into model.heads ({self.heads}) equal heads and "
                              f"model.depth must be >= 1.")
        if self.kv_heads < 1 or self.heads % self.kv_heads:
            raise ConfigError(f"model.heads ({self.heads}) must be a multiple of model.kv_heads ({self.kv_heads}).")
        if self.head_dim % 2 or min(axis_dims(self.head_dim)) < 2 or self.dim % 2:
            raise ConfigError(f"model.dim / model.heads = {self.head_dim} must be even and >= 6 for the 3D RoPE.")
        if self.action_dim < 0 or self.action_chunk < 1:
            raise ConfigError("model.action_dim >= 0 and model.action_chunk >= 1 are required.")
        self.fsq_levels = tuple(int(v) for v in self.fsq_levels)  # type: ignore[assignment]
        if self.head not in ("flat", "factorized"):
            raise ConfigError(f"model.head must be 'flat' or 'factorized', got {self.head!r}.")
        if self.head == "factorized" and self.fsq_levels and math.prod(self.fsq_levels) != self.vocab_size:
            raise ConfigError(f"the factorized head needs model.fsq_levels whose product is the vocabulary "
                              f"({self.vocab_size}), got {list(self.fsq_levels)}; train it on a DV tokenizer's tokens.")
        if self.head_hidden < 0:
            raise ConfigError("model.head_hidden must be >= 0 (0: model.dim).")
        if self.mlp_hidden < 0 or self.text_dim < 1 or self.z_loss < 0:
            raise ConfigError("model.mlp_hidden >= 0, model.text_dim >= 1 and model.z_loss >= 0 are required.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or -(-8 * self.dim // 3 // 32) * 32

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def max_len(self) -> int:
        return self.max_frames * self.tokens_per_frame


@dataclass
class SamplingConfig:
    """How the next token is drawn (``worldsmith generate --temperature/--top-k/--top-p``; see sampling.py)."""

    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1: no nucleus cut

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}.")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 keeps every token), got {self.top_k}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1] (1 keeps every token), got {self.top_p}.")


PRESETS = {
    "tiny": lambda: GPTConfig(dim=128, depth=4, heads=4, kv_heads=2, max_frames=8),
    "small": lambda: GPTConfig(dim=256, depth=8, heads=8, kv_heads=4, max_frames=8),
    "base": lambda: GPTConfig(dim=768, depth=16, heads=12, kv_heads=4, max_frames=16),
}
