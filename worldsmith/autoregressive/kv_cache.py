"""A static-shape key/value cache for the self-attention layers of ``VideoGPT``.

The buffers are allocated once per rollout at the window's full length, ``(layers, B, kv_heads, max_len,
head_dim)``, and written in place: a decode step never allocates or concatenates, and the shapes never change, so
the step can be captured by ``torch.compile``. Two ways to read them:

* ``update`` returns the filled prefix ``[:start + S]`` (eager decoding: attention costs what the context holds);
* ``update_static`` returns the whole buffer and ``mask`` hides the slots past the position (the compiled step:
  one graph for every position, the position a 0-d tensor).
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:  # fmt: skip
        shape = (layers, batch, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.layers = list(zip(self.k.unbind(0), self.v.unbind(0)))  # per-layer views (B, kv_heads, max_len, hd)
        self.max_len = max_len
        self.length = 0  # slots holding valid keys/values (maintained by the caller through ``advance``)

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    def select(self, idx: torch.Tensor) -> "KVCache":
        """A cache of rows ``idx`` (B',) of this one's rollouts: their keys and values, the same length."""
        out = KVCache(len(self.layers), len(idx), self.k.shape[2], self.max_len, self.k.shape[4], dtype=self.k.dtype,
                      device=self.k.device)  # fmt: skip
        out.k.copy_(self.k[:, idx])
        out.v.copy_(self.v[:, idx])
        out.length = self.length
        return out

    def reset(self) -> None:
        self.length = 0

    def advance(self, n: int) -> None:
        if self.length + n > self.max_len:
            raise ValueError(f"KV cache overflow: {self.length} + {n} > {self.max_len} slots")
        self.length += n

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, kv_heads, S, hd) at slots [start, start + S); return keys/values of slots [0, start + S)."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: slot {end - 1} >= {self.max_len}")
        keys, values = self.layers[layer]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]  # (B, kv_heads, start + S, hd)

    def update_static(self, layer: int, pos: torch.Tensor, k: torch.Tensor,
                      v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Write one step k, v (B, kv_heads, 1, hd) at slot ``pos`` (0-d int64 tensor); return the whole buffers."""
        keys, values = self.layers[layer]
        keys.index_copy_(2, pos.reshape(1), k)
        values.index_copy_(2, pos.reshape(1), v)
        return keys, values  # (B, kv_heads, max_len, hd)

    def mask(self, pos: torch.Tensor) -> torch.Tensor:
        """bool (1, 1, 1, max_len): True at slots <= pos (those a query at ``pos`` may attend to)."""
        return (torch.arange(self.max_len, device=self.k.device) <= pos).view(1, 1, 1, -1)
