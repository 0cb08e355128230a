"""worldsmith: an open world-foundation-model platform for physical AI."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# MuJoCo picks its OpenGL backend when it is first imported. On a headless Linux machine the right one is EGL
# (Mesa's software rasteriser on CPU, the driver on a GPU); respect a user's explicit choice.
if _sys.platform.startswith("linux") and "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"
