"""The FSQ-factorized head of VideoGPT: exact likelihood, digit embeddings, cached = uncached, training, and errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import QUICK_TRAIN, TINY

from worldsmith.autoregressive.config import PRESETS, GPTConfig, SamplingConfig
from worldsmith.autoregressive.generate import ARGenerator
from worldsmith.autoregressive.heads import DigitEmbedding, DigitHead
from worldsmith.autoregressive.losses import next_token_loss, shift_right
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.autoregressive.rollout import CachedStepper, generate_tokens
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.errors import ConfigError
from worldsmith.families import FAMILIES
from worldsmith.family import GenerationRequest
from worldsmith.tokenizer.fsq import FSQ

LEVELS, GRID, FRAMES = (2, 5, 5), (3, 4), 3  # 50 codes, 12 tokens per frame
VOCAB = math.prod(LEVELS)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(head: str = "factorized", **changes) -> VideoGPT:
    torch.manual_seed(0)
    cfg = dataclasses.replace(PRESETS["tiny"](), vocab_size=VOCAB, grid=GRID, max_frames=FRAMES, dim=48, depth=2,
                              heads=4, kv_heads=2, head=head, fsq_levels=LEVELS, **changes)  # fmt: skip
    return VideoGPT(cfg).eval()


def tokens(batch: int = 2, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, frames, *GRID), generator=torch.Generator().manual_seed(seed))


def randomise(head: DigitHead) -> DigitHead:
    """Weights large enough that every digit's distribution depends on the state and on the digits before it."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(std=0.5)
    return head


@pytest.mark.parametrize("levels", [(3, 4, 5), (8, 8, 8, 5, 5, 5)])
def test_probabilities_over_all_codes_sum_to_one_and_match_the_loss(levels):
    head = randomise(DigitHead(16, levels, 24))
    states = torch.randn(3, 16)
    with torch.no_grad():
        table = head.log_probs(states)  # (3, V)
    assert table.shape == (3, math.prod(levels))
    torch.testing.assert_close(table.exp().sum(-1), torch.ones(3), atol=1e-4, rtol=0)
    # the training loss is the exact negative log-likelihood of the code (no z-loss here)
    targets = torch.tensor([0, math.prod(levels) - 1, 12345 % math.prod(levels)])
    loss, logs = head.loss(states[None], targets[None], 0.0)
    torch.testing.assert_close(loss, -table.gather(1, targets[:, None]).mean(), atol=1e-5, rtol=1e-5)
    # digit order: the code of a token has its FSQ digits (digit 0 lowest), the same as the tokenizer's
    fsq = FSQ(levels)
    codes = fsq.indices_to_codes(targets)  # (3, d)
    assert torch.equal(fsq.codes_to_indices(codes[..., None])[:, 0], targets)
    assert torch.equal(head.codes.digits(targets), fsq.digits(codes))


def test_later_digits_depend_on_earlier_ones():
    """The chain rule inside a token: the joint is not a product of independent digit marginals."""
    head = randomise(DigitHead(8, (3, 4), 16))
    with torch.no_grad():
        p = head.log_probs(torch.randn(1, 8)).exp().view(4, 3)  # rows: digit 1, columns: digit 0
    independent = p.sum(0, keepdim=True) * p.sum(1, keepdim=True)
    assert (p - independent).abs().max() > 1e-3


def test_digit_sampling_follows_the_exact_distribution():
    head = randomise(DigitHead(8, (3, 4), 16))
    state = torch.randn(1, 8)
    with torch.no_grad():
        probs = head.log_probs(state).exp()[0]  # (12,)
        g = torch.Generator().manual_seed(0)
        drawn = head.sample(state.expand(20000, -1), SamplingConfig(1.0), g)
        greedy = head.sample(state, SamplingConfig(0.0))
    counts = torch.bincount(drawn, minlength=12).float() / 20000
    assert (counts - probs).abs().max() < 0.015  # 3 standard errors at most at p = 0.5
    # greedy: the best first digit, then the best second digit given it
    p = probs.view(4, 3)
    d0 = int(p.sum(0).argmax())
    assert int(greedy) == d0 + 3 * int(p[:, d0].argmax())


def test_digit_embedding_is_a_sum_of_digit_rows_with_its_own_bos():
    emb = DigitEmbedding((3, 4), 6)
    a, b, c, d = emb(torch.tensor([1 + 3 * 0, 0 + 3 * 2, 1 + 3 * 2, 0 + 3 * 0]))
    torch.testing.assert_close(a + b, c + d)  # digits (1, 0) + (0, 2) == (1, 2) + (0, 0)
    bos = emb(torch.tensor([12]))[0]
    torch.testing.assert_close(bos, emb.table.weight[-1])
    assert emb.table.weight.shape == (3 + 4 + 1, 6)


def test_factorized_model_caches_like_a_full_forward_and_generates_valid_codes():
    model = tiny()
    inputs = shift_right(tokens().flatten(1), model.bos)
    ctx = model.context(batch=2)
    with torch.no_grad():
        full = model(inputs, ctx)
        stepper = CachedStepper(model, ctx, batch=2)
        states = [stepper.prefill(inputs[:, :10])]
        states += [stepper.step(inputs[:, n], n) for n in range(10, inputs.shape[1])]
    torch.testing.assert_close(torch.stack(states, 1), full[:, 9:], atol=2e-5, rtol=1e-5)
    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(5)
        out = generate_tokens(model, tokens(frames=1), 4, sampling=SamplingConfig(0.9, top_k=3), generator=g,
                              use_cache=use_cache)  # fmt: skip
        runs.append(torch.stack(list(out), dim=1))
    assert torch.equal(runs[0], runs[1]) and runs[0].shape == (2, 4, *GRID)
    assert runs[0].min() >= 0 and runs[0].max() < VOCAB


@pytest.mark.parametrize("head", ["flat", "factorized"])
def test_both_heads_overfit_a_clip(head):
    model = tiny(head).train()
    batch = {"tokens": tokens(batch=1)}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first, logs = next_token_loss(model, batch)
    assert first.item() == pytest.approx(math.log(VOCAB), rel=0.2)  # a fresh head spreads over all codes
    for _ in range(150):
        loss, logs = next_token_loss(model, batch)
        opt.zero_grad(), loss.backward(), opt.step()
    assert logs["accuracy"] > 0.95 and loss.item() < 0.1 * first.item()


def test_factorized_config_errors():
    with pytest.raises(ConfigError, match="product is the vocabulary"):
        GPTConfig(vocab_size=1000, head="factorized", fsq_levels=(8, 5, 5))
    with pytest.raises(ConfigError, match="training sets them"):
        VideoGPT(GPTConfig(vocab_size=1000, head="factorized"))  # a preset before training: levels unknown yet
    with pytest.raises(ConfigError, match="'flat' or 'factorized'"):
        GPTConfig(head="digits")
    params = {head: sum(p.numel() for p in VideoGPT(GPTConfig(
        vocab_size=64000, dim=64, depth=1, heads=4, kv_heads=2, head=head, fsq_levels=(8, 8, 8, 5, 5, 5),
        max_frames=2)).parameters()) for head in ("flat", "factorized")}  # fmt: skip
    assert params["flat"] > 64000 * 64 * 2 > 10 * params["factorized"]  # two 64,000 x D tables vs 39 digit rows


def test_training_a_factorized_model_from_the_command_settings(arm_shards, dv_tokenizer, tmp_path):
    """``--set model.head=factorized`` on a preset: the levels come from the DV tokenizer at training."""
    family = FAMILIES["autoregressive"]
    cfg = family.resolve("tiny", overrides=["model.head=factorized"], flags={
        "data": {"shards": str(arm_shards), "size": TINY["size"]}, "tokenizer": str(dv_tokenizer),
        "model": {"dim": 32, "depth": 1, "heads": 2, "kv_heads": 1, "max_frames": 3}, "train": QUICK_TRAIN})
    family.train(cfg, tmp_path / "run")
    gen = ARGenerator.from_run(tmp_path / "run")
    assert gen.model.cfg.head == "factorized" and gen.model.cfg.fsq_levels == (8, 5, 5, 5)
    first = next(iter_shard(list_shards(str(arm_shards))[0])).frames[:1]
    video = gen.generate(GenerationRequest(video=first, frames=5), SamplingConfig(top_k=3))
    assert video.shape == (5, 32, 32, 3)
