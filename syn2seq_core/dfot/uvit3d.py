"""U-ViT3D-Pose: the network of the public DFoT RealEstate10K checkpoint (``kiwhansong/DFoT``, DFoT_RE10K).

Written from the architecture of DFoT's ``algorithms/dfot/backbones/u_vit/`` (MIT, Kiwhan Song,
Boyuan Chen) — a Simple Diffusion / SiD2 "residual U-ViT" — with the same module and parameter names,
so DFoT's backbone state dict loads with the identity key mapping once the Lightning prefix
``diffusion_model.model.`` (and a ``_orig_mod.`` left by ``torch.compile``) is stripped
(:func:`syn2seq_core.dfot.convert.dfot_key_to_uvit`). Parameter registration order also follows DFoT, so
``model.named_parameters()`` lists the same names in the same order as DFoT's backbone.

Layout (RE10K: channels [128, 256, 576, 1152], emb 1024, patch 2, heads 9, updown [3, 3, 6], mid 20):
``embed_input`` (p x p conv) -> level 0..2 down: blocks + ``Downsample`` (avg-pool 2, conv 3x3) ->
``mid_blocks`` -> up: ``Upsample`` (conv 3x3, nearest x2), ``x = up(x - h_after) + h_before``, blocks ->
``project_output`` (zero-init transposed p x p conv). ResBlocks (GroupNorm 32, SiLU, conv, FiLM from a
1x1 conv of the embedding map) at the convolutional levels; TransformerBlocks (parallel attention + MLP
from one fused projection, RMS QK-norm, 3D RoPE, FiLM-conditioned RMSNorm, zero-init outputs) attend over
all ``T h w`` tokens of a level.

Conditioning: the per-frame noise-level embedding (Fourier features of ``0.125 logSNR``, dim 256 ->
1024) plus the camera embedding, a p x p patch conv of the 180-channel ray encoding
(:func:`~syn2seq_core.dfot.embeddings.dfot_ray_encoding`) -> a spatial embedding map
``[B T, 1024, H / p, W / p]``, average-pooled by ``2^level`` for each level. Without a pose (``rays=None``
or pose dropout) the camera embedding is zero and the map is constant in space, which the forward pass
uses to FiLM per frame instead of per token when no gradient is recorded; a training forward runs the pose
embedding even when it drops every pose (and zeroes them), so that its parameters take part in every step of
every process (DDP / FSDP2 reduce the same tensors on all ranks). Every block's FiLM is linear in the embedding, so
sampling with a ``cache`` (the sampler keeps one per run) splits it: the pose part of each block's FiLM is computed
once per window and each step maps only the per-frame noise embedding (``_film_split``), which removes the largest
repeated cost besides the blocks' own layers (a 1024 x 2C map of every token of every block: about a quarter of a
step's multiply-adds at 32x32 to 64x64, a sixth at 256x256).

Forward protocol: as :class:`~syn2seq_core.dfot.model.DiT3D` (``v = model(x_t, logsnr, rays)``), with
``rays`` = ``model.camera_rays(K, c2w)``: [B, T, H, W, 180]. Frames are normalised by the RE10K
per-channel mean / std (``config.data_mean`` / ``data_std``) by the caller. T may be below
``max_frames`` (RoPE positions of the first T frames); the released model was trained with T = 8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base.errors import check_choice, require
from .embeddings import (NoiseLevelEmbedding, RMSNorm, apply_rope_complex, dfot_ray_encoding, rope_3d_axis_dims,
                         rope_3d_tables, rope_rotation)
from .model import CUE_CHANNELS, VideoDenoiser
from .ops import resolve

BLOCK_TYPES = ("ResBlock", "TransformerBlock")


@dataclass(frozen=True)
class UViT3DPoseConfig:
    """Configuration of :class:`UViT3DPose`; defaults are the DFoT RealEstate10K checkpoint's.

    channels: per level; block_types: per level ("ResBlock" / "TransformerBlock"); block_dropouts: MLP
    dropout per level (training only); num_updown_blocks: blocks per down / up level (all but the last);
    num_mid_blocks: blocks at the last level; num_heads: heads of every transformer level;
    emb_channels: conditioning width; noise_features: Fourier features of the noise level;
    ray_channels: the pose input (180 = DFoT ray encoding); max_frames: the window;
    cue: extra per-pixel conditioning (``CUE_CHANNELS``, as :attr:`DiT3DConfig.cue`), given after the rays in the
    ``rays`` input and concatenated to the noisy frames before ``embed_input`` (a pixel-aligned path the
    convolutions can copy from, not FiLM); "none" is DFoT's network unchanged.
    """

    arch: ClassVar[str] = "uvit3d_pose"

    height: int = 256
    width: int = 256
    in_channels: int = 3
    channels: tuple[int, ...] = (128, 256, 576, 1152)
    emb_channels: int = 1024
    patch_size: int = 2
    block_types: tuple[str, ...] = ("ResBlock", "ResBlock", "TransformerBlock", "TransformerBlock")
    block_dropouts: tuple[float, ...] = (0.0, 0.0, 0.1, 0.1)
    num_updown_blocks: tuple[int, ...] = (3, 3, 6)
    num_mid_blocks: int = 20
    num_heads: int = 9
    max_frames: int = 8
    rope_theta: float = 10000.0
    ray_channels: int = 180
    ray_format: str = "dfot_ray_encoding"
    cue: str = "none"
    pose_dropout: float = 0.1
    noise_scale: float = 0.125
    noise_features: int = 256
    data_mean: tuple[float, ...] = (0.577, 0.517, 0.461)
    data_std: tuple[float, ...] = (0.249, 0.249, 0.268)

    def __post_init__(self):
        levels = len(self.channels)
        require(levels >= 2, "channels", "at least 2 levels", self.channels)
        require(len(self.block_types) == levels and len(self.block_dropouts) == levels, "block_types, block_dropouts",
                f"{levels} entries each (one per level)", (self.block_types, self.block_dropouts))
        require(len(self.num_updown_blocks) == levels - 1, "num_updown_blocks", f"{levels - 1} entries",
                self.num_updown_blocks)
        for t in self.block_types:
            check_choice(t, BLOCK_TYPES, "block_types entry")
        scale = self.patch_size * 2 ** (levels - 1)
        require(self.height % scale == 0 and self.width % scale == 0, "height, width",
                f"multiples of patch_size * 2^(levels - 1) = {scale}", (self.height, self.width))
        for level, (ch, kind) in enumerate(zip(self.channels, self.block_types)):
            if kind == "ResBlock":
                require(ch % 32 == 0, f"channels[{level}]", "a multiple of 32 (GroupNorm(32))", ch)
            else:
                require(ch % self.num_heads == 0, f"channels[{level}]", f"a multiple of num_heads {self.num_heads}", ch)
                rope_3d_axis_dims(ch // self.num_heads)
        require(len(self.data_mean) == self.in_channels and len(self.data_std) == self.in_channels,
                "data_mean, data_std", f"{self.in_channels} values each", (self.data_mean, self.data_std))
        check_choice(self.ray_format, ("dfot_ray_encoding",), "ray_format")
        check_choice(self.cue, CUE_CHANNELS, "cue")
        require(self.ray_channels == 180, "ray_channels", "180 (DFoT ray encoding: 15 frequencies of o and d)",
                self.ray_channels, "DFoT's 6-channel 'ray' / 'plucker' pose inputs are not supported")

    def level_grid(self, level: int) -> tuple[int, int]:
        s = self.patch_size * 2 ** level
        return self.height // s, self.width // s

    @property
    def cond_channels(self) -> int:
        """Channels of the network's ``rays`` input: the rays, then the cue."""
        return self.ray_channels + CUE_CHANNELS[self.cue]

    def replace(self, **changes) -> "UViT3DPoseConfig":
        return dataclasses.replace(self, **changes)


UVIT3D_PRESETS: dict[str, UViT3DPoseConfig] = {
    # DFoT_RE10K.ckpt (configurations/algorithm/backbone/u_vit3d_pose.yaml + realestate10k overrides).
    "re10k": UViT3DPoseConfig(),
    # The base yaml of u_vit3d_pose (smaller experiments).
    "base": UViT3DPoseConfig(channels=(128, 256, 512, 1024), num_updown_blocks=(3, 3, 3), num_mid_blocks=16,
                             num_heads=4),
}


# --- blocks (names follow DFoT's u_vit_blocks.py) ------------------------------------------------------
class EmbedInput(nn.Module):
    def __init__(self, in_channels: int, dim: int, patch_size: int, ops, device=None, dtype=None):
        super().__init__()
        self.proj = ops.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class ProjectOutput(nn.Module):
    def __init__(self, dim: int, out_channels: int, patch_size: int, ops, device=None, dtype=None):
        super().__init__()
        self.proj = ops.ConvTranspose2d(dim, out_channels, kernel_size=patch_size, stride=patch_size,
                                        device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM ``(1 + scale), shift`` from a 1x1 conv of the embedding map, SiLU, zero conv."""

    def __init__(self, channels: int, emb_dim: int, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.emb_layer = ops.Conv2d(emb_dim, 2 * channels, kernel_size=1, **kw)
        self.in_layers = nn.Sequential(ops.GroupNorm(32, channels, eps=1e-6, affine=True, **kw), nn.SiLU(),
                                       ops.Conv2d(channels, channels, kernel_size=3, padding=1, **kw))
        self.out_norm = ops.GroupNorm(32, channels, eps=1e-6, affine=True, **kw)
        self.out_rest = nn.Sequential(nn.SiLU(), ops.Conv2d(channels, channels, kernel_size=3, padding=1, **kw))

    def forward(self, x: Tensor, emb: Tensor, ray_mod: Tensor | None = None) -> Tensor:
        """x: [N, C, h, w]; emb: [N, E, h, w] or [N, E, 1, 1] -> [N, C, h, w]. With ``ray_mod`` ([N, 2C, h, w], from
        :meth:`ray_modulation` of the pose part of the embedding), ``emb`` is the rest of the FiLM: ``emb_layer`` of the
        per-frame embedding, [N, 2C, 1, 1]."""
        h = self.in_layers(x)
        if ray_mod is None:
            scale, shift = self.emb_layer(emb).chunk(2, dim=1)
            h = torch.addcmul(shift, self.out_norm(h), 1 + scale)
        else:
            h = _film_split(self.out_norm(h), emb, ray_mod, dim=1)
        return x + self.out_rest(h)

    def ray_modulation(self, pose: Tensor) -> Tensor:
        """The pose part of the FiLM of this block: pose map [N, E, h, w] -> [N, 2C, h, w] (see :func:`_film_split`)."""
        return _ray_part(self.emb_layer(pose), self.emb_layer.bias, dim=1)


class NormalizeWithCond(nn.Module):
    """RMSNorm then FiLM ``(1 + scale), shift`` from a linear map of the embedding."""

    def __init__(self, dim: int, emb_dim: int, ops, device=None, dtype=None):
        super().__init__()
        self.emb_layer = ops.Linear(emb_dim, 2 * dim, device=device, dtype=dtype)
        self.norm = RMSNorm(dim, device=device, dtype=dtype)

    def forward(self, x: Tensor, emb: Tensor, ray_mod: Tensor | None = None) -> Tensor:
        """x: [..., C]; emb: [..., E] (``ray_mod`` [..., 2C] given: ``emb_layer`` of the per-frame embedding, [..., 2C])."""
        if ray_mod is None:
            scale, shift = self.emb_layer(emb).chunk(2, dim=-1)
            return torch.addcmul(shift, self.norm(x), 1 + scale)
        return _film_split(self.norm(x), emb, ray_mod, dim=-1)

    def ray_modulation(self, pose: Tensor) -> Tensor:
        """The pose part of the FiLM: pose tokens [..., E] -> [..., 2C] (see :func:`_film_split`)."""
        return _ray_part(self.emb_layer(pose), self.emb_layer.bias, dim=-1)


# The FiLM of every block is linear in the embedding, and the embedding is a per-frame noise part plus the pose part
# (the patch-embedded rays, average-pooled per level): layer(noise + pose) = layer(noise) + (layer(pose) - bias).
# The pose part does not change while a window is sampled, so sampling computes it once per block (the ray cache) and
# each step only maps the per-frame noise embedding: the E x 2C map of every token is the largest cost that repeats.
def _ray_part(mod: Tensor, bias: Tensor | None, dim: int) -> Tensor:
    """``layer(pose)`` [.., 2C ..] along ``dim`` without the layer's bias and with 1 added to the scale half (both
    belong to the per-frame part): what :func:`_film_split` adds to the per-frame modulation."""
    shape = [1] * mod.ndim
    shape[dim] = -1
    if bias is not None:
        mod = mod - bias.to(mod.device, mod.dtype).reshape(shape)
    scale = mod.narrow(dim, 0, mod.shape[dim] // 2)
    scale.add_(1)
    return mod


def _film_split(normed: Tensor, frame_mod: Tensor, ray_mod: Tensor, dim: int) -> Tensor:
    """``normed * (1 + scale) + shift`` with (scale, shift) = frame_mod + ray_mod, halves along ``dim``: frame_mod is
    ``layer(per-frame embedding)`` (bias included; broadcast over space), ray_mod from :func:`_ray_part`."""
    frame_scale, frame_shift = frame_mod.chunk(2, dim=dim)
    ray_scale1, ray_shift = ray_mod.chunk(2, dim=dim)
    return torch.addcmul(ray_shift + frame_shift, normed, ray_scale1 + frame_scale)


def _rows_of(mods: dict, blocks, rows: Tensor | None) -> dict:
    """The pose part of the FiLM of ``blocks`` (from ``mods``) for the frames ``rows`` only (all when None)."""
    return {blk: mods[blk] if rows is None else mods[blk][rows] for blk in blocks}


def sequence_dropout(h: Tensor, p: float, seeds: Tensor, salt: int) -> Tensor:
    """Dropout of ``h`` [B, ...] (zero with probability ``p``, the rest scaled by 1 / (1 - p), as ``nn.Dropout``)
    whose mask for video ``b`` is drawn from a generator seeded by (``seeds[b]``, ``salt``): a function of the
    video's own seed and the block, whichever process or micro-batch holds the video, and the same again when
    activation checkpointing recomputes the block. seeds: [B] int64 (any device)."""
    import numpy as np

    keep = []
    for seed in seeds.tolist():
        state = int(np.random.SeedSequence([seed % 2**64, salt]).generate_state(1, np.uint64)[0])
        g = torch.Generator(device=h.device).manual_seed(state)
        keep.append(torch.rand(h.shape[1:], generator=g, device=h.device) >= p)
    return h * torch.stack(keep).to(h.dtype) / (1 - p)


class TransformerBlock(nn.Module):
    """Parallel attention + MLP (ViT-22B): one fused projection to (qkv, mlp hidden), QK RMS norm, RoPE."""

    def __init__(self, dim: int, heads: int, emb_dim: int, dropout: float, ops, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.heads = heads
        self.dropout = dropout
        self.salt = 0  # the block's place in the network (set by UViT3DPose): its dropout stream
        self.norm = NormalizeWithCond(dim, emb_dim, ops, **kw)
        self.fused_dims = (3 * dim, 4 * dim)
        self.fused_attn_mlp_proj = ops.Linear(dim, sum(self.fused_dims), bias=True, **kw)
        self.q_norm = RMSNorm(dim // heads, **kw)
        self.k_norm = RMSNorm(dim // heads, **kw)
        self.attn_out = ops.Linear(dim, dim, bias=True, **kw)
        self.mlp_out = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), ops.Linear(4 * dim, dim, bias=True, **kw))

    def forward(self, x: Tensor, emb: Tensor, rope: Tensor, seeds: Tensor | None = None,
                ray_mod: Tensor | None = None, frames: Tensor | None = None) -> Tensor:
        """x: [B, T, S, C] (attention over all T S tokens); emb: [B, T, S or 1, E]; rope: complex [T S, d/2];
        seeds: [B] int64, the videos' own seeds for the MLP dropout (None: torch's global RNG, ``nn.Dropout``);
        ray_mod: [B, T, S, 2C], the pose part of the FiLM (``NormalizeWithCond.ray_modulation``), then ``emb`` is the
        per-frame part [B, T, 1, 2C]; or None. frames: [Tq] int64, the frames whose output is read: every frame's
        tokens are still keys and values, only these frames' are queries and go through the MLP, and the output is
        [B, Tq, S, C] (the last block before the per-frame levels, while sampling); None: all frames."""
        T = x.shape[1]
        qkv, mlp_h = self.fused_attn_mlp_proj(self.norm(x, emb, ray_mod)).split(self.fused_dims, dim=-1)
        q, k, v = rearrange(qkv, "b t s (qkv h d) -> qkv b h t s d", qkv=3, h=self.heads).unbind(0)
        q_rope = rope
        if frames is not None:
            q, x, mlp_h = q[:, :, frames], x[:, frames], mlp_h[:, frames]
            q_rope = rope.unflatten(0, (T, -1))[frames].flatten(0, 1)
        q, k, v = q.flatten(2, 3), k.flatten(2, 3), v.flatten(2, 3)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope_complex(q, q_rope), apply_rope_complex(k, rope)
        o = rearrange(F.scaled_dot_product_attention(q, k, v), "b h (t s) d -> b t s (h d)", t=x.shape[1])
        x = x + self.attn_out(o)
        if seeds is None or not self.training or self.dropout == 0:
            return x + self.mlp_out(mlp_h)
        act, _, out = self.mlp_out
        return x + out(sequence_dropout(act(mlp_h), self.dropout, seeds, self.salt))


class Downsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ops, device=None, dtype=None):
        super().__init__()
        self.conv = ops.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.avg_pool2d(x, kernel_size=2, stride=2))


class Upsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ops, device=None, dtype=None):
        super().__init__()
        self.conv = ops.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest")


class _PatchEmbedder(nn.Module):
    """timm ``PatchEmbed`` without flattening: a stride-p conv (parameter names ``proj.*``)."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, ops, device=None, dtype=None):
        super().__init__()
        self.proj = ops.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True,
                               device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class PoseEmbedding(nn.Module):
    """DFoT's ``RandomDropoutPatchEmbed``: rays [B, T, C', H, W] -> [B, T, E, H / p, W / p]."""

    def __init__(self, ray_channels: int, emb_dim: int, patch_size: int, ops, device=None, dtype=None):
        super().__init__()
        self.patch_embedder = _PatchEmbedder(ray_channels, emb_dim, patch_size, ops, device, dtype)

    def forward(self, rays: Tensor) -> Tensor:
        B = rays.shape[0]
        out = self.patch_embedder(rearrange(rays, "b t c h w -> (b t) c h w"))
        return rearrange(out, "(b t) c h w -> b t c h w", b=B)


# --- the network -------------------------------------------------------------------------------------------
class UViT3DPose(VideoDenoiser):
    """U-ViT3D with camera-ray conditioning. See the module docstring."""

    # Sampling with a ``cache`` keeps the per-frame levels' down path of frames that do not change between steps
    # (:meth:`frame_cache_bytes` of memory); off, every frame is computed every step (only the rays are cached).
    cache_frames: bool = True

    def __init__(self, config: UViT3DPoseConfig, operations=None, device=None, dtype=None):
        super().__init__()
        self.config = config
        ops = resolve(operations)
        c = config
        kw = dict(device=device, dtype=dtype)
        levels = len(c.channels)
        self.is_transformer = [t == "TransformerBlock" for t in c.block_types]
        # The leading ResBlock levels (below the mid level) work on each frame alone: convolutions, GroupNorm and
        # FiLM per frame, no attention. Sampling keeps their down path for frames that do not change between steps
        # and runs their up path only for the frames whose output it reads (``forward``'s ``cache``, ``needed``).
        self.per_frame_levels = next((i for i, t in enumerate(self.is_transformer) if t), levels - 1)
        # Registration order follows DFoT: noise embedding, pose embedding, in/out, down, mid, up.
        self.noise_level_pos_embedding = NoiseLevelEmbedding(c.noise_features, c.emb_channels, ops, **kw)
        self.external_cond_embedding = PoseEmbedding(c.ray_channels, c.emb_channels, c.patch_size, ops, **kw)
        self.embed_input = EmbedInput(c.in_channels + CUE_CHANNELS[c.cue], c.channels[0], c.patch_size, ops, **kw)
        self.project_output = ProjectOutput(c.channels[0], c.in_channels, c.patch_size, ops, **kw)

        def block(level: int) -> nn.Module:
            ch = c.channels[level]
            if self.is_transformer[level]:
                return TransformerBlock(ch, c.num_heads, c.emb_channels, c.block_dropouts[level], ops, **kw)
            return ResBlock(ch, c.emb_channels, ops, **kw)

        self.down_blocks = nn.ModuleList(
            nn.ModuleList([block(level) for _ in range(c.num_updown_blocks[level])]
                          + [Downsample(c.channels[level], c.channels[level + 1], ops, **kw)])
            for level in range(levels - 1))
        self.mid_blocks = nn.ModuleList(block(levels - 1) for _ in range(c.num_mid_blocks))
        self.up_blocks = nn.ModuleList(
            nn.ModuleList([Upsample(c.channels[level + 1], c.channels[level], ops, **kw)]
                          + [block(level) for _ in range(c.num_updown_blocks[level])])
            for level in reversed(range(levels - 1)))
        for salt, m in enumerate(m for m in self.modules() if isinstance(m, TransformerBlock)):
            m.salt = salt
        if not (device is not None and torch.device(device).type == "meta"):
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero the output projections (each block starts as the identity, the network outputs 0)."""
        zero = [self.project_output.proj]
        for m in self.modules():
            if isinstance(m, ResBlock):
                zero.append(m.out_rest[1])
            elif isinstance(m, TransformerBlock):
                zero += [m.attn_out, m.mlp_out[2]]
        for layer in zero:
            for p in layer.parameters():
                p.zero_()

    def activation_bytes(self, frames: int, batch: int = 1) -> int:
        """Bytes of the tensors alive at the peak of one forward (no grad, fused attention, float32 activations)
        over ``batch`` videos of ``frames`` frames, beyond the inputs: the input's copy and the output, the
        per-level pose embeddings, the skip connections of every level, and the working set of the widest level (a ResBlock's few maps of
        ``C`` channels; a transformer block's fused projection, q/k/v and outputs). Checked against a count of
        live tensors."""
        c = self.config
        levels = len(c.channels)
        n = [batch * frames * h * w for h, w in (c.level_grid(level) for level in range(levels))]
        pixels = batch * frames * c.height * c.width * (2 * c.in_channels + CUE_CHANNELS[c.cue])  # input (+ cue), output
        embs = c.emb_channels * (2 * n[0] + sum(n[1:]))
        skips = sum(c.channels[level] * n[level] + c.channels[level + 1] * n[level + 1] for level in range(levels - 1))
        work = max((16 if self.is_transformer[level] else 8) * c.channels[level] * n[level] for level in range(levels))
        return 4 * (pixels + embs + skips + work)

    def camera_rays(self, K: Tensor, c2w: Tensor) -> Tensor:
        """DFoT ray encoding, relative to frame 0: K [B, T, 4], c2w [B, T, 4, 4] -> [B, T, H, W, 180]."""
        return dfot_ray_encoding(K, c2w, self.config.height, self.config.width)

    def _level_rope(self, level: int, frames: int, device) -> Tensor:
        c = self.config
        cos, sin = rope_3d_tables(c.channels[level] // c.num_heads, frames, *c.level_grid(level),
                                  theta=c.rope_theta, device=device)
        return rope_rotation(cos, sin).flatten(0, 2)  # complex [(t h w), d / 2]

    def _run_level(self, blocks, x: Tensor, emb: Tensor, level: int, frames: int, seeds: Tensor | None,
                   ray_mods: dict | None = None, last_frames: Tensor | None = None) -> Tensor:
        """x: [(B T), C, h, w]; emb: [(B T), E, h, w], or [(B T), E, 1, 1] when constant in space; seeds: [B]
        int64 | None (the transformer blocks' dropout); ray_mods: {block: the pose part of its FiLM}, then ``emb`` is
        {block: the per-frame part} (:meth:`_frame_films`); or None. last_frames: [Tq] int64, the only frames the
        last transformer block computes (``TransformerBlock``'s ``frames``), then the result is [(B Tq), C, h, w]."""
        if not self.is_transformer[level]:
            for blk in blocks:
                x = self._block(blk, x, emb, None) if ray_mods is None else self._block(blk, x, emb[blk], ray_mods[blk])
            return x
        h, w = x.shape[-2:]
        x = rearrange(x, "(b t) c h w -> b t (h w) c", t=frames)
        e = rearrange(emb, "(b t) c h w -> b t (h w) c", t=frames) if ray_mods is None else None
        rope = self._level_rope(level, frames, x.device)
        for i, blk in enumerate(blocks):
            only = last_frames if i == len(blocks) - 1 else None
            if ray_mods is None:
                x = self._block(blk, x, e, rope, seeds, None, only)
            else:
                x = self._block(blk, x, emb[blk], rope, seeds, ray_mods[blk], only)
        return rearrange(x, "b t (h w) c -> (b t) c h w", h=h, w=w)

    def _level_blocks(self) -> list[tuple[int, list[nn.Module]]]:
        """(level, blocks) of every stage in the order the forward runs them (resampling layers left out)."""
        levels = len(self.config.channels)
        stages = [(level, list(down[:-1])) for level, down in enumerate(self.down_blocks)]
        stages.append((levels - 1, list(self.mid_blocks)))
        stages += [(levels - 2 - i, list(up[1:])) for i, up in enumerate(self.up_blocks)]
        return stages

    def _last_frames(self, needed: Tensor | None, rows: Tensor | None, T: int) -> tuple[Tensor | None, Tensor | None]:
        """(the frames the last transformer block before the per-frame levels computes: those any video needs, or
        None for all; the needed frames' rows among the (B Tq) it returns). Not in training, whose dropout masks
        are drawn for every frame."""
        P = self.per_frame_levels
        # P below the mid level is the first transformer level (per_frame_levels); the mid blocks are never trimmed.
        if rows is None or P == 0 or P > len(self.config.channels) - 2 or self.training:
            return None, rows
        frames = needed.any(0).nonzero().squeeze(1)
        if len(frames) == T:
            return None, rows
        place = torch.full((T,), -1, dtype=torch.long, device=rows.device)
        place[frames] = torch.arange(len(frames), device=rows.device)
        return frames, rows // T * len(frames) + place[rows % T]

    def _ray_modulations(self, rays: Tensor, keep: Tensor | None, frames: int) -> dict:
        """{block: the pose part of its FiLM} for rays [B, T, C', H, W] (already in the compute dtype): the pose
        embedding, zeroed where ``keep`` is 0, average-pooled per level, through each block's embedding layer."""
        pose = self.external_cond_embedding(rays)
        if keep is not None:
            pose = pose * keep.to(pose.dtype)[:, None, None, None, None]
        pose = rearrange(pose, "b t c h w -> (b t) c h w")
        pooled: dict[int, Tensor] = {}
        mods = {}
        for level, blocks in self._level_blocks():
            if level not in pooled:
                p = pose if level == 0 else F.avg_pool2d(pose, 2 ** level)
                if self.is_transformer[level]:
                    p = rearrange(p, "(b t) c h w -> b t (h w) c", t=frames)
                pooled[level] = p
            for blk in blocks:
                norm = blk.norm if self.is_transformer[level] else blk
                mods[blk] = norm.ray_modulation(pooled[level])
        return mods

    def ray_cache_bytes(self, frames: int, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes of the ray cache of a sampling run (the pose part of every block's FiLM, see ``forward``'s ``cache``)
        over ``batch`` videos of ``frames`` frames, ``itemsize`` bytes a number (2 under bf16 autocast)."""
        c = self.config
        total = 0
        for level, blocks in self._level_blocks():
            h, w = c.level_grid(level)
            total += len(blocks) * 2 * c.channels[level] * h * w
        return total * batch * frames * itemsize

    def _film_table(self, emb: Tensor) -> dict:
        """{block: ``emb_layer`` of noise-level embeddings ``emb`` [..., E]}: [N, 2C, 1, 1] (N rows) for a ResBlock,
        [..., 2C] for a transformer block."""
        return {blk: blk.norm.emb_layer(emb) if self.is_transformer[level]
                else blk.emb_layer(emb.reshape(-1, emb.shape[-1], 1, 1))
                for level, blocks in self._level_blocks() for blk in blocks}

    def _frame_films(self, cache: dict, logsnr: Tensor, dtype) -> dict:
        """{block: the per-frame part of its FiLM}, ``emb_layer`` of each frame's noise-level embedding: [(B T), 2C, 1,
        1] for a ResBlock, [B, T, 1, 2C] for a transformer block. Looked up in a table of every level the sampling run
        feeds when the sampler announced them (``cache["noise_levels"]``, [K] float32 logSNR) and every frame's level
        is one of them: one product of each block's ``emb_layer`` per run instead of one per step; else computed."""
        B, T = logsnr.shape
        films = None
        levels = cache.get("noise_levels")
        if isinstance(levels, Tensor) and levels.ndim == 1 and levels.device == logsnr.device:
            hit = logsnr.reshape(-1, 1).to(levels.dtype) == levels
            if bool(hit.any(1).all()):
                index = hit.to(torch.uint8).argmax(1)
                table = self._cached(cache, "film_table", levels, None, dtype, lambda: self._film_table(
                    self.noise_level_pos_embedding(self.config.noise_scale * levels[None])[0]))  # [K, E]
                films = {blk: film[index] for blk, film in table.items()}
        if films is None:
            films = self._film_table(self.noise_level_pos_embedding(self.config.noise_scale * logsnr)[:, :, None])
        return {blk: film if film.ndim == 4 else film.reshape(B, T, 1, -1) for blk, film in films.items()}

    def frame_cache_bytes(self, frames: int, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes of the frame cache of a sampling run (``forward``'s ``cache``): the down path of the per-frame levels
        (every skip connection there) for ``batch`` videos of ``frames`` frames, ``itemsize`` bytes a number (2
        under bf16 autocast), and the (float32) input frames and noise levels it was computed from."""
        c = self.config
        P = self.per_frame_levels
        if P == 0:
            return 0
        n = [h * w for h, w in (c.level_grid(level) for level in range(P + 1))]
        skips = sum(c.channels[level] * n[level] + c.channels[level + 1] * n[level + 1] for level in range(P))
        inputs = 4 * ((c.in_channels + CUE_CHANNELS[c.cue]) * c.height * c.width + 1)
        return batch * frames * (skips * itemsize + inputs)

    def sampling_cache_bytes(self, frames: int, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes a sampling run keeps in its ``cache`` between steps: :meth:`ray_cache_bytes` + :meth:`frame_cache_bytes`
        (the per-frame FiLM table of :meth:`_frame_films`, one row of every block's 2C per announced level, e.g. 13 MB
        for the RE10K network over 50 levels, is left to the activations' margin)."""
        return self.ray_cache_bytes(frames, batch, itemsize) + self.frame_cache_bytes(frames, batch, itemsize)

    def _per_frame_down(self, x: Tensor, emb, ray_mods: dict | None, frames: int,
                        rows: Tensor | None = None) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """``embed_input`` and the down path of the per-frame levels on the frames ``rows`` of x [(B T), C, H, W]
        (all when None): (x entering the first transformer level, skips before and after each downsampling)."""
        if rows is not None:
            x = x[rows]
        x = self.embed_input(x)
        before, after = [], []
        for level in range(self.per_frame_levels):
            down = self.down_blocks[level]
            e, mods = emb, ray_mods
            if ray_mods is not None:
                e, mods = _rows_of(emb, down[:-1], rows), _rows_of(ray_mods, down[:-1], rows)
            elif rows is not None:
                e = emb[rows]
            x = self._run_level(down[:-1], x, e, level, frames, None, mods)
            before.append(x)
            x = down[-1](x)
            after.append(x)
        return x, before, after

    def _memo_down(self, memo: dict, x: Tensor, logsnr: Tensor, emb: dict, ray_mods: dict,
                   frames: int) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """:meth:`_per_frame_down` of every frame, computed only for the frames whose input (x [(B T), ...] and noise
        level ``logsnr`` [(B T)]) differs from the last call's: the others (clean context, the same every step) are
        taken from ``memo``, which then holds this call's."""
        fresh = None
        if memo and memo["x"].shape == x.shape and memo["x"].dtype == x.dtype:
            same = (x == memo["x"]).flatten(1).all(1) & (logsnr == memo["logsnr"])
            if bool(same.all()):
                return memo["h"], memo["before"], memo["after"]
            if bool(same.any()):
                fresh = (~same).nonzero().squeeze(1)
        h, before, after = self._per_frame_down(x, emb, ray_mods, frames, fresh)
        if fresh is None:
            memo.update(x=x.clone(), logsnr=logsnr.clone(), h=h, before=before, after=after)
        else:
            memo["x"][fresh], memo["logsnr"][fresh] = x[fresh], logsnr[fresh]
            for kept, new in zip([memo["h"], *memo["before"], *memo["after"]], [h, *before, *after]):
                kept[fresh] = new
        return memo["h"], memo["before"], memo["after"]

    def forward(self, x_t: Tensor, logsnr: Tensor, rays: Tensor | None = None, *,
                pose_mask: Tensor | None = None, generator: torch.Generator | None = None,
                dropout_seeds: Tensor | None = None, cache: dict | None = None,
                needed: Tensor | None = None) -> Tensor:
        """x_t: [B, T, C, H, W]; logsnr: [B, T]; rays: [B, T, H, W, ray_channels] | None -> v [B, T, C, H, W].
        dropout_seeds: [B] int64, each video's own seed for the block dropout in training (None: torch's global
        RNG); the trainer passes each sequence's seed so that the masks do not depend on the process count.
        cache: a dict kept across calls with the same ``rays`` (the sampler keeps one per run): the pose part of
        every block's FiLM is computed on the first call and reused (:meth:`ray_cache_bytes` of memory), and so is
        the down path of the per-frame levels for every frame whose input and noise level are the same as in the
        last call, e.g. clean context (:meth:`frame_cache_bytes`; no gradient recorded).
        needed: [B, T] bool, the frames whose output the caller reads (the sampler's: the frames it is denoising).
        Below the transformer levels the up path runs for those frames only; the others come back as zeros."""
        self._check(x_t, logsnr, rays, pose_mask)
        B = x_t.shape[0]
        if dropout_seeds is not None:
            require(tuple(dropout_seeds.shape) == (B,) and not dropout_seeds.is_floating_point(), "dropout_seeds",
                    f"[B] = ({B},) integers", (tuple(dropout_seeds.shape), str(dropout_seeds.dtype)))
        c = self.config
        B, T = x_t.shape[:2]
        levels = len(c.channels)
        rows = self._needed_rows(needed, B, T)
        if rows is not None and rows.numel() == 0:
            return torch.zeros_like(x_t)
        x = rearrange(x_t, "b t c h w -> (b t) c h w")
        dtype = self._input_dtype(self.embed_input.proj.weight, x.device.type)
        keep = None if rays is None else self._pose_keep(B, x.device, pose_mask, generator)
        given_rays = rays
        if c.cue != "none":  # the cue joins the frames (zeros = no cue, as a dropped pose drops it)
            if rays is None:
                cue = x.new_zeros(B * T, CUE_CHANNELS[c.cue], c.height, c.width)
            else:
                rays, cue = rays[..., :c.ray_channels], rays[..., c.ray_channels:]
                if keep is not None:
                    cue = cue * keep.to(cue.dtype)[:, None, None, None, None]
                cue = rearrange(cue, "b t h w c -> (b t) c h w").to(x.dtype)
            x = torch.cat([x, cue], 1)
        if dtype is not None:
            x = x.to(dtype)

        # With every pose dropped the map is constant in space: sampling skips the pose embedding. Training
        # runs it anyway and zeroes the dropped poses (as DFoT's RandomDropoutPatchEmbed does), so that every
        # process touches every parameter every step whichever poses it drops (DDP / FSDP2 stay in step).
        grads = self.training and torch.is_grad_enabled()
        ray_mods = None
        if rays is not None and cache is not None and not self.training and (keep is None or bool(keep.any())):
            def modulations() -> dict:
                r = rearrange(rays, "b t h w c -> b t c h w")
                return self._ray_modulations(r if dtype is None else r.to(dtype), keep, T)

            ray_mods = self._ray_cached(cache, given_rays, keep, dtype, modulations)
            embs = [self._frame_films(cache, logsnr, dtype)] * levels
        elif rays is not None and (keep is None or grads or bool(keep.any())):
            emb = self.noise_level_pos_embedding(c.noise_scale * logsnr)  # [B, T, E]
            rays = rearrange(rays, "b t h w c -> b t c h w")
            if dtype is not None:
                rays = rays.to(dtype)
            pose = self.external_cond_embedding(rays)
            if keep is not None:
                pose = pose * keep.to(pose.dtype)[:, None, None, None, None]
            emb = rearrange(emb[..., None, None] + pose, "b t c h w -> (b t) c h w")
            embs = [emb if level == 0 else F.avg_pool2d(emb, 2 ** level) for level in range(levels)]
        else:
            emb = rearrange(self.noise_level_pos_embedding(c.noise_scale * logsnr), "b t c -> (b t) c 1 1")
            embs = [emb] * levels

        P = self.per_frame_levels
        if ray_mods is not None and P > 0 and self.cache_frames and not torch.is_grad_enabled():
            memo = self._cached(cache, "frame_cache", given_rays, keep, dtype, dict)
            x, hs_before, hs_after = self._memo_down(memo, x, logsnr.reshape(-1).float(), embs[0], ray_mods, T)
            hs_before, hs_after = list(hs_before), list(hs_after)
        else:
            x, hs_before, hs_after, P = self.embed_input(x), [], [], 0
        for level in range(P, levels - 1):
            down = self.down_blocks[level]
            x = self._run_level(down[:-1], x, embs[level], level, T, dropout_seeds, ray_mods)
            hs_before.append(x)
            x = down[-1](x)
            hs_after.append(x)
        x = self._run_level(self.mid_blocks, x, embs[-1], levels - 1, T, dropout_seeds, ray_mods)
        # The last transformer block before the per-frame levels computes the needed frames only (the others are
        # still its keys and values); then ``x_rows`` are the needed frames' rows among those it computed.
        last_frames, x_rows = self._last_frames(needed, rows, T)
        for i, up in enumerate(self.up_blocks):
            level = levels - 2 - i
            after, before, emb_l, mods = hs_after.pop(), hs_before.pop(), embs[level], ray_mods
            if rows is not None and level < self.per_frame_levels:  # per-frame from here on: the needed frames only
                if level == self.per_frame_levels - 1:
                    x = x[x_rows]
                after, before = after[rows], before[rows]
                if ray_mods is None:
                    emb_l = emb_l[rows]
                else:
                    emb_l, mods = _rows_of(emb_l, up[1:], rows), _rows_of(ray_mods, up[1:], rows)
            x = up[0](x - after) + before
            x = self._run_level(up[1:], x, emb_l, level, T, dropout_seeds, mods,
                                last_frames if level == self.per_frame_levels else None)
        out = self.project_output(x)
        if rows is not None and self.per_frame_levels > 0:
            out = out.new_zeros(B * T, *out.shape[1:]).index_copy_(0, rows, out)
        return rearrange(out, "(b t) c h w -> b t c h w", b=B).to(x_t.dtype)


def uvit3d_preset(name: str, **overrides) -> UViT3DPoseConfig:
    check_choice(name, UVIT3D_PRESETS, "U-ViT3D-Pose preset")
    return UVIT3D_PRESETS[name].replace(**overrides)
