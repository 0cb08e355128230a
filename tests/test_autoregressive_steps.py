"""Step-by-step rollouts of the autoregressive family: one frame per action, as environments, play and the planner
step them (``ARGenerator.start_rollout`` / ``step_rollout``), against the whole rollout they must equal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsmith.autoregressive.config import PRESETS as GPT
from worldsmith.autoregressive.config import SamplingConfig
from worldsmith.autoregressive.generate import ARGenerator
from worldsmith.autoregressive.model import VideoGPT
from worldsmith.autoregressive.sampling import RowStreams, sample_logits
from worldsmith.config import merge
from worldsmith.data.manifest import list_shards
from worldsmith.data.shards import iter_shard
from worldsmith.envs.plan import CEMPlanner
from worldsmith.envs.world_model import BatchedWorldModelEnv
from worldsmith.errors import ConfigError, VideoError
from worldsmith.eval.rollouts import evaluate_rollouts
from worldsmith.serve.models import why_not_playable
from worldsmith.tokenizer.config import PRESETS as TOKENIZERS
from worldsmith.tokenizer.model import CausalVideoTokenizer
from worldsmith.worlds.generate import simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
A, SIZE = 7, 32
GREEDY = SamplingConfig(temperature=0.0)


@pytest.fixture(scope="module")
def gen() -> ARGenerator:
    """An action GPT on a per-frame discrete tokenizer (untrained: equivalences hold for any weights), with a
    trained-looking action embedder (a fresh one is zero on purpose) so that actions change the tokens."""
    torch.manual_seed(0)
    tok = CausalVideoTokenizer(TOKENIZERS["di8x8-tiny"]())
    cfg = merge(GPT["tiny"](), {"vocab_size": tok.fsq.codebook_size, "grid": [SIZE // 8] * 2, "max_frames": 4,
                                "dim": 32, "heads": 2, "kv_heads": 1, "depth": 2, "action_dim": A, "action_chunk": 1,
                                "head": "factorized", "fsq_levels": list(tok.fsq.levels)})  # fmt: skip
    model = VideoGPT(cfg)
    torch.nn.init.normal_(model.embedders[0].fc2.weight, std=1.0)
    return ARGenerator(model, tok, SIZE)


def video(b: int = 2, t: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, t, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def actions(b: int, n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, n, A, generator=torch.Generator().manual_seed(seed)) * 0.06 - 0.03


def steps(gen, state, acts: torch.Tensor) -> torch.Tensor:
    return torch.cat([gen.step_rollout(state, acts[:, t : t + 1]) for t in range(acts.shape[1])], dim=2)


@pytest.mark.parametrize("given", [1, 2])
def test_steps_equal_the_whole_rollout_past_a_full_window(gen, given):
    # 7 frames in all: the 4-frame window fills (new frames read the cache) and then slides (re-read from slot 0)
    v, acts = video(t=given), actions(2, 6)
    whole = gen.rollout(v, acts, 7, ["", ""], sampling=GREEDY)
    state = gen.start_rollout(v, ["", ""], GREEDY, seeds=[0, 1], actions=acts[:, : given - 1])
    stepped = steps(gen, state, acts[:, given - 1 :])
    assert stepped.shape == (2, 3, 7 - given, SIZE, SIZE)
    torch.testing.assert_close(stepped, whole[:, :, given:], atol=1e-5, rtol=0)
    assert state.tokens.window.shape[1] <= gen.model.cfg.max_len  # memory stays bounded
    with pytest.raises(ConfigError, match="a rollout step takes actions"):
        gen.step_rollout(state, acts[:, :2])
    with pytest.raises(ConfigError, match="2 given frames need the 1 actions between them"):
        gen.start_rollout(video(t=2), ["", ""], actions=torch.zeros(2, 2, A))
    with pytest.raises(VideoError, match="a rollout starts from float video"):
        gen.start_rollout(v[0], [""])


def test_the_action_taken_reaches_the_new_frame_and_sampled_rows_ignore_their_batch(gen):
    v, acts = video(), actions(2, 4)
    left = steps(gen, gen.start_rollout(v, ["", ""], GREEDY), acts)
    right = steps(gen, gen.start_rollout(v, ["", ""], GREEDY), -acts)
    assert (left[:, :, 0] - right[:, :, 0]).abs().mean() > 0.01  # the first step already follows its action
    # temperature 1: each row draws from its own seed's stream, so a rollout is the same alone or in a batch
    sampled = steps(gen, gen.start_rollout(v, ["", ""], seeds=[5, 6]), acts)
    alone = steps(gen, gen.start_rollout(v[1:], [""], seeds=[6]), acts[1:])
    torch.testing.assert_close(sampled[1:], alone, atol=1e-5, rtol=0)
    other = steps(gen, gen.start_rollout(v[1:], [""], seeds=[7]), acts[1:])
    assert not torch.allclose(other, alone)


def test_a_repeated_state_continues_each_rollout_in_every_copy(gen):
    v, acts = video(), actions(2, 3)
    state = gen.start_rollout(v, ["", ""], GREEDY, actions=None)
    gen.step_rollout(state, acts[:, :1])
    copies = state.repeat(3)  # rows 0, 0, 0, 1, 1, 1
    assert copies.tokens.batch == 6 and copies.tokens.stepper.cache.batch == 6
    ahead = steps(gen, copies, acts[:, 1:].repeat_interleave(3, dim=0))
    own = steps(gen, state, acts[:, 1:])  # the original is untouched by its copies and continues the same way
    torch.testing.assert_close(ahead[::3], own, atol=1e-5, rtol=0)
    torch.testing.assert_close(ahead[1::3], own, atol=1e-5, rtol=0)
    # as the planner does: copies of a rollout that has not stepped yet (no cache filled)
    fresh = gen.start_rollout(v, ["", ""], GREEDY)
    copies = fresh.repeat(2)
    window = fresh.tokens.window.shape[1]  # the original read its window once (all but the input that waits for
    assert fresh.tokens.stepper.cache.batch == 2 and copies.tokens.stepper.cache.length == window  # the actions)
    branched = steps(gen, copies, acts.repeat_interleave(2, dim=0))
    torch.testing.assert_close(branched[::2], steps(gen, fresh, acts), atol=1e-5, rtol=0)


def test_row_streams_draw_every_allowed_token_and_never_a_masked_one():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0]])
    logits = probs.log()
    streams = RowStreams([torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)], block=7)
    drawn = torch.stack([sample_logits(logits, SamplingConfig(), streams) for _ in range(400)])  # (400, 2)
    assert set(drawn[:, 0].tolist()) == {1, 3} and set(drawn[:, 1].tolist()) == {0}
    assert 150 < int((drawn[:, 0] == 1).sum()) < 250  # about half each
    again = RowStreams([torch.Generator().manual_seed(0)], block=3)  # another block size: the same draws
    assert torch.equal(torch.stack([sample_logits(logits[:1], SamplingConfig(), again) for _ in range(400)])[:, 0],
                       drawn[:, 0])  # fmt: skip


def test_an_action_gpt_is_an_environment_a_planner_model_and_playable(gen):
    envs = BatchedWorldModelEnv(gen, task=None, reader=None, sampling=SamplingConfig())
    first, _ = envs.reset(seeds=[3, 4])
    assert first.shape == (2, SIZE, SIZE, 3)
    a = np.zeros((2, A), np.float32)
    frames = [envs.step(a)[0] for _ in range(4)]
    assert frames[-1].shape == (2, SIZE, SIZE, 3) and frames[-1].dtype == np.uint8
    single = BatchedWorldModelEnv(gen, task=None, reader=None, sampling=SamplingConfig())
    single.reset(seeds=[4])
    alone = [single.step(a[:1])[0] for _ in range(4)]
    assert np.abs(alone[-1][0].astype(int) - frames[-1][1].astype(int)).max() <= 1
    assert isinstance(CEMPlanner(gen, None, "reach").sampling, SamplingConfig)
    with pytest.raises(ConfigError, match="step-by-step rollouts need an action-conditioned model"):
        ARGenerator(VideoGPT(merge(gen.model.cfg, {"action_dim": 0})), gen.tokenizer, SIZE).start_rollout(
            video(), ["", ""])  # fmt: skip
    assert why_not_playable(gen) == ""
    assert "per-frame" in why_not_playable(ARGenerator(gen.model, CausalVideoTokenizer(TOKENIZERS["dv4x8x8-tiny"]()), SIZE))


def test_one_step_scores_of_an_action_gpt_start_every_frame_from_the_truth(gen, tmp_path):
    simulate("arm", episodes=1, frames=6, size=SIZE, out=tmp_path / "pairs", seed=99, branches=2, workers=1,
             progress=False)  # fmt: skip
    clips = [c for s in list_shards(str(tmp_path / "pairs")) for c in iter_shard(s)]
    videos: dict = {}
    report = evaluate_rollouts(gen, clips, frames=4, sampling=GREEDY, videos_out=videos, one_step=True)
    assert videos["one_step"].shape == (2, 5, SIZE, SIZE, 3) and len(report["one_step"]["psnr_per_step"]) == 4
    assert videos["one_step"][:, :2].tobytes() == videos["model"][:, :2].tobytes()  # frame 1: the same step
    assert videos["one_step"][:, 2:].tobytes() != videos["model"][:, 2:].tobytes()  # later: from the true frames
