"""Choosing the next token from logits: temperature, top-k, top-p (nucleus) as free functions.

Every draw takes an explicit ``torch.Generator``, so a rollout is a pure function of its seed, whichever way its
logits were computed (with or without the KV cache). ``temperature == 0`` is greedy decoding.

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


def sample_logits(logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Next tokens (B,) int64 drawn from logits (B, V)."""
    if cfg.temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k and cfg.top_k < logits.shape[-1]:  # sample among the k best only: no full-vocabulary sort
        values, index = logits.topk(cfg.top_k, dim=-1)  # (B, K), sorted descending
    elif cfg.top_p < 1.0:
        values, index = logits.sort(dim=-1, descending=True)  # (B, V)
    else:
        return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
    probs = values.softmax(-1)
    if cfg.top_p < 1.0:
        probs = probs * top_p_mask(probs, cfg.top_p)
    choice = torch.multinomial(probs, 1, generator=generator)  # (B, 1) index into the kept tokens
    return index.gather(-1, choice).squeeze(-1)
