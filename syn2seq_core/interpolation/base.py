"""First–last-frame interpolation: the backend interface, the registry, input checks and progress.

Every backend is an object with ``__call__(first, last, times) -> frames``:

* ``first, last``: ``[B, 3, H, W]`` float RGB in [0, 1] (already checked by :func:`interpolate`);
* ``times``: ``[n]`` float64 in (0, 1), the interpolation times;
* returns ``[B, n, 3, H, W]`` float in [0, 1] on the device and in the dtype of ``first``.

It may set ``times_per_call`` (an int): :func:`interpolate` then passes at most that many times per
call, which bounds memory and lets progress be reported frame by frame; ``None`` means all at once
(right for backends with per-pair work shared by every time, such as optical flow).

:func:`interpolate` gives the k-th of ``n`` frames the time ``t_k = k / (n + 1)`` (both endpoints
excluded, as for transition cameras, see :mod:`syn2seq_core.base.conventions`). A pair whose endpoints are
identical needs no backend: its frames are copies of the endpoint.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from einops import rearrange
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from ..geometry.slerp import transition_times

# name -> "module:Class" under syn2seq_core.interpolation; imported only when that backend is asked for.
INTERPOLATORS: dict[str, str] = {
    "blend": "blend:BlendInterpolator",
    "flow": "flow:FlowInterpolator",
    "rife": "rife:RifeInterpolator",
    "wan": "wan_diffusers:WanInterpolator",
}
DEFAULT_BACKEND = "flow"
# Values this far outside [0, 1] are another range ([-1, 1], [0, 255]), not a decoder's overshoot.
RANGE_SLACK = 0.05

# progress(done, total): frames finished so far out of all frames of the call.
Progress = Callable[[int, int], None]


@runtime_checkable
class Interpolator(Protocol):
    """A first–last-frame interpolation backend (see the module docstring)."""

    name: str
    times_per_call: int | None

    def __call__(self, first: Tensor, last: Tensor, times: Tensor) -> Tensor: ...


def known_interpolators() -> list[str]:
    return sorted(INTERPOLATORS)


def interpolator_class(name: str) -> type:
    """The backend class registered under ``name`` (imports its module)."""
    if name not in INTERPOLATORS:
        raise Syn2SeqInputError("interpolation backend", f"one of {known_interpolators()}", repr(name))
    module, cls = INTERPOLATORS[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def get_interpolator(name: str, **options) -> Interpolator:
    """Build the backend ``name`` with ``options`` (its constructor's keyword arguments).

    An unknown name or option raises :class:`Syn2SeqInputError` listing the known ones.
    """
    if isinstance(name, Interpolator) and not isinstance(name, str):
        require(not options, "interpolator options", "no options for an already built interpolator",
                sorted(options))
        return name
    cls = interpolator_class(name)
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise Syn2SeqInputError(f"options of the '{name}' interpolator", f"some of {accepted}", unknown)
    return cls(**options)


def check_frames(x, name: str, ndims=(3, 4)) -> Tensor:
    """Check a frame ``[3, H, W]`` or a batch ``[B, 3, H, W]`` of float RGB in [0, 1]; clamp overshoot."""
    if not isinstance(x, Tensor):
        raise Syn2SeqInputError(name, "a torch tensor of RGB frames", type(x).__name__)
    shapes = " or ".join({3: "[3, H, W]", 4: "[B, 3, H, W]"}[d] for d in ndims)
    require(x.ndim in ndims and x.shape[-3] == 3, name, f"shape {shapes}", tuple(x.shape))
    require(x.is_floating_point(), name, "float values in [0, 1]", x.dtype,
            "Convert uint8 images with x.float() / 255")
    require(x.shape[-1] >= 2 and x.shape[-2] >= 2, name, "frames of at least 2x2 pixels", tuple(x.shape))
    if not x.numel():
        return x
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))  # one pass; NaN and inf show up here
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise Syn2SeqInputError(name, "finite values", f"{int((~torch.isfinite(x)).sum())} NaN/inf entries")
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise Syn2SeqInputError(name, "values in [0, 1]", f"range [{lo:.3g}, {hi:.3g}]",
                                "Rescale [-1, 1] frames with (x + 1) / 2 and [0, 255] frames with x / 255")
    return x if 0.0 <= lo and hi <= 1.0 else x.clamp(0.0, 1.0)


def check_count(n, name: str = "n") -> int:
    require(isinstance(n, int) and not isinstance(n, bool) and n >= 0, name, "an int >= 0", repr(n))
    return n


def interpolate(first: Tensor, last: Tensor, n: int, backend: str | Interpolator = DEFAULT_BACKEND,
                progress: Progress | None = None, **options) -> Tensor:
    """``n`` frames strictly between ``first`` and ``last``, at times ``t_k = k / (n + 1)``, k = 1..n.

    first, last: ``[3, H, W]`` -> ``[n, 3, H, W]``, or batched ``[B, 3, H, W]`` -> ``[B, n, 3, H, W]``;
    float RGB in [0, 1], returned in the dtype and on the device of ``first``.
    backend: a name in :data:`INTERPOLATORS` (built with ``options``) or a built interpolator.
    progress: called as ``progress(done, total)`` in frames after each backend call.
    """
    first = check_frames(first, "first")
    last = check_frames(last, "last")
    require(last.shape == first.shape, "last", f"shape {tuple(first.shape)} (like first)", tuple(last.shape),
            "Resize both images to one size first")
    n = check_count(n)
    batched = first.ndim == 4
    firsts = first if batched else first[None]
    lasts = last.to(first.device, first.dtype) if batched else last[None].to(first.device, first.dtype)
    b, _, h, w = firsts.shape
    out = torch.empty(b, n, 3, h, w, dtype=first.dtype, device=first.device)
    if n and b:
        interp = get_interpolator(backend, **options)
        times = transition_times(n)
        step = interp.times_per_call or n
        total, done = b * n, 0
        for i in range(b):
            if torch.equal(firsts[i], lasts[i]):  # nothing moves: every frame is the endpoint
                out[i] = firsts[i]
                done += n
                if progress is not None:
                    progress(done, total)
                continue
            for s in range(0, n, step):
                part = interp(firsts[i:i + 1], lasts[i:i + 1], times[s:s + step])
                require(part.shape == (1, len(times[s:s + step]), 3, h, w), f"output of '{interp.name}'",
                        "shape [1, n, 3, H, W]", tuple(part.shape))
                out[i, s:s + step] = part[0].to(out.dtype).clamp(0.0, 1.0)
                done += part.shape[1]
                if progress is not None:
                    progress(done, total)
    return out if batched else out[0]


def insert_frames(video: Tensor, n: int, backend: str | Interpolator = DEFAULT_BACKEND,
                  progress: Progress | None = None, **options) -> Tensor:
    """Insert ``n`` interpolated frames between every two consecutive frames of ``video``.

    video: ``[T, 3, H, W]`` -> ``[T + (T - 1) n, 3, H, W]``; the original frames keep their values and
    sit at indices ``0, n + 1, 2 (n + 1), ...``.
    """
    video = check_frames(video, "video", ndims=(4,))
    n = check_count(n)
    if n == 0 or len(video) < 2:
        return video.clone()
    between = interpolate(video[:-1], video[1:], n, backend, progress=progress, **options)  # [T-1, n, 3, H, W]
    body = torch.cat([video[:-1, None], between], dim=1)  # [T-1, n+1, 3, H, W]
    return torch.cat([rearrange(body, "t k c h w -> (t k) c h w"), video[-1:]], dim=0)
