"""VideoGPT on random token grids: causality, KV cache == no cache, sliding window, sampling, RoPE, loss, configs."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from worldsmith.autoregressive.config import PRESETS, GPTConfig, SamplingConfig
from worldsmith.autoregressive.heads import ce_and_z
from worldsmith.autoregressive.kv_cache import KVCache
from worldsmith.autoregressive.losses import cross_entropy_z_loss, next_token_loss, shift_right
from worldsmith.autoregressive.model import CAUSAL_CHUNK, VideoGPT, causal_attention
from worldsmith.autoregressive.rollout import CachedStepper, _static_step, generate_tokens
from worldsmith.autoregressive.sampling import filter_logits, sample_logits
from worldsmith.errors import ConfigError, DataError
from worldsmith.families import FAMILIES
from worldsmith.nn.embeddings import raster_positions, sinusoidal_3d
from worldsmith.nn.rope import apply_rope, rope_table

VOCAB, GRID, FRAMES = 50, (3, 4), 3  # 12 tokens per frame, a window of 36 slots


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes) -> VideoGPT:
    """The tiny preset, narrowed; the zero-initialised cross-attention outputs are woken up so text matters."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESETS["tiny"](), vocab_size=VOCAB, grid=GRID, max_frames=FRAMES,
                              dim=48, depth=2, heads=4, kv_heads=2, **changes)  # fmt: skip
    model = VideoGPT(cfg).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.cross.proj.weight.normal_(std=0.2)
    return model


def text(batch: int = 2, length: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 3:] = False  # padding in the first prompt
    return torch.randn(batch, length, 384, generator=g), mask


def tokens(batch: int = 2, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, frames, *GRID), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------
# causality
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cut", [1, 13, 30])
def test_logits_at_a_slot_ignore_later_tokens(cut):
    model = tiny()
    t, (emb, mask) = tokens(), text()
    cross = model.context(emb, mask)
    inputs = shift_right(t.flatten(1), model.bos)  # (B, 36)
    changed = inputs.clone()
    changed[:, cut:] = (changed[:, cut:] + 7) % VOCAB
    with torch.no_grad():
        a, b = model(inputs, cross), model(changed, cross)
    assert torch.equal(a[:, :cut], b[:, :cut])  # slots before the change see nothing of it
    assert (a[:, cut:] - b[:, cut:]).abs().amax(-1).min() > 1e-4  # every later slot does


def test_loss_target_n_depends_on_tokens_before_n_only():
    model = tiny()
    t = tokens(batch=1)
    target = 20  # a token of the second frame
    t2 = t.clone().flatten(1)
    t2[:, target:] = (t2[:, target:] + 1) % VOCAB
    with torch.no_grad():
        a = model(shift_right(t.flatten(1), model.bos))
        b = model(shift_right(t2, model.bos))
    assert torch.equal(a[:, : target + 1], b[:, : target + 1])  # logits for tokens 0..target are unchanged


# ---------------------------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------------------------
def test_cached_steps_give_the_logits_of_a_full_forward():
    model = tiny()
    emb, mask = text()
    cross = model.context(emb, mask)
    inputs = shift_right(tokens().flatten(1), model.bos)
    with torch.no_grad():
        full = model(inputs, cross)  # (B, 36, V)
        stepper = CachedStepper(model, cross, batch=2)
        logits = [stepper.prefill(inputs[:, :10])]
        logits += [stepper.step(inputs[:, n], n) for n in range(10, inputs.shape[1])]
        # a chunk after cached slots (causal with an offset) gives the same as well
        cache = model.new_cache(2)
        head = model(inputs[:, :7], cross, start=0, cache=cache)
        tail = model(inputs[:, 7:], cross, start=7, cache=cache)
    torch.testing.assert_close(torch.stack(logits, 1), full[:, 9:], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([head, tail], 1), full, atol=2e-5, rtol=1e-5)


def test_static_shape_step_matches_the_eager_step():
    """The form torch.compile captures (position as a tensor, whole buffer masked) computes the same logits."""
    model = tiny()
    cross = model.context(*text())
    inputs = shift_right(tokens().flatten(1), model.bos)
    with torch.no_grad():
        eager, static = CachedStepper(model, cross, 2), CachedStepper(model, cross, 2)
        eager.prefill(inputs[:, :5]), static.prefill(inputs[:, :5])
        for n in range(5, 12):
            a = eager.step(inputs[:, n], n)
            b = _static_step(model, cross, static.cache, inputs[:, n], torch.tensor(n))
            static.cache.advance(1)
            torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("sampling", [SamplingConfig(1.0), SamplingConfig(0.8, top_k=10, top_p=0.9),
                                      SamplingConfig(0.0)])  # fmt: skip
def test_cached_and_uncached_generation_draw_identical_tokens(sampling):
    model = tiny()
    prefix, (emb, mask) = tokens(frames=1), text()
    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(123)
        out = generate_tokens(model, prefix, 5, text=emb, text_mask=mask, sampling=sampling, generator=g,
                              use_cache=use_cache)  # fmt: skip
        runs.append(torch.stack(list(out), dim=1))  # 5 frames > a window of 3: the window slides twice
    assert runs[0].shape == (2, 5, *GRID) and runs[0].dtype == torch.long
    assert torch.equal(runs[0], runs[1])
    assert runs[0].min() >= 0 and runs[0].max() < VOCAB


def test_generation_is_deterministic_and_rollouts_in_a_batch_differ():
    model = tiny()
    prefix = tokens(batch=1, frames=1).expand(3, -1, -1, -1)  # three rollouts of one prefix
    def draw(seed: int) -> torch.Tensor:
        return torch.stack(list(generate_tokens(model, prefix, 2, generator=torch.Generator().manual_seed(seed))), 1)

    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # batched rollouts are independent samples


def test_frames_are_yielded_one_at_a_time():
    model = tiny()
    stream = generate_tokens(model, tokens(frames=2), 4, sampling=SamplingConfig(0.0))
    first = next(stream)
    assert first.shape == (2, *GRID)
    assert len(list(stream)) == 3


def test_sliding_window_rereads_the_last_frames():
    """With slide=1 each frame after the window fills is predicted from the previous max_frames - 1 frames only."""
    model = tiny()
    greedy = SamplingConfig(0.0)
    prefix = tokens(frames=2)
    rolled = torch.stack(list(generate_tokens(model, prefix, 3, sampling=greedy)), 1)  # frames 2, 3, 4
    window = torch.cat([prefix, rolled], 1)[:, 2:4]  # frames 2, 3: the context of frame 4
    again = next(generate_tokens(model, window, 1, sampling=greedy))
    assert torch.equal(again, rolled[:, 2])
    slid = torch.stack(list(generate_tokens(model, prefix, 3, sampling=greedy, slide=3)), 1)
    assert torch.equal(slid[:, 0], rolled[:, 0])  # identical until the window is full, then it is emptied:
    assert torch.equal(slid[:, 1], next(generate_tokens(model, prefix[:, :0], 1, sampling=greedy)))


def test_generation_checks_its_inputs():
    model = tiny()
    with pytest.raises(DataError, match="integer tokens"):
        next(generate_tokens(model, torch.zeros(1, 1, 5, 5, dtype=torch.long), 1))
    with pytest.raises(DataError, match="another tokenizer"):
        next(generate_tokens(model, torch.full((1, 1, *GRID), VOCAB), 1))
    with pytest.raises(ConfigError, match="slide"):
        next(generate_tokens(model, tokens(frames=1), 1, slide=0))


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(1, 1, 1, 4, 8)
    cache.update(0, 0, torch.ones(1, 1, 3, 8), torch.ones(1, 1, 3, 8))
    with pytest.raises(ValueError, match="overflow"):
        cache.update(0, 3, torch.ones(1, 1, 2, 8), torch.ones(1, 1, 2, 8))
    assert cache.nbytes == 2 * 4 * 8 * 4


# ---------------------------------------------------------------------------------------------------------------
# text conditioning
# ---------------------------------------------------------------------------------------------------------------
def test_text_changes_the_logits_and_padding_does_not():
    model = tiny()
    inputs = shift_right(tokens(batch=1).flatten(1), model.bos)
    emb, _ = text(batch=2)
    with torch.no_grad():
        a = model(inputs, model.context(emb[:1]))
        b = model(inputs, model.context(emb[1:]))
        none = model(inputs)
        padded = torch.cat([emb[:1], torch.randn(1, 3, 384)], 1)
        mask = torch.tensor([[True] * 5 + [False] * 3])
        c = model(inputs, model.context(padded, mask))
        unconditioned = model(inputs, model.context(emb[:1], torch.zeros(1, 5, dtype=torch.bool)))
    assert (a - b).abs().max() > 1e-3 and (a - none).abs().max() > 1e-3
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)  # padded text tokens are ignored
    torch.testing.assert_close(unconditioned, none)  # an all-False mask is the null token alone


def test_one_context_token_is_attended_to_whatever_the_query():
    """No prompt leaves the null token alone in the context: the shortcut (its value, projected) is attention's output."""
    cross = tiny().blocks[0].cross
    x, ctx = torch.randn(3, 7, 48), torch.randn(3, 1, 48)
    with torch.no_grad():
        k, v, _ = cross.context_kv(ctx, torch.ones(3, 1, dtype=torch.bool))
        short = cross(x, (k, v, None))
        full = cross(x, (k, v, torch.zeros(3, 1, 1, 1)))  # a mask (of nothing) takes the attention path
    assert short.shape == (3, 7, 48) and short.abs().max() > 1e-3
    torch.testing.assert_close(short, full, atol=1e-6, rtol=1e-5)
    # training takes the shortcut too: the same gradients as attention's, the query's weights exactly zero but present
    grads = []
    for mask in (None, torch.zeros(3, 1, 1, 1)):
        cross.zero_grad(set_to_none=True)
        k, v, _ = cross.context_kv(ctx, torch.ones(3, 1, dtype=torch.bool))
        cross(x, (k, v, mask)).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in cross.named_parameters()})
    assert set(grads[0]) == set(grads[1]) == {n for n, _ in cross.named_parameters()}
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)
    assert not any(grads[0][name].any() for name in ("q.weight", "q_norm.weight", "k_norm.weight"))
    assert grads[0]["kv.weight"].abs().max() > 1e-3


def test_fresh_model_ignores_text_until_trained():
    """Cross-attention outputs start at zero (no-op), so an untrained model is unconditioned."""
    torch.manual_seed(0)
    model = VideoGPT(GPTConfig(vocab_size=VOCAB, grid=GRID, max_frames=FRAMES, dim=48, depth=1, heads=4, kv_heads=2))
    inputs = shift_right(tokens(batch=1).flatten(1), model.bos)
    with torch.no_grad():
        assert torch.equal(model(inputs, model.context(text(1)[0])), model(inputs))


# ---------------------------------------------------------------------------------------------------------------
# loss, sampling, positions, configs
# ---------------------------------------------------------------------------------------------------------------
def test_fused_cross_entropy_and_z_loss_gradients_are_exact():
    logits = torch.randn(3, 5, 13, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 13, (3, 5))
    assert torch.autograd.gradcheck(lambda x: ce_and_z(x, targets), (logits,))
    ce, z = ce_and_z(logits, targets)
    (ce + 0.3 * z).backward()
    fused = logits.grad.clone()
    logits.grad = None
    log_z = logits.logsumexp(-1)
    (F.cross_entropy(logits.flatten(0, 1), targets.flatten()) + 0.3 * log_z.square().mean()).backward()
    torch.testing.assert_close(fused, logits.grad)


def test_loss_is_cross_entropy_plus_z_loss_and_trains():
    logits, targets = torch.randn(2, 7, 11), torch.randint(0, 11, (2, 7))
    loss, logs = cross_entropy_z_loss(logits, targets, 1e-4)
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) + 1e-4 * logits.logsumexp(-1).square().mean()
    torch.testing.assert_close(loss, expected)
    assert set(logs) == {"ce", "z_loss", "accuracy"}

    model = tiny().train()
    batch = {"tokens": tokens(), "text": text()[0], "text_mask": text()[1]}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = next_token_loss(model, batch)[0].item()
    assert first == pytest.approx(math.log(VOCAB), rel=0.2)
    for _ in range(30):
        loss, _ = next_token_loss(model, batch)
        opt.zero_grad(), loss.backward(), opt.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="do not fit"):
        next_token_loss(model, {"tokens": torch.zeros(1, FRAMES + 1, *GRID, dtype=torch.long)})


def test_sampling_filters():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])
    assert sample_logits(logits, SamplingConfig(0.0)).item() == 1
    top2 = filter_logits(logits, top_k=2)
    assert torch.isinf(top2).tolist() == [[True, False, True, False, True]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.23, 0.09, ... for tokens 1, 3, 2
    nucleus = filter_logits(logits, top_p=float(probs[1] + 0.01))
    assert torch.isfinite(nucleus).tolist() == [[False, True, False, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1e-6)).sum() == 1  # the best token always survives
    g = torch.Generator().manual_seed(0)
    wide = logits.expand(2000, -1)
    nucleus_p = float(probs[1] + 0.01)
    cases = [(SamplingConfig(1.0, top_k=2), {1, 3}), (SamplingConfig(1.0, top_p=nucleus_p), {1, 3}),
             (SamplingConfig(1.0, top_k=3, top_p=0.9), {1, 3}), (SamplingConfig(5.0), {0, 1, 2, 3, 4})]
    for cfg, allowed in cases:
        drawn = set(sample_logits(wide, cfg, g).tolist())
        assert drawn == allowed, cfg
    for bad in (dict(temperature=-1), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ConfigError):
            SamplingConfig(**bad)


def test_positions_rope_is_relative_and_the_absolute_embedding_distinct():
    hd, model = 24, tiny()
    q, k = torch.randn(1, 1, 1, hd), torch.randn(1, 1, 1, hd)
    table = torch.view_as_complex(rope_table(4, 3, 5, hd, 10000.0))  # (60, hd/2): slots of a (4, 3, 5) window
    slot = lambda t, y, x: t * 15 + y * 5 + x
    def score(pq, pk):

        return (apply_rope(q, table[slot(*pq)]) * apply_rope(k, table[slot(*pk)])).sum().item()
    assert score((3, 1, 2), (1, 0, 0)) == pytest.approx(score((2, 2, 4), (0, 1, 2)), abs=1e-4)
    assert score((3, 1, 2), (1, 0, 0)) != pytest.approx(score((3, 1, 2), (1, 0, 1)), abs=1e-3)
    # the model's table follows the raster layout of its window
    assert model.rope.shape == (FRAMES * 12, model.cfg.head_dim // 2, 2)
    emb = sinusoidal_3d(raster_positions(2, 3, 4), 48)
    assert emb.shape == (24, 48) and len({tuple(r) for r in emb.round(decimals=5).tolist()}) == 24
    assert raster_positions(2, 3, 4)[13].tolist() == [1, 0, 1]


def test_presets_and_config_errors():
    for size in ("tiny", "small", "base"):
        cfg = PRESETS[size]()
        assert cfg.dim % cfg.heads == 0 and cfg.heads % cfg.kv_heads == 0
    assert PRESETS["tiny"]().max_len == 8 * 64
    with pytest.raises(ConfigError, match="kv_heads"):
        GPTConfig(heads=8, kv_heads=3)
    with pytest.raises(ConfigError, match="heads"):
        GPTConfig(dim=100, heads=8)
    with pytest.raises(ConfigError, match="RoPE"):
        GPTConfig(dim=16, heads=4, kv_heads=2)  # head width 4 is too narrow for three axes
    with pytest.raises(ConfigError, match="preset"):
        FAMILIES["autoregressive"].preset("huge")


@pytest.mark.parametrize("slots", [CAUSAL_CHUNK, CAUSAL_CHUNK + 1, 3 * CAUSAL_CHUNK + 17])
def test_chunked_causal_attention_equals_one_causal_call_forward_and_backward(slots):
    torch.manual_seed(0)
    q = torch.randn(2, 4, slots, 16, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 2, slots, 16, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w = torch.randn(2, 4, slots, 16, dtype=torch.float64)  # a loss that weighs every output differently
    got = causal_attention(q, k, v)
    grads = torch.autograd.grad((got * w).sum(), (q, k, v))
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = torch.autograd.grad((want * w).sum(), (q, k, v))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)
    k2 = k.detach().clone()
    k2[:, :, -1] += 1.0  # the last key is seen by the last query alone
    changed = (causal_attention(q, k2, v) - got).abs().amax(dim=(0, 1, 3))
    assert changed[-1] > 0 and changed[:-1].max() == 0
