"""PSNR and SSIM against closed forms and an independent reference."""

import numpy as np
import pytest
import torch

from worldsmith.eval.metrics import closer_to_own, psnr, ssim


def test_psnr_closed_form_and_layouts():
    target = torch.zeros(2, 3, 4, 16, 16)  # [-1, 1] space: 0 -> 0.5
    pred = target + 0.2  # 0.1 in [0, 1] units -> MSE 0.01 -> 20 dB
    assert psnr(pred, target).item() == pytest.approx(20.0, abs=1e-4)
    assert psnr(pred, target, reduction="none").shape == (8,)
    u8 = np.full((4, 16, 16, 3), 100, np.uint8)
    assert psnr(u8, u8).item() == pytest.approx(100.0)  # clamped at 1e-10 MSE
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4))


def test_ssim_identity_noise_and_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    worse = (x + 0.8 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    assert 0 < ssim(worse, x) < ssim(noisy, x) < 1
    # independent reference: SSIM of one channel computed with numpy's direct window sums
    a, b = ((x[0, 0] + 1) / 2).numpy().astype(np.float64), ((noisy[0, 0] + 1) / 2).numpy().astype(np.float64)
    r = np.arange(11) - 5
    k = np.exp(-(r**2) / (2 * 1.5**2))
    k = np.outer(k, k) / np.outer(k, k).sum()
    vals = []
    for i in range(32 - 10):
        for j in range(32 - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (k * pa).sum(), (k * pb).sum()
            va, vb = (k * pa * pa).sum() - ma**2, (k * pb * pb).sum() - mb**2
            cv = (k * pa * pb).sum() - ma * mb
            vals.append(((2 * ma * mb + 1e-4) * (2 * cv + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (va + vb + 9e-4)))
    ours = ssim(noisy[0:1, 0:1].expand(1, 3, 32, 32), x[0:1, 0:1].expand(1, 3, 32, 32))
    assert ours.item() == pytest.approx(float(np.mean(vals)), abs=1e-5)


def test_closer_to_own_counts_videos_nearer_their_own_commands_truth():
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (3, 4, 8, 8, 3), dtype=np.uint8) for _ in range(2))
    right[:, 0] = left[:, 0]  # the same first frame
    truth = {"left": left, "right": right}
    assert closer_to_own({"left": left, "right": right}, truth, ("left", "right")) == 1.0
    assert closer_to_own({"left": right, "right": left}, truth, ("left", "right")) == 0.0
    half = {"left": left, "right": left}  # a model that ignores the command: right for one of the two
    assert closer_to_own(half, truth, ("left", "right")) == 0.5
