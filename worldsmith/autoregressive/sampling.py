"""Choosing the next token from logits: temperature, top-k, top-p (nucleus) as free functions.

Every draw takes an explicit ``torch.Generator``, so a rollout is a pure function of its seed, whichever way its
logits were computed (with or without the KV cache). ``temperature == 0`` is greedy decoding. ``RowStreams`` (one
generator per row of a batch, drawn by inverse CDF) makes each row a function of its own seed alone, so a rollout
samples the same tokens alone or in any batch (environments, the planner's candidates).

* top-k (Fan et al. 2018): keep the ``k`` most likely tokens;
* top-p (Holtzman et al. 2020, arXiv 1904.09751, eq. 3): keep the smallest set of most likely tokens whose
  probability reaches ``p`` (the most likely token is always kept).
"""

from __future__ import annotations

import torch

from worldsmith.autoregressive.config import SamplingConfig


def top_p_mask(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """bool mask (B, K) of the nucleus of probabilities sorted in descending order (B, K)."""
    before = sorted_probs.cumsum(-1) - sorted_probs  # probability mass of the more likely tokens
    return before < top_p  # the first token always passes (0 < top_p)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """A copy of logits (B, V) with the tokens outside top-k / top-p set to -inf."""
    out = logits.clone()
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        out[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = out.sort(dim=-1, descending=True)
        keep = top_p_mask(sorted_logits.softmax(-1), top_p)
        out.scatter_(-1, order, sorted_logits.masked_fill(~keep, float("-inf")))
    return out


class RowStreams:
    """One random stream per row of a batch: row i's uniforms come from ``generators[i]`` alone, drawn ``block`` at
    a time (so the draws are a function of the row's seed, not of the batch or of when they are taken)."""

    def __init__(self, generators: list[torch.Generator], block: int = 512) -> None:
        self.generators, self.block = list(generators), block
        self.buffer = torch.empty(len(self.generators), 0, dtype=torch.float64)
        self.used = 0

    def take(self) -> torch.Tensor:
        """The next uniform in [0, 1) of every row (B,) float64."""
        if self.used == self.buffer.shape[1]:
            self.buffer = torch.stack([torch.rand(self.block, generator=g, dtype=torch.float64)
                                       for g in self.generators])  # fmt: skip
            self.used = 0
        self.used += 1
        return self.buffer[:, self.used - 1]

    def repeat(self, n: int) -> "RowStreams":
        """Each row ``n`` times (row i * n + j copies row i), each copy a new stream seeded from row i's."""
        seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in self.generators for _ in range(n)]
        return RowStreams([torch.Generator().manual_seed(s) for s in seeds], self.block)


def draw(probs: torch.Tensor, generator: torch.Generator | RowStreams | None) -> torch.Tensor:
    """One index (B,) per row of probabilities (B, K) (unnormalised; zero entries are never drawn)."""
    if not isinstance(generator, RowStreams):
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    cdf = probs.double().cumsum(-1)  # (B, K)
    u = generator.take().to(cdf.device)[:, None] * cdf[:, -1:]  # (B, 1), below the total
    return torch.searchsorted(cdf, u, side="right").squeeze(-1).clamp_max(probs.shape[-1] - 1)


def sample_logits(logits: torch.Tensor, cfg: SamplingConfig,
                  generator: torch.Generator | RowStreams | None = None) -> torch.Tensor:  # fmt: skip
    """Next tokens (B,) int64 drawn from logits (B, V); ``generator``: one stream, or one per row (RowStreams)."""
    if cfg.temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:  # sample among the k best only: no full-vocabulary sort
        values, index = logits.topk(cfg.top_k, dim=-1)  # (B, K), sorted descending
    elif cfg.top_p < 1.0:
        values, index = logits.sort(dim=-1, descending=True)  # (B, V)
    else:
        return draw(logits.softmax(-1), generator)
    probs = values.softmax(-1)
    if cfg.top_p < 1.0:
        probs = probs * top_p_mask(probs, cfg.top_p)
    choice = draw(probs, generator)  # (B,) index into the kept tokens
    return index.gather(-1, choice[:, None]).squeeze(-1)
