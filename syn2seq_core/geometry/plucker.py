"""Plücker ray maps: one ray per pixel centre, ``(d, o x d)`` in the world (or reference-camera) frame.

Computed in float32 or float64 whatever autocast is active: ray moments lose their meaning in bf16.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import conventions as C
from ..errors import Syn2SeqInputError, check_choice, require

_FISHEYE_NEWTON_STEPS = 12


def _pixel_grid(height: int, width: int, dtype, device) -> tuple[Tensor, Tensor]:
    """Normalised pixel-centre coordinates u, v in (0, 1): [H, W] each."""
    v = (torch.arange(height, dtype=dtype, device=device) + C.PIXEL_CENTER_OFFSET) / height
    u = (torch.arange(width, dtype=dtype, device=device) + C.PIXEL_CENTER_OFFSET) / width
    return torch.meshgrid(u, v, indexing="xy")


def _normalize(x: Tensor) -> Tensor:
    # x * rsqrt(sum x^2) is several times faster than F.normalize over a last dim of 3 on CPU.
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True))


def kannala_brandt_theta(r_d: Tensor, k: Tensor) -> Tensor:
    """Invert r_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8) by Newton's method.

    r_d: [..., H, W] distorted radius in normalised focal units; k: [..., 4] -> theta [..., H, W].
    """
    k1, k2, k3, k4 = (k[..., i, None, None] for i in range(4))
    theta = r_d.clone()
    for _ in range(_FISHEYE_NEWTON_STEPS):
        t2 = theta * theta
        f = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))) - r_d
        df = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
        theta = theta - f / df
    return theta.clamp(min=0.0)


def camera_directions(K: Tensor, height: int, width: int, fisheye: Tensor | None = None) -> Tensor:
    """Unit ray directions in camera coordinates (OpenCV axes). K: [..., 4] -> [..., H, W, 3]."""
    u, v = _pixel_grid(height, width, K.dtype, K.device)
    x = (u - K[..., 2, None, None]) / K[..., 0, None, None]
    y = (v - K[..., 3, None, None]) / K[..., 1, None, None]
    if fisheye is None:
        return _normalize(torch.stack([x, y, torch.ones_like(x)], -1))
    r_d = torch.sqrt(x * x + y * y)
    theta = kannala_brandt_theta(r_d, fisheye.to(K.dtype))
    scale = torch.where(r_d > 1e-12, torch.sin(theta) / r_d.clamp(min=1e-12), torch.ones_like(r_d))
    return torch.stack([x * scale, y * scale, torch.cos(theta)], -1)


def plucker_rays(K: Tensor, c2w: Tensor, height: int, width: int, order: str = "dm",
                 fisheye: Tensor | None = None) -> Tensor:
    """Plücker rays at every pixel centre.

    K: [..., 4] normalised intrinsics; c2w: [..., 4, 4] (OpenCV axes); fisheye: [..., 4] Kannala–Brandt or
    None. Batch shapes broadcast. Returns [..., H, W, 6] in float32 (float64 if an input is float64),
    ``(d, o x d)`` for order "dm", ``(o x d, d)`` for "md".
    """
    check_choice(order, C.PLUCKER_ORDERS, "order")
    require(int(height) > 0 and int(width) > 0, "height, width", "positive integers", (height, width))
    K, c2w = torch.as_tensor(K), torch.as_tensor(c2w)
    require(K.shape[-1:] == (4,), "K", "shape [..., 4] (fx/W, fy/H, cx/W, cy/H)", tuple(K.shape))
    require(c2w.shape[-2:] == (4, 4), "c2w", "shape [..., 4, 4]", tuple(c2w.shape))
    dtype = torch.float64 if torch.float64 in (K.dtype, c2w.dtype) else torch.float32
    device_type = c2w.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        K, c2w = K.to(dtype), c2w.to(dtype)
        batch = torch.broadcast_shapes(K.shape[:-1], c2w.shape[:-2])
        if fisheye is not None:
            fisheye = torch.as_tensor(fisheye).to(dtype)
            batch = torch.broadcast_shapes(batch, fisheye.shape[:-1])
            fisheye = fisheye.expand(*batch, 4)
        K = K.expand(*batch, 4)
        c2w = c2w.expand(*batch, 4, 4)
        d_cam = camera_directions(K, int(height), int(width), fisheye)  # [..., H, W, 3]
        R = c2w[..., None, None, :3, :3]
        d = (R @ d_cam[..., None])[..., 0]
        o = c2w[..., None, None, :3, 3].expand_as(d)
        m = torch.linalg.cross(o, d, dim=-1)
        rays = torch.cat([d, m], -1) if order == "dm" else torch.cat([m, d], -1)
    return rays


def plucker_rays_latent(K: Tensor, c2w: Tensor, height: int, width: int, downsample: int,
                        order: str = "dm", fisheye: Tensor | None = None) -> Tensor:
    """Rays at the resolution a model consumes: one per ``downsample x downsample`` patch (its centre).

    Because intrinsics are normalised, this is :func:`plucker_rays` on the coarse grid. Returns
    [..., H / downsample, W / downsample, 6].
    """
    if height % downsample or width % downsample:
        raise Syn2SeqInputError("height, width", f"multiples of the patch size {downsample}", (height, width))
    return plucker_rays(K, c2w, height // downsample, width // downsample, order, fisheye)

