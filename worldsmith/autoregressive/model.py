"""``VideoGPT``: a Llama-style decoder over discrete video tokens, with cross-attention to text.

The Cosmos autoregressive world model (arXiv 2501.03575, Sec. 5.2): the frames of a video, tokenized by the
discrete (FSQ) tokenizer, are read in raster order (t, h, w) and each token is predicted from the ones before it.

Block (pre-norm, Llama: Touvron et al. 2023, arXiv 2302.13971)::

    x = x + SelfAttention(RMSNorm(x))    grouped-query (Ainslie et al. 2023), RMSNorm on q and k, 3D RoPE
    x = x + CrossAttention(RMSNorm(x))   queries from the video, keys/values from text tokens
    x = x + SwiGLU(RMSNorm(x))           Shazeer 2020, arXiv 2002.05202, eq. 6

Sequence layout: window slot ``n`` sits at the raster position of token ``n`` (worldsmith.nn.embeddings.raster_positions). Its input is token
``n - 1`` (slot 0 reads a learned BOS token, id ``vocab_size``) and its output predicts token ``n``, so slot,
position and target agree, a window of ``max_frames`` latent frames holds ``max_frames * H' * W'`` slots and the
input embedding is ``token embedding + 3D sinusoidal embedding of the slot``.

Conditioning is a set of context tokens read by every block's cross-attention: a learned null token, always
present (so a sample without text attends to it alone), followed by the projected text states. Another condition
(actions, camera) adds its own tokens to that set, never a branch in ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.autoregressive.config import GPTConfig
from worldsmith.autoregressive.heads import make_io
from worldsmith.autoregressive.kv_cache import KVCache
from worldsmith.conditioning.action import ActionEmbedder
from worldsmith.errors import ConfigError
from worldsmith.nn.embeddings import raster_positions, sinusoidal_3d
from worldsmith.nn.lora import adapt, trained_state, with_base
from worldsmith.nn.norms import RMSNorm
from worldsmith.nn.rope import rope_table, rotate, rotation
from worldsmith.weights import Pretrained

# cross-attention context of one block: keys, values (B, Hkv, L, hd) and an additive mask (B, 1, 1, L) or None
CrossKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
CAUSAL_CHUNK = 128  # on a CPU, queries per chunk of a causal self-attention over more slots (causal_attention)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention of q (B, H, S, hd) over k, v (B, Hkv, S, hd) (grouped-query).

    On a CPU, PyTorch's flash kernel takes up to 512 keys as one block, so below that length its causal mask skips
    no work: every query is scored against every key. Chunks of CAUSAL_CHUNK queries, each against the keys up to
    its own end (the last block masked), skip the upper triangle instead: the same values (to float rounding),
    forward and backward about 30 % faster at 512 slots and head width 32 (benchmarks/RESULTS.md, "Autoregressive
    head"). Elsewhere (GPU kernels skip masked blocks themselves) and for short sequences: one call."""
    s = q.shape[2]
    if q.device.type != "cpu" or s <= CAUSAL_CHUNK:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    out = []
    for a in range(0, s, CAUSAL_CHUNK):
        e = min(a + CAUSAL_CHUNK, s)
        mask = torch.ones(e - a, e, dtype=torch.bool, device=q.device).tril(a) if a else None
        out.append(F.scaled_dot_product_attention(q[:, :, a:e], k[:, :, :e], v[:, :, :e], attn_mask=mask,
                                                  is_causal=not a, enable_gqa=True))  # fmt: skip
    return torch.cat(out, dim=2)


@dataclass
class GPTContext:
    """What a rollout is conditioned on, computed once per window: every block's cross-attention keys/values of
    the text, and embeddings added to the input of each window slot (actions: the frame's action chunk)."""

    cross: list[CrossKV]
    slots: torch.Tensor | None = None  # (B, max_len, D) or None


class SelfAttention(nn.Module):
    """Grouped-query self-attention with RMSNorm on queries and keys (a gain per head) and 3D RoPE.

    Queries and keys are normalised and rotated together, as one tensor of heads + kv_heads heads.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.dim, (cfg.heads + 2 * cfg.kv_heads) * cfg.head_dim, bias=False)
        self.qk_gain = nn.Parameter(torch.ones(cfg.heads + cfg.kv_heads, cfg.head_dim))  # RMSNorm weights of q, k
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, cache: KVCache | None, layer: int,
                start: int | torch.Tensor) -> torch.Tensor:  # fmt: skip
        """x (B, S, D) at slots [start, start + S); rope: the rotations of those slots (positions.rotation)."""
        b, s, _ = x.shape
        qkv = self.qkv(x).view(b, s, self.heads + 2 * self.kv_heads, self.head_dim)
        qk, v = qkv.split([self.heads + self.kv_heads, self.kv_heads], dim=2)
        qk = rotate(F.rms_norm(qk, (self.head_dim,), eps=1e-6) * self.qk_gain, rope)  # (B, S, H + Hkv, hd)
        q, k = qk.transpose(1, 2).split([self.heads, self.kv_heads], dim=1)  # (B, H or Hkv, S, hd)
        v = v.transpose(1, 2)  # (B, Hkv, S, hd)
        mask, causal = None, s > 1
        if isinstance(start, torch.Tensor):  # static-shape step: the whole buffer, later slots masked
            k, v = cache.update_static(layer, start, k, v)
            mask, causal = cache.mask(start), False
        elif cache is not None:
            k, v = cache.update(layer, start, k, v)  # (B, Hkv, start + S, hd)
            if s > 1 and start > 0:  # a chunk after cached slots: causal with an offset
                mask, causal = torch.ones(s, start + s, dtype=torch.bool, device=x.device).tril(start), False
        if causal and k.shape[2] == s:  # the whole window at once (training, a prefill from slot 0)
            out = causal_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        return self.proj(out.transpose(1, 2).reshape(b, s, -1))  # (B, S, D)


class CrossAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim
        self.q = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.kv_heads * cfg.head_dim, bias=False)
        self.q_norm, self.k_norm = RMSNorm(cfg.head_dim, eps=1e-6), RMSNorm(cfg.head_dim, eps=1e-6)
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def context_kv(self, ctx: torch.Tensor, mask: torch.Tensor | None) -> CrossKV:
        """Keys, values and additive mask (None: attend to all) of context tokens ctx (B, L, D) with mask (B, L)
        (None: all valid); computed once per rollout, so a decode step converts no mask."""
        b, n, _ = ctx.shape
        k, v = self.kv(ctx).view(b, n, 2, self.kv_heads, self.head_dim).unbind(2)  # (B, L, kv_heads, hd) each
        bias = None
        if mask is not None and not bool(mask.all()):  # (a data-dependent branch: torch.compile breaks its graph
            # here, so the null-token-only context passes None and compiles as one graph)
            bias = torch.zeros(mask.shape, dtype=ctx.dtype, device=ctx.device).masked_fill_(~mask, float("-inf"))
            bias = bias[:, None, None, :]  # (B, 1, 1, L)
        return self.k_norm(k).transpose(1, 2), v.transpose(1, 2), bias

    def forward(self, x: torch.Tensor, kv: CrossKV) -> torch.Tensor:
        b, s, _ = x.shape
        k, v, mask = kv
        if k.shape[2] == 1 and mask is None:  # one context token (no prompt: the null token): softmax over one key
            # is 1, so the output is its value whatever the query, projected once per sample, not per slot
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
            out = self.proj(v.transpose(1, 2).reshape(b, 1, -1)).expand(b, s, -1)
            if torch.is_grad_enabled():  # the query (with the norm before it), its weights and the key get their
                # exact gradient, zero, and take part in the step (DDP)
                query = [p.sum() for p in (*self.q.parameters(), *self.q_norm.parameters()) if p.requires_grad]
                out = out + (x.sum() + k.sum() + sum(query)) * 0
            return out
        q = self.q_norm(self.q(x).view(b, s, self.heads, self.head_dim)).transpose(1, 2)  # (B, heads, S, hd)
        if mask is not None and mask.dtype != q.dtype:  # e.g. bf16 queries under autocast
            mask = mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return self.proj(out.transpose(1, 2).reshape(b, s, -1))  # (B, S, D)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(dim, 2 * hidden, bias=False)  # value and gate in one matmul
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * value)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (RMSNorm(cfg.dim, eps=1e-6) for _ in range(3))
        self.attn, self.cross, self.mlp = SelfAttention(cfg), CrossAttention(cfg), SwiGLU(cfg.dim, cfg.hidden)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, cross: CrossKV, cache: KVCache | None, layer: int,
                start: int | torch.Tensor) -> torch.Tensor:  # fmt: skip
        x = x + self.attn(self.norm1(x), rope, cache, layer, start)
        x = x + self.cross(self.norm2(x), cross)
        return x + self.mlp(self.norm3(x))


class TextContext(nn.Module):
    """Text states (B, L, text_dim) + mask -> context tokens (B, 1 + L, D) behind a learned null token."""

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, dim)
        self.null = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, text: torch.Tensor | None, mask: torch.Tensor | None,
                batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """(context tokens (B, 1 + L, D), their mask (B, 1 + L); None when every token is valid, i.e. no text)."""
        null = self.null.expand(batch, 1, -1)
        if text is None:  # no text: zero text tokens (the projection still runs, so DDP sees every parameter used)
            text = null.new_zeros(batch, 0, self.proj.in_features)
            if mask is None:
                return torch.cat([null, self.proj(text.to(null.dtype))], dim=1), None
        if mask is None:
            mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        ones = torch.ones(batch, 1, dtype=torch.bool, device=null.device)
        return torch.cat([null, self.proj(text.to(null.dtype))], dim=1), torch.cat([ones, mask.bool()], dim=1)


class VideoGPT(nn.Module, Pretrained):
    Config = GPTConfig

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb, self.head = make_io(cfg)  # input embedding (the last id is BOS) and output head (heads.py)
        self.text = TextContext(cfg.text_dim, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.dim, eps=1e-6)
        # the conditioning slot: embedders whose per-frame vectors are added to the inputs of that frame's slots
        self.embedders = nn.ModuleList([ActionEmbedder(cfg.action_dim, cfg.dim, cfg.action_chunk)] if cfg.action_dim else [])
        table = rope_table(cfg.max_frames, *cfg.grid, cfg.head_dim, cfg.rope_theta)  # (max_len, hd/2, 2)
        self.register_buffer("rope", table, persistent=False)
        positions = raster_positions(cfg.max_frames, *cfg.grid)  # (max_len, 3)
        self.register_buffer("abs_pos", sinusoidal_3d(positions, cfg.dim), persistent=False)  # (max_len, D)
        self.initialize_weights()
        if cfg.lora.rank:  # LoRA: adapters on every linear of the blocks; only they and the action embedder train
            adapt(self, self.blocks, cfg.lora, "embedders.")

    def pretrained_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What model.safetensors keeps: everything, or with LoRA the adapters, the embedder and the buffers."""
        return trained_state(self, state) if self.cfg.lora.rank else state

    @classmethod
    def upgrade(cls, model_config: dict, state: dict, run_dir) -> tuple[dict, dict]:
        """A LoRA run saves adapters only: complete them with its base run's weights."""
        return model_config, with_base(model_config, state)

    def initialize_weights(self) -> None:
        """Linears N(0, 0.02); residual outputs scaled by 1/sqrt(2 depth) (GPT-2); cross-attention outputs zero, so
        text starts as a no-op; token embeddings N(0, 1) like the sinusoidal embedding they are added to."""
        own = {id(m) for e in self.embedders for m in e.modules()}  # embedders keep their own (zero) start
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in own:
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=0.02 / (2 * self.cfg.depth) ** 0.5)
            nn.init.normal_(block.mlp.down.weight, std=0.02 / (2 * self.cfg.depth) ** 0.5)
            nn.init.zeros_(block.cross.proj.weight)
        digits = len(self.cfg.fsq_levels) if self.cfg.head == "factorized" else 1  # a token sums this many rows
        nn.init.normal_(self.tok_emb.weight, std=digits**-0.5)
        nn.init.normal_(self.text.null, std=0.02)

    @property
    def bos(self) -> int:
        return self.cfg.vocab_size

    def checkpoint_modules(self) -> list[nn.Module]:
        return list(self.blocks)

    def no_weight_decay(self) -> set[str]:
        return {"text.null"}

    def context(self, text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None, batch: int = 1,
                extras: dict[str, torch.Tensor] | None = None) -> GPTContext:  # fmt: skip
        """The rollout's conditions: text states (B, L, text_dim) (None: the null token only) and the values of the
        extra embedders by name (``actions`` (B, N, A): the transitions from the window's first frame on)."""
        b = text.shape[0] if text is not None else batch
        return GPTContext(self.cross_kv(text, text_mask, b), self.slot_embeddings(extras, b))

    def cross_kv(self, text: torch.Tensor | None, text_mask: torch.Tensor | None, batch: int) -> list[CrossKV]:
        """Every block's cross-attention keys/values of the text (None: the null token only)."""
        ctx, mask = self.text(text, text_mask, batch)  # (B, 1+L, D)
        return [block.cross.context_kv(ctx, mask) for block in self.blocks]

    def slot_embeddings(self, extras: dict[str, torch.Tensor] | None, batch: int) -> torch.Tensor | None:
        """(B, max_len, D): the extra embedders' per-frame vectors on every slot of their frame (None: none).
        Each frame's vector depends on that frame's values alone, so a step-by-step rollout recomputes it as
        actions arrive (zeros for those not yet taken) without changing the frames before."""
        slots = None
        for e in self.embedders:
            if not extras or e.name not in extras:
                raise ConfigError(f"this model is conditioned on {e.name!r}, but no {e.name!r} was given.")
            per_frame = e(extras[e.name], (batch, self.cfg.max_frames, *self.cfg.grid))  # (B, max_frames, D)
            emb = per_frame.repeat_interleave(self.cfg.tokens_per_frame, dim=1)  # (B, max_len, D)
            slots = emb if slots is None else slots + emb
        return slots

    def forward(self, inputs: torch.Tensor, ctx: GPTContext | None = None, *, start: int | torch.Tensor = 0,
                cache: KVCache | None = None) -> torch.Tensor:  # fmt: skip
        """Output states (B, S, D) for input ids (B, S) at window slots [start, start + S): ``self.head`` turns
        them into a loss, samples or log-probabilities (heads.py).

        ``ctx`` from ``context`` (None: unconditioned). With a ``cache`` the keys and values of these slots
        are stored and earlier slots are read from it; ``start`` as a 0-d tensor selects the static-shape step
        (one slot, whole cache buffer masked), which ``torch.compile`` captures once for every position.
        """
        b, s = inputs.shape
        if ctx is None:
            ctx = self.context(batch=b)
        if isinstance(start, torch.Tensor):
            idx = start.reshape(1)
            rope, pos = self.rope[idx], self.abs_pos[idx]  # (1, hd/2, 2), (1, D)
            extra = ctx.slots[:, idx] if ctx.slots is not None else None  # (B, 1, D)
        else:
            if start + s > self.cfg.max_len:
                raise ValueError(f"slots [{start}, {start + s}) exceed the window of {self.cfg.max_len} tokens")
            rope = self.rope[start : start + s]  # (S, hd/2, 2)
            pos = self.abs_pos[start : start + s]  # (S, D)
            extra = ctx.slots[:, start : start + s] if ctx.slots is not None else None  # (B, S, D)
        rope = rotation(rope)  # built once for all blocks
        x = self.tok_emb(inputs) + pos  # (B, S, D)
        if extra is not None:
            x = x + extra.to(x.dtype)
        for layer, block in enumerate(self.blocks):
            x = block(x, rope, ctx.cross[layer], cache, layer, start)
        return self.norm(x)  # (B, S, D)

    def new_cache(self, batch: int, dtype: torch.dtype | None = None) -> KVCache:
        cfg, weight = self.cfg, self.tok_emb.weight
        return KVCache(cfg.depth, batch, cfg.kv_heads, cfg.max_len, cfg.head_dim,
                       dtype=dtype or weight.dtype, device=weight.device)  # fmt: skip
