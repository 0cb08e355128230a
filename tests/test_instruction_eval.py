"""Instruction following: the object the caption names must move to its true place while the others stay."""

from __future__ import annotations

import numpy as np

from worldsmith.eval.instruction import follow_scores, named_object
from worldsmith.eval.reader_train import object_errors

OBJECTS = ["white ball", "gray ball", "green block", "blue block"]


def test_the_named_object_is_the_first_one_the_arm_picks_up_or_pushes():
    assert named_object("The robot arm picks up the green block and puts it on the blue block.", OBJECTS) == 2
    assert named_object("The robot arm pushes the gray ball to the left, then picks up the white ball and holds "
                        "it up.", OBJECTS) == 1  # fmt: skip
    assert named_object("The robot arm moves above the blue block.", OBJECTS) is None  # a reach moves nothing
    assert named_object("The robot arm picks up the red cube and holds it up.", OBJECTS) is None  # not in the scene
    assert named_object("", OBJECTS) is None
    # the longest description that fits wins ("block" objects whose names share a prefix)
    assert named_object("The robot arm pushes the red block tower away.", ["red block", "red block tower"]) == 1


def scene(frames: int = 4):
    """Three objects; the truth moves object 0 by 8 px to the right over ``frames`` steps, the others stay."""
    start = np.array([[10.0, 10.0], [10.0, 16.0], [40.0, 40.0]])
    path = np.repeat(start[None], frames, axis=0)
    path[:, 0, 0] += np.linspace(2, 8, frames)
    return start, path


def peaks(points: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What follow_scores takes when the reader finds objects exactly at ``points`` (F, K, 2), all confident, plus a
    weak spurious peak: the per-step errors of the true ``path``'s objects, and the last frame's peaks."""
    frames = len(points)
    found = np.concatenate([points, np.full((frames, 1, 2), 60.0)], axis=1)
    scores = np.concatenate([np.ones((frames, points.shape[1])), np.full((frames, 1), 0.05)], axis=1)
    errors = object_errors(found, scores, path, np.ones(path.shape[:2], bool)).reshape(path.shape[:2])
    return errors, found[-1], scores[-1]


def test_a_rollout_follows_when_the_named_object_arrives_and_the_others_stay():
    start, path = scene()
    out = follow_scores(*peaks(path, path), start, path, named=0)
    assert out["instruction_following"].tolist() == [1.0] * 4
    assert np.allclose(out["named_object_error_px"], 0) and np.allclose(out["other_objects_error_px"], 0)
    # the named object stays where it was: its end is 8 px off and its start is still occupied
    still = np.repeat(start[None], 4, axis=0)
    out = follow_scores(*peaks(still, path), start, path, named=0)
    assert out["instruction_following"][0] == 0 and np.isclose(out["named_object_error_px"][-1], 8.0)
    # the named object arrives but another one is moved away with it
    wrong = path.copy()
    wrong[:, 2] += 10
    assert follow_scores(*peaks(wrong, path), start, path, named=0)["instruction_following"][0] == 0
    # moved only half way: its end is 4 px off (not within half of the 8 px it should move)
    half = path.copy()
    half[-1, 0, 0] = 14.0
    assert follow_scores(*peaks(half, path), start, path, named=0)["instruction_following"][0] == 0


def test_a_neighbour_near_the_start_is_not_taken_for_the_named_object():
    start, path = scene()
    start[1], path[:, 1] = (10.0, 13.0), (10.0, 13.0)
    # object 1 sits 3 px from object 0's start, within half of the 8 px object 0 moves: once object 0 has gone,
    # the read object nearest its start is object 1's, which object 1 takes, so the start counts as empty
    out = follow_scores(*peaks(path, path), start, path, named=0)
    assert out["instruction_following"][0] == 1
    still = np.repeat(start[None], 4, axis=0)  # and when object 0 stays, its own peak is still there
    assert follow_scores(*peaks(still, path), start, path, named=0)["instruction_following"][0] == 0


def test_rollouts_whose_truth_moves_nothing_named_are_not_scored():
    start, path = scene()
    assert follow_scores(*peaks(path, path), start, path, named=None) is None
    assert follow_scores(*peaks(path, path), start, path, named=2) is None  # object 2 does not move in the truth
    assert follow_scores(*peaks(path, path), start, path, named=7) is None  # no such object
    # at 128x128 (scale 2) the same 8 px is 4 px at 64x64: scored; 2 px at 64x64 would not be
    assert follow_scores(*peaks(path, path), start, path, named=0, scale=2.0) is not None
    assert follow_scores(*peaks(path, path), start, path, named=0, scale=3.0) is None
    # one object in the scene: no others to stay, the figure is NaN and following is decided by the named one
    one = follow_scores(*peaks(path[:, :1], path[:, :1]), start[:1], path[:, :1], named=0)
    assert one["instruction_following"][0] == 1 and np.isnan(one["other_objects_error_px"]).all()
