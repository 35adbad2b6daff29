"""Slow, obviously-correct reference implementations that the fast code is tested against."""

import torch
from torch import Tensor


def plucker_rays_loop(K: Tensor, c2w: Tensor, height: int, width: int, order: str = "dm") -> Tensor:
    """Slow, obviously-correct reference for tests (pinhole, one camera). K: [4], c2w: [4, 4] -> [H, W, 6]."""
    K = K.to(torch.float64)
    c2w = c2w.to(torch.float64)
    fx, fy, cx, cy = (float(K[0]) * width, float(K[1]) * height, float(K[2]) * width, float(K[3]) * height)
    out = torch.zeros(height, width, 6, dtype=torch.float64)
    o = c2w[:3, 3]
    for j in range(height):
        for i in range(width):
            d_cam = torch.tensor([(i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, 1.0], dtype=torch.float64)
            d = c2w[:3, :3] @ d_cam
            d = d / d.norm()
            m = torch.linalg.cross(o, d)
            out[j, i] = torch.cat([d, m]) if order == "dm" else torch.cat([m, d])
    return out
