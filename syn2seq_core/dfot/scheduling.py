"""Scheduling matrices: the noise level of every frame at every sampling step, as data.

A scheduling matrix is an integer tensor ``[R, T]`` of noise levels in ``[0, S]``, where ``S`` is the
number of sampling steps: ``S`` is pure noise, ``0`` is clean. Row ``r`` holds the level of each frame
before step ``r``; sampling walks down the rows, so there are ``R - 1`` steps. Row 0 holds each frame's
starting level and the last row is all 0. Along a column levels never increase. Level ``m`` maps to
continuous time ``t = m / S`` of the noise schedule (:func:`levels_to_times`; a schedule with DFoT's reference
grid maps them its own way: ``NoiseSchedule.level_times``).

Matrices describe the frames to generate only: the sampler forces context frames to clean (0) and
padding frames to pure noise (``S``) in every row, whatever the matrix says.

Built-in matrices (after Diffusion Forcing, Chen et al. 2024, and DFoT):

``full_sequence``   every frame goes ``S, S-1, ..., 0`` together (``S + 1`` rows).
``pyramid``         frame ``t`` lags ``int(t * uncertainty)`` steps behind frame 0:
                    ``level[m, t] = clip(S + int(t * uncertainty) - m, 0, S)``, with rows until all are 0.
                    ``uncertainty = 0`` is ``full_sequence``.
``autoregressive``  ``pyramid`` with ``uncertainty = S``: each frame is finished before the next starts.

Add a matrix by decorating a function ``fn(steps, num_frames, **options) -> LongTensor [R, T]`` with
:func:`register`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require

SCHEDULING_MATRICES: dict[str, Callable[..., Tensor]] = {}


def register(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Add ``fn`` to :data:`SCHEDULING_MATRICES` under its own name."""
    SCHEDULING_MATRICES[fn.__name__] = fn
    return fn


def _check_size(steps: int, num_frames: int) -> None:
    require(isinstance(steps, int) and steps >= 1, "steps", "an integer >= 1", steps)
    require(isinstance(num_frames, int) and num_frames >= 1, "num_frames", "an integer >= 1", num_frames)


@register
def full_sequence(steps: int, num_frames: int) -> Tensor:
    """All frames denoised together. -> LongTensor [steps + 1, num_frames]."""
    _check_size(steps, num_frames)
    return torch.arange(steps, -1, -1).unsqueeze(1).expand(steps + 1, num_frames).contiguous()


@register
def pyramid(steps: int, num_frames: int, uncertainty: float = 1.0) -> Tensor:
    """Later frames keep more noise: frame ``t`` starts ``int(t * uncertainty)`` steps after frame 0.

    -> LongTensor [steps + int((num_frames - 1) * uncertainty) + 1, num_frames].
    """
    _check_size(steps, num_frames)
    require(
        isinstance(uncertainty, (int, float)) and math.isfinite(uncertainty) and uncertainty >= 0,
        "uncertainty",
        "a finite number >= 0",
        uncertainty,
    )
    delay = torch.tensor([int(t * uncertainty) for t in range(num_frames)])  # [T]
    rows = steps + int(delay[-1]) + 1
    m = torch.arange(rows).unsqueeze(1)  # [R, 1]
    return (steps + delay.unsqueeze(0) - m).clamp(0, steps)


@register
def autoregressive(steps: int, num_frames: int) -> Tensor:
    """One frame at a time, left to right. -> LongTensor [num_frames * steps + 1, num_frames]."""
    return pyramid(steps, num_frames, uncertainty=steps)


def scheduling_matrix(name: str, steps: int, num_frames: int, **options) -> Tensor:
    """Build the registered matrix ``name``. -> LongTensor [R, num_frames] with levels in [0, steps]."""
    if name not in SCHEDULING_MATRICES:
        raise Syn2SeqInputError("scheduling_matrix", f"one of {sorted(SCHEDULING_MATRICES)}", repr(name))
    fn = SCHEDULING_MATRICES[name]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("steps", "num_frames")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise Syn2SeqInputError(f"options of scheduling matrix {name!r}", f"keys among {accepted}", unknown)
    return fn(steps, num_frames, **options)


def levels_to_times(matrix: Tensor, steps: int | None = None) -> Tensor:
    """Integer levels [...] in [0, steps] -> float64 times ``level / steps`` in [0, 1].

    ``steps`` defaults to the largest level in ``matrix`` (the first row of any registered matrix holds it).
    """
    from .schedule import NoiseSchedule

    return NoiseSchedule().level_times(matrix, steps)  # the uniform grid


def validate_scheduling_matrix(matrix: Tensor, num_frames: int | None = None, name: str = "scheduling_matrix") -> None:
    """Check a matrix of levels or times ``[R, T]`` or ``[R, B, T]``: >= 2 rows, values >= 0, never rising.

    Integer matrices hold levels in ``[0, S]``; float matrices hold times in ``[0, 1]``. The last row must be
    all 0 (clean), so that sampling ends on the clean estimate.
    """
    require(isinstance(matrix, Tensor), name, "a torch.Tensor", type(matrix).__name__)
    require(matrix.ndim in (2, 3), name, "shape [R, T] or [R, B, T]", tuple(matrix.shape))
    require(matrix.shape[0] >= 2, name, "at least 2 rows (one sampling step)", tuple(matrix.shape))
    if num_frames is not None:
        require(matrix.shape[-1] == num_frames, name, f"{num_frames} columns (frames)", tuple(matrix.shape))
    if matrix.is_floating_point():
        require(bool(torch.isfinite(matrix).all()), name, "finite times", "NaN/inf")
        require(bool(((matrix >= 0) & (matrix <= 1)).all()), name, "times in [0, 1]",
                f"range [{float(matrix.min())}, {float(matrix.max())}]")
    else:
        require(bool((matrix >= 0).all()), name, "levels >= 0", f"minimum {int(matrix.min())}")
    rising = matrix[1:] > matrix[:-1]
    if bool(rising.any()):
        row = int(rising.nonzero()[0, 0])
        raise Syn2SeqInputError(name, "noise levels that never rise from one row to the next",
                                f"a rise between rows {row} and {row + 1}")
    require(bool((matrix[-1] == 0).all()), name, "a last row of all 0 (clean)", matrix[-1].tolist())
