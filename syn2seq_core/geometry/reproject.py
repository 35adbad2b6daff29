"""Depth-based reprojection: what one view's pixels look like from another camera.

``forward_warp`` splats a frame with its z-depth into a target camera (nearest pixel, z-buffered): the
exo -> ego geometric cue of the ``depth_warp`` conditioning (``Syn2SeqSequence.with_depth_cue``). Pinhole cameras,
OpenCV axes, normalised intrinsics (``conventions``); computed in float32 whatever autocast is active.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import conventions as C
from ..base import limits
from ..base.errors import check_choice, require
from .cameras import full_precision, invert_pose


def _check(name: str, x: Tensor, lead: tuple[int, ...], tail: tuple[int, ...]) -> None:
    require(tuple(x.shape[:len(lead)]) == lead and tuple(x.shape[len(lead):]) == tail, name,
            f"shape {list(lead + tail)}", tuple(x.shape))


@full_precision
def forward_warp(image: Tensor, depth: Tensor, K_src: Tensor, c2w_src: Tensor, K_dst: Tensor, c2w_dst: Tensor,
                 height: int, width: int, *, near: float = 0.05) -> tuple[Tensor, Tensor]:
    """Splat ``image`` seen by camera ``src`` into camera ``dst``.

    image: [N, C, h, w] in any range; depth: [N, hd, wd] z-depth in metres (its own resolution, e.g. a
    renderer's supersampled one; each depth pixel is one point, coloured by ``image`` resampled to the
    depth's size); K_*: [N, 4] normalised; c2w_*: [N, 4, 4]. Points behind ``near`` in the target camera,
    or with a non-finite or non-positive depth, are dropped; where several land on one target pixel the
    nearest wins (points within 1% of its depth are averaged; a sparse splat can leave gaps in a near surface
    through which farther points show: a 3x3 depth min-filter against that removed 50-85% of the coverage of
    the procedural takes' ego views, so it is not done). Returns ``(warped [N, C, height, width],
    coverage [N, 1, height, width])``: coverage 1 where some point landed, else 0 (and warped 0).
    """
    require(image.ndim == 4, "image", "shape [N, C, h, w]", tuple(image.shape))
    N, ch = image.shape[:2]
    require(depth.ndim == 3 and depth.shape[0] == N, "depth", f"shape [{N}, h, w]", tuple(depth.shape))
    for name, x, tail in (("K_src", K_src, (4,)), ("K_dst", K_dst, (4,)), ("c2w_src", c2w_src, (4, 4)),
                          ("c2w_dst", c2w_dst, (4, 4))):
        _check(name, x, (N,), tail)
    require(int(height) >= 1 and int(width) >= 1, "height, width", "positive integers", (height, width))
    dev = image.device
    hd, wd = depth.shape[1:]
    colour = image.float()
    if colour.shape[-2:] != (hd, wd):
        colour = F.interpolate(colour, size=(hd, wd), mode="bilinear", align_corners=False)
    z = depth.float().reshape(N, -1)
    v = (torch.arange(hd, device=dev, dtype=torch.float32) + C.PIXEL_CENTER_OFFSET) / hd
    u = (torch.arange(wd, device=dev, dtype=torch.float32) + C.PIXEL_CENTER_OFFSET) / wd
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    Ks, Kd = K_src.float(), K_dst.float()
    x = (uu.reshape(1, -1) - Ks[:, 2:3]) / Ks[:, 0:1] * z
    y = (vv.reshape(1, -1) - Ks[:, 3:4]) / Ks[:, 1:2] * z
    points = torch.stack([x, y, z, torch.ones_like(z)], -1)  # [N, P, 4] in the source camera
    to_dst = invert_pose(c2w_dst.float()) @ c2w_src.float()
    p = points @ to_dst.transpose(-1, -2)
    zd = p[..., 2]
    ok = torch.isfinite(z) & (z > 0) & torch.isfinite(zd) & (zd > near)
    zs = torch.where(ok, zd, torch.ones_like(zd))
    col = torch.floor((Kd[:, 0:1] * p[..., 0] / zs + Kd[:, 2:3]) * width)
    row = torch.floor((Kd[:, 1:2] * p[..., 1] / zs + Kd[:, 3:4]) * height)
    ok &= (col >= 0) & (col < width) & (row >= 0) & (row < height)
    pixels = height * width
    index = (torch.arange(N, device=dev)[:, None] * pixels + row.clamp(0, height - 1) * width
             + col.clamp(0, width - 1)).long()
    index, zd = index[ok], zd[ok]
    values = colour.reshape(N, ch, -1).transpose(1, 2)[ok]  # [M, C]
    nearest = torch.full((N * pixels,), float("inf"), device=dev).scatter_reduce(0, index, zd, "amin")
    front = zd <= nearest[index] * 1.01
    index, values = index[front], values[front]
    total = torch.zeros(N * pixels, ch, device=dev).index_add_(0, index, values)
    count = torch.zeros(N * pixels, device=dev).index_add_(0, index, torch.ones_like(index, dtype=torch.float32))
    warped = (total / count.clamp(min=1)[:, None]).reshape(N, height, width, ch).permute(0, 3, 1, 2)
    coverage = (count > 0).float().reshape(N, 1, height, width)
    return warped.to(image.dtype if image.is_floating_point() else torch.float32), coverage


# Kinds of depth maps depth_from_estimate reads: "inverse" relative inverse depth (disparity-like: near is large,
# as MiDaS / Depth Anything give), "depth" relative depth (far is large), "metric" z-depth already in metres.
DEPTH_ESTIMATE_KINDS = ("inverse", "depth", "metric")
# The median z-depth relative maps are scaled to: the median exo depth of the procedural world the bundled model
# learnt the cue in (3.26 m over all pixels of held-out takes 2^30 + 0..63; per take 1.7 to 4.8 m).
DEFAULT_MEDIAN_DEPTH_M = 3.3


def depth_from_estimate(maps: Tensor, kind: str = "inverse", median_m: float = DEFAULT_MEDIAN_DEPTH_M) -> Tensor:
    """[N, h, w] z-depth in metres from a depth estimator's maps, for the ``depth_warp`` cue.

    maps: [N, h, w], or an image batch [N, C, h, w] (its channels averaged: a grey depth video decoded as RGB).
    kind: one of :data:`DEPTH_ESTIMATE_KINDS`. The rule for relative maps: ``"inverse"`` maps are inverted
    first; then one scale for the whole clip makes the median over every valid pixel of every frame ``median_m``
    metres (one scale, so depth keeps its ratios across frames; an affine-invariant estimate's unknown shift is
    not recovered). Non-finite or non-positive values (sky, a disparity of 0) mark no depth (NaN), as every
    depth reader here. ``"metric"`` maps are returned as they are (``median_m`` unused).
    """
    check_choice(kind, DEPTH_ESTIMATE_KINDS, "depth kind")
    maps = torch.as_tensor(maps)
    if maps.ndim == 4:
        maps = maps.float().mean(1)
    require(maps.ndim == 3 and maps.shape[0] > 0, "depth maps", "[N, h, w] or an image batch [N, C, h, w]",
            tuple(maps.shape))
    require(maps.is_floating_point(), "depth maps", "float values", maps.dtype)
    median_m = limits.check("depth_median_m", median_m, "depth median")
    maps = maps.float()
    valid = torch.isfinite(maps) & (maps > 0)
    require(bool(valid.any()), "depth maps", "some positive values", "none (every value is zero, negative or NaN)")
    depth = torch.where(valid, maps, torch.full_like(maps, float("nan")))
    if kind == "metric":
        return depth
    if kind == "inverse":
        depth = 1.0 / depth
    return depth * (median_m / depth[valid].median())
