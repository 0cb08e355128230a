"""Named ``VideoGPT`` sizes, family ``autoregressive``, shared by the CLI, the tests and the benchmark.

``vocab_size`` and ``grid`` are placeholders here: training sets them from the DV tokenizer and the frame size.

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

from worldsmith.autoregressive.gpt import GPTConfig
from worldsmith.config import register_preset

SIZES = {
    "tiny": dict(dim=128, depth=4, heads=4, kv_heads=2, max_frames=8),
    "small": dict(dim=256, depth=8, heads=8, kv_heads=4, max_frames=8),
    "base": dict(dim=768, depth=16, heads=12, kv_heads=4, max_frames=16),
}


def make_config(size: str) -> GPTConfig:
    return GPTConfig(**SIZES[size])


for _size in SIZES:
    register_preset("autoregressive", _size, lambda s=_size: make_config(s))
