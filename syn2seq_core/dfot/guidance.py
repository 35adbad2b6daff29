"""History guidance (DFoT, Song et al. 2025): compose predictions made under different views of the history.

The history is every context frame (mask 1 = given, 2 = generated). A *branch* is one denoiser call in
which the history frames are shown at some noise time ``t`` (0 = clean, 1 = pure noise, i.e. history
dropped) with or without the camera rays. The guided prediction is a weighted sum of the branches'
``v`` predictions; the weights always sum to 1. With ``h`` the history, ``h_k`` the history noised to
time ``k`` and ``0`` the dropped history without poses:

``conditional``   ``v(x | h)``                                                    (1 call)
``vanilla``       ``w v(x | h) - (w - 1) v(x | 0)``                               (HG-v, 2 calls)
``fractional``    ``v(x | h) + (w - 1) [v(x | h_k) - v(x | 0)]``                  (HG-f, 3 calls)

Branches whose weight is 0 are dropped, so ``w = 1`` costs one call and equals ``conditional`` exactly.
Composing ``v`` is the same as composing the ``x0`` or ``eps`` estimates: for the frames being generated
all branches see the same ``x_t``, and the conversions are affine with weights summing to 1.

``stabilization`` (the "stabilized" variants of DFoT, from Diffusion Forcing): generated history frames
(mask 2) are shown at noise time at least ``stabilization`` instead of clean, which makes long rollouts
forgive their own small errors. 0 (default) shows them clean.

Add a method by decorating ``fn(guidance) -> list[Branch]`` with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..base.errors import Syn2SeqInputError, require

# The history time of a branch that drops the history: pure noise.
DROPPED = 1.0


@dataclass(frozen=True)
class Branch:
    """One denoiser call: history shown at noise time ``history_t``, rays kept or dropped, and its weight."""

    history_t: float
    pose: bool
    weight: float


HISTORY_GUIDANCE: dict[str, Callable[[HistoryGuidance], list[Branch]]] = {}


def register(fn: Callable[[HistoryGuidance], list[Branch]]):
    """Add ``fn`` to :data:`HISTORY_GUIDANCE` under its own name."""
    HISTORY_GUIDANCE[fn.__name__] = fn
    return fn


@dataclass(frozen=True)
class HistoryGuidance:
    """How the sampler uses the history. ``name``: one of :data:`HISTORY_GUIDANCE`.

    ``scale`` is the guidance weight ``w`` (1 = no guidance; DFoT uses 1.5 to 4). ``fractional_level`` is
    the noise time ``k`` in (0, 1] of the partly noised history of ``fractional``. ``drop_pose``: whether
    the unconditional branch also drops the camera rays (DFoT's default for history guidance).
    """

    name: str = "conditional"
    scale: float = 1.0
    fractional_level: float = 0.5
    stabilization: float = 0.0
    drop_pose: bool = True

    def __post_init__(self):
        if self.name not in HISTORY_GUIDANCE:
            raise Syn2SeqInputError("history_guidance", f"one of {sorted(HISTORY_GUIDANCE)}", repr(self.name))
        require(math.isfinite(self.scale), "history guidance scale", "a finite number", self.scale)
        require(0.0 < self.fractional_level <= 1.0, "fractional_level", "a noise time in (0, 1]",
                self.fractional_level)
        require(0.0 <= self.stabilization < 1.0, "stabilization", "a noise time in [0, 1)", self.stabilization)

    def branches(self) -> list[Branch]:
        """The distinct denoiser calls and their weights (identical calls merged, zero weights dropped)."""
        merged: dict[tuple[float, bool], float] = {}
        for b in HISTORY_GUIDANCE[self.name](self):
            key = (float(b.history_t), bool(b.pose))
            merged[key] = merged.get(key, 0.0) + float(b.weight)
        return [Branch(t, pose, w) for (t, pose), w in merged.items() if w != 0.0]

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per sampling step and sample."""
        return len(self.branches())


def history_guidance(name: str = "conditional", **options) -> HistoryGuidance:
    """Build a :class:`HistoryGuidance` by name; unknown names raise with the known ones."""
    return HistoryGuidance(name=name, **options)


@register
def conditional(g: HistoryGuidance) -> list[Branch]:
    return [Branch(0.0, True, 1.0)]


@register
def vanilla(g: HistoryGuidance) -> list[Branch]:
    w = g.scale
    return [Branch(0.0, True, w), Branch(DROPPED, not g.drop_pose, 1.0 - w)]


@register
def fractional(g: HistoryGuidance) -> list[Branch]:
    w = g.scale
    return [
        Branch(0.0, True, 1.0),
        Branch(g.fractional_level, True, w - 1.0),
        Branch(DROPPED, not g.drop_pose, 1.0 - w),
    ]
