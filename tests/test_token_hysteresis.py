"""Tokens that do not flicker: FSQ digits with hysteresis along time (``CausalVideoTokenizer.hysteresis``), the
token sets made with it, and the generator that must encode its contexts the same way."""

from __future__ import annotations

import json

import pytest
import torch

from worldsmith.autoregressive.config import GPTConfig
from worldsmith.autoregressive.data import tokenize_shards
from worldsmith.autoregressive.generate import ARGenerator
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.config import save_yaml
from worldsmith.errors import ConfigError
from worldsmith.tokenizer.config import PRESETS
from worldsmith.tokenizer.fsq import FSQ
from worldsmith.tokenizer.model import CausalVideoTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_digit_keeps_its_value_inside_the_margin_and_follows_a_real_move():
    fsq = FSQ((5,))  # grid -1, -0.5, 0, 0.5, 1: one step is 0.5 in bounded units
    steps = torch.tensor([1.0, 1.45, 1.55, 1.45, 1.72, 1.40, 2.2, 1.9])  # grid positions, in steps
    y = (steps / 2 - 1).view(1, 1, -1)  # (B, d, T) bounded values
    plain = fsq.stable_digits(y, 0.0)[0, 0].tolist()
    assert plain == torch.round(steps).long().tolist() == fsq.digits(y)[0, 0].tolist()
    # margin 0.25: stay on 1 until 1.75 is passed; then on 2 until it falls below 1.25; 2.2 and 1.9 stay on 2
    assert fsq.stable_digits(y, 0.25)[0, 0].tolist() == [1, 1, 1, 1, 1, 1, 2, 2]
    # continuing from the last digit of an earlier chunk gives what one pass gives
    whole = fsq.stable_digits(y, 0.25)
    parts = torch.cat([fsq.stable_digits(y[:, :, :5], 0.25), fsq.stable_digits(y[:, :, 5:], 0.25, whole[:, :, 4])], 2)
    assert torch.equal(parts, whole)


def test_hysteresis_steadies_the_tokens_of_a_noisy_still_video_and_streams_like_one_pass():
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(PRESETS["di8x8-tiny"]()).eval()
    still = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    video = (still + 0.03 * torch.randn(1, 3, 9, 32, 32)).clamp(-1, 1)  # a still scene under sensor noise
    plain = tok.encode(video)
    tok.hysteresis = 0.3
    steady = tok.encode(video)
    changes = lambda t: (t[:, 1:] != t[:, :-1]).float().mean().item()  # noqa: E731
    assert changes(steady) < 0.5 * changes(plain) and changes(plain) > 0
    assert torch.equal(steady[:, 0], plain[:, 0])  # the first frame has nothing to hold on to
    streamed = torch.cat(list(tok.encode_stream([video[:, :, :4], video[:, :, 4:]], chunk_frames=3, pad_tail=False)), 1)
    assert torch.equal(streamed, steady)


def test_token_sets_record_their_hysteresis_and_refuse_another(tmp_path, arm_shards):
    run = tmp_path / "dv"
    torch.manual_seed(0)
    CausalVideoTokenizer(PRESETS["di8x8-tiny"]()).save_pretrained(run)
    index = tokenize_shards(run, str(arm_shards), tmp_path / "tokens", size=32, progress=False, hysteresis=0.2)
    assert index["hysteresis"] == 0.2 and json.loads((tmp_path / "tokens" / "tokens.json").read_text())["hysteresis"] == 0.2
    with pytest.raises(ConfigError, match="other settings"):
        tokenize_shards(run, str(arm_shards), tmp_path / "tokens", size=32, progress=False)
    assert "hysteresis" not in tokenize_shards(run, str(arm_shards), tmp_path / "plain", size=32, progress=False)
    # a GPT trained on such tokens encodes its contexts the same way
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    save_yaml({"tokenizer": str(run), "data": {"size": 32, "hysteresis": 0.2}}, gpt / "config.yaml")
    VideoGPT(GPTConfig(vocab_size=1000, grid=(4, 4), max_frames=2, dim=32, heads=2, kv_heads=1, depth=1)).save_pretrained(gpt)
    assert ARGenerator.from_run(gpt).tokenizer.hysteresis == 0.2
