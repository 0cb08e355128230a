"""EfficientNet-lite0 features (perceptual loss and Fréchet distance): weights load fully, BN statistics, FD math."""

from __future__ import annotations

import pytest
import torch

from worldsmith.eval.features import (
    EfficientNetLite0,
    _checkpoint_key,
    _cached_network,
    efficientnet_lite0,
    frame_features,
    frechet_distance,
    pretrained,
    weights_path,
)
from worldsmith.tokenizer.losses import perceptual_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> EfficientNetLite0:
    return efficientnet_lite0()


def smooth_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Low-frequency random colour fields in [-1, 1] (N, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def test_every_checkpoint_tensor_loads_into_the_architecture():
    net = pretrained(fold=False)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    ours = net.state_dict()
    assert len(state) == len(ours) == 296
    for name, value in ours.items():
        assert torch.equal(value, state[_checkpoint_key(name)]), name
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # EfficientNet-lite0: 4.65M parameters
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_batchnorm_uses_running_statistics_and_folds_exactly(net):
    x = smooth_images(4)
    unfolded = pretrained(fold=False)
    alone = unfolded.pooled(x[:1])
    in_batch = unfolded.pooled(x)[:1]
    torch.testing.assert_close(alone, in_batch, atol=1e-4, rtol=1e-4)  # eval BN: no batch statistics
    torch.testing.assert_close(net.pooled(x), unfolded.pooled(x), atol=1e-4, rtol=1e-4)  # folding changes nothing
    stem = unfolded.stem.conv(unfolded.preprocess(x))
    # the stem's own statistics are of the order of the stored ones (right preprocessing and weights)
    ratio = stem.var(dim=(0, 2, 3)).mean() / unfolded.stem.bn.running_var.mean()
    assert 0.05 < float(ratio) < 20


def test_feature_maps_scales_and_sensitivity(net):
    x = smooth_images(3)
    maps = net.feature_maps(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4)]
    shifted = torch.roll(x, shifts=2, dims=3)
    feats = frame_features(torch.cat([x, shifted]))  # (6, 1280)
    near = (feats[:3] - feats[3:]).norm(dim=1)  # each image vs itself shifted by 2 pixels
    far = (feats[:3] - feats[[1, 2, 0]]).norm(dim=1)  # vs a different image
    assert (near < far).all()
    assert torch.isfinite(net(x)).all() and net(x).shape == (3, 1000)


def test_the_cached_network_serves_autograd_even_when_first_built_in_inference_mode():
    _cached_network.cache_clear()  # as in a process whose first user is curation's dedup signature
    with torch.inference_mode():
        frame_features(smooth_images(1))
    assert efficientnet_lite0() is efficientnet_lite0("cpu") is efficientnet_lite0(torch.device("cpu"))  # one copy
    x = smooth_images(1).requires_grad_()
    sum(m.square().sum() for m in efficientnet_lite0().feature_maps(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_perceptual_loss_is_zero_on_identity_and_has_gradients(net):
    x = smooth_images(2)
    assert float(perceptual_loss(net, x, x)) == 0.0
    y = (x + 0.2 * torch.randn_like(x)).requires_grad_()
    loss = perceptual_loss(net, x, y)
    loss.backward()
    assert float(loss.detach()) > 0 and y.grad is not None and y.grad.abs().sum() > 0


def test_frechet_distance_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    scale, shift = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([1.0, 0.0, -1.0])
    b = torch.randn(4000, 3, generator=g, dtype=torch.float64) * scale + shift
    # diagonal Gaussians: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 2 + (0 + 1 + 0.25)
    assert frechet_distance(a, b) == pytest.approx(3.25, abs=0.15)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b[torch.randperm(4000)], a), abs=1e-6)
    with pytest.raises(ValueError, match="two"):
        frechet_distance(a, b[:, :2])


def test_frechet_distance_with_fewer_samples_than_dimensions_and_dead_channels():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(40, 100, generator=g, dtype=torch.float64)
    b = torch.randn(30, 100, generator=g, dtype=torch.float64) * 1.3 + 0.2
    a[:, :5] = b[:, :5] = 0  # channels a ReLU never opens
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    roots = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0).sqrt().sum()
    expected = (a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * roots
    assert frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-6)
