"""Wan first-last-frame-to-video ("WFLF") output -> ``n`` transition frames. Pure helpers, no model.

Wan 2.x generates ``L = 4k + 1`` frames (its VAE compresses time 4x) whose first and last frames
reproduce the given first and last images. The transition of a Syn2Seq sequence needs ``n`` frames
strictly between them, at the times ``t_k = k / (n + 1)`` that SLERP gives the transition cameras, so
frame ``i`` of the Wan clip (time ``i / (L - 1)``) is matched to times by index:

* :func:`wan_length` picks the shortest ``4k + 1`` length that has at least ``n`` inner frames;
* :func:`wan_transition_indices` gives, for each ``t_k``, the nearest Wan frame, endpoints excluded;
* :func:`wan_to_transition` applies them (``mode="nearest"``), or blends the two Wan frames around
  each ``t_k`` (``mode="linear"``); :func:`wan_frames_at` does the same for any times in (0, 1);
* :func:`wan_size` picks the frame size Wan is run at (multiples of its VAE x patch factor).

Colour drift: a Wan clip reproduces its endpoints but tends to drift in colour between them (a cast or
a fade that neither endpoint has). :func:`color_drift` measures it and :func:`match_color` removes it, by
giving every transition frame the per-channel mean and standard deviation interpolated linearly in time
between those of the two endpoints (a global transfer in the manner of Reinhard et al. 2001). It works
in CIE Lab by default (``space="lab"``): Lab separates lightness from the two colour-opponent axes and is
roughly perceptually uniform, so scaling one axis changes contrast or saturation without turning hues,
whereas the R, G and B channels of natural images are strongly correlated, and matching each one's
spread on its own tints shadows and highlights differently. ``space="rgb"`` is there for comparison and
for exact, conversion-free checks.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor

from ..base.errors import check_choice, require
from .base import check_count, check_frames

WAN_TEMPORAL_STRIDE = 4  # L = 4k + 1
WAN_MIN_LENGTH = 5
WAN_DEFAULT_LENGTH = 81  # Wan 2.1 FLF2V default (5 s at 16 fps)
MODES = ("nearest", "linear")
COLOR_SPACES = ("lab", "rgb")
DEFAULT_COLOR_SPACE = "lab"
# match_color: a frame's spread is scaled by at most this factor either way (a flat frame has almost no
# spread, and scaling it up to an endpoint's would only amplify noise); its mean is always matched.
MAX_COLOR_GAIN = 4.0
COLOR_STD_EPS = 1e-6


def wan_length(n: int, minimum: int = WAN_MIN_LENGTH) -> int:
    """The shortest Wan clip length ``4k + 1 >= max(n + 2, minimum)``: n inner frames plus both endpoints."""
    n = check_count(n)
    require(isinstance(minimum, int) and minimum >= 1, "minimum", "an int >= 1", minimum)
    need = max(n + 2, minimum)
    return WAN_TEMPORAL_STRIDE * math.ceil((need - 1) / WAN_TEMPORAL_STRIDE) + 1


def wan_transition_indices(length: int, n: int) -> list[int]:
    """Indices into a Wan clip of ``length`` frames nearest to ``t_k = k / (n + 1)``, k = 1..n.

    Strictly increasing and within ``1 .. length - 2`` (endpoints dropped); needs ``length >= n + 2``.
    """
    n = check_count(n)
    require(isinstance(length, int) and length >= n + 2, "Wan clip length",
            f"at least n + 2 = {n + 2} frames (n inner frames and both endpoints)", length,
            f"Generate {wan_length(n)} frames (wan_length(n)) or ask for fewer transition frames")
    # t_k (L - 1) is spaced by (L - 1) / (n + 1) >= 1, so rounding half up keeps the indices distinct.
    return [math.floor(k * (length - 1) / (n + 1) + 0.5) for k in range(1, n + 1)]


def wan_to_transition(frames: Tensor, n: int, mode: str = "nearest") -> Tensor:
    """``n`` transition frames from a Wan first-last-frame clip. frames: ``[L, 3, H, W]`` -> ``[n, 3, H, W]``.

    ``frames[0]`` and ``frames[-1]`` are the endpoints and are never returned. ``mode="nearest"`` keeps
    Wan's own frames (sharp; time off by at most half a Wan frame); ``"linear"`` cross-fades the two Wan
    frames around each ``t_k`` (exact time, slightly softer).
    """
    frames = check_frames(frames, "Wan frames", ndims=(4,))
    n = check_count(n)
    check_choice(mode, MODES, "mode")
    length = len(frames)
    if mode == "nearest":
        return frames[wan_transition_indices(length, n)].clone()
    wan_transition_indices(length, n)  # same length check
    pos = torch.arange(1, n + 1, dtype=torch.float64) * (length - 1) / (n + 1)
    lo = pos.floor().long().clamp(1, length - 2)
    hi = (lo + 1).clamp(max=length - 2)
    w = (pos - lo).to(frames.dtype).view(-1, 1, 1, 1)  # pos <= length - 2, so w = 0 wherever hi == lo
    return (1 - w) * frames[lo] + w * frames[hi]


def wan_frames_at(frames: Tensor, times: Tensor, mode: str = "nearest") -> Tensor:
    """Frames of a Wan clip at any ``times`` in (0, 1). frames: ``[L, 3, H, W]``; times: ``[n]`` -> ``[n, 3, H, W]``.

    Frame ``i`` sits at time ``i / (L - 1)``; the endpoints (``i = 0`` and ``L - 1``) are never used, as in
    :func:`wan_to_transition`, which this equals for ``times = k / (n + 1)``.
    """
    frames = check_frames(frames, "Wan frames", ndims=(4,))
    check_choice(mode, MODES, "mode")
    times = torch.as_tensor(times, dtype=torch.float64).flatten()
    require(bool(((times > 0) & (times < 1)).all()), "times", "values in (0, 1)", times.tolist())
    length = len(frames)
    require(length >= 3, "Wan clip length", "at least 3 frames (one besides both endpoints)", length)
    pos = times * (length - 1)
    if mode == "nearest":
        idx = torch.floor(pos + 0.5).long().clamp(1, length - 2)
        return frames[idx].clone()
    lo = pos.floor().long().clamp(1, length - 2)
    hi = (lo + 1).clamp(max=length - 2)
    w = (pos - lo).clamp(0, 1).to(frames.dtype).view(-1, 1, 1, 1)
    w = torch.where((hi == lo).view(-1, 1, 1, 1), torch.zeros_like(w), w)
    return (1 - w) * frames[lo] + w * frames[hi]


def wan_size(height: int, width: int, multiple: int | tuple[int, int] = 16, max_area: int | None = None) -> tuple[int, int]:
    """The ``(height, width)`` to run Wan at for a ``height x width`` input: the aspect ratio kept, scaled
    down (never up) to at most ``max_area`` pixels, each side rounded to the nearest multiple of
    ``multiple`` (``(mh, mw)`` or one int: Wan's VAE factor times its patch size) and at least one multiple."""
    mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
    for v, name in ((height, "height"), (width, "width"), (mh, "multiple"), (mw, "multiple")):
        require(isinstance(v, int) and v >= 1, name, "an int >= 1", v)
    require(max_area is None or (isinstance(max_area, int) and max_area >= mh * mw), "max_area",
            f"None or an int >= {mh * mw} (one {mh}x{mw} block)", max_area)
    scale = 1.0 if max_area is None else min(1.0, math.sqrt(max_area / (height * width)))
    h = max(mh, math.floor(height * scale / mh + 0.5) * mh)
    w = max(mw, math.floor(width * scale / mw + 0.5) * mw)
    if max_area is not None:  # rounding up may overshoot the area by a row or a column of blocks
        while h * w > max_area and (h > mh or w > mw):
            if (h > mh and h / mh >= w / mw) or w <= mw:
                h -= mh
            else:
                w -= mw
    return h, w


def _to_space(x: Tensor, space: str) -> Tensor:
    """[..., 3, H, W] RGB in [0, 1] -> the same layout in ``space`` (float32)."""
    x = x.float()
    if space == "rgb":
        return x
    from kornia.color import rgb_to_lab

    return rgb_to_lab(x.clamp(0.0, 1.0))


def _from_space(x: Tensor, space: str) -> Tensor:
    if space == "rgb":
        return x.clamp(0.0, 1.0)
    from kornia.color import lab_to_rgb

    return lab_to_rgb(x, clip=True)


def _stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over the pixels: [..., 3, H, W] -> ([..., 3], [..., 3])."""
    flat = x.flatten(-2)
    return flat.mean(-1), flat.std(-1, unbiased=False)


def _color_inputs(frames: Tensor, first: Tensor, last: Tensor, times, space: str):
    """Check and batch the inputs of match_color / color_drift: frames [B, n, 3, H, W], first/last [B, 3, h, w]."""
    check_choice(space, COLOR_SPACES, "color space")
    batched = isinstance(frames, Tensor) and frames.ndim == 5
    if batched:
        b = frames.shape[0]
        frames = rearrange(check_frames(rearrange(frames, "b n c h w -> (b n) c h w"), "frames", ndims=(4,)),
                           "(b n) c h w -> b n c h w", b=b)
    else:
        frames = check_frames(frames, "frames", ndims=(4,))
    first = check_frames(first, "first", ndims=(4,) if batched else (3,))
    last = check_frames(last, "last", ndims=(4,) if batched else (3,))
    fb, lb = (first, last) if batched else (first[None], last[None])
    vb = frames if batched else frames[None]
    times = torch.as_tensor(times, dtype=torch.float64).flatten()
    require(len(times) == vb.shape[1], "times", f"one time per frame ({vb.shape[1]})", len(times))
    require(bool(((times >= 0) & (times <= 1)).all()), "times", "values in [0, 1]", times.tolist())
    require(fb.shape[0] == vb.shape[0] and lb.shape[0] == vb.shape[0], "first/last",
            f"{vb.shape[0]} image(s) each (one per clip)", (fb.shape[0], lb.shape[0]))
    return vb, fb, lb, times, batched


def _target_stats(first: Tensor, last: Tensor, times: Tensor, space: str) -> tuple[Tensor, Tensor]:
    """Endpoint statistics interpolated in time: first/last [B, 3, h, w], times [n] -> ([B, n, 3], [B, n, 3])."""
    (ma, sa), (mb, sb) = _stats(_to_space(first, space)), _stats(_to_space(last, space))
    t = times.to(torch.float32).view(1, -1, 1)
    return (1 - t) * ma[:, None] + t * mb[:, None], (1 - t) * sa[:, None] + t * sb[:, None]


def color_drift(frames: Tensor, first: Tensor, last: Tensor, times, space: str = DEFAULT_COLOR_SPACE) -> Tensor:
    """How far each frame's colour is from where the endpoints say it should be.

    frames: ``[n, 3, H, W]`` (or ``[B, n, 3, H, W]``) at ``times`` ``[n]``; first, last: ``[3, h, w]`` (or
    ``[B, 3, h, w]``), float RGB in [0, 1]. Returns ``[n]`` (or ``[B, n]``) float32: the mean over the three
    channels of ``|mean(frame) - ((1 - t) mean(first) + t mean(last))|``, in ``space`` (Lab: L in 0..100,
    a and b in about -100..100; RGB: in units of [0, 1]). A cross-fade of the endpoints has drift 0 in
    RGB, and a little above 0 in Lab (the mean of a blend's Lab values is not the blend of their means).
    """
    vb, fb, lb, times, batched = _color_inputs(frames, first, last, times, space)
    mean, _ = _stats(_to_space(vb, space))
    target, _ = _target_stats(fb, lb, times, space)
    drift = (mean - target).abs().mean(-1)
    return drift if batched else drift[0]


def match_color(frames: Tensor, first: Tensor, last: Tensor, times, space: str = DEFAULT_COLOR_SPACE) -> Tensor:
    """Remove colour drift: give each frame the endpoints' channel statistics interpolated to its time.

    frames: ``[n, 3, H, W]`` (or ``[B, n, 3, H, W]``) at ``times`` ``[n]`` in [0, 1]; first, last: ``[3, h, w]``
    (or ``[B, 3, h, w]``; their size may differ from the frames'), float RGB in [0, 1]. In ``space`` (see the
    module docstring), every channel of every frame becomes ``(x - m) * g + m_t`` with ``m`` its mean,
    ``m_t = (1 - t) m_first + t m_last``, and the gain ``g = s_t / s`` (the same for the standard
    deviations), limited to ``[1 / MAX_COLOR_GAIN, MAX_COLOR_GAIN]``. Returned in the frames' shape and
    dtype, clipped to [0, 1] (in Lab, after the conversion back to RGB).
    """
    vb, fb, lb, times, batched = _color_inputs(frames, first, last, times, space)
    x = _to_space(vb, space)
    mean, std = _stats(x)
    target_mean, target_std = _target_stats(fb, lb, times, space)
    gain = (target_std / std.clamp_min(COLOR_STD_EPS)).clamp(1 / MAX_COLOR_GAIN, MAX_COLOR_GAIN)
    y = (x - mean[..., None, None]) * gain[..., None, None] + target_mean[..., None, None]
    out = _from_space(y, space).to(vb.dtype)
    return out if batched else out[0]
