"""Errors a user can cause and fix.

Every exception here carries one sentence saying what is wrong and what to do; the CLI prints it and exits
non-zero without a traceback (``--debug`` shows one). Library code raises these for bad inputs, never for bugs.
"""


class WorldsmithError(Exception):
    """Base class of user-facing errors (bad file, bad flag, missing weights)."""


class ConfigError(WorldsmithError):
    """A config file, preset name or ``--set`` override is invalid."""


class VideoError(WorldsmithError):
    """A video or image cannot be probed, decoded or encoded."""


class DataError(WorldsmithError):
    """A clip, shard, manifest or dataset is malformed or missing."""


class CheckpointError(WorldsmithError):
    """A checkpoint or run directory is missing, incomplete or does not match the model."""
