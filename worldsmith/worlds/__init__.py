"""Simulated physical worlds (MuJoCo) that make labelled video with ground truth."""
