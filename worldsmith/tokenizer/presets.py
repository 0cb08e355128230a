"""Named tokenizer presets, family ``tokenizer``: ``{variant}-{size}``, plus ``tiny``/``small``/``base`` aliases.

Variants follow the Cosmos tokenizer suite (arXiv 2501.03575, Table 3): continuous/discrete video tokenizers
``cv4x8x8``, ``cv8x8x8``, ``cv8x16x16``, ``dv4x8x8``, ``dv8x8x8``, ``dv8x16x16`` (temporal x height x width
compression) and image tokenizers ``ci8x8``, ``ci16x16``, ``di8x8``, ``di16x16``.

Every preset has the linear encoder/decoder shortcuts of shortcut.py (``shortcut: false`` gives the plain Cosmos
network). Sizes (widths double per level up to 4x; as many levels as the compression needs after the Haar patch
of 4):

=======  =====  ==========  ========================================  ============================
size     width  res blocks  latent                                    use
=======  =====  ==========  ========================================  ============================
tiny     16     1           16 ch (CV), FSQ [8, 5, 5, 5] = 1,000 codes  tests, seconds on a CPU
small    32     1           16 ch (CV), FSQ [8, 8, 8, 5, 5, 5]          64x64 sim worlds on a CPU
base     128    2           16 ch (CV), FSQ [8, 8, 8, 5, 5, 5]          Cosmos-like widths, GPU
=======  =====  ==========  ========================================  ============================

For the best quality per CPU-minute at 64x64, widen the first level to the second's width
(``--set model.channels=[64,64]`` for cv4x8x8-small): each step costs ~27 % more and learns more than that
(benchmarks/RESULTS.md, tokenizer-ablation). The presets keep the narrower first level, which the demo and the
world-model benchmarks are timed with.
"""

from __future__ import annotations

from functools import partial

from worldsmith.config import register_preset
from worldsmith.tokenizer.tokenizer_config import TokenizerConfig

VARIANTS = {  # name -> (kind, temporal compression, spatial compression)
    "cv4x8x8": ("continuous", 4, 8),
    "cv8x8x8": ("continuous", 8, 8),
    "cv8x16x16": ("continuous", 8, 16),
    "dv4x8x8": ("discrete", 4, 8),
    "dv8x8x8": ("discrete", 8, 8),
    "dv8x16x16": ("discrete", 8, 16),
    "ci8x8": ("continuous", 1, 8),
    "ci16x16": ("continuous", 1, 16),
    "di8x8": ("discrete", 1, 8),
    "di16x16": ("discrete", 1, 16),
}
SIZES = {  # name -> (first width, residual blocks per level, head width, FSQ levels)
    "tiny": (16, 1, 32, (8, 5, 5, 5)),
    "small": (32, 1, 64, (8, 8, 8, 5, 5, 5)),
    "base": (128, 2, 64, (8, 8, 8, 5, 5, 5)),
}
WIDTH_MULTIPLIERS = (1, 2, 4, 4, 4)


def make_config(variant: str, size: str) -> TokenizerConfig:
    kind, ct, cs = VARIANTS[variant]
    width, blocks, head_dim, levels = SIZES[size]
    probe = TokenizerConfig(kind=kind, temporal_compression=ct, spatial_compression=cs, channels=(8,) * 4)
    n_levels = max(probe.spatial_downsamples, probe.temporal_downsamples) + 1
    channels = tuple(width * m for m in WIDTH_MULTIPLIERS[:n_levels])
    return TokenizerConfig(
        kind=kind,
        temporal_compression=ct,
        spatial_compression=cs,
        patch_size=4,
        channels=channels,
        num_res_blocks=blocks,
        latent_channels=16,
        fsq_levels=levels,
        head_dim=min(head_dim, channels[-1]),
        shortcut=True,
    )


for _variant in VARIANTS:
    for _size in SIZES:
        register_preset("tokenizer", f"{_variant}-{_size}", partial(make_config, _variant, _size))
for _size in SIZES:
    register_preset("tokenizer", _size, partial(make_config, "cv4x8x8", _size))
