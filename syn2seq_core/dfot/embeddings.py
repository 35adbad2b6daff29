"""Embeddings shared by the DFoT networks: noise level, 3D rotary positions, camera rays.

- :class:`NoiseLevelEmbedding`: random Fourier features of ``noise_scale * logSNR`` (EDM2 style,
  ``sqrt(2) cos(x f + phi)`` with frozen random ``f, phi``) followed by a Linear-SiLU-Linear MLP, one
  embedding per frame. Sub-module names (``timesteps.freqs``, ``embedding.linear_1``) follow DFoT so
  its checkpoints load without renaming.
- 3D RoPE: the head dimension is split into (t, h, w) frequency groups as DFoT's ``RotaryEmbedding3D``
  does, with rotation pairs interleaved ``(x0, x1), (x2, x3), ...``. Tokens are ordered ``(t h w)``.
- :class:`RayPatchEmbed`: a per-pixel ray map ``[B, T, H, W, C]`` patch-embedded by one linear layer
  over each ``p x p x C`` patch (equal to a stride-p convolution).
- :func:`dfot_ray_encoding`: DFoT's 180-channel NeRF-style encoding of ray origin and (unnormalised)
  direction, the pose input of the public RealEstate10K checkpoint.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base.errors import require
from .ops import resolve


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (False for device types autocast does not know, e.g. meta)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


# --- noise level --------------------------------------------------------------------------------------
class FourierFeatures(nn.Module):
    """``sqrt(2) cos(2 pi (x f) + 2 pi phi)`` with frozen ``f ~ N(0, 1)``, ``phi ~ U(0, 1)``. x: [...] -> [..., C].

    ``freqs`` and ``phases`` are persistent buffers (they are random, so they travel with the weights).
    The features are computed in float32 whatever the surrounding autocast.
    """

    def __init__(self, num_channels: int, device=None):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels, device=device))
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels, device=device))

    def forward(self, x: Tensor) -> Tensor:
        # .to(x.device): a host that keeps some weights on an offload device (ComfyUI's low-VRAM modes) moves
        # only layer weights; buffers and bare parameters follow the input here.
        y = x.float()[..., None] * self.freqs.to(x.device, torch.float32) + self.phases.to(x.device, torch.float32)
        return y.cos() * math.sqrt(2.0)


class _TimestepMLP(nn.Module):
    """Linear-SiLU-Linear (the layout of diffusers' ``TimestepEmbedding``)."""

    def __init__(self, in_dim: int, out_dim: int, ops, device=None, dtype=None):
        super().__init__()
        self.linear_1 = ops.Linear(in_dim, out_dim, device=device, dtype=dtype)
        self.act = nn.SiLU()
        self.linear_2 = ops.Linear(out_dim, out_dim, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class NoiseLevelEmbedding(nn.Module):
    """Per-frame noise-level embedding. noise: [B, T] (already ``noise_scale * logSNR``) -> [B, T, emb_dim]."""

    def __init__(self, num_features: int, emb_dim: int, operations=None, device=None, dtype=None):
        super().__init__()
        ops = resolve(operations)
        self.timesteps = FourierFeatures(num_features, device=device)
        self.embedding = _TimestepMLP(num_features, emb_dim, ops, device=device, dtype=dtype)

    def forward(self, noise: Tensor) -> Tensor:
        features = self.timesteps(noise)
        weight = self.embedding.linear_1.weight
        if weight.is_floating_point() and not autocast_enabled(weight.device.type):
            features = features.to(weight.dtype)
        return self.embedding(features)


# --- 3D rotary position embedding ----------------------------------------------------------------------
def rope_3d_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of the head dimension given to (t, h, w), as DFoT's ``RotaryEmbedding3D``.

    ``head_dim / 2`` rotation pairs are split in three; a remainder goes to h and w (2) or t (1).
    """
    require(head_dim % 2 == 0 and head_dim >= 6, "head_dim", "an even number >= 6 for 3D RoPE", head_dim)
    pairs = head_dim // 2
    third, rest = divmod(pairs, 3)
    dims = {0: (third,) * 3, 1: (third + 1, third, third), 2: (third, third + 1, third + 1)}[rest]
    return tuple(2 * d for d in dims)


@lru_cache(maxsize=32)
def _rope_3d_tables_cpu(head_dim: int, frames: int, height: int, width: int, theta: float) -> tuple[Tensor, Tensor]:
    angles = []
    for axis_dim, size, axis in zip(rope_3d_axis_dims(head_dim), (frames, height, width), range(3)):
        inv_freq = 1.0 / theta ** (torch.arange(0, axis_dim, 2, dtype=torch.float64)[: axis_dim // 2] / axis_dim)
        a = torch.arange(size, dtype=torch.float64)[:, None] * inv_freq  # [size, axis_dim / 2]
        shape = [1, 1, 1, axis_dim // 2]
        shape[axis] = size
        angles.append(a.reshape(shape).expand(frames, height, width, axis_dim // 2))
    angle = torch.cat(angles, -1).float()  # [T, h, w, head_dim / 2]
    return angle.cos(), angle.sin()


def rope_3d_tables(head_dim: int, frames: int, height: int, width: int, theta: float = 10000.0,
                   device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles of every token: two [T, h, w, head_dim / 2] tensors.

    Position ``(t, i, j)`` rotates pair ``k`` of the t group by ``t * theta^(-2k / d_t)`` (likewise h, w).
    Tables are computed in float64 on the CPU, cached, then moved to ``device`` / ``dtype``.
    """
    cos, sin = _rope_3d_tables_cpu(int(head_dim), int(frames), int(height), int(width), float(theta))
    return cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs: x: [..., D]; cos, sin broadcastable to [..., D / 2]. Returns x's shape.

    ``(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)`` for every pair, computed as one complex product
    (several times faster on CPU than the six real ops); bf16 / fp16 inputs go through float32.
    """
    return apply_rope_complex(x, torch.complex(cos.float(), sin.float()))


def rope_rotation(cos: Tensor, sin: Tensor) -> Tensor:
    """The complex rotation ``cos + i sin`` (float32 parts) used by :func:`apply_rope_complex`."""
    return torch.complex(cos.float(), sin.float())


def apply_rope_complex(x: Tensor, rotation: Tensor) -> Tensor:
    """:func:`apply_rope` with a precomputed complex ``rotation`` broadcastable to [..., D / 2]."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if work.dtype == torch.float64:
        rotation = rotation.to(torch.complex128)
    pairs = work.unflatten(-1, (-1, 2))
    if pairs.stride(-1) != 1 or pairs.storage_offset() % 2 or any(st % 2 for st in pairs.stride()[:-1]):
        pairs = pairs.contiguous()
    out = torch.view_as_real(torch.view_as_complex(pairs) * rotation).flatten(-2)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def rope_reference(x: Tensor, positions: Tensor, head_dim: int, theta: float = 10000.0) -> Tensor:
    """Slow reference of 3D RoPE, one token at a time: x [N, D], positions [N, 3] (t, h, w) -> [N, D]."""
    out = x.clone().double()
    dims = rope_3d_axis_dims(head_dim)
    for n in range(x.shape[0]):
        k_out = 0
        for axis, d in enumerate(dims):
            for k in range(d // 2):
                angle = float(positions[n, axis]) * theta ** (-(2 * k) / d)
                a, b = float(x[n, 2 * k_out]), float(x[n, 2 * k_out + 1])
                out[n, 2 * k_out] = a * math.cos(angle) - b * math.sin(angle)
                out[n, 2 * k_out + 1] = b * math.cos(angle) + a * math.sin(angle)
                k_out += 1
    return out.to(x.dtype)


# --- normalisation ---------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """RMS normalisation over the last dim with a learned gain ``weight`` [dim] (computed in float32)."""

    def __init__(self, dim: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)).type_as(x)
        return y * self.weight.to(y.device, y.dtype)


def layer_norm(x: Tensor, eps: float = 1e-6) -> Tensor:
    """LayerNorm over the last dim without affine parameters."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


# --- camera rays -------------------------------------------------------------------------------------------
class RayPatchEmbed(nn.Module):
    """Patch-embed a ray map: rays [B, T, H, W, C] -> [B, T, (H/p)(W/p), dim] by one linear layer per patch."""

    def __init__(self, ray_channels: int, patch_size: int, dim: int, operations=None, device=None, dtype=None):
        super().__init__()
        ops = resolve(operations)
        self.patch_size = patch_size
        self.proj = ops.Linear(patch_size * patch_size * ray_channels, dim, device=device, dtype=dtype)

    def forward(self, rays: Tensor) -> Tensor:
        p = self.patch_size
        patches = rearrange(rays, "b t (h p1) (w p2) c -> b t (h w) (p1 p2 c)", p1=p, p2=p)
        weight = self.proj.weight
        if weight.is_floating_point() and not autocast_enabled(weight.device.type):
            patches = patches.to(weight.dtype)
        return self.proj(patches)


def relative_to_first(c2w: Tensor) -> Tensor:
    """Express every camera in the frame of the first one: c2w [..., T, 4, 4] -> inv(c2w[..., :1]) @ c2w."""
    return torch.linalg.solve(c2w[..., :1, :, :], c2w)


def dfot_ray_encoding(K: Tensor, c2w: Tensor, height: int, width: int, num_freqs: int = 15,
                      normalize_by_first: bool = True) -> Tensor:
    """DFoT's ``ray_encoding`` pose input: [..., T, H, W, 12 * num_freqs] (180 channels by default).

    K: [..., T, 4] normalised intrinsics; c2w: [..., T, 4, 4] OpenCV axes. As DFoT
    (``utils/geometry_utils.py``): cameras are first made relative to frame 0 (``normalize_by_first``);
    per pixel centre, origin ``o`` = camera centre and direction ``d = R_c2w ((u - cx) / fx, (v - cy) / fy, 1)``
    (not normalised); each of the 6 numbers ``x`` becomes ``sin(2^k pi x)`` for ``k < num_freqs``, then
    the same shifted by ``pi / 2``. Channel order: ``[sin o (3 x F), cos o (3 x F), sin d, cos d]`` with
    the frequency index fastest. Computed in float32 with autocast off.
    """
    K, c2w = torch.as_tensor(K), torch.as_tensor(c2w)
    require(K.shape[-1:] == (4,), "K", "shape [..., T, 4]", tuple(K.shape))
    require(c2w.shape[-2:] == (4, 4), "c2w", "shape [..., T, 4, 4]", tuple(c2w.shape))
    with torch.autocast(device_type=c2w.device.type, enabled=False):
        K, c2w = K.float(), c2w.float()
        if normalize_by_first:
            c2w = relative_to_first(c2w)
        batch = torch.broadcast_shapes(K.shape[:-1], c2w.shape[:-2])
        K, c2w = K.expand(*batch, 4), c2w.expand(*batch, 4, 4)
        v = (torch.arange(height, dtype=torch.float32, device=c2w.device) + 0.5) / height
        u = (torch.arange(width, dtype=torch.float32, device=c2w.device) + 0.5) / width
        uu, vv = torch.meshgrid(u, v, indexing="xy")  # [H, W]
        x = (uu - K[..., 2, None, None]) / K[..., 0, None, None]
        y = (vv - K[..., 3, None, None]) / K[..., 1, None, None]
        d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # [..., H, W, 3]
        d = torch.einsum("...ij,...hwj->...hwi", c2w[..., :3, :3], d_cam)
        o = c2w[..., None, None, :3, 3].expand_as(d)
        scale = (2.0 ** torch.arange(num_freqs, dtype=torch.float32, device=c2w.device)) * math.pi

        def encode(z: Tensor) -> Tensor:
            e = (z[..., None] * scale).flatten(-2)  # [..., 3 * F], frequency fastest
            return torch.sin(torch.cat([e, e + 0.5 * math.pi], -1))

        return torch.cat([encode(o), encode(d)], -1)
