"""Metrics for video: reconstruction (PSNR, SSIM), later feature distances, 3D consistency, physics accuracy."""

from worldsmith.eval.metrics import psnr, ssim

__all__ = ["psnr", "ssim"]
