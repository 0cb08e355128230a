"""Action conditioning, LoRA post-training and per-step rollouts of the diffusion world model (tiny, random init)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from worldsmith.conditioning.action import ActionEmbedder
from worldsmith.config import merge
from worldsmith.diffusion.condition import Condition
from worldsmith.diffusion.config import PRESETS, SamplingConfig
from worldsmith.diffusion.embedders import GUIDED_KEEP
from worldsmith.diffusion.generate import DiffusionGenerator
from worldsmith.diffusion.model import DiffusionWorldModel
from worldsmith.errors import ConfigError
from worldsmith.nn.lora import LoRALinear, is_adapter
from worldsmith.tokenizer.config import PRESETS as TOKENIZERS
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.weights import load_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")
A = 7  # the arm's action width


def tiny(**model) -> DiffusionWorldModel:
    """A tiny model whose zero-initialised weights (gates, output layer) are made non-zero, as training would:
    a fresh DiT predicts zero whatever its conditions. Condition embedders keep their own (zero) start."""
    torch.manual_seed(0)
    m = DiffusionWorldModel(merge(PRESETS["tiny"](), model)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if ".embedders." not in name and "lora_b" not in name and not p.any():
                p.normal_(std=0.05)
    return m


def cond(b: int = 2, actions: torch.Tensor | None = None) -> Condition:
    text, mask = torch.randn(b, 3, 384), torch.ones(b, 3, dtype=torch.bool)
    return Condition(text, mask, extras={} if actions is None else {"actions": actions})


def perturb(embedder: ActionEmbedder) -> None:
    """A trained-looking embedder (a fresh one is zero on purpose)."""
    torch.nn.init.normal_(embedder.fc2.weight, std=0.5)


def test_embedder_groups_actions_by_latent_frame_and_zero_actions_embed_to_zero():
    e = ActionEmbedder(A, 32, chunk=4)
    actions = torch.randn(2, 8, A)  # 8 transitions -> latent frames 1 and 2 (4 each); frame 0 has none
    chunks = e.per_latent_frame(actions, latent_frames=3)
    assert chunks.shape == (2, 3, 4 * A) and torch.equal(chunks[:, 0], torch.zeros(2, 4 * A))
    assert torch.equal(chunks[:, 2], actions[:, 4:8].reshape(2, 4 * A))
    assert torch.equal(e(actions, (2, 3, 4, 4)), torch.zeros(2, 3, 32))  # starts at zero: the base model's path
    perturb(e)
    assert e(actions, (2, 3, 4, 4)).abs().sum() > 0
    assert torch.equal(e(torch.zeros_like(actions), (2, 3, 4, 4)), torch.zeros(2, 3, 32))  # no bias: zero -> zero
    with pytest.raises(ConfigError, match="actions of 7 numbers"):
        e(torch.zeros(2, 8, 3), (2, 3, 4, 4))


def test_actions_change_the_output_and_zero_actions_equal_the_model_without_actions():
    base, model = tiny(), tiny(action_dim=A)
    missing, _ = model.load_state_dict(base.state_dict(), strict=False)
    assert all(k.startswith("denoiser.net.embedders.") for k in missing)
    perturb(model.net.embedders[0])
    x, sigma = torch.randn(2, 16, 3, 4, 4), torch.ones(2)
    actions = torch.randn(2, 2, A)
    out = model.denoiser(x, sigma, cond(actions=actions))
    assert not torch.allclose(out, model.denoiser(x, sigma, cond(actions=actions.flip(0))), atol=1e-4)
    torch.manual_seed(1)
    c = cond(actions=torch.zeros_like(actions))
    # equal up to float rounding: the zero embedding makes the modulation per frame (other matmul shapes)
    torch.testing.assert_close(model.denoiser(x, sigma, c), base.denoiser(x, sigma, dataclasses.replace(c, extras={})),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(ConfigError, match="conditioned on 'actions'"):
        model.denoiser(x, sigma, cond())


def test_lora_trains_adapters_and_the_embedder_only_and_saves_just_those(tmp_path):
    base = tiny()
    base.save_pretrained(tmp_path / "base")
    model = tiny(action_dim=A, lora={"rank": 2, "base": str(tmp_path / "base")})
    model.load_state_dict(base.state_dict(), strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(is_adapter(n) or ".embedders." in n for n in trainable)
    assert any(isinstance(m, LoRALinear) for m in model.net.blocks.modules())
    x, sigma, actions = torch.randn(2, 16, 2, 4, 4), torch.ones(2), torch.randn(2, 1, A)
    c = cond(actions=actions)
    torch.testing.assert_close(model.denoiser(x, sigma, c), base.denoiser(x, sigma, dataclasses.replace(c, extras={})))
    for n, p in model.named_parameters():  # as if trained
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(tmp_path / "lora")
    saved = load_tensors(tmp_path / "lora" / "model.safetensors")
    buffers = {"latent_mean", "latent_std", "residual_scale", "denoiser.net.embedders.0.scale"}
    assert set(saved) == trainable | buffers  # adapters, embedder, buffers: no base weight
    again = DiffusionWorldModel.from_pretrained(tmp_path / "lora")
    assert torch.equal(again.denoiser(x, sigma, c), model.denoiser(x, sigma, c))


def test_rollouts_of_any_length_keep_shapes_and_a_bounded_window():
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(TOKENIZERS["ci8x8-tiny"]()).eval()
    model = tiny(action_dim=A, action_chunk=1, max_cond_latents=3)
    perturb(model.net.embedders[0])
    gen = DiffusionGenerator(model, tok, FakeText(), frames=4, size=32, fps=10.0)
    windows = []
    model.net.register_forward_pre_hook(lambda m, args: windows.append(args[0].shape[2]))
    video, actions = torch.rand(1, 3, 1, 32, 32) * 2 - 1, torch.randn(1, 40, A)
    out = gen.rollout(video, actions, 41, [""], SamplingConfig(steps=1), seed=0)
    assert out.shape == (1, 3, 41, 32, 32) and torch.equal(out[:, :, :1], video)
    assert max(windows) == 4 and len(windows) == 40  # context 3 + the new frame, one network call per frame
    assert torch.isfinite(out).all()
    again = gen.rollout(video, actions, 41, [""], SamplingConfig(steps=1), seed=0)
    assert torch.equal(out, again)
    other = gen.rollout(video, actions.flip(1), 41, [""], SamplingConfig(steps=1), seed=0)
    assert not torch.equal(out, other)
    with pytest.raises(ConfigError, match="need 40 actions"):
        gen.rollout(video, actions[:, :10], 41, [""], SamplingConfig(steps=1))


def test_condition_guidance_drops_the_actions_in_its_second_branch_and_extrapolates_from_it():
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(TOKENIZERS["ci8x8-tiny"]()).eval()
    model = tiny(action_dim=A, action_chunk=1, max_cond_latents=3)
    perturb(model.net.embedders[0])
    x, sigma, actions = torch.randn(2, 16, 2, 4, 4), torch.ones(2), torch.randn(2, 1, A)
    c = cond(actions=actions)
    # the unconditional branch: keep = 0 is the model with the action embedder's contribution removed
    dropped = dataclasses.replace(c, extras={"actions": actions, GUIDED_KEEP: torch.tensor([1.0, 0.0])})
    zero = dataclasses.replace(c, extras={"actions": torch.zeros_like(actions)})  # zero actions embed to zero
    out, alone = model.denoiser(x, sigma, dropped), model.denoiser(x, sigma, zero)
    torch.testing.assert_close(out[0], model.denoiser(x, sigma, c)[0])
    torch.testing.assert_close(out[1], alone[1])
    assert not torch.allclose(out[0], alone[0], atol=1e-4)
    # in a rollout: W = 1 is the plain conditional sample, bit for bit; W = 2 gives another, finite one
    gen = DiffusionGenerator(model, tok, FakeText(), frames=4, size=32, fps=10.0)
    video, acts = torch.rand(1, 3, 1, 32, 32) * 2 - 1, torch.randn(1, 6, A)
    plain = gen.rollout(video, acts, 7, [""], SamplingConfig(steps=2), seed=0)
    one = gen.rollout(video, acts, 7, [""], SamplingConfig(steps=2, condition_guidance=1.0), seed=0)
    two = gen.rollout(video, acts, 7, [""], SamplingConfig(steps=2, condition_guidance=2.0), seed=0)
    assert torch.equal(plain, one) and not torch.allclose(plain, two, atol=1e-3) and torch.isfinite(two).all()
    with pytest.raises(ConfigError, match="one guidance at a time"):
        SamplingConfig(guidance=3.0, condition_guidance=2.0)


class FakeText:
    """A stand-in for MiniLM of the right shape (the rollout mechanics do not depend on what text says)."""

    def encode(self, prompts):
        n = len(prompts)
        return type("E", (), {"tokens": torch.zeros(n, 1, 384), "mask": torch.ones(n, 1, dtype=torch.bool)})()


def test_autoregressive_actions_enter_each_frames_slots_and_zero_actions_change_nothing():
    from worldsmith.autoregressive.config import PRESETS as GPT
    from worldsmith.autoregressive.model import VideoGPT

    cfg = merge(GPT["tiny"](), {"vocab_size": 50, "grid": [2, 2], "max_frames": 3, "dim": 32, "heads": 2,
                                "kv_heads": 1, "depth": 1})  # fmt: skip
    torch.manual_seed(0)
    base, model = VideoGPT(cfg).eval(), VideoGPT(merge(cfg, {"action_dim": A, "action_chunk": 1})).eval()
    missing, _ = model.load_state_dict(base.state_dict(), strict=False)
    assert missing and all(k.startswith("embedders.") for k in missing)
    perturb(model.embedders[0])
    inputs, actions = torch.randint(0, 50, (2, 12)), torch.randn(2, 2, A)
    with torch.no_grad():
        out = model(inputs, model.context(batch=2, extras={"actions": actions}))
        other = model(inputs, model.context(batch=2, extras={"actions": actions.flip(0)}))
        zero = model(inputs, model.context(batch=2, extras={"actions": torch.zeros_like(actions)}))
    assert not torch.allclose(out, other)
    assert torch.equal(out[:, :4], other[:, :4])  # frame 0's slots see no action: only frames 1-2 change
    assert torch.equal(zero, base(inputs))
    with pytest.raises(ConfigError, match="conditioned on 'actions'"):
        model(inputs)


def test_residual_video2world_generates_differences_from_the_last_given_frame():
    from worldsmith.diffusion.model import with_condition_frames

    model = tiny(residual=True)
    latents = torch.randn(3, 16, 5, 4, 4).cumsum(dim=2)  # frames that drift
    model.set_latent_stats(latents)
    x = model.normalize(latents)
    expected = model.cfg.edm.sigma_data / x.diff(dim=2).std()
    torch.testing.assert_close(model.residual_scale, expected)
    k = torch.tensor([2, 1, 0])  # given frames per sample; the last sample is Text2World
    c = with_condition_frames(cond(3), x, k, torch.full((3,), 0.05))
    r = model.to_residual(x, c)
    torch.testing.assert_close(r[0, :, 2:], (x[0, :, 2:] - x[0, :, 1:2]) * model.residual_scale)
    torch.testing.assert_close(r[1, :, 1:], (x[1, :, 1:] - x[1, :, 0:1]) * model.residual_scale)
    assert torch.equal(r[0, :, :2], x[0, :, :2]) and torch.equal(r[2], x[2])  # given frames and Text2World: as is
    torch.testing.assert_close(model.from_residual(r, c), x)


def test_a_low_start_noise_keeps_a_residual_model_near_its_anchor():
    """SamplingConfig.sigma_max: sampling from a low level starts at the anchor (SDEdit from it); the lower the
    start, the closer the generated frames stay to the last given frame. A model without an anchor refuses."""
    from worldsmith.diffusion.model import with_condition_frames

    model = tiny(residual=True)
    latents = torch.randn(2, 16, 3, 4, 4).cumsum(dim=2)
    model.set_latent_stats(latents)
    x = model.normalize(latents)
    c = with_condition_frames(cond(2), x, torch.tensor([1, 1]), torch.full((2,), 0.05))
    noise = torch.randn(2, 16, 3, 4, 4)

    def gap(sigma_max: float) -> float:  # generated frames' distance from the given one, one Euler step
        out = model.generate(c, (3, 4, 4), steps=1, sampler="euler", noise=noise, sigma_max=sigma_max)
        return float((out[:, :, 1:] - x[:, :, :1]).abs().mean())

    near, mid, full = gap(0.01), gap(1.0), gap(0.0)  # 0: the model's own 80
    assert near < 0.02 and mid > 5 * near and full > 5 * near
    with pytest.raises(ConfigError, match="anchor of a residual model"):
        tiny().generate(c, (3, 4, 4), steps=1, sampler="euler", noise=noise, sigma_max=1.0)
    with pytest.raises(ConfigError, match="sigma_max >= 0"):
        SamplingConfig(sigma_max=-1.0)


def test_actions_are_scaled_by_their_std_on_the_data():
    e = ActionEmbedder(A, 32)
    data = torch.randn(100, 10, A) * torch.tensor([0.01, 0.01, 0.01, 0.04, 0.01, 0.01, 0.2])
    e.set_scale(data)
    torch.testing.assert_close(e.scale, data.reshape(-1, A).std(0))
    perturb(e)
    unscaled = ActionEmbedder(A, 32)
    unscaled.load_state_dict({**e.state_dict(), "scale": torch.ones(A)})
    a = data[:2, :3]
    torch.testing.assert_close(e(a, (2, 4, 4, 4)), unscaled(a / e.scale, (2, 4, 4, 4)))  # unit-std inputs


def test_anchor_frames_show_every_frame_the_last_given_frames_newest_first():
    from worldsmith.diffusion.model import with_condition_frames

    model = tiny(dit={"anchor_frames": 2})
    net, c = model.net, 16
    x0 = torch.randn(3, c, 4, 4, 4)
    k = torch.tensor([3, 1, 0])  # three given, one given (the oldest repeats), Text2World (zeros)
    cond_ = with_condition_frames(cond(3), x0, k, torch.full((3,), 0.05))
    a = net.anchors(x0, cond_)
    assert a.shape == (3, 2 * c, 4, 4, 4)
    for t in range(4):  # the same anchors at every frame position
        torch.testing.assert_close(a[0, :c, t], cond_.frames_in[0, :, 2])
        torch.testing.assert_close(a[0, c:, t], cond_.frames_in[0, :, 1])
        torch.testing.assert_close(a[1, :c, t], cond_.frames_in[1, :, 0])
        torch.testing.assert_close(a[1, c:, t], cond_.frames_in[1, :, 0])
    assert not a[2].any()
    # they are the network's input channels after the latents and the condition mask
    inputs = net.input_channels(x0, cond_)
    assert inputs.shape[1] == c + 1 + 2 * c and net.patch_embed.in_features == inputs.shape[1] * net.cfg.patch**2
    assert torch.equal(inputs[:, c + 1 :], a)


def test_next_frame_only_runs_the_blocks_on_the_first_generated_frame_and_trains_only_it():
    from worldsmith.diffusion.model import with_condition_frames

    model = tiny(dit={"anchor_frames": 2, "next_frame_only": True}, video2world_prob=1.0, action_dim=A)
    perturb(model.net.embedders[0])
    net, c = model.net, 16
    x0, x = torch.randn(2, c, 4, 4, 4), torch.randn(2, c, 4, 4, 4)
    k = torch.tensor([1, 3])  # sample 0 generates frames 1..3, sample 1 frame 3
    cond_ = with_condition_frames(cond(2, torch.randn(2, 3, A)), x0, k, torch.full((2,), 0.05))
    seen = []
    net.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    out = net(x, torch.zeros(2, 4), cond_)
    assert seen == [(2, 1, 4, net.cfg.width)]  # one latent frame (2x2 patches) per sample through the blocks
    assert out[0, :, 1].abs().sum() > 0 and out[1, :, 3].abs().sum() > 0
    assert not out[0, :, [0, 2, 3]].any() and not out[1, :, :3].any()
    later = x.clone()
    later[0, :, 2:] += 5.0  # frames after the next one do not reach it
    torch.testing.assert_close(net(later, torch.zeros(2, 4), cond_), out)
    changed = cond_.extras["actions"].clone()
    changed[0, 0] += 1.0  # the action into frame 1 does
    moved = net(x, torch.zeros(2, 4), dataclasses.replace(cond_, extras={"actions": changed}))
    assert not torch.allclose(moved[0, :, 1], out[0, :, 1]) and torch.equal(moved[1], out[1])
    keep = net.predicted_frames(cond_, 4)  # the loss covers the frame the blocks ran on only
    assert keep.flatten(1).tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]
    assert tiny(dit={"anchor_frames": 2}).net.predicted_frames(cond_, 4) is None  # edm_loss: every generated frame
    with pytest.raises(ConfigError, match="anchor_frames >= 1"):
        tiny(dit={"next_frame_only": True}, video2world_prob=1.0)
    with pytest.raises(ConfigError, match="video2world_prob: 1"):
        tiny(dit={"anchor_frames": 2, "next_frame_only": True}, video2world_prob=0.5)


def test_a_next_frame_only_model_continues_a_video_one_latent_frame_per_window():
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(TOKENIZERS["ci8x8-tiny"]()).eval()
    model = tiny(dit={"anchor_frames": 2, "next_frame_only": True}, video2world_prob=1.0)
    gen = DiffusionGenerator(model, tok, FakeText(), frames=3, size=32, fps=10.0)
    calls = []
    model.net.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[2]))
    video = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    out = gen.generate_videos([""], video=video, frames=6, sampling=SamplingConfig(steps=1))
    assert out.shape == (1, 3, 6, 32, 32) and torch.equal(out[:, :, :1], video) and torch.isfinite(out).all()
    assert calls == [3] * 5  # five windows, each adding the one frame after its context
