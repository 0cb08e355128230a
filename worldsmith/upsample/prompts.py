"""What the language-model upsamplers are told (a system prompt and few-shot turns in the style of the training
captions), how their answers are cleaned up, and the word bound.

The few-shot answers follow the built-in worlds' captions: plain present tense, "the robot arm picks up the red
cube and puts it on the blue block", named colours and shapes, directions relative to the camera, followed by the
layout, the camera and the light (see worldsmith/upsample/bank.py SETTINGS).
"""

from __future__ import annotations

import re

from worldsmith.worlds.captions import sentence

SYSTEM = (
    "You rewrite short video prompts into one detailed paragraph for a video generation model. Keep every object "
    "of the prompt with its colour, size and number. Describe the objects, where they are, what moves and how, "
    "the camera and the lighting, in plain present tense. Write 3 to 5 sentences. No lists, no titles."
)

FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "a robot stacks a cube",
        "The robot arm picks up the red cube and puts it on the blue block. The arm stands at a wooden table with "
        "the cube, the block and a green ball on it. A fixed camera in front of the table films the arm and the "
        "objects, under even indoor light. The gripper closes on the cube, lifts it and lowers it slowly.",
    ),
    (
        "a car on a curvy road",
        "The ego car drives at a steady speed along a road curving to the left, passing an oncoming white truck. "
        "The road has two lanes with painted markings, with trees and buildings on both sides. The camera is "
        "mounted on the car and looks ahead along the road, in bright daylight.",
    ),
    (
        "two balls collide",
        "The orange ball is pushed and rolls to the right, then hits the purple ball, which rolls away from the "
        "camera. The two balls are in a walled arena on a gray floor, with a yellow cube that stays still. A fixed "
        "camera looks down at the arena from the side, under soft light from above.",
    ),
)

CHAT_ARTEFACTS = re.compile(
    r"^\s*(?:assistant|answer|output|rewritten prompt|detailed prompt|prompt|upsampled prompt)\s*:\s*"
    r"|^\s*(?:sure|certainly|here(?:'s| is)[^.:\n]*)[,!:.]\s*",
    re.IGNORECASE,
)
SPECIAL = re.compile(r"<\|im_start\|>\s*(?:system|user|assistant)?|<\|[^|>]*\|>|</?s>")


def messages(prompt: str) -> list[dict[str, str]]:
    """Chat messages: the system prompt, the few-shot turns, then the user's prompt."""
    out = [{"role": "system", "content": SYSTEM}]
    for short, long in FEW_SHOT:
        out += [{"role": "user", "content": short}, {"role": "assistant", "content": long}]
    return out + [{"role": "user", "content": prompt.strip()}]


def word_count(text: str) -> int:
    return len(text.split())


def bound_words(text: str, max_words: int) -> str:
    """At most ``max_words`` words, cut after the last full sentence that fits (or at the bound, with a period)."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind(".") if cut.endswith(".") else -1)
    if end > 0:
        return cut[: end + 1].strip()
    return cut.rstrip(",;:") + "."


def clean(text: str, max_words: int) -> str:
    """A model's answer as one plain paragraph: no special tokens, role prefixes, preambles, quotes, markdown,
    lists or line breaks; within the word bound; ending after a full sentence."""
    text = SPECIAL.sub(" ", text)
    text = text.split("\nuser", 1)[0].split("\nUser:", 1)[0]  # a model that goes on with the next turn
    text = re.sub(r"[*_#`]+", "", text)
    text = re.sub(r"^\s*(?:[-•]|\d+[.)])\s+", "", text, flags=re.MULTILINE)
    for _ in range(2):
        text = CHAT_ARTEFACTS.sub("", text.strip())
    text = re.sub(r"\s+", " ", text).strip().strip("\"'“”‘’").strip()
    if not text:
        return ""
    last = max(text.rfind("."), text.rfind("!"), text.rfind("?"))
    if last > len(text) // 3:
        text = text[: last + 1]  # drop an unfinished last sentence (the token limit hit)
    return sentence(bound_words(text, max_words))
