"""The rotation-only two-view model: a camera that turns about its centre (a pan, a tilt) or sees only far points.

Such a pair has no parallax, so its essential matrix is degenerate (every translation fits the matches) and
``cv2.recoverPose`` keeps few points in front of both cameras: on the true renders of the orbit world's pans the
essential-matrix route recovered a pose for ~10 % of frame pairs. As COLMAP's two-view geometry does (its
"panoramic" configuration), ``geometry.estimate_pose(panoramic=True)`` also fits the rotation-only model
``x_b ~ K R K^-1 x_a`` and takes it when it explains nearly as many matches as the essential matrix does
(``PANORAMIC_RATIO``); the camera metrics allow it only where the commanded pair has no baseline.

``estimate_rotation``: RANSAC over minimal samples of two matches (the rotation between two pairs of bearing
vectors, by Kabsch), inliers by the Sampson error of the rotation homography (``homography_sampson``, kept here
because geometry.py uses it too), refined by Kabsch on the inliers; deterministic (a fixed sample stream).
"""

from __future__ import annotations

import numpy as np

PANORAMIC_RATIO = 0.8  # rotation-only when its inliers >= this share of the essential matrix's RANSAC inliers
_SAMPLES = 256  # RANSAC draws of two matches


def bearings(pts: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit rays (N, 3) of pixels (N, 2) under intrinsics K."""
    x = np.column_stack([pts, np.ones(len(pts))]) @ np.linalg.inv(K).T
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum |b - R a|^2 for rays a, b (..., N, 3)."""
    M = np.einsum("...ni,...nj->...ij", b, a)  # sum b a^T
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros(M.shape)
    D[..., 0, 0] = D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def homography_sampson(pa: np.ndarray, pb: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Sampson error (..., N) in pixels of the correspondences pa -> pb (each (N, 2)) under homographies H
    (..., 3, 3): (N,) for one H.

    With ``r = pb - h(pa)`` (``h``: H applied to pixels) and ``A`` the 2x2 Jacobian of ``h`` at pa, the error is
    ``sqrt(r^T (I + A A^T)^-1 r)``: to first order the smallest joint displacement of both points (in R^4) that
    makes ``pb = h(pa)``, like ``geometry.sampson_distance`` for a line (|r| / sqrt(2) where H is the identity). NaN
    where pa maps behind the camera or to infinity.
    """
    pa, pb = np.asarray(pa, np.float64).reshape(-1, 2), np.asarray(pb, np.float64).reshape(-1, 2)
    H = np.asarray(H, np.float64)
    y = np.einsum("...ij,nj->...ni", H, np.column_stack([pa, np.ones(len(pa))]))  # (..., N, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(y[..., 2] > 0, y[..., 2], np.nan)
        proj = y[..., :2] / w[..., None]
        A = (H[..., None, :2, :2] - proj[..., :, None] * H[..., None, 2:3, :2]) / w[..., None, None]  # (..., N, 2, 2)
        r = pb - proj
        M = np.eye(2) + A @ np.swapaxes(A, -1, -2)
        M = np.where(np.isfinite(M), M, np.eye(2))  # (the NaN rows stay NaN through r)
        err2 = np.einsum("...i,...ij,...j->...", r, np.linalg.inv(M), r)
    return np.where(np.isfinite(w), np.sqrt(np.maximum(err2, 0.0)), np.nan)


def rotation_sampson(pa: np.ndarray, pb: np.ndarray, K: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Sampson error (..., N) in pixels of matches under the rotation homographies K R K^-1 (R: (..., 3, 3))."""
    return homography_sampson(pa, pb, K @ R @ np.linalg.inv(K))


def estimate_rotation(pa: np.ndarray, pb: np.ndarray, K: np.ndarray, *, threshold: float = 1.0,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """The rotation R (3, 3) with ``x_b ~ K R K^-1 x_a`` that most matches (N, 2) fit within ``threshold`` pixels
    (Sampson), and its inlier mask (N,); None with fewer than 3 matches."""
    n = len(pa)
    if n < 3:
        return None
    K = np.asarray(K, np.float64)
    a, b = bearings(pa, K), bearings(pb, K)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, _SAMPLES)
    second = (first + rng.integers(1, n, _SAMPLES)) % n  # a different match
    idx = np.stack([first, second], 1)
    Rs = kabsch(a[idx], b[idx])  # (S, 3, 3)
    inl = rotation_sampson(pa, pb, K, Rs) <= threshold  # (S, N); NaN compares False
    best = inl[int(np.argmax(inl.sum(1)))]
    if best.sum() < 2:
        return None
    for _ in range(2):  # refine on the inliers, then re-select them
        R = kabsch(a[best], b[best])
        refined = rotation_sampson(pa, pb, K, R) <= threshold
        if refined.sum() < best.sum():
            break
        best = refined
    return R, best
