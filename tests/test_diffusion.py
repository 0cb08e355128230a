"""Diffusion world model on random latents: DiT shapes, RoPE, EDM, Video2World conditions, guidance, samplers,
the extra-condition slot, determinism, save/load and config errors (no tokenizer needed)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from worldsmith.config import from_dict, to_dict
from worldsmith.diffusion.condition import Condition, null_text
from worldsmith.diffusion.config import PRESETS, DiTConfig, WorldModelConfig
from worldsmith.diffusion.edm import edm_loss, karras_sigmas, logsnr_sigmas, loss_weight, precondition
from worldsmith.diffusion.losses import world_model_loss
from worldsmith.diffusion.model import DiffusionWorldModel, with_condition_frames
from worldsmith.diffusion.samplers import guided, sample
from worldsmith.errors import ConfigError
from worldsmith.families import FAMILIES
from worldsmith.nn.rope import RoPE3D, apply_rope

C = 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(perturb: bool = True, cls=DiffusionWorldModel, **changes) -> DiffusionWorldModel:
    """The tiny preset; ``perturb`` wakes up the zero-initialized gates and output so every path is exercised."""
    torch.manual_seed(0)
    model = cls(dataclasses.replace(PRESETS["tiny"](), **changes)).eval()
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return model


def text_cond(b: int = 2, length: int = 5, seed: int = 0, fps: float | None = 2.5) -> Condition:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, length - 2 :] = False  # some padding
    fps_t = None if fps is None else torch.full((b,), fps)
    return Condition(torch.randn(b, length, 384, generator=g), mask, fps=fps_t)


def latents(b: int = 2, t: int = 3, h: int = 4, w: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, C, t, h, w, generator=torch.Generator().manual_seed(seed)) * 0.5


# ---------------------------------------------------------------------------------------------------------------
# backbone
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t,h,w", [(1, 2, 2), (3, 4, 6), (5, 8, 8), (2, 6, 2)])
def test_output_shapes_for_several_grids(t, h, w):
    model = tiny()
    x = latents(t=t, h=h, w=w)
    for cond in (text_cond(), with_condition_frames(text_cond(), x, torch.tensor([1, 0]), torch.full((2,), 0.05))):
        out = model.denoiser(x, torch.tensor([0.5, 3.0]), cond)
        assert out.shape == x.shape and torch.isfinite(out).all()
    assert model.net(x, torch.zeros(2, t), text_cond()).shape == x.shape  # per-frame noise levels


def test_zero_init_blocks_start_as_identity_and_predict_zero():
    model = tiny(perturb=False)
    net = model.net
    x = latents()
    assert torch.equal(net(x, torch.zeros(2, 1), text_cond()), torch.zeros_like(x))
    tokens = torch.randn(2, 3, 6, 64)
    emb = torch.randn(2, 1, 64)
    rot = net.rope(3, 2, 3)[..., None, :]
    out = net.blocks[0](tokens, torch.nn.functional.silu(emb), net.noise_embedder.lora(emb), torch.randn(2, 4, 384), None, rot, (2, 3))
    assert torch.equal(out, tokens)  # every gate is zero
    # the first step trains the output layer; the second reaches every block through it
    loss, _ = world_model_loss(model.train(), {"latents": x, "text": torch.randn(2, 4, 384), "text_mask": torch.ones(2, 4, dtype=torch.bool)})
    loss.backward()
    assert net.final.linear.weight.grad.abs().sum() > 0


def test_rope_depends_only_on_relative_positions_and_scales_time_by_fps():
    rope = RoPE3D(head_dim=24, rope_fps=6.0)
    q, k = torch.randn(24), torch.randn(24)
    grid = rope(6, 5, 4)  # (N, 12) positions (t, h, w) in row-major order
    index = lambda t, h, w: (t * 5 + h) * 4 + w  # noqa: E731

    def score(a, b):
        return float(apply_rope(q, grid[index(*a)]) @ apply_rope(k, grid[index(*b)]))

    assert math.isclose(score((0, 1, 0), (2, 3, 1)), score((3, 2, 2), (5, 4, 3)), rel_tol=1e-4, abs_tol=1e-5)
    assert not math.isclose(score((0, 1, 0), (2, 3, 1)), score((0, 1, 0), (2, 3, 2)), rel_tol=1e-3)
    # time positions are t * rope_fps / fps: at twice the frame rate, frame 2 sits where frame 1 sat
    slow, fast = rope(3, 1, 1, fps=6.0), rope(3, 1, 1, fps=12.0)
    assert torch.allclose(fast[2], slow[1], atol=1e-6) and not torch.allclose(fast[1], slow[1])
    per_sample = rope(3, 1, 1, fps=torch.tensor([6.0, 12.0]), batch=2)
    assert per_sample.shape == (2, 3, 12) and torch.allclose(per_sample[1, 2], slow[1], atol=1e-6)
    assert torch.allclose(apply_rope(q, grid).norm(dim=-1), q.norm().expand(grid.shape[0]), atol=1e-5)


def test_sizes_never_seen_work_and_the_position_table_limit_is_clear():
    model = tiny(dit=dataclasses.replace(PRESETS["tiny"]().dit, max_latent=(4, 8, 8)))
    for t, h, w in ((4, 8, 8), (1, 2, 8), (3, 6, 4)):  # any grid inside the table, in any shape
        assert model.denoiser(latents(t=t, h=h, w=w), torch.ones(2), text_cond()).shape == (2, C, t, h, w)
    with pytest.raises(ConfigError, match="exceeds the absolute position table"):
        model.denoiser(latents(t=5, h=4, w=4), torch.ones(2), text_cond())
    rope_only = tiny(dit=dataclasses.replace(PRESETS["tiny"]().dit, abs_pos=False, max_latent=(1, 2, 2)))
    out = rope_only.denoiser(latents(t=7, h=12, w=10), torch.ones(2), text_cond())  # RoPE alone: no limit
    assert out.shape == (2, C, 7, 12, 10) and torch.isfinite(out).all()


def test_text_padding_and_null_text_behave():
    model = tiny()
    x, sigma = latents(), torch.ones(2)
    cond = text_cond()
    padded = Condition(torch.cat([cond.text, torch.randn(2, 3, 384)], 1),
                       torch.cat([cond.text_mask, torch.zeros(2, 3, dtype=torch.bool)], 1), fps=cond.fps)  # fmt: skip
    assert torch.allclose(model.denoiser(x, sigma, cond), model.denoiser(x, sigma, padded), atol=1e-5)
    assert not torch.allclose(model.denoiser(x, sigma, cond), model.denoiser(x, sigma, cond.without_text()), atol=1e-3)
    text, mask = null_text(2, 384)
    assert text.abs().sum() == 0 and mask.all()


# ---------------------------------------------------------------------------------------------------------------
# EDM
# ---------------------------------------------------------------------------------------------------------------
def test_preconditioning_and_weights_follow_edm_table_1():
    sigma = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = precondition(sigma, 0.5)
    assert torch.allclose(c_skip, 0.25 / (sigma**2 + 0.25))
    assert torch.allclose(c_out, sigma * 0.5 / (sigma**2 + 0.25).sqrt())
    assert torch.allclose(c_in, 1 / (sigma**2 + 0.25).sqrt()) and torch.allclose(c_noise, sigma.log() / 4)
    assert torch.allclose(loss_weight(sigma, 0.5) * c_out**2, torch.ones(3, dtype=torch.float64))  # unit F weight
    s = karras_sigmas(5, 0.002, 80.0, 7.0)
    assert s[0] == 80.0 and math.isclose(float(s[4]), 0.002, rel_tol=1e-9) and s[5] == 0 and (s.diff() < 0).all()
    g = logsnr_sigmas(5, 0.002, 80.0)
    assert torch.allclose(g[:5].log().diff(), g[:5].log().diff()[:1].expand(4)) and g[5] == 0


def test_loss_covers_only_generated_frames():
    x0 = latents(t=4)
    k = torch.tensor([1, 3])
    cond = with_condition_frames(text_cond(), x0, k, torch.full((2,), 0.05))

    class OffByOne(nn.Module):  # denoises perfectly on condition frames, misses every generated value by 1
        cfg = PRESETS["tiny"]().edm

        def forward(self, x, sigma, c):
            return torch.where(c.mask > 0, c.frames, x0 + 1)

    torch.manual_seed(0)
    loss, logs = edm_loss(OffByOne(), x0, cond)
    torch.manual_seed(0)
    sigma = (torch.randn(2) * 1.2 - 0.4).exp()
    assert torch.allclose(loss, loss_weight(sigma, 0.5).mean()) and math.isclose(float(logs["mse"]), 1.0, rel_tol=1e-6)


def test_caption_dropout_feeds_the_null_text():
    x = latents()
    batch = {"latents": x, "text": torch.randn(2, 4, 384), "text_mask": torch.ones(2, 4, dtype=torch.bool)}
    dropped = tiny(caption_dropout=1.0).train()
    plain = tiny(caption_dropout=0.0).train()
    torch.manual_seed(3)
    a, _ = world_model_loss(dropped, batch)
    torch.manual_seed(3)
    b, _ = world_model_loss(plain, {**batch, "text": torch.zeros(2, 4, 384), "text_mask": torch.arange(4).expand(2, 4) == 0})
    assert torch.allclose(a, b)


# ---------------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------------
def test_video2world_condition_frames_come_out_exactly():
    model = tiny()
    x0 = latents(t=4)
    k = torch.tensor([1, 2])
    cond = with_condition_frames(text_cond(), x0, k, torch.full((2,), 0.05))
    for sampler in ("euler", "heun", "dpm++2m"):
        out = model.generate(cond, (4, 4, 6), steps=3, guidance=2.0, sampler=sampler, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[0, :, :1], x0[0, :, :1]) and torch.equal(out[1, :, :2], x0[1, :, :2])
        assert not torch.allclose(out[0, :, 1:], x0[0, :, 1:], atol=1e-2)


def test_guidance_one_is_the_conditional_prediction():
    model = tiny()
    x, cond = latents(), text_cond()
    uncond = cond.with_text(torch.randn(1, 7, 384), torch.ones(1, 7, dtype=torch.bool))
    d_cond = model.denoiser(x, torch.full((2,), 1.5), cond)
    d_uncond = model.denoiser(x, torch.full((2,), 1.5), uncond)
    assert torch.equal(guided(model.denoiser, cond, uncond, 1.0)(x, 1.5), d_cond)
    assert torch.allclose(guided(model.denoiser, cond, uncond, 3.0)(x, 1.5), d_uncond + 3 * (d_cond - d_uncond), atol=1e-5)
    batched_one = torch.lerp(d_uncond, d_cond, 1.0)  # the batched formula at w = 1 agrees too
    assert torch.allclose(batched_one, d_cond, atol=1e-6)


def test_samplers_solve_the_gaussian_ode_and_dpm_beats_heun_per_call():
    """For data ~ N(0, sd^2) the ideal denoiser is x sd^2 / (sigma^2 + sd^2) and the ODE maps noise z to z * sd."""
    sd = 0.5
    den = lambda x, s, c: x * sd**2 / (s.view(-1, 1, 1, 1, 1) ** 2 + sd**2)  # noqa: E731
    z = torch.randn(2, 4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    cond = Condition(*null_text(2, 8))
    err = {(name, n): float((sample(den, z, cond, steps=n, sampler=name) - z * sd).square().mean().sqrt())
           for name, n in (("euler", 35), ("heun", 35), ("heun", 10), ("dpm++2m", 10), ("dpm++2m", 35))}  # fmt: skip
    assert err[("heun", 35)] < 0.01 and err[("dpm++2m", 35)] < 0.01 and err[("euler", 35)] < 0.1
    assert err[("dpm++2m", 10)] < err[("heun", 10)] / 3 and err[("dpm++2m", 10)] < err[("euler", 35)]
    with pytest.raises(ConfigError, match="unknown sampler"):
        sample(den, z, cond, steps=3, sampler="ddim")


def test_generation_is_deterministic_for_a_seed():
    model = tiny()
    cond = text_cond()

    def run(seed):
        return model.generate(cond, (2, 4, 4), steps=4, guidance=2.0, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(7), run(7)) and not torch.allclose(run(7), run(8))


# ---------------------------------------------------------------------------------------------------------------
# the extra-condition slot
# ---------------------------------------------------------------------------------------------------------------
class ActionEmbedder(nn.Module):
    """Test embedder: per-transition actions (B, T-1, A) -> one modulation vector per latent frame (B, T', D)."""

    name, target, channels = "actions", "modulation", 0

    def __init__(self, action_dim: int, width: int, ct: int = 4) -> None:
        super().__init__()
        self.ct = ct
        self.mlp = nn.Sequential(nn.Linear(action_dim * ct, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, actions: torch.Tensor, latent_shape) -> torch.Tensor:
        b, t = latent_shape[:2]
        padded = torch.nn.functional.pad(actions, (0, 0, self.ct, 0))  # latent frame 0 (one image frame) has none
        return self.mlp(padded[:, : t * self.ct].reshape(b, t, -1))  # (B, T', D)


class MaskChannel(nn.Module):
    """Test embedder: a per-pixel map (B, 1, T', H', W') concatenated as an input channel."""

    name, target, channels = "depth", "channels", 1

    def forward(self, value: torch.Tensor, latent_shape) -> torch.Tensor:
        return value


class ActionWorldModel(DiffusionWorldModel):
    def make_embedders(self, cfg: WorldModelConfig) -> list[nn.Module]:
        return [ActionEmbedder(3, cfg.dit.width), MaskChannel()]


def test_extra_condition_embedders_plug_into_the_slot(tmp_path):
    model = tiny(cls=ActionWorldModel)
    x, t = latents(t=3), 3
    actions = torch.randn(2, 4 * (t - 1), 3)
    depth = torch.randn(2, 1, t, 4, 6)
    cond = dataclasses.replace(text_cond(), extras={"actions": actions, "depth": depth})
    out = model.denoiser(x, torch.ones(2), cond)
    other = model.denoiser(x, torch.ones(2), dataclasses.replace(cond, extras={"actions": actions.flip(1), "depth": depth}))
    assert out.shape == x.shape and not torch.allclose(out, other, atol=1e-4)
    assert not torch.allclose(out, model.denoiser(x, torch.ones(2), dataclasses.replace(cond, extras={"actions": actions, "depth": -depth})))
    assert model.net.patch_embed.in_features == (C + 1 + 1) * 4  # latents + condition mask + depth channel
    batch = {"latents": x, "text": cond.text, "text_mask": cond.text_mask, "actions": actions, "depth": depth}
    loss, _ = world_model_loss(model.train(), batch)
    loss.backward()
    assert model.net.embedders[0].mlp[0].weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    again = ActionWorldModel.from_pretrained(tmp_path)
    assert torch.equal(again.eval().denoiser(x, torch.ones(2), cond), model.eval().denoiser(x, torch.ones(2), cond))
    with pytest.raises(ConfigError, match="conditioned on 'depth'"):
        model.denoiser(x, torch.ones(2), text_cond())


# ---------------------------------------------------------------------------------------------------------------
# save / load and configs
# ---------------------------------------------------------------------------------------------------------------
def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    model.set_latent_stats(latents() * 3 + 1)
    model.save_pretrained(tmp_path)
    again = DiffusionWorldModel.from_pretrained(tmp_path)
    assert to_dict(again.cfg) == to_dict(model.cfg)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    x, cond = latents(), text_cond()
    assert torch.equal(again.denoiser(x, torch.ones(2), cond), model.denoiser(x, torch.ones(2), cond))
    assert torch.allclose(again.denormalize(again.normalize(x)), x, atol=1e-6)


def test_presets_and_config_errors_are_clear():
    assert to_dict(from_dict(WorldModelConfig, to_dict(PRESETS["small"]()))) == to_dict(PRESETS["small"]())
    assert PRESETS["2b"]().dit.width == 2048 and PRESETS["tiny"]().dit.patch == 2
    with pytest.raises(ConfigError, match="even head width"):
        DiTConfig(width=64, heads=8)
    with pytest.raises(ConfigError, match="cond_mask_channel"):
        WorldModelConfig(dit=DiTConfig(cond_mask_channel=False))
    with pytest.raises(ConfigError, match="caption_dropout"):
        WorldModelConfig(caption_dropout=1.5)
    with pytest.raises(ConfigError, match="divisible by the patch"):
        tiny().denoiser(latents(h=3, w=4), torch.ones(2), text_cond())
    with pytest.raises(ConfigError, match="unknown diffusion preset 'huge'; choose one of: tiny, small"):
        FAMILIES["diffusion"].preset("huge")


def test_local_mixing_starts_as_the_plain_mlp_and_then_mixes_neighbouring_tokens_only():
    from worldsmith.diffusion.dit import MLP

    torch.manual_seed(0)
    plain, local = MLP(16, 2.0), MLP(16, 2.0, local=True)
    local.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 3, 4 * 5, 16)  # (B, T', h*w, D) on a 4x5 grid
    torch.testing.assert_close(local(x, (4, 5)), plain(x, (4, 5)))  # zero-initialised convolution
    torch.nn.init.normal_(local.local.weight)
    y = x.clone()
    y[:, 1, 0] += 1.0  # change the token at (frame 1, row 0, col 0)
    moved = (local(y, (4, 5)) - local(x, (4, 5))).abs().sum(-1)  # (B, T', h*w)
    changed = {(t, s // 5, s % 5) for t, s in (moved[0] > 1e-6).nonzero().tolist()}
    assert changed == {(1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)}  # its 3x3 neighbourhood, in its own frame
