"""The diffusion decoder: its token condition, determinism, overfitting one clip, and its errors."""

from __future__ import annotations

import pytest
import torch
from conftest import QUICK_TRAIN, TINY
from helpers import run_cli

from worldsmith import config as C
from worldsmith.autoregressive.generate import ARGenerator
from worldsmith.conditioning.tokens import TokenEmbedder
from worldsmith.decoder.config import PRESETS, DecoderConfig
from worldsmith.decoder.model import DiffusionDecoder
from worldsmith.diffusion.condition import Condition, null_text
from worldsmith.diffusion.losses import world_model_loss
from worldsmith.errors import ConfigError, DataError
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.families import FAMILIES
from worldsmith.io.video import decode, encode_mp4

LEVELS = (8, 5, 5, 5)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def decoder(**changes) -> DiffusionDecoder:
    torch.manual_seed(0)
    cfg = C.merge(PRESETS["tiny"](), {"token_levels": list(LEVELS), "dit": {"latent_channels": 4}, **changes})
    return DiffusionDecoder(cfg).eval()


def grid(seed: int, b: int = 2, t: int = 3, h: int = 4, w: int = 4) -> torch.Tensor:
    return torch.randint(0, 1000, (b, t, h, w), generator=torch.Generator().manual_seed(seed))


def generate(model: DiffusionDecoder, tokens: torch.Tensor, seed: int = 0, dv: torch.Tensor | None = None) -> torch.Tensor:
    b, t, h, w = tokens.shape
    extras = {"tokens": tokens} | ({"dv_latents": dv} if model.cfg.dv_residual else {})
    if model.cfg.dv_residual and dv is None:
        extras["dv_latents"] = torch.zeros(b, model.cfg.dit.latent_channels, t, h, w)
    cond = Condition(*null_text(b, 384), extras=extras)
    return model.generate(cond, (t, h, w), steps=3, generator=torch.Generator().manual_seed(seed))


def test_token_embedder_shapes_codes_and_a_coarser_grid():
    emb = TokenEmbedder(LEVELS, channels=6)
    tokens = grid(0)
    out = emb(tokens, (2, 3, 4, 4))
    assert out.shape == (2, 6, 3, 4, 4)
    coarse = emb(tokens, (2, 3, 8, 8))  # a DV grid half the CV grid: each token covers 2x2 latents
    assert coarse.shape == (2, 6, 3, 8, 8)
    torch.testing.assert_close(coarse[..., ::2, ::2], out)
    torch.testing.assert_close(coarse[..., 1::2, 1::2], out)
    with pytest.raises(DataError, match="another tokenizer"):
        emb(torch.full((1, 1, 2, 2), 1000), (1, 1, 2, 2))
    with pytest.raises(DataError, match="integer grids"):
        emb(torch.zeros(1, 1, 2, 2), (1, 1, 2, 2))


def test_tokens_change_the_output_and_a_seed_fixes_it():
    model = decoder()
    with torch.no_grad():  # wake the zero-initialised output layer so the network's input matters
        model.net.final.linear.weight.normal_(std=0.1)
        a, again, other_seed = generate(model, grid(0)), generate(model, grid(0)), generate(model, grid(0), seed=1)
        b = generate(model, grid(1))
    assert torch.equal(a, again)
    assert (a - b).abs().max() > 1e-3 and (a - other_seed).abs().max() > 1e-3
    # only the tokens of a frame's own position matter to it through the embedder's 3x3 window: change one corner
    changed = grid(0).clone()
    changed[:, :, 0, 0] = (changed[:, :, 0, 0] + 1) % 1000
    with torch.no_grad():
        c = generate(model, changed)
    assert (a - c).abs().max() > 1e-4


@pytest.mark.parametrize("dv_residual", [False, True])
def test_decoder_overfits_a_clip_from_its_tokens(dv_residual):
    """Latents that are a fixed function of the tokens: the trained decoder reproduces them from tokens alone (and,
    as a residual, from a rough first guess of them: a DV decoding)."""
    model = decoder(dv_residual=dv_residual).train()
    tokens = grid(0, b=4, t=2)
    codes = model.net.embedders[0].fsq.indices_to_codes(tokens)  # (B, 4, T, H, W): the truth is the codes
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rough = codes + 0.3 * torch.randn(codes.shape, generator=torch.Generator().manual_seed(1))  # the "DV decoding"
    batch = {"latents": codes, "text": torch.zeros(4, 1, 384), "text_mask": torch.ones(4, 1, dtype=torch.bool),
             "tokens": tokens, "dv_latents": rough}  # fmt: skip
    model.set_latent_stats(codes, {"dv_latents": rough})
    for _ in range(150):
        loss, _ = world_model_loss(model, batch)
        opt.zero_grad(), loss.backward(), opt.step()
    model.eval()
    with torch.no_grad():
        out = model.denormalize(generate(model, tokens, dv=rough))
    error = (out - codes).square().mean() / codes.var()
    assert error < 0.1, float(error)
    if dv_residual:  # better than the first guess it was given
        assert error < 0.5 * (rough - codes).square().mean() / codes.var()


def test_dv_residual_is_scaled_to_sigma_data_and_old_runs_load_unscaled():
    model = decoder()
    latents = torch.randn(6, 4, 2, 4, 4) * 3 + 1
    dv = latents + 0.2 * torch.randn(latents.shape, generator=torch.Generator().manual_seed(2))
    with pytest.raises(DataError, match="token_tokenizer"):
        model.set_latent_stats(latents)
    model.set_latent_stats(latents, {"dv_latents": dv})
    cond = Condition(*null_text(6, 384), extras={"tokens": grid(0, b=6, t=2), "dv_latents": dv})
    x = model.normalize(latents)
    residual = model.to_residual(x, cond)
    assert abs(float(residual.std()) - model.cfg.edm.sigma_data) < 0.02  # what EDM's preconditioning assumes
    assert float(model.dv_residual_scale) > 5  # unscaled: 0.2 / 3 of sigma_data, so ~15
    assert torch.allclose(model.from_residual(residual, cond), x, atol=1e-5)
    # a decoder saved before the scale existed loads with the residual unscaled, as it was trained
    state = {k: v for k, v in model.state_dict().items() if k != "dv_residual_scale"}
    old = decoder()
    old.load_state_dict(state)
    assert float(old.dv_residual_scale) == 1.0 and torch.equal(old.latent_std, model.latent_std)


def test_config_and_cli_errors(dv_tokenizer, cv_tokenizer, arm_shards, tmp_path, capsys):
    family = FAMILIES["decoder"]
    base = {"shards": str(arm_shards), **TINY}
    swapped = family.resolve("tiny", flags={"data": base | {"tokenizer": str(dv_tokenizer),
                                                            "token_tokenizer": str(cv_tokenizer)}, "train": QUICK_TRAIN})
    with pytest.raises(ConfigError, match="must be discrete"):
        family.train(swapped, tmp_path / "r")
    code, _, err = run_cli(capsys, "train", "decoder", "--out", str(tmp_path / "r2"), "--data", str(arm_shards),
                           "--latents", str(cv_tokenizer))  # fmt: skip
    assert code == 1 and "no discrete tokenizer: pass --tokens" in err and err.count("\n") == 1, err
    with pytest.raises(ConfigError, match="token_channels"):
        DecoderConfig(token_channels=0)


def test_autoregressive_rollouts_decode_through_the_decoder(dv_tokenizer, cv_tokenizer, arm_shards, tmp_path, capsys):
    gpt, dec = tmp_path / "gpt", tmp_path / "dec"
    FAMILIES["autoregressive"].train(FAMILIES["autoregressive"].resolve("tiny", flags={
        "data": {"shards": str(arm_shards), "size": TINY["size"]}, "tokenizer": str(dv_tokenizer),
        "model": {"dim": 32, "depth": 1, "heads": 2, "kv_heads": 1, "max_frames": 3}, "train": QUICK_TRAIN}), gpt)
    data = {"shards": str(arm_shards), **TINY}
    FAMILIES["decoder"].train(FAMILIES["decoder"].resolve("tiny", flags={
        "data": data | {"tokenizer": str(cv_tokenizer), "token_tokenizer": str(dv_tokenizer)}, "train": QUICK_TRAIN}), dec)
    first = next(iter_shard(list_shards(str(arm_shards))[0])).frames[:1]
    encode_mp4(first, tmp_path / "in.mp4", fps=5.0)
    out = tmp_path / "out.mp4"
    code, printed, err = run_cli(capsys, "generate", "--model", str(gpt), "--decoder", str(dec), "--input",
                                 str(tmp_path / "in.mp4"), "--frames", "9", "--out", str(out), "--top-k", "20")
    assert code == 0, err
    video = decode(out)
    assert video.shape == (9, 32, 32, 3) and (video[1:].astype(int) - video[:1]).any()
    # the same rollout decoded by the DV tokenizer differs: the decoder is what made the frames
    gen = ARGenerator.from_run(gpt)
    plain = gen.reconstruct(torch.zeros(1, 3, 5, 32, 32))
    decoded = gen.use_decoder(FAMILIES["decoder"].generator.from_run(dec)).reconstruct(torch.zeros(1, 3, 5, 32, 32))
    assert plain.shape == decoded.shape and (plain - decoded).abs().max() > 1e-3
    # a decoder of other tokens is refused, and so is --decoder for a model that makes no tokens
    mismatched = FAMILIES["decoder"].generator.from_run(dec)
    mismatched.model.cfg.token_levels = (8, 8, 8, 5, 5, 5)
    with pytest.raises(ConfigError, match="train a decoder with --tokens set to this model's tokenizer"):
        ARGenerator.from_run(gpt).use_decoder(mismatched)
    code, _, err = run_cli(capsys, "generate", "--model", str(dec), "--decoder", str(dec), "--input",
                           str(tmp_path / "in.mp4"), "--out", str(tmp_path / "x.mp4"))
    assert code == 1 and "decodes an autoregressive model's tokens" in err and err.count("\n") == 1, err
