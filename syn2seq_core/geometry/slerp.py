"""Transition camera poses: quaternion SLERP of rotations, lerp of camera centres and intrinsics.

The k-th of ``n`` transition frames sits at ``s_k = k / (n + 1)``: both endpoints are excluded, because
they are the last source and the first target camera, which the sequence already holds.
"""

from __future__ import annotations

import torch
from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion
from torch import Tensor

from ..base.errors import require
from .cameras import Cameras, check_rotations


def transition_times(n: int, dtype=torch.float64) -> Tensor:
    """[n] interpolation times k / (n + 1), k = 1..n (endpoints excluded)."""
    require(int(n) == n and n >= 0, "n", "a non-negative integer", n)
    return torch.arange(1, n + 1, dtype=dtype) / (n + 1)


def quaternion_slerp(q0: Tensor, q1: Tensor, s: Tensor) -> Tensor:
    """Shortest-arc SLERP of unit quaternions.

    q0, q1: [..., 4] (any component order, the same for both); s: [S] -> [..., S, 4].
    """
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)  # q and -q are the same rotation: take the short way
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)[..., None, :]  # [..., 1, 1]
    s = s.to(q0.dtype)[:, None]  # [S, 1]
    sin_t = torch.sin(theta)
    small = sin_t < 1e-6
    safe = torch.where(small, torch.ones_like(sin_t), sin_t)
    w0 = torch.where(small, 1 - s, torch.sin((1 - s) * theta) / safe)
    w1 = torch.where(small, s, torch.sin(s * theta) / safe)
    q = w0 * q0[..., None, :] + w1 * q1[..., None, :]
    return q / q.norm(dim=-1, keepdim=True)


def slerp_poses(c2w_a: Tensor, c2w_b: Tensor, n: int) -> Tensor:
    """``n`` poses strictly between ``c2w_a`` and ``c2w_b``.

    c2w_a, c2w_b: [..., 4, 4] camera-to-world -> [..., n, 4, 4]. Rotation by shortest-arc quaternion SLERP,
    camera centre by linear interpolation.
    """
    c2w_a = torch.as_tensor(c2w_a)
    c2w_b = torch.as_tensor(c2w_b)
    require(c2w_a.shape[-2:] == (4, 4), "c2w_a", "shape [..., 4, 4]", tuple(c2w_a.shape))
    require(c2w_b.shape == c2w_a.shape, "c2w_b", f"shape {tuple(c2w_a.shape)} (like c2w_a)", tuple(c2w_b.shape))
    dtype = torch.promote_types(c2w_a.dtype, torch.float32)
    a, b = c2w_a.to(torch.float64), c2w_b.to(torch.float64)
    check_rotations(a.reshape(-1, 4, 4), "c2w_a")
    check_rotations(b.reshape(-1, 4, 4), "c2w_b")
    s = transition_times(n)
    qa = rotation_matrix_to_quaternion(a[..., :3, :3].contiguous())
    qb = rotation_matrix_to_quaternion(b[..., :3, :3].contiguous())
    R = quaternion_to_rotation_matrix(quaternion_slerp(qa, qb, s))  # [..., n, 3, 3]
    ca, cb = a[..., None, :3, 3], b[..., None, :3, 3]
    centers = ca + s[:, None] * (cb - ca)  # [..., n, 3]
    out = torch.zeros(*R.shape[:-2], 4, 4, dtype=torch.float64)
    out[..., :3, :3] = R
    out[..., :3, 3] = centers
    out[..., 3, 3] = 1.0
    return out.to(dtype)


def interpolate_cameras(cam_a: Cameras, cam_b: Cameras, n: int) -> Cameras:
    """``n`` cameras between the last camera of ``cam_a`` and the first of ``cam_b``.

    Poses by :func:`slerp_poses`, normalised intrinsics (and fisheye coefficients, pre-crop intrinsics) by linear
    interpolation; a Kannala-Brandt and a FISHEYE624 track meet as FISHEYE624.
    Both tracks must share an image size.
    """
    require(cam_a.size == cam_b.size, "cam_b", f"image size {cam_a.size} (like cam_a)", cam_b.size,
            "Resize or crop both views to one size before building a sequence")
    a, b = cam_a[-1], cam_b[0]
    if a.fisheye is not None and b.fisheye is not None and a.lens_model != b.lens_model:
        a, b = a.as_fisheye624(), b.as_fisheye624()  # Kannala-Brandt is FISHEYE624 without p and s: same rays
    dtype = torch.promote_types(a.c2w.dtype, b.c2w.dtype)
    c2w = slerp_poses(a.c2w[0].to(dtype), b.c2w[0].to(dtype), n)
    s = transition_times(n, dtype)[:, None]
    K = a.K.to(dtype) + s * (b.K.to(dtype) - a.K.to(dtype))
    fish = None
    require((a.fisheye is None) == (b.fisheye is None), "cam_b", "the same lens model as cam_a (both pinhole "
            "or both fisheye)", "one pinhole and one fisheye track",
            "Undistort the fisheye view to a pinhole first")
    if a.fisheye is not None:
        fish = a.fisheye.to(dtype) + s * (b.fisheye.to(dtype) - a.fisheye.to(dtype))
    uncropped = None
    if a.uncropped_K is not None or b.uncropped_K is not None:  # the pre-crop intrinsics, interpolated alike
        uncropped = a.source_K.to(dtype) + s * (b.source_K.to(dtype) - a.source_K.to(dtype))
    return Cameras(c2w, K, cam_a.width, cam_a.height, fish, uncropped)
