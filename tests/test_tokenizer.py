"""Causal video tokenizer: shapes, causality, image = first frame, streaming, FSQ, the loss module (overfitting,
terms, discriminator), save/load (old run folders too), errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from worldsmith.config import from_dict, save_yaml, to_dict
from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.eval.metrics import psnr
from worldsmith.tokenizer import CausalVideoTokenizer, TokenizerConfig, TokenizerInputError
from worldsmith.tokenizer.config import PRESETS
from worldsmith.tokenizer.fsq import FSQ
from worldsmith.tokenizer.losses import TokenizerLoss, TokenizerLossConfig, random_crop
from worldsmith.tokenizer.train import TokenizerRunConfig, load_init_weights
from worldsmith.tokenizer.wavelet import HaarPatcher
from worldsmith.weights import load_tensors, save_tensors
from worldsmith.zoo import resolve

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def preset(name: str) -> TokenizerConfig:
    return PRESETS[name]()


def pixel_loss(**changes) -> TokenizerLoss:
    """The objective without the perceptual term (no feature net to load), plus ``changes``."""
    return TokenizerLoss(TokenizerLossConfig(**({"perceptual": 0.0} | changes)))


def fit(model: CausalVideoTokenizer, loss: TokenizerLoss, batch: dict, steps: int, lr: float) -> CausalVideoTokenizer:
    """``steps`` Adam steps of ``loss(model, batch)`` (overfitting a fixed batch); returns the model."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        value, _ = loss(model, batch)
        opt.zero_grad()
        value.backward()
        opt.step()
    return model


def tiny(name: str = "cv4x8x8-tiny", perturb: bool = True, **changes) -> CausalVideoTokenizer:
    """A tiny preset; ``perturb`` wakes up the zero-initialized residual branches so every path is exercised."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(preset(name), **changes)
    model = CausalVideoTokenizer(cfg).eval()
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return model


def video(b: int = 2, t: int = 9, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, size, size, generator=g) * 2 - 1


def moving_blobs(n: int = 2, t: int = 9, size: int = 32) -> torch.Tensor:
    """Smooth synthetic clips: a coloured Gaussian blob moving over a colour gradient, (n, 3, t, size, size)."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    clips = []
    for _ in range(n):
        tint, blob_colour = torch.rand(3, generator=g) * 2 - 1, torch.rand(3, generator=g) * 2 - 1
        start, velocity = torch.rand(2, generator=g) - 0.5, (torch.rand(2, generator=g) - 0.5) * 0.15
        background = torch.stack([0.5 * xx * tint[0], 0.5 * yy * tint[1], 0.3 * (xx + yy) * tint[2]])
        frames = []
        for k in range(t):
            px, py = start + velocity * k
            blob = torch.exp(-((xx - px) ** 2 + (yy - py) ** 2) / 0.08)
            frames.append(background * (1 - blob) + blob_colour[:, None, None] * blob)
        clips.append(torch.stack(frames, dim=1))
    return torch.stack(clips).clamp(-1, 1)


def time_dim(model: CausalVideoTokenizer) -> int:
    return 1 if model.fsq is not None else 2  # tokens (B, T', H', W') vs latents (B, C, T', H', W')


# ---------------------------------------------------------------------------------------------------------------
# shapes and presets
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["cv4x8x8-tiny", "cv8x8x8-tiny", "cv8x16x16-tiny", "dv4x8x8-tiny", "ci8x8-tiny", "di16x16-tiny"]
)
def test_shapes_of_every_variant(name):
    model = tiny(name)
    cfg = model.cfg
    t = 1 + 2 * cfg.temporal_compression if cfg.is_video else 2
    x = video(t=t)
    z = model.encode(x)
    lt, lh, lw = cfg.latent_shape(t, 32, 32)
    if cfg.kind == "discrete":
        assert z.dtype == torch.int64 and tuple(z.shape) == (2, lt, lh, lw)
        assert 0 <= int(z.min()) and int(z.max()) < math.prod(cfg.fsq_levels)
    else:
        assert z.dtype == torch.float32 and tuple(z.shape) == (2, 16, lt, lh, lw)
    assert tuple(model.decode(z).shape) == tuple(x.shape)


def test_presets_have_cosmos_compressions():
    cfg = preset("dv8x16x16-base")
    assert (cfg.kind, cfg.temporal_compression, cfg.spatial_compression) == ("discrete", 8, 16)
    assert cfg.fsq_levels == (8, 8, 8, 5, 5, 5) and math.prod(cfg.fsq_levels) == 64000
    assert preset("cv4x8x8-small").latent_channels == 16
    assert preset("tiny") == preset("cv4x8x8-tiny")
    assert len(PRESETS) == 10 * 3 + 3 and preset("tiny") is not preset("tiny")  # a fresh config every call
    cfg = preset("cv8x8x8-small")
    assert from_dict(TokenizerConfig, to_dict(cfg)) == cfg  # YAML round trip of the whole config
    assert "loss" not in to_dict(cfg)  # the architecture only: the objective is TokenizerLossConfig


def test_haar_patching_is_invertible_and_keeps_the_first_frame_alone():
    patcher = HaarPatcher(spatial_patch=4, temporal_patch=4)
    x = video(t=9)
    patches = patcher.patchify(x)
    assert tuple(patches.shape) == (2, 3, 8, 8, 3 * 64)
    torch.testing.assert_close(patcher.unpatchify(patches), x, atol=1e-5, rtol=0)
    # the first channel of every block is the block mean (Cosmos' rescaled Haar)
    block_means = x[:, 0, 1:5].reshape(2, 4, 8, 4, 8, 4).mean((1, 3, 5))  # red channel, frames 1..4
    torch.testing.assert_close(patches[:, 1, :, :, 0], block_means, atol=1e-5, rtol=0)
    assert torch.equal(patcher.patchify(x[:, :, :1]), patches[:, :1])


# ---------------------------------------------------------------------------------------------------------------
# causality, image = first frame, streaming
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, shortcut", [("cv4x8x8-tiny", True), ("dv8x8x8-tiny", True), ("cv8x8x8-tiny", False)])
def test_changing_frame_k_never_changes_earlier_latents(name, shortcut):
    model = tiny(name, shortcut=shortcut)
    ct, td = model.cfg.temporal_compression, time_dim(model)
    x = video(t=1 + 2 * ct)
    base = model.encode(x).float()
    for k in (1, ct, ct + 1, 2 * ct):
        changed = x.clone()
        changed[:, :, k] = -changed[:, :, k]
        z = model.encode(changed).float()
        first_affected = math.ceil(k / ct)  # latent frame j >= 1 covers frames (j-1)*ct+1 .. j*ct
        assert torch.equal(z.narrow(td, 0, first_affected), base.narrow(td, 0, first_affected)), k
        assert not torch.equal(z.narrow(td, first_affected, 1), base.narrow(td, first_affected, 1)), k


def test_decoder_is_causal_too():
    model = tiny()
    z = model.encode(video(t=9))
    changed = z.clone()
    changed[:, :, 1] += 1.0  # latent frame 1 decodes to frames 1..4
    a, b = model.decode(z), model.decode(changed)
    assert torch.equal(a[:, :, :1], b[:, :, :1])
    assert not torch.allclose(a[:, :, 1:5], b[:, :, 1:5])


@pytest.mark.parametrize("name", ["cv8x8x8-tiny", "dv4x8x8-tiny"])
def test_image_is_the_first_frame_of_a_video(name):
    model = tiny(name)
    x = video(t=1 + model.cfg.temporal_compression)
    z_video, z_image = model.encode(x), model.encode(x[:, :, :1])
    td = time_dim(model)
    torch.testing.assert_close(z_image.float(), z_video.narrow(td, 0, 1).float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decode(z_image), model.decode(z_video)[:, :, :1], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "name, shortcut",
    [("cv4x8x8-tiny", True), ("dv8x8x8-tiny", True), ("cv8x16x16-tiny", True), ("cv8x8x8-tiny", False)],
)
def test_streaming_equals_whole_video_coding(name, shortcut):
    # attn_window=2 makes the stream evict old keys/values, so the cache bound is exercised
    model = tiny(name, attn_window=2, shortcut=shortcut)
    ct, td = model.cfg.temporal_compression, time_dim(model)
    x = video(b=1, t=1 + 4 * ct, seed=3)
    z = model.encode(x)
    pieces = [x[:, :, :2], x[:, :, 2:3], x[:, :, 3 : 3 + 2 * ct + 1], x[:, :, 3 + 2 * ct + 1 :]]  # odd lengths
    z_stream = torch.cat(list(model.encode_stream(pieces, chunk_frames=ct)), dim=td)
    assert (z_stream.float() - z.float()).abs().max() < 1e-4
    y = model.decode(z)
    y_stream = torch.cat(list(model.decode_stream(list(z.split(2, dim=td)), chunk_latents=1)), dim=2)
    assert y_stream.shape == y.shape and (y_stream - y).abs().max() < 1e-4


def test_stream_pads_the_tail_or_refuses_it():
    model = tiny()
    x = video(b=1, t=7)  # 1 + 4 + 2: two frames short of a latent frame
    z = torch.cat(list(model.encode_stream([x])), dim=2)
    padded = torch.cat([x, x[:, :, -1:].expand(-1, -1, 2, -1, -1)], dim=2)
    assert (z - model.encode(padded)).abs().max() < 1e-4
    with pytest.raises(TokenizerInputError, match="pad_tail"):
        list(model.encode_stream([x], pad_tail=False))
    with pytest.raises(TokenizerInputError, match="must share them"):
        list(model.encode_stream([x, video(b=1, t=4, size=16)]))


# ---------------------------------------------------------------------------------------------------------------
# FSQ
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (8, 8, 8, 5, 5, 5), (3, 16, 2)])
def test_fsq_codes_indices_round_trip_and_idempotence(levels):
    fsq = FSQ(levels)
    indices = torch.arange(fsq.codebook_size).reshape(1, -1)  # every code once, (B=1, N)
    codes = fsq.indices_to_codes(indices)  # (1, d, N)
    assert codes.shape == (1, len(levels), fsq.codebook_size) and codes.abs().max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    assert torch.equal(fsq.quantize(codes), codes)  # quantizing a code gives the code back
    z = torch.randn(4, len(levels), 3, 5, 5) * 3
    q = fsq.quantize(z)
    assert torch.equal(fsq.quantize(q), q)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(q)), q)
    assert len(fsq.codes_to_indices(q).unique()) > 1


def test_fsq_gradient_passes_the_rounding():
    fsq = FSQ((8, 5, 5, 5))
    z = torch.randn(2, 4, 6, requires_grad=True)
    fsq.quantize(z).sum().backward()
    assert z.grad is not None and (z.grad.abs() > 0).all()
    with pytest.raises(ConfigError, match="fsq_levels"):
        FSQ((1, 5))


# ---------------------------------------------------------------------------------------------------------------
# training: overfit, KL, joint images, adversarial
# ---------------------------------------------------------------------------------------------------------------
def test_tiny_model_overfits_two_clips_above_30_db():
    torch.manual_seed(0)
    model, loss_fn = CausalVideoTokenizer(preset("cv4x8x8-tiny")), pixel_loss()
    x = moving_blobs()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    best = 0.0
    for step in range(1, 301):  # about 75 steps (a few seconds) reach 30 dB
        loss, logs = loss_fn(model, {"video": x})
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 50 and step % 25 == 0:
            best = max(best, float(psnr(model.eval().decode(model.encode(x)), x)))
            model.train()
            if best > 30:
                break
    assert best > 30, f"reached {best:.1f} dB"


def test_shortcut_is_a_linear_code_that_the_network_refines():
    model = tiny("cv8x8x8-tiny", perturb=False)
    assert model.cfg.shortcut  # the presets' default
    x = moving_blobs(t=17)
    # at initialization the residual branches are zero, so the shortcut paths carry a real (linear) code
    assert float(model.encode(x).abs().mean()) > 1e-3
    # the shortcut alone is linear in the video (Haar patching and the fold are linear)
    def code(v: torch.Tensor) -> torch.Tensor:
        return model.enc_shortcut(model.patcher.patchify(v)) - model.enc_shortcut.proj.bias

    a = torch.randn_like(x)
    torch.testing.assert_close(code(x + 2 * a), code(x) + 2 * code(a), atol=1e-4, rtol=1e-4)
    z = code(x)  # (B, T', H', W', C): one code per latent pixel
    assert z.shape[1:4] == model.encode(x).shape[2:]
    assert model.dec_shortcut(z).shape == model.patcher.patchify(x).shape


def test_shortcut_trains_faster_than_the_plain_network():
    """The reason the presets use it: at equal steps it reconstructs better (here by about 1.4 dB)."""
    x = moving_blobs(n=2, t=9)
    scores = {}
    for shortcut in (False, True):
        torch.manual_seed(0)
        cfg = dataclasses.replace(preset("cv4x8x8-tiny"), shortcut=shortcut)
        model = fit(CausalVideoTokenizer(cfg), pixel_loss(l1=0.0, l2=1.0), {"video": x}, steps=40, lr=1e-3)
        scores[shortcut] = float(psnr(model.eval().decode(model.encode(x)), x))
    assert scores[True] > scores[False] + 1.0, scores


def test_kl_variant_samples_in_training_and_logs_kl():
    model = tiny("cv4x8x8-tiny", kl=True).train()
    loss, logs = pixel_loss()(model, {"video": video(t=5)})
    assert torch.isfinite(loss) and "kl" in logs and float(logs["kl"]) > 0
    model.eval()
    x = video(t=5)
    torch.testing.assert_close(model(x)[0], model(x)[0])  # eval: the posterior mean, deterministic
    assert model.encode(x).shape[1] == 16


def test_joint_image_and_perceptual_terms_are_logged():
    model, loss_fn = tiny(), TokenizerLoss(TokenizerLossConfig(image=0.5, temporal=0.5))
    loss, logs = loss_fn(model.train(), {"video": video(t=5)})
    assert {"l1", "perceptual", "temporal", "image_l1", "psnr"} <= set(logs)
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is None for p in loss_fn.perceptual_net.parameters())  # frozen


def test_the_loss_owns_its_networks_and_the_model_only_codes():
    model = tiny(perturb=False)
    assert not hasattr(model, "discriminator") and not hasattr(model, "loss")
    assert not any(k.startswith("discriminator.") for k in model.state_dict())
    a, b = TokenizerLoss(TokenizerLossConfig(adversarial=0.1, disc_channels=16)), TokenizerLoss(TokenizerLossConfig())
    assert a.perceptual_net is not b.perceptual_net  # each loss has its own copy: no process-wide global
    assert not any(p.requires_grad for p in a.perceptual_net.parameters())
    assert all(p.requires_grad for p in a.discriminator.parameters()) and b.discriminator is None
    a.train()
    assert a.discriminator.training and not a.perceptual_net.training  # the feature net stays in eval mode
    assert pixel_loss().perceptual_net is None  # perceptual: 0 loads no feature net


def test_l2_term_is_the_mean_squared_error_and_matches_the_logged_psnr():
    model, loss_fn = tiny(), pixel_loss(l1=0.0, l2=1.0)
    x = video(t=5).clamp(-0.9, 0.9)
    loss, logs = loss_fn(model.train(), {"video": x})
    recon, _ = model(x)
    torch.testing.assert_close(loss, ((recon - x) ** 2).mean())
    torch.testing.assert_close(logs["l2"], loss.detach())
    clamped_mse = ((recon.detach().clamp(-1, 1) - x) ** 2).mean()  # PSNR scores the clamped reconstruction
    torch.testing.assert_close(logs["psnr"], 10 * torch.log10(4 / clamped_mse))
    assert float(clamped_mse) <= float(loss.detach())
    assert logs["l1"] > 0  # logged, though not part of the loss
    with pytest.raises(ConfigError, match="l2"):
        dataclasses.replace(loss_fn.cfg, l2=-1.0)
    with pytest.raises(ConfigError, match="reconstruction term"):
        dataclasses.replace(loss_fn.cfg, l2=0.0)


def test_adversarial_terms_train_each_side_only():
    model, loss_fn = tiny(), pixel_loss(adversarial=0.1, disc_channels=16)
    disc = loss_fn.discriminator
    x = video(t=5)
    recon, _ = model.train()(x)
    g_loss, d_loss = disc.losses(x, recon)
    g_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in disc.parameters())
    assert model.decoder.conv_in.spatial.conv.weight.grad is not None
    model.zero_grad(set_to_none=True)
    d_loss.backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    disc.zero_grad(set_to_none=True)
    loss, logs = loss_fn(model, {"video": x})  # the single backward reaches both networks
    assert {"gan_g", "gan_d"} <= set(logs)
    loss.backward()
    assert all(p.grad is not None for p in disc.parameters())
    assert model.decoder.conv_in.spatial.conv.weight.grad is not None


# ---------------------------------------------------------------------------------------------------------------
# weights and errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cv4x8x8-tiny", "di8x8-tiny"])
def test_save_load_round_trip_is_bit_exact(tmp_path, name):
    model = tiny(name)
    model.save_pretrained(tmp_path)
    loaded = CausalVideoTokenizer.from_pretrained(tmp_path)
    assert loaded.cfg == model.cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = video(t=5 if model.cfg.is_video else 2)
    assert torch.equal(model.encode(x), loaded.encode(x))
    assert torch.equal(model.decode(model.encode(x)), loaded.decode(loaded.encode(x)))


def write_old_layout_run(run_dir, model: CausalVideoTokenizer, disc_channels: int = 8) -> dict:
    """A run folder as worldsmith wrote it while the model owned its loss: config.yaml with ``model.loss`` and
    ``discriminator.*`` tensors among the weights (model.safetensors and train_state/model.safetensors)."""
    disc = TokenizerLoss(TokenizerLossConfig(perceptual=0.0, adversarial=0.1, disc_channels=disc_channels))
    state = model.state_dict() | {f"discriminator.{k}": v for k, v in disc.discriminator.state_dict().items()}
    loss = to_dict(TokenizerLossConfig(adversarial=0.1, disc_channels=disc_channels))
    config = {"model_class": "worldsmith.tokenizer.model:CausalVideoTokenizer",
              "model": to_dict(model.cfg) | {"loss": loss}, "train": {"steps": 3}}  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml(config, run_dir / "config.yaml")
    save_tensors(state, run_dir / "model.safetensors")
    save_tensors(state, run_dir / "train_state" / "model.safetensors")
    return state


def test_an_old_run_folder_with_the_loss_in_the_model_still_loads(tmp_path):
    model = tiny()
    state = write_old_layout_run(tmp_path / "old", model)
    assert any(k.startswith("discriminator.") for k in load_tensors(tmp_path / "old" / "model.safetensors"))
    for ema in (True, False):  # model.safetensors and the raw weights of train_state/
        loaded = CausalVideoTokenizer.from_pretrained(tmp_path / "old", ema=ema)
        assert loaded.cfg == model.cfg
        assert loaded.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    x = video(t=5)
    assert torch.equal(loaded.encode(x), model.encode(x))
    fresh = CausalVideoTokenizer(model.cfg)
    load_init_weights(fresh, tmp_path / "old")  # --init-from an old run works too
    assert all(torch.equal(v, state[k]) for k, v in fresh.state_dict().items())


def test_init_from_a_shipped_tokenizer_by_its_name():
    shipped = CausalVideoTokenizer.from_pretrained(resolve("arm-tokenizer"))
    fresh = CausalVideoTokenizer(shipped.cfg)
    load_init_weights(fresh, "arm-tokenizer")  # `worldsmith train tokenizer --init-from arm-tokenizer`
    assert all(torch.equal(v, shipped.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_clear_errors_on_bad_inputs():
    model = tiny(perturb=False)
    cases = [
        (torch.zeros(3, 9, 32, 32), "expects a float video tensor \\(B, 3, T, H, W\\)"),
        (torch.zeros(1, 4, 9, 32, 32), "expects a float video tensor"),
        (torch.zeros(1, 3, 9, 32, 32, dtype=torch.uint8), "expects a float video tensor"),
        (torch.zeros(1, 3, 8, 32, 32), "needs 1 \\+ k\\*4 frames"),
        (torch.zeros(1, 3, 9, 36, 32), "36x32 is not divisible by .* spatial compression 8"),
    ]
    for bad, message in cases:
        with pytest.raises(TokenizerInputError, match=message) as info:
            model.encode(bad)
        assert isinstance(info.value, WorldsmithError) and str(info.value).count(". ") == 0
    with pytest.raises(TokenizerInputError, match="decodes float latents \\(B, 16"):
        model.decode(torch.zeros(1, 8, 2, 4, 4))
    dv = tiny("dv4x8x8-tiny", perturb=False)
    with pytest.raises(TokenizerInputError, match="tokens must lie in \\[0, 1000\\)"):
        dv.decode(torch.full((1, 2, 4, 4), 1000))
    with pytest.raises(TokenizerInputError, match="integer tokens"):
        dv.decode(torch.zeros(1, 6, 2, 4, 4))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"patch_size": 3}, "power of two"),
        ({"spatial_compression": 16, "channels": (16, 32)}, "needs at least 3 levels"),
        ({"kind": "discrete", "kl": True}, "discrete tokenizer"),
        ({"channels": (12, 24)}, "multiples of 8"),
    ],
)
def test_config_errors_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TokenizerConfig, changes)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"loss": {"crop": 12}}, "loss.crop must be a multiple of the spatial compression 8"),
        ({"loss": {"l1": 0.0, "perceptual": 0.0}}, "reconstruction term"),
        ({"data": {"frames": 10}}, "data.frames must be 1 \\+ k\\*4"),
        ({"data": {"size": 60}}, "data.size must be a multiple of the spatial compression 8"),
        ({"model": {"loss": {"l1": 1.0}}}, "unknown config key 'model.loss'"),  # the loss is its own section now
    ],
)
def test_run_config_errors_are_clear(changes, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TokenizerRunConfig, changes)


def test_crop_training_sees_latent_aligned_windows_and_the_model_still_codes_whole_frames():
    torch.manual_seed(0)
    ramp = torch.arange(32.0).view(1, 1, 1, 1, 32).expand(2, 3, 5, 32, 32)  # pixel value = its column
    lefts = {int(random_crop(ramp, 16, 8)[0, 0, 0, 0, 0]) for _ in range(60)}
    tops = {int(random_crop(ramp.transpose(-1, -2), 16, 8)[0, 0, 0, 0, 0]) for _ in range(60)}
    assert lefts == tops == {0, 8, 16}  # every window on the latent grid, and all of them drawn
    model, loss_fn = tiny(), TokenizerLoss(TokenizerLossConfig(crop=16))
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    loss, _ = loss_fn(model.train(), {"video": video(t=5)})
    hook.remove()
    assert seen == [(2, 3, 5, 16, 16)] and torch.isfinite(loss)
    x = video(t=5)
    assert model.eval()(x)[0].shape == x.shape  # inference codes the whole frames
