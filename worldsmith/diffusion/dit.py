"""The diffusion backbone: a DiT over tokenizer latents (Cosmos design, arXiv 2501.03575, Sec. 5.1).

Latents (B, C, T', H', W') are cut into 1x2x2 patches; each block runs self-attention (3D RoPE, RMSNorm on
queries and keys) -> cross-attention to the text tokens -> MLP, each pre-normed and modulated (shift, scale,
gate) by AdaLN-LoRA from the noise-level embedding. Modulation may vary per latent frame: the embedding is
(B, Tm, D) with Tm = 1 (one noise level per sample) or T' (per-frame noise levels, per-frame conditions).

Several synchronized views (multi-view models, conditioning/views.py) arrive stacked along H' with
``Condition.extras["views"]`` (B, V): every view gets the same (t, h, w) positions (RoPE and the absolute table),
the MLP's per-frame convolution stays inside each view, and self-attention runs over all views and frames at once.

With ``next_frame_only`` (step-by-step models with frame stacking) the blocks run on each sample's first generated
latent frame alone; the given frames reach it as stacked input channels (``anchors``), so a training step and a
rollout step cost one latent frame instead of the whole window (benchmarks/RESULTS.md: 2.8x samples per second on
the arm, and a better model for the same CPU time).

The network is the bare F_theta of EDM: it sees ``c_in * x`` and ``c_noise`` and knows nothing about noise
schedules (edm.py wraps it). Extra conditions plug in through ``embedders`` (see embedders.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from worldsmith.conditioning.views import view_grid
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import DiTConfig
from worldsmith.diffusion.embedders import GUIDED_KEEP, ConditionEmbedder, NoiseEmbedder
from worldsmith.errors import ConfigError
from worldsmith.nn.embeddings import PositionEmbedding, patchify
from worldsmith.nn.modulation import EPS, Modulation, modulate
from worldsmith.nn.norms import RMSNorm
from worldsmith.nn.rope import RoPE3D, apply_rope


def pick(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Frame ``index[b]`` of each sample of x (B, T, ...) -> (B, 1, ...)."""
    shape = (x.shape[0], 1, *x.shape[2:])
    return x.gather(1, index.view(-1, *([1] * (x.ndim - 1))).expand(shape))


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim, eps=EPS), RMSNorm(self.head_dim, eps=EPS)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).unbind(2)  # (B, N, H, Dh) each
        q = apply_rope(self.q_norm(q), rotation).transpose(1, 2)  # (B, H, N, Dh)
        k = apply_rope(self.k_norm(k), rotation).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v.transpose(1, 2))  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, text_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(text_dim, 2 * width, bias=False)
        self.q_norm, self.k_norm = RMSNorm(self.head_dim, eps=EPS), RMSNorm(self.head_dim, eps=EPS)
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q_norm(self.q(x).view(b, n, self.heads, self.head_dim))  # (B, N, H, Dh)
        k, v = self.kv(text).view(b, text.shape[1], 2, self.heads, self.head_dim).unbind(2)  # (B, L, H, Dh)
        k = self.k_norm(k)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class MLP(nn.Module):
    """fc1 -> GELU -> fc2; with ``local``, a depthwise 3x3 convolution over each frame's token grid is added to the
    hidden states (Mix-FFN, SegFormer arXiv 2105.15203): neighbouring tokens mix in every block, so motion across
    patch borders needs no learned attention pattern. It starts at zero (the plain MLP)."""

    def __init__(self, width: int, ratio: float, local: bool = False) -> None:
        super().__init__()
        hidden = int(width * ratio)
        self.fc1, self.fc2 = nn.Linear(width, hidden, bias=False), nn.Linear(hidden, width, bias=False)
        self.local = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False) if local else None
        if self.local is not None:
            nn.init.zeros_(self.local.weight)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:  # x (B, T', S, D)
        h = self.fc1(x)
        if self.local is not None:
            b, t, s, c = h.shape
            frames = h.reshape(-1, *grid, c).permute(0, 3, 1, 2)  # (B*T'*views, hidden, h, w): each view alone
            h = h + self.local(frames).permute(0, 2, 3, 1).reshape(b, t, s, c)
        return self.fc2(F.gelu(h))


class Block(nn.Module):
    """x + g1 * SelfAttn(mod(x)) -> x + g2 * CrossAttn(mod(x), text) -> x + g3 * MLP(mod(x))."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.modulation = Modulation(cfg.width, cfg.adaln_lora_dim, 9)
        self.attn = SelfAttention(cfg.width, cfg.heads)
        self.cross = CrossAttention(cfg.width, cfg.heads, cfg.text_dim)
        self.mlp = MLP(cfg.width, cfg.mlp_ratio, cfg.local_mixing)

    def forward(self, x, emb_act, lora, text, text_mask, rotation, grid) -> torch.Tensor:  # x (B, T', S, D)
        b, t, s, d = x.shape
        sh1, sc1, g1, sh2, sc2, g2, sh3, sc3, g3 = self.modulation(emb_act, lora)  # (B, Tm, 1, D) each
        x = torch.addcmul(x, g1, self.attn(modulate(x, sh1, sc1).view(b, t * s, d), rotation).view(b, t, s, d))
        x = torch.addcmul(x, g2, self.cross(modulate(x, sh2, sc2).view(b, t * s, d), text, text_mask).view(b, t, s, d))
        return torch.addcmul(x, g3, self.mlp(modulate(x, sh3, sc3), grid))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig, out_dim: int) -> None:
        super().__init__()
        self.modulation = Modulation(cfg.width, cfg.adaln_lora_dim, 2)
        self.linear = nn.Linear(cfg.width, out_dim, bias=False)

    def forward(self, x: torch.Tensor, emb_act: torch.Tensor, lora: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(emb_act, lora)
        return self.linear(modulate(x, shift, scale))  # (B, T', S, p*p*C)


class DiT(nn.Module):
    def __init__(self, cfg: DiTConfig, embedders: list[ConditionEmbedder] | tuple = ()) -> None:
        super().__init__()
        self.cfg, p = cfg, cfg.patch
        self.embedders = nn.ModuleList(embedders)  # the slot for extra conditions (embedders.py)
        extra = sum(e.channels for e in embedders if e.target == "channels") + cfg.anchor_frames * cfg.latent_channels
        self.patch_embed = nn.Linear((cfg.in_channels + extra) * p * p, cfg.width, bias=False)
        self.pos_embed = PositionEmbedding(cfg.width, self.max_tokens) if cfg.abs_pos else None
        self.rope = RoPE3D(cfg.head_dim, cfg.rope_theta, cfg.rope_fps)
        self.noise_embedder = NoiseEmbedder(cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg, p * p * cfg.latent_channels)
        self.initialize_weights()

    @property
    def max_tokens(self) -> tuple[int, int, int]:
        t, h, w = self.cfg.max_latent
        return t, max(1, h // self.cfg.patch), max(1, w // self.cfg.patch)

    def initialize_weights(self) -> None:
        """Xavier linears, small embeddings, and zeros where a block must start as the identity (DiT, Sec. 3.2).
        Condition embedders keep their own initialisation (an action embedder starts at zero)."""
        own = {id(m) for e in self.embedders for m in e.modules()}
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in own:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for lin in (self.noise_embedder.mlp[0], self.noise_embedder.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)
        if self.pos_embed is not None:
            for table in (self.pos_embed.t, self.pos_embed.h, self.pos_embed.w):
                nn.init.normal_(table, std=0.02)
        # zero-inits: the shared LoRA term and every modulation's up-projection (shift = scale = gate = 0, so each
        # block starts as the identity), and the output projection (the network starts by predicting zero)
        nn.init.zeros_(self.noise_embedder.lora[1].weight)
        for block in self.blocks:
            nn.init.zeros_(block.modulation.up.weight)
        nn.init.zeros_(self.final.modulation.up.weight)
        nn.init.zeros_(self.final.linear.weight)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T', H', W') -> (B, T', h*w, C*p*p) with h = H'/p, w = W'/p."""
        return patchify(x, self.cfg.patch)

    def unpatchify(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, T', h*w, C*p*p) -> (B, C, T', h*p, w*p)."""
        b, t = x.shape[:2]
        p, c = self.cfg.patch, self.cfg.latent_channels
        x = x.reshape(b, t, h, w, c, p, p).permute(0, 4, 1, 2, 5, 3, 6)  # (B, C, T', h, p, w, p)
        return x.reshape(b, c, t, h * p, w * p)

    def input_channels(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Latents + condition mask + channel embedders: (B, C_in, T', H', W')."""
        b, _, t, hh, ww = x.shape
        parts = [x]
        if self.cfg.cond_mask_channel:
            mask = cond.mask if cond.mask is not None else x.new_zeros(b, 1, t, 1, 1)
            parts.append(mask.to(x.dtype).expand(b, 1, t, hh, ww))
        if self.cfg.anchor_frames:
            parts.append(self.anchors(x, cond))
        for e in self.embedders:
            if e.target == "channels":
                parts.append(self._embed(e, cond, (b, t, hh, ww)).to(x.dtype))
        return torch.cat(parts, dim=1) if len(parts) > 1 else x

    def anchors(self, x: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Frame stacking (as DIAMOND, arXiv 2405.12399, conditions on past frames): the last ``anchor_frames``
        given latent frames (noise-augmented, newest first; the oldest repeats when fewer are given, zeros for
        Text2World), shown to every frame at its own position: (B, N*C, T', H', W').
        A next frame is then a local function of the same token's channels, instead of one attention away."""
        b, c, t, hh, ww = x.shape
        n = self.cfg.anchor_frames
        if cond.mask is None:
            return x.new_zeros(b, n * c, t, hh, ww)
        k = cond.mask.reshape(b, t).sum(1).long()  # (B,) given frames
        idx = (k.view(b, 1) - 1 - torch.arange(n, device=x.device)).clamp_min(0)  # (B, n) newest first
        frames = cond.frames_in.gather(2, idx.view(b, 1, n, 1, 1).expand(b, c, n, hh, ww))  # (B, C, n, H', W')
        frames = (frames * (k > 0).view(b, 1, 1, 1, 1)).transpose(1, 2).reshape(b, n * c, 1, hh, ww)
        return frames.expand(-1, -1, t, -1, -1).to(x.dtype)

    def _extra(self, cond: Condition, name: str) -> torch.Tensor:
        if name not in cond.extras:
            raise ConfigError(f"this model is conditioned on {name!r}, but no {name!r} was given; pass it in the batch.")
        return cond.extras[name]

    def _embed(self, e: ConditionEmbedder, cond: Condition, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """Embedder ``e``'s output for ``cond``; a guidable embedder's (actions, camera, trajectory) is multiplied by
        ``cond.extras[GUIDED_KEEP]`` (B,) where given: 0 drops the condition, as condition guidance's unconditional
        branch does (``samplers.condition_guided``)."""
        out = e(self._extra(cond, e.name), shape)
        keep = cond.extras.get(GUIDED_KEEP)
        if keep is not None and getattr(e, "guidable", False):
            out = out * keep.to(out.dtype).view(-1, *([1] * (out.ndim - 1)))
        return out

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: Condition) -> torch.Tensor:
        """x = c_in * noisy latents (B, C, T', H', W'), c_noise (B, Tm) -> F_theta (B, C, T', H', W')."""
        b, _, t, hh, ww = x.shape
        p = self.cfg.patch
        v = view_grid(cond.extras.get("views"), hh)  # views stacked along H' (conditioning/views.py)
        if (hh // v) % p or ww % p:
            raise ConfigError(f"the latent size {hh // v}x{ww} must be divisible by the patch size {p}.")
        h, w = hh // p, ww // p
        hv = h // v  # token rows of one view
        # 1. tokens: patchify the input channels, embed, add absolute positions
        tokens = self.patch_embed(self.patchify(self.input_channels(x, cond)))  # (B, T', h*w, D)
        for e in self.embedders:
            if e.target == "tokens":
                tokens = tokens + self._embed(e, cond, (b, t, hh, ww)).to(tokens.dtype)
        if self.pos_embed is not None:  # each view has its own (t, h, w) positions
            pos = self.pos_embed(t, hv, w).view(1, t, 1, hv * w, -1)
            tokens = tokens + pos.expand(1, t, v, hv * w, pos.shape[-1]).reshape(1, t, h * w, -1)
        # 2. modulation embedding: noise level + extra modulation embedders, then the shared AdaLN-LoRA term
        emb = self.noise_embedder(c_noise)  # (B, Tm, D)
        for e in self.embedders:
            if e.target == "modulation":
                value = self._embed(e, cond, (b, t, hh, ww))  # (B, D) or (B, T', D)
                emb = emb + (value[:, None] if value.ndim == 2 else value)
        # next-frame-only: keep the first generated frame of each sample (its tokens and its modulation)
        run = self.next_frames(cond, t)  # (B,) or None
        if run is not None:
            tokens, emb = pick(tokens, run), pick(emb, run) if emb.shape[1] == t else emb
        tr = 1 if run is not None else t  # latent frames the blocks run on
        lora, emb_act = self.noise_embedder.lora(emb), F.silu(emb)  # (B, Tm, 3D), (B, Tm, D)
        # 3. rotary angles for the (t, h, w) grid, shaped for (B, N, H, Dh) queries and keys
        rotation = self.rope(tr, hv, w, cond.fps, b, x.device)  # (N, Dh/2) or (B, N, Dh/2), one view's grid
        if v > 1:  # the same positions in every view: (.., t, hv*w, ..) -> (.., t, v, hv*w, ..)
            grid = rotation.unflatten(-2, (tr, 1, hv * w))
            rotation = grid.expand(*grid.shape[:-3], v, hv * w, grid.shape[-1]).flatten(-4, -2)
        rotation = rotation[..., None, :]  # (N, 1, Dh/2) or (B, N, 1, Dh/2)
        # 4. text: attend to every token when none is padding
        text = cond.text.to(tokens.dtype)
        text_mask = None if bool(cond.text_mask.all()) else cond.text_mask[:, None, None, :]  # (B, 1, 1, L)
        # 5. blocks
        per_block = [self._embed(e, cond, (b, t, hh, ww)).to(tokens.dtype) for e in self.embedders if e.target == "blocks"]
        per_block = [(pick(v, run) if run is not None else v).chunk(len(self.blocks), dim=-1) for v in per_block]
        for i, block in enumerate(self.blocks):
            for extra in per_block:  # a per-block token condition enters before each block
                tokens = tokens + extra[i]
            tokens = block(tokens, emb_act, lora, text, text_mask, rotation, (hv, w))  # (B, T', h*w, D)
        # 6. output; next-frame-only: zeros at every other frame (the given ones are replaced by EDM, the later ones
        # are not predicted: ``predicted_frames``)
        out = self.unpatchify(self.final(tokens, emb_act, lora), h, w)  # (B, C, T' or 1, H', W')
        if run is None:
            return out
        full = out.new_zeros(b, out.shape[1], t, hh, ww)
        return full.scatter(2, run.view(b, 1, 1, 1, 1).expand_as(out), out)

    def next_frames(self, cond: Condition, t: int) -> torch.Tensor | None:
        """With ``next_frame_only``, the index of each sample's first generated latent frame (B,); else None (and for
        Text2World, where no frame is given, every frame runs)."""
        if not self.cfg.next_frame_only or cond.mask is None:
            return None
        return cond.mask.reshape(cond.batch, t).sum(1).long().clamp_max(t - 1)

    def predicted_frames(self, cond: Condition, t: int) -> torch.Tensor | None:
        """With ``next_frame_only``, (B, 1, T', 1, 1) 1 at the one frame the network predicts (the training loss's
        frame); else None: every frame that is not given (``edm_loss``'s default)."""
        run = self.next_frames(cond, t)
        return None if run is None else F.one_hot(run, t).float().view(cond.batch, 1, t, 1, 1)

    def no_weight_decay(self) -> list[str]:
        return [n for n, _ in self.named_parameters() if n.startswith("pos_embed.")]
