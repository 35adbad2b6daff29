"""Plücker ray maps: one ray per pixel centre, ``(d, o x d)`` in the world (or reference-camera) frame.

Computed in float32 or float64 whatever autocast is active: ray moments lose their meaning in bf16.

Lens models (the ``fisheye`` argument, see :data:`LENS_MODELS`; the model is told by the length of the vector)
    ``None``: pinhole.
    ``[..., 4]`` Kannala–Brandt ``k1..k4`` (Ego-Exo4D GoPros, OpenCV fisheye): ``r_d = theta (1 + k1 theta^2 +
    k2 theta^4 + k3 theta^6 + k4 theta^8)``.
    ``[..., 12]`` FISHEYE624 ``k0..k5, p0, p1, s0..s3`` (Project Aria cameras, projectaria_tools
    ``FisheyeRadTanThinPrism``, read from ``core/calibration/camera_projections/FisheyeRadTanThinPrism.h``):
    the radial part ``theta_d = theta (1 + k0 theta^2 + ... + k5 theta^12)`` gives ``x_r = theta_d (a, b) / r``
    for the direction ``(a, b, 1)``, ``r = |(a, b)|``, ``theta = atan(r)``; then the tangential term
    ``2 (x_r . p) x_r + |x_r|^2 p`` and the thin-prism term ``(s0 |x_r|^2 + s1 |x_r|^4, s2 |x_r|^2 + s3 |x_r|^4)``
    are added. Pixel = focal * distorted + principal point. Aria calibrations have one focal length; here
    ``fx`` and ``fy`` of ``K`` are kept apart (a single focal is ``fx * W == fy * H``). With
    ``p = s = 0`` and ``k4 = k5 = 0`` it *is* Kannala–Brandt with ``k1..k4 = k0..k3``; with every coefficient
    zero both are the equidistant fisheye ``r_d = theta``.

Distorted coordinates are in focal units: ``x = (u - cx) / fx``, ``y = (v - cy) / fy`` with (u, v) pixels.
Unprojection runs a fixed number of Newton steps (vectorised, no data-dependent loop): 2-D Newton on the
tangential + thin-prism part, then 1-D Newton on the radial polynomial. Directions with ``theta`` beyond
90 degrees are supported (``theta = atan2(|(X, Y)|, Z)``); projectaria_tools instead treats ``P`` and ``-P``
alike (its ``atan(r)`` of ``X/Z, Y/Z``), which only differs behind the camera.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import Syn2SeqInputError, check_choice, require

_FISHEYE_NEWTON_STEPS = 12
_FISHEYE624_NEWTON_STEPS = 20  # radial (theta) steps; the tangential/thin-prism solve uses the same count

# lens model name -> length of its distortion vector (``Cameras.fisheye`` / the ``fisheye`` arguments)
LENS_MODELS = {"pinhole": 0, "kannala_brandt": 4, "fisheye624": 12}


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


def lens_model(fisheye) -> str:
    """The lens model named by a distortion vector's length: ``"pinhole"`` (None), ``"kannala_brandt"`` ([..., 4])
    or ``"fisheye624"`` ([..., 12])."""
    if fisheye is None:
        return "pinhole"
    n = int(torch.as_tensor(fisheye).shape[-1]) if torch.as_tensor(fisheye).ndim else -1
    for name, size in LENS_MODELS.items():
        if size and n == size:
            return name
    raise Syn2SeqInputError("fisheye", "Kannala-Brandt k1..k4 ([..., 4]) or FISHEYE624 k0..k5 p0 p1 s0..s3 "
                            "([..., 12])", f"a last dimension of {n}")


def _radial_poly(theta: Tensor, k: list[Tensor]) -> Tensor:
    """theta_d = theta (1 + k[0] theta^2 + k[1] theta^4 + ...)."""
    t2 = theta * theta
    poly = torch.zeros_like(theta)
    for i in reversed(range(len(k))):  # Horner in theta^2
        poly = (poly + k[i]) * t2
    return theta * (1 + poly)


def _fisheye624_terms(x: Tensor, y: Tensor, p0, p1, s0, s1, s2, s3):
    """Tangential + thin-prism distortion of x_r = (x, y): returns (xd, yd) and the Jacobian entries."""
    r2 = x * x + y * y
    xp = x * p0 + y * p1
    xd = x + 2 * xp * x + r2 * p0 + s0 * r2 + s1 * r2 * r2
    yd = y + 2 * xp * y + r2 * p1 + s2 * r2 + s3 * r2 * r2
    g0 = 2 * s0 + 4 * s1 * r2
    g1 = 2 * s2 + 4 * s3 * r2
    j00 = 1 + 6 * x * p0 + 2 * y * p1 + g0 * x
    j01 = 2 * x * p1 + 2 * y * p0 + g0 * y
    j10 = 2 * x * p1 + 2 * y * p0 + g1 * x
    j11 = 1 + 2 * x * p0 + 6 * y * p1 + g1 * y
    return xd, yd, j00, j01, j10, j11


def _split624(params: Tensor, like: Tensor):
    """[..., 12] -> 12 tensors that broadcast against ``like`` [..., *grid] (trailing grid dims added)."""
    extra = like.ndim - (params.ndim - 1)
    return [params[..., i].reshape(*params.shape[:-1], *([1] * extra)) for i in range(12)]


def lens_project(points: Tensor, fisheye: Tensor | None = None) -> Tensor:
    """Distorted image coordinates in focal units ``((u - cx) / fx, (v - cy) / fy)`` of camera-frame points.

    points: [..., 3] (OpenCV axes; for the pinhole, Z > 0); fisheye: None, [..., 4] or [..., 12] broadcasting
    against ``points[..., 0]``. Returns [..., 2]. Pixel ``u = fx * x + cx`` with ``K`` denormalised.
    """
    points = torch.as_tensor(points)
    X, Y, Z = points[..., 0], points[..., 1], points[..., 2]
    model = lens_model(fisheye)
    if model == "pinhole":
        return torch.stack([X / Z, Y / Z], -1)
    fisheye = torch.as_tensor(fisheye).to(points.dtype)
    rho = torch.sqrt(X * X + Y * Y)
    theta = torch.atan2(rho, Z)
    n = 4 if model == "kannala_brandt" else 6
    k = [fisheye[..., i] for i in range(n)]
    theta_d = _radial_poly(theta, k)
    safe = rho > 1e-300
    scale = torch.where(safe, theta_d / torch.where(safe, rho, torch.ones_like(rho)), 1 / Z)
    xr, yr = X * scale, Y * scale
    if model == "kannala_brandt":
        return torch.stack([xr, yr], -1)
    p0, p1, s0, s1, s2, s3 = (fisheye[..., i] for i in range(6, 12))
    xd, yd = _fisheye624_terms(xr, yr, p0, p1, s0, s1, s2, s3)[:2]
    return torch.stack([xd, yd], -1)


def fisheye624_unproject(x: Tensor, y: Tensor, params: Tensor) -> Tensor:
    """Unit camera-frame directions of distorted coordinates (focal units) through FISHEYE624.

    x, y: [..., *grid]; params: [..., 12] (k0..k5, p0, p1, s0..s3; leading dims broadcast with x's leading
    dims, the grid dims are added) -> [..., *grid, 3].
    """
    c = _split624(params.to(x.dtype), x)
    k, (p0, p1, s0, s1, s2, s3) = c[:6], c[6:]
    xr, yr = x.clone(), y.clone()
    for _ in range(_FISHEYE624_NEWTON_STEPS):  # x_r + tangential(x_r) + thin_prism(x_r) = (x, y)
        xd, yd, j00, j01, j10, j11 = _fisheye624_terms(xr, yr, p0, p1, s0, s1, s2, s3)
        ex, ey = xd - x, yd - y
        det = j00 * j11 - j01 * j10
        xr = xr - (j11 * ex - j01 * ey) / det
        yr = yr - (j00 * ey - j10 * ex) / det
    theta_d = torch.sqrt(xr * xr + yr * yr)
    theta = theta_d.clone()
    for _ in range(_FISHEYE624_NEWTON_STEPS):  # theta (1 + k0 theta^2 + ... + k5 theta^12) = theta_d
        t2 = theta * theta
        f = theta.clone()
        df = torch.ones_like(theta)
        tp = t2
        for i in range(6):
            f = f + k[i] * tp * theta
            df = df + (2 * i + 3) * k[i] * tp
            tp = tp * t2
        theta = theta - (f - theta_d) / df
    theta = theta.clamp(min=0.0)
    scale = torch.where(theta_d > 1e-12, torch.sin(theta) / theta_d.clamp(min=1e-12), torch.ones_like(theta_d))
    return torch.stack([xr * scale, yr * scale, torch.cos(theta)], -1)


def lens_unproject(x: Tensor, y: Tensor, fisheye: Tensor | None = None) -> Tensor:
    """Unit camera-frame directions of distorted coordinates in focal units (pixel grids or any points).

    x, y: [..., *grid]; fisheye: None, [..., 4] or [..., 12] (leading dims broadcast with x's leading dims)
    -> [..., *grid, 3].
    """
    model = lens_model(fisheye)
    if model == "pinhole":
        return _normalize(torch.stack([x, y, torch.ones_like(x)], -1))
    fisheye = torch.as_tensor(fisheye).to(x.dtype)
    if model == "fisheye624":
        return fisheye624_unproject(x, y, fisheye)
    extra = x.ndim - (fisheye.ndim - 1)
    r_d = torch.sqrt(x * x + y * y)
    if extra == 2:
        theta = kannala_brandt_theta(r_d, fisheye)
    else:
        theta = kannala_brandt_theta(r_d.reshape(*r_d.shape[:fisheye.ndim - 1], -1, 1), fisheye).reshape(r_d.shape)
    scale = torch.where(r_d > 1e-12, torch.sin(theta) / r_d.clamp(min=1e-12), torch.ones_like(r_d))
    return torch.stack([x * scale, y * scale, torch.cos(theta)], -1)


def camera_directions(K: Tensor, height: int, width: int, fisheye: Tensor | None = None) -> Tensor:
    """Unit ray directions in camera coordinates (OpenCV axes). K: [..., 4]; fisheye: None, Kannala–Brandt
    [..., 4] or FISHEYE624 [..., 12] -> [..., H, W, 3]."""
    u, v = _pixel_grid(height, width, K.dtype, K.device)
    x = (u - K[..., 2, None, None]) / K[..., 0, None, None]
    y = (v - K[..., 3, None, None]) / K[..., 1, None, None]
    return lens_unproject(x, y, fisheye)


def plucker_rays(K: Tensor, c2w: Tensor, height: int, width: int, order: str = "dm",
                 fisheye: Tensor | None = None) -> Tensor:
    """Plücker rays at every pixel centre.

    K: [..., 4] normalised intrinsics; c2w: [..., 4, 4] (OpenCV axes); fisheye: [..., 4] Kannala–Brandt,
    [..., 12] FISHEYE624 (see the module docstring) or None. Batch shapes broadcast. Returns [..., H, W, 6] in
    float32 (float64 if an input is float64),
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
            n_lens = LENS_MODELS[lens_model(fisheye)]
            batch = torch.broadcast_shapes(batch, fisheye.shape[:-1])
            fisheye = fisheye.expand(*batch, n_lens)
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

