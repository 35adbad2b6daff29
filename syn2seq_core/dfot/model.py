"""DiT3D: a diffusion-forcing video transformer with one noise level per frame and camera-ray conditioning.

The denoiser protocol shared by every DFoT network here::

    v = model(x_t, logsnr, rays=None)      # x_t: [B, T, C, H, W] in model space; logsnr: [B, T];
                                           # rays: [B, T, H, W, ray_channels] or None -> v: [B, T, C, H, W]

- ``x_t`` is in model space: the caller normalises frames with ``config.data_mean`` / ``data_std``.
- Each frame has its own noise level; the network embeds ``config.noise_scale * logsnr`` (DFoT's
  ``precond_scale``, 0.125) with Fourier features and an MLP, and conditions every block on it per frame.
- ``rays`` is the per-pixel camera encoding named by ``config.ray_format`` at full image resolution
  (``model.camera_rays(K, c2w)`` computes it). ``rays=None`` means "no pose" and is exactly the same
  as pose dropout: the pose embedding of the video is zero.
- In ``model.train()`` mode whole videos lose their pose embedding with probability
  ``config.pose_dropout``, drawn from ``generator`` (a ``torch.Generator``) if given, else from torch's
  global RNG. ``pose_mask`` ([B] bool, True = no pose) drops poses on purpose, e.g. for the
  unconditional branch of guidance inside one batched call.
- ``cache`` (a dict, optional, outside training): the rays do not change while a window is sampled, so what
  depends only on them (DiT3D: the ray embedding; U-ViT3D-Pose: the ray part of every block's modulation) is
  computed on the first call, stored in the caller's dict and reused while the same ``rays`` tensor object
  (unmodified) comes back with the same ``pose_mask``, dtype and autocast. The sampler keeps one dict per
  sampling run; pass a fresh dict (or none) for other rays. Outputs equal the uncached ones up to float rounding.

Architecture: patchify (linear over ``p x p x C``), ray patches embedded the same way and added per
token, 3D RoPE (or factorised learned position embeddings), blocks with adaLN-zero modulation per frame,
attention ``"full"`` over all ``T h w`` tokens or ``"factorized"`` (within each frame, then across frames
at each patch position), both through ``F.scaled_dot_product_attention``; a zero-initialised output layer
(so ``v = 0`` at init). Built from :class:`DiT3DConfig`; every weight layer comes from ``operations``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base.errors import Syn2SeqInputError, check_choice, require
from .embeddings import (NoiseLevelEmbedding, RayPatchEmbed, RMSNorm, apply_rope_complex, autocast_enabled, layer_norm,
                         rope_3d_axis_dims, rope_3d_tables, rope_rotation)
from .ops import resolve

ATTENTION_KINDS = ("full", "factorized")
POS_EMB_KINDS = ("rope3d", "learned")
RAY_FORMATS = ("plucker_dm", "plucker_md", "dfot_ray_encoding")
# Extra per-pixel conditioning beside the rays, embedded with them: "depth_warp" = the source view splatted into
# each frame's camera by its depth (RGB in model space + coverage; ``Syn2SeqSequence.with_depth_cue``).
CUE_CHANNELS = {"none": 0, "depth_warp": 4}


@dataclass(frozen=True)
class DiT3DConfig:
    """Configuration of :class:`DiT3D` (stored as JSON next to the weights).

    height, width: frame size in pixels (model space); patch_size: pixels per token side;
    dim / depth / heads / mlp_ratio: transformer width, blocks, attention heads, MLP width ratio;
    max_frames: the window (largest T); attention: "full" or "factorized"; pos_emb: "rope3d" or "learned";
    ray_channels / ray_format: the camera input; cue: extra conditioning embedded with the rays (``CUE_CHANNELS``;
    the network's ``rays`` input then has ``ray_channels + CUE_CHANNELS[cue]`` channels, :attr:`cond_channels`);
    pose_dropout: per-video pose dropout in training (drops the cue too);
    noise_scale: logSNR multiplier before the Fourier features; noise_features: number of those features;
    data_mean / data_std: per-channel normalisation of [0, 1] frames into model space (used by callers).
    """

    arch: ClassVar[str] = "dit3d"

    height: int = 32
    width: int = 32
    in_channels: int = 3
    patch_size: int = 4
    dim: int = 192
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    max_frames: int = 20
    attention: str = "factorized"
    pos_emb: str = "rope3d"
    rope_theta: float = 10000.0
    qk_norm: bool = True
    ray_channels: int = 6
    ray_format: str = "plucker_dm"
    cue: str = "none"
    pose_dropout: float = 0.1
    noise_scale: float = 0.125
    noise_features: int = 256
    data_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    data_std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self):
        check_choice(self.attention, ATTENTION_KINDS, "attention")
        check_choice(self.pos_emb, POS_EMB_KINDS, "pos_emb")
        check_choice(self.ray_format, RAY_FORMATS, "ray_format")
        check_choice(self.cue, CUE_CHANNELS, "cue")
        for name in ("height", "width", "in_channels", "patch_size", "dim", "depth", "heads", "max_frames",
                     "ray_channels", "noise_features"):
            require(int(getattr(self, name)) > 0, name, "a positive integer", getattr(self, name))
        p = self.patch_size
        require(self.height % p == 0 and self.width % p == 0, "height, width",
                f"multiples of patch_size {p}", (self.height, self.width))
        require(self.dim % self.heads == 0, "dim", f"a multiple of heads ({self.heads})", self.dim)
        if self.pos_emb == "rope3d":
            rope_3d_axis_dims(self.dim // self.heads)  # raises on an unusable head size
        require(0.0 <= self.pose_dropout <= 1.0, "pose_dropout", "a probability in [0, 1]", self.pose_dropout)
        require(len(self.data_mean) == self.in_channels and len(self.data_std) == self.in_channels,
                "data_mean, data_std", f"{self.in_channels} values each", (self.data_mean, self.data_std))

    @property
    def grid(self) -> tuple[int, int]:
        """Tokens per frame side: (H / p, W / p)."""
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def cond_channels(self) -> int:
        """Channels of the network's ``rays`` input: the rays, then the cue."""
        return self.ray_channels + CUE_CHANNELS[self.cue]

    def replace(self, **changes) -> "DiT3DConfig":
        return dataclasses.replace(self, **changes)


# Named configurations. "tiny" is the CPU model (about 6M parameters, 64 tokens per frame); "small" a
# larger CPU-affordable one; "large" a GPU model at 256x256 (DiT-L width, factorized attention).
DIT3D_PRESETS: dict[str, DiT3DConfig] = {
    "tiny": DiT3DConfig(),
    "small": DiT3DConfig(height=64, width=64, patch_size=4, dim=384, depth=8, heads=6, max_frames=16),
    "large": DiT3DConfig(height=256, width=256, patch_size=8, dim=1024, depth=24, heads=16, max_frames=16),
}


def dit3d_preset(name: str, **overrides) -> DiT3DConfig:
    """A named configuration of :data:`DIT3D_PRESETS`, with some fields replaced."""
    check_choice(name, DIT3D_PRESETS, "DiT3D preset")
    return DIT3D_PRESETS[name].replace(**overrides)


# --- blocks ----------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Fused-QKV multi-head self-attention with optional QK RMS norm and 3D RoPE."""

    def __init__(self, dim: int, heads: int, qk_norm: bool, ops, device=None, dtype=None):
        super().__init__()
        self.heads = heads
        self.qkv = ops.Linear(dim, 3 * dim, device=device, dtype=dtype)
        self.out = ops.Linear(dim, dim, device=device, dtype=dtype)
        head_dim = dim // heads
        self.q_norm = RMSNorm(head_dim, device=device, dtype=dtype) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, device=device, dtype=dtype) if qk_norm else None

    def _qkv(self, x: Tensor, rope: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """x: [B, T, S, D] -> q, k, v: [B, T, S, heads, head_dim] each (views where possible)."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).unbind(-3)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:  # complex rotation [T, S, 1, head_dim / 2]
            q, k = apply_rope_complex(q, rope), apply_rope_complex(k, rope)
        return q, k, v

    def forward(self, x: Tensor, mode: str, rope: Tensor | None) -> Tensor:
        """x: [B, T, S, D]; mode "full" | "spatial" | "temporal" -> [B, T, S, D]."""
        B, T, S, _ = x.shape
        q, k, v = self._qkv(x, rope)
        if mode == "spatial":  # attend within each frame
            q, k, v = (rearrange(t, "b t s h d -> (b t) h s d") for t in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v)
            o = rearrange(o, "(b t) h s d -> b t s (h d)", b=B)
        elif mode == "temporal":  # attend across frames at each patch position
            q, k, v = (rearrange(t, "b t s h d -> (b s) h t d") for t in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v)
            o = rearrange(o, "(b s) h t d -> b t s (h d)", b=B)
        else:
            q, k, v = (rearrange(t, "b t s h d -> b h (t s) d") for t in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v)
            o = rearrange(o, "b h (t s) d -> b t s (h d)", t=T)
        return self.out(o)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """LayerNorm(x) * (1 + scale) + shift, with shift / scale broadcast per frame."""
    return torch.addcmul(shift, layer_norm(x), 1 + scale)


class DiTBlock(nn.Module):
    """adaLN-zero block: [attention (full) | spatial + temporal attention (factorized)] + MLP.

    The modulation (shift, scale, gate per sub-layer) comes from the frame's noise embedding, so all
    tokens of a frame share it; the gates start at zero, so the block starts as the identity.
    """

    def __init__(self, config: DiT3DConfig, ops, device=None, dtype=None):
        super().__init__()
        dim = config.dim
        self.factorized = config.attention == "factorized"
        self.n_mod = 9 if self.factorized else 6
        self.modulation = ops.Linear(dim, self.n_mod * dim, device=device, dtype=dtype)
        self.attn = SelfAttention(dim, config.heads, config.qk_norm, ops, device, dtype)
        self.temporal_attn = (SelfAttention(dim, config.heads, config.qk_norm, ops, device, dtype)
                              if self.factorized else None)
        hidden = int(round(dim * config.mlp_ratio))
        self.mlp_in = ops.Linear(dim, hidden, device=device, dtype=dtype)
        self.mlp_out = ops.Linear(hidden, dim, device=device, dtype=dtype)

    def forward(self, x: Tensor, c: Tensor, rope) -> Tensor:
        """x: [B, T, S, D]; c: [B, T, D] (SiLU of the noise embedding) -> [B, T, S, D]."""
        mods = self.modulation(c)[:, :, None].chunk(self.n_mod, -1)  # each [B, T, 1, D]
        if self.factorized:
            x = torch.addcmul(x, mods[2], self.attn(_modulate(x, mods[0], mods[1]), "spatial", rope))
            x = torch.addcmul(x, mods[5], self.temporal_attn(_modulate(x, mods[3], mods[4]), "temporal", rope))
            shift, scale, gate = mods[6:9]
        else:
            x = torch.addcmul(x, mods[2], self.attn(_modulate(x, mods[0], mods[1]), "full", rope))
            shift, scale, gate = mods[3:6]
        h = self.mlp_in(_modulate(x, shift, scale))
        return torch.addcmul(x, gate, self.mlp_out(F.gelu(h)))


class VideoDenoiser(nn.Module):
    """What every network of the denoiser protocol shares: input checks and per-video pose dropout.
    Subclasses set ``self.config`` (with height, width, in_channels, max_frames, ray_channels, ray_format,
    pose_dropout)."""

    # The dtype the forward computes in outside autocast; None = the dtype of the weights. A host whose layers
    # cast their weights on the fly (ComfyUI's ``manual_cast`` operations) sets it, e.g. float32 compute over
    # bfloat16 / float16 storage.
    compute_dtype: torch.dtype | None = None
    # Activation checkpointing (training only): each transformer block / ResBlock keeps only its input and
    # recomputes its activations in the backward pass; less memory for about a third more compute.
    checkpoint_blocks: bool = False
    # Pose dropout drawn inside the forward pass (from the global RNG). A trainer that draws it per sequence
    # itself (and passes ``pose_mask``) turns this off.
    random_pose_dropout: bool = True

    def _block(self, block: nn.Module, *args) -> Tensor:
        """``block(*args)``, under activation checkpointing when it is on and gradients are being recorded."""
        if self.checkpoint_blocks and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _input_dtype(self, weight: Tensor, device_type: str) -> torch.dtype | None:
        """The dtype to cast the network input to (None: leave it; autocast or integer weights decide)."""
        if not weight.is_floating_point() or autocast_enabled(device_type):
            return None
        return self.compute_dtype or weight.dtype

    def _check(self, x_t: Tensor, logsnr: Tensor, rays: Tensor | None, pose_mask: Tensor | None) -> None:
        c = self.config
        if x_t.ndim != 5 or tuple(x_t.shape[2:]) != (c.in_channels, c.height, c.width) or not (
                1 <= x_t.shape[1] <= c.max_frames):
            raise Syn2SeqInputError("x_t", f"[B, T<={c.max_frames}, {c.in_channels}, {c.height}, {c.width}]",
                                    tuple(x_t.shape))
        B, T = x_t.shape[:2]
        require(tuple(logsnr.shape) == (B, T), "logsnr", f"[B, T] = {(B, T)}", tuple(logsnr.shape))
        if rays is not None:
            want = (B, T, c.height, c.width, c.cond_channels)
            require(tuple(rays.shape) == want, "rays", f"{list(want)} ({c.ray_format}"
                    + (f" + {c.cue} cue)" if c.cue != "none" else ")"), tuple(rays.shape))
        if pose_mask is not None:
            require(tuple(pose_mask.shape) == (B,), "pose_mask", f"[B] = ({B},)", tuple(pose_mask.shape))

    def _ray_cached(self, cache: dict | None, rays: Tensor, keep: Tensor | None, dtype, build):
        """``build()`` (tensors that depend only on ``rays`` and ``keep``, not on ``x_t`` or the noise level), kept
        in the caller's ``cache`` dict and reused while the same ``rays`` tensor (the same object, unmodified) comes
        back with the same kept poses under the same dtype and autocast; computed afresh without a cache, in
        training (where pose dropout is drawn per call) and while gradients are recorded (a kept graph could be
        backpropagated only once)."""
        if cache is None or self.training or torch.is_grad_enabled():
            return build()
        return self._cached(cache, "ray_cache", rays, keep, dtype, build)

    def _cached(self, cache: dict, name: str, rays: Tensor, keep: Tensor | None, dtype, build):
        """``cache[(name, id(self))]``: ``build()`` while the same ``rays`` tensor (unmodified) comes back with the
        same kept poses, dtype and autocast, built afresh otherwise."""
        device_type = rays.device.type
        autocast = autocast_enabled(device_type)
        signature = (tensor_version(rays), None if keep is None else tuple(keep.tolist()), dtype, autocast,
                     torch.get_autocast_dtype(device_type) if autocast else None)
        key = (name, id(self))
        entry = cache.get(key)
        if entry is not None and entry[0] is self and entry[1] is rays and entry[2] == signature:
            return entry[3]
        value = build()
        cache[key] = (self, rays, signature, value)
        return value

    def sampling_cache_bytes(self, frames: int, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes a sampling run keeps in its ``cache`` between steps (``itemsize``: 2 under bf16 autocast)."""
        return self.ray_cache_bytes(frames, batch, itemsize)

    def _needed_rows(self, needed: Tensor | None, B: int, T: int) -> Tensor | None:
        """The flat ``(b t)`` indices of the frames whose output the caller reads (``needed`` [B, T] bool); None
        when it reads them all (or gives no ``needed``)."""
        if needed is None:
            return None
        require(tuple(needed.shape) == (B, T) and needed.dtype == torch.bool, "needed", f"a [B, T] = {(B, T)} bool "
                "tensor (the frames whose output is read)", (tuple(needed.shape), str(needed.dtype)))
        if bool(needed.all()):
            return None
        return needed.reshape(-1).nonzero().squeeze(1)

    def _pose_keep(self, B: int, device, pose_mask, generator) -> Tensor | None:
        """[B] float: 1 where the video keeps its pose, else 0; None when every video keeps it."""
        drop = None
        if pose_mask is not None:
            drop = pose_mask.to(device=device, dtype=torch.bool)
        if self.training and self.config.pose_dropout > 0 and self.random_pose_dropout:
            gen_device = generator.device if generator is not None else device
            u = torch.rand(B, generator=generator, device=gen_device).to(device)
            random_drop = u < self.config.pose_dropout
            drop = random_drop if drop is None else drop | random_drop
        return None if drop is None else (~drop).float()


class DiT3D(VideoDenoiser):
    """The diffusion-forcing video transformer. See the module docstring for the forward protocol."""

    def __init__(self, config: DiT3DConfig, operations=None, device=None, dtype=None):
        super().__init__()
        self.config = config
        ops = resolve(operations)
        c, p, dim = config, config.patch_size, config.dim
        self.noise_embedding = NoiseLevelEmbedding(c.noise_features, dim, ops, device, dtype)
        self.patch_embed = ops.Linear(p * p * c.in_channels, dim, device=device, dtype=dtype)
        self.ray_embed = RayPatchEmbed(c.cond_channels, p, dim, ops, device, dtype)
        if c.pos_emb == "learned":
            self.pos_frame = nn.Parameter(torch.zeros(c.max_frames, dim, device=device, dtype=dtype))
            self.pos_patch = nn.Parameter(torch.zeros(c.grid[0] * c.grid[1], dim, device=device, dtype=dtype))
        self.blocks = nn.ModuleList(DiTBlock(c, ops, device, dtype) for _ in range(c.depth))
        self.final_modulation = ops.Linear(dim, 2 * dim, device=device, dtype=dtype)
        self.final = ops.Linear(dim, p * p * c.in_channels, device=device, dtype=dtype)
        if not (device is not None and torch.device(device).type == "meta"):
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DiT init: Xavier linears, N(0, 0.02) embeddings, zero adaLN modulations and output layer."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for lin in (self.noise_embedding.embedding.linear_1, self.noise_embedding.embedding.linear_2):
            nn.init.normal_(lin.weight, std=0.02)
        if self.config.pos_emb == "learned":
            nn.init.normal_(self.pos_frame, std=0.02)
            nn.init.normal_(self.pos_patch, std=0.02)
        for lin in [b.modulation for b in self.blocks] + [self.final_modulation, self.final]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    # -- camera input --------------------------------------------------------------------------------
    def camera_rays(self, K: Tensor, c2w: Tensor) -> Tensor:
        """The ray input this model expects: K [B, T, 4], c2w [B, T, 4, 4] -> [B, T, H, W, ray_channels].

        Plücker rays (``geometry.plucker_rays``) for ``plucker_*`` formats, used as given (the caller makes
        poses relative to the sequence's reference camera); DFoT's encoding (relative to frame 0 of the
        window) for ``dfot_ray_encoding``.
        """
        from .embeddings import dfot_ray_encoding

        c = self.config
        if c.ray_format == "dfot_ray_encoding":
            return dfot_ray_encoding(K, c2w, c.height, c.width)
        from ..geometry.plucker import plucker_rays

        return plucker_rays(K, c2w, c.height, c.width, order=c.ray_format[-2:])

    def activation_bytes(self, frames: int, batch: int = 1) -> int:
        """Bytes of the tensors alive at the peak of one forward (no grad, fused attention, float32 activations)
        over ``batch`` videos of ``frames`` frames, beyond the inputs: the residual stream and the widest sub-layer
        (QKV or MLP hidden) per token, plus the patched input and the output. Checked against a count of live tensors."""
        c = self.config
        tokens = batch * frames * c.grid[0] * c.grid[1]
        hidden = int(round(c.dim * c.mlp_ratio))
        pixels = batch * frames * c.height * c.width * 2 * c.in_channels  # the patched input and the output
        return 4 * (tokens * (4 * c.dim + 2 * hidden) + pixels)

    def ray_cache_bytes(self, frames: int, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes of the ray cache of a sampling run (the ray embedding, see ``forward``'s ``cache``) over ``batch``
        videos of ``frames`` frames, ``itemsize`` bytes a number (2 under bf16 autocast)."""
        c = self.config
        return batch * frames * c.grid[0] * c.grid[1] * c.dim * itemsize

    # -- forward -------------------------------------------------------------------------------------
    def rope(self, frames: int, device) -> Tensor | None:
        """Complex RoPE rotations [T, S, 1, head_dim / 2] for ``frames`` frames (None without RoPE)."""
        c = self.config
        if c.pos_emb != "rope3d":
            return None
        cos, sin = rope_3d_tables(c.head_dim, frames, *c.grid, theta=c.rope_theta, device=device)
        return rope_rotation(cos, sin).flatten(1, 2)[:, :, None]

    def forward(self, x_t: Tensor, logsnr: Tensor, rays: Tensor | None = None, *,
                pose_mask: Tensor | None = None, generator: torch.Generator | None = None,
                cache: dict | None = None, needed: Tensor | None = None) -> Tensor:
        """x_t: [B, T, C, H, W]; logsnr: [B, T]; rays: [B, T, H, W, ray_channels] | None -> v [B, T, C, H, W].
        cache: a dict the caller keeps across calls with the same ``rays`` tensor (the sampler keeps one per
        sampling run): the ray embedding is computed once and reused (see the module docstring).
        needed: [B, T] bool, the frames whose output the caller reads (the protocol's; every block here mixes all
        frames, so the DiT3D computes every frame whatever it says)."""
        self._check(x_t, logsnr, rays, pose_mask)
        c, p = self.config, self.config.patch_size
        B, T = x_t.shape[:2]
        self._needed_rows(needed, B, T)
        gh, gw = c.grid
        x = rearrange(x_t, "b t c (h p1) (w p2) -> b t (h w) (p1 p2 c)", p1=p, p2=p)
        dtype = self._input_dtype(self.patch_embed.weight, x.device.type)
        if dtype is not None:
            x = x.to(dtype)
        x = self.patch_embed(x)  # [B, T, S, D]
        if rays is not None:
            keep = self._pose_keep(B, x.device, pose_mask, generator)

            def pose_embedding() -> Tensor:
                pose = self.ray_embed(rays)
                return pose if keep is None else pose * keep.to(pose.dtype)[:, None, None, None]

            x = x + self._ray_cached(cache, rays, keep, dtype, pose_embedding)
        if c.pos_emb == "learned":
            x = x + self.pos_frame[:T, None].to(x.device, x.dtype) + self.pos_patch.to(x.device, x.dtype)
        emb = F.silu(self.noise_embedding(c.noise_scale * logsnr))  # [B, T, D]
        rope = self.rope(T, x.device)
        for block in self.blocks:
            x = self._block(block, x, emb, rope)
        shift, scale = self.final_modulation(emb)[:, :, None].chunk(2, -1)
        out = self.final(_modulate(x, shift, scale))
        out = rearrange(out, "b t (h w) (p1 p2 c) -> b t c (h p1) (w p2)", h=gh, w=gw, p1=p, p2=p)
        return out.to(x_t.dtype) if x_t.is_floating_point() else out


def tensor_version(t: Tensor) -> int | None:
    """``t``'s in-place version counter, or None for an inference tensor (made under ``torch.inference_mode``, as
    ComfyUI runs every node), which has none and cannot be modified outside inference mode; a cache keyed on it
    then relies on the tensor's identity alone."""
    return None if t.is_inference() else t._version


def cue_weights(state: dict, config) -> dict:
    """The weights of a DiT3D without a cue (or with fewer cue channels) for ``config``'s network with one: the
    ray embedding's missing input columns are zeros, so the network starts out computing exactly what the given
    one did and learns to read the cue. Weights that already fit pass through unchanged. A U-ViT3D-Pose reads its
    cue with the frames: its input convolution's missing input channels are zeros (``config.arch``)."""
    if config.arch == "uvit3d_pose":
        key, want = "embed_input.proj.weight", config.in_channels + CUE_CHANNELS[config.cue]
        w = state.get(key)
        if w is None or w.shape[1] == want:
            return state
        require(w.ndim == 4 and w.shape[1] < want, key, f"[C, c <= {want}, p, p]", tuple(w.shape))
        return {**state, key: torch.cat([w, w.new_zeros(w.shape[0], want - w.shape[1], *w.shape[2:])], 1)}
    key = "ray_embed.proj.weight"
    w = state.get(key)
    p, want = config.patch_size, config.cond_channels
    if w is None or w.shape[1] == p * p * want:
        return state
    have = w.shape[1] // (p * p)
    require(w.shape[1] == p * p * have and have <= want, key, f"[{config.dim}, {p}*{p}*c] with c <= {want}",
            tuple(w.shape))
    grown = w.new_zeros(w.shape[0], p * p, want)
    grown[:, :, :have] = w.reshape(w.shape[0], p * p, have)  # patches are (p1 p2 c): channels innermost
    return {**state, key: grown.reshape(w.shape[0], p * p * want)}


def full_attention_weights(state: dict, dim: int) -> dict:
    """The weights of a factorized-attention DiT3D for the same network with ``attention = "full"``.

    Each block keeps its spatial attention, which then attends over the tokens of every frame (3D RoPE still
    tells frames apart), its MLP, and the modulation rows of both (shift/scale/gate 0-2 and 6-8 of 9); the
    temporal attention and its rows 3-5 are dropped. A finetune starts from a model that differs from the
    factorized one only in what each frame's attention may see, instead of from scratch. Full-attention
    weights pass through unchanged.
    """
    out = {}
    for key, value in state.items():
        if ".temporal_attn." in key:
            continue
        if key.endswith(".modulation.weight") or key.endswith(".modulation.bias"):
            if value.shape[0] == 9 * dim:
                value = torch.cat([value[: 3 * dim], value[6 * dim:]])
        out[key] = value
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def transformer_flops(config: DiT3DConfig, frames: int, batch: int = 1) -> float:
    """Analytic multiply-add FLOPs (x2) of one DiT3D forward: linear layers + attention matmuls."""
    c = config
    S = c.grid[0] * c.grid[1]
    N = batch * frames * S
    hidden = int(round(c.dim * c.mlp_ratio))
    n_attn = 2 if c.attention == "factorized" else 1
    per_token = n_attn * 4 * c.dim * c.dim + 2 * c.dim * hidden
    linear = 2 * N * per_token * c.depth
    if c.attention == "factorized":
        attn = 2 * 2 * batch * (frames * S * S + S * frames * frames) * c.dim * c.depth
    else:
        attn = 2 * 2 * batch * (frames * S) ** 2 * c.dim * c.depth
    embed = 2 * N * c.dim * (c.patch_size ** 2) * (c.in_channels * 2 + c.cond_channels)
    return float(linear + attn + embed)
