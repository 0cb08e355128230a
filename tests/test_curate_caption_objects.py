"""The offline caption names the object a clip likely shows when the ImageNet classifier is confident, and
nothing when it is not (generated texture, animation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worldsmith.curate.captions import likely_object, offline_caption
from worldsmith.curate.synth import render_shot

FACTS = {"duration": 3.0, "video_type": "natural", "camera_motion": "static"}


def photo(name: str) -> np.ndarray:
    """A photo that ships in scikit-image as 4 still frames, short side 240."""
    import skimage.data  # the photos ship in the scikit-image wheel

    img = getattr(skimage.data, name)()
    h, w = img.shape[:2]
    return np.stack([cv2.resize(img, (round(w * 240 / h), 240), interpolation=cv2.INTER_AREA)] * 4)


@pytest.mark.parametrize("name, word", [("chelsea", "cat"), ("coffee", "espresso")])
def test_the_caption_of_a_photo_names_what_it_shows(one_torch_thread, name, word):
    caption = offline_caption(photo(name), FACTS)
    assert caption.startswith("A 3.0-second clip of natural-looking footage, taken with a still camera. It likely "
                              "shows "), caption
    assert word in caption.split("It likely shows ")[1].split(".")[0], caption


def test_no_object_is_named_when_the_classifier_is_unsure(one_torch_thread):
    frames = render_shot("moving", 4, (320, 240), seed=0)  # a striped texture and shapes: top class 0.53 at best
    assert likely_object(frames) is None
    assert "likely shows" not in offline_caption(frames, FACTS)


def test_no_object_is_named_for_animation_or_when_the_threshold_is_not_met(one_torch_thread):
    cat = photo("chelsea")
    assert "likely shows" not in offline_caption(cat, {**FACTS, "video_type": "graphics"})
    assert likely_object(cat, min_prob=1.01) is None
    assert likely_object(cat[:0]) is None
