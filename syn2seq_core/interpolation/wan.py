"""Wan first-last-frame-to-video ("WFLF") output -> ``n`` transition frames. Pure helpers, no model.

Wan 2.x generates ``L = 4k + 1`` frames (its VAE compresses time 4x) whose first and last frames
reproduce the given first and last images. The transition of a Syn2Seq sequence needs ``n`` frames
strictly between them, at the times ``t_k = k / (n + 1)`` that SLERP gives the transition cameras, so
frame ``i`` of the Wan clip (time ``i / (L - 1)``) is matched to times by index:

* :func:`wan_length` picks the shortest ``4k + 1`` length that has at least ``n`` inner frames;
* :func:`wan_transition_indices` gives, for each ``t_k``, the nearest Wan frame, endpoints excluded;
* :func:`wan_to_transition` applies them (``mode="nearest"``), or blends the two Wan frames around
  each ``t_k`` (``mode="linear"``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import check_choice, require
from .base import check_count, check_frames

WAN_TEMPORAL_STRIDE = 4  # L = 4k + 1
WAN_MIN_LENGTH = 5
WAN_DEFAULT_LENGTH = 81  # Wan 2.1 FLF2V default (5 s at 16 fps)
MODES = ("nearest", "linear")


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
