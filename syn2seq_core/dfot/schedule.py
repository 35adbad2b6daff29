"""Continuous-time noise schedule and the v-parameterisation (DFoT's RealEstate10K setting).

Time ``t`` runs from 0 (clean) to 1 (pure noise). The noise level of a frame is its log signal-to-noise
ratio ``logsnr = log(alpha^2 / sigma^2)``, given by the shifted cosine schedule of Simple Diffusion
(Hoogeboom et al. 2023)::

    logsnr(t) = -2 log(tan(t_min + t (t_max - t_min))) + 2 log(shift)
    t_min = atan(exp(-logsnr_max / 2)),  t_max = atan(exp(-logsnr_min / 2))

so the unshifted curve spans ``[logsnr_min, logsnr_max]`` and ``shift`` (``base_resolution /
resolution``; DFoT uses 32 / 256 = 0.125 at 256x256) moves the whole curve down by ``2 log(1/shift)``:
with the defaults ``logsnr(0) = 15 + 2 log 0.125 ~ 10.84`` and ``logsnr(1) ~ -19.16``.

The process is variance preserving: ``alpha = sqrt(sigmoid(logsnr))``, ``sigma = sqrt(sigmoid(-logsnr))``,
``x_t = alpha x0 + sigma eps``. The network predicts ``v = alpha eps - sigma x0``; the helpers below
convert between ``x0``, ``eps`` and ``v`` given ``x_t`` (all exact identities because
``alpha^2 + sigma^2 = 1``). ``alpha`` / ``sigma`` broadcast against the tensors they scale: pass them
with trailing singleton axes (see :func:`expand_like`).

Training weights the epsilon-MSE with the sigmoid weighting of Kingma & Gao (2023), as SiD2 and DFoT do:
``w(logsnr) = sigmoid(bias - logsnr)`` with ``bias = -1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..base.errors import require

DEFAULT_SHIFT = 0.125
DEFAULT_LOGSNR_RANGE = (-15.0, 15.0)
DEFAULT_SIGMOID_BIAS = -1.0
# Gaussian noise is clipped to this many standard deviations (DFoT's ``clip_noise``).
NOISE_CLIP = 20.0


def expand_like(a: Tensor, x: Tensor) -> Tensor:
    """Append singleton axes to ``a`` until it has ``x.ndim`` axes: ``[B, T] -> [B, T, 1, 1, 1]``."""
    return a.reshape(*a.shape, *([1] * (x.ndim - a.ndim)))


def alpha_sigma(logsnr: Tensor) -> tuple[Tensor, Tensor]:
    """Signal and noise scales of a variance-preserving process. logsnr: [...] -> (alpha, sigma), each [...]."""
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def x0_from_v(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Clean estimate ``x0 = alpha x_t - sigma v``."""
    return alpha * x_t - sigma * v


def eps_from_v(x_t: Tensor, v: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Noise estimate ``eps = sigma x_t + alpha v``."""
    return sigma * x_t + alpha * v


def v_from_x0_eps(x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Velocity ``v = alpha eps - sigma x0``."""
    return alpha * eps - sigma * x0


def v_from_x0(x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Velocity that a perfect model would predict for ``x_t`` when the clean signal is ``x0``.

    ``v = (alpha x_t - x0) / sigma``; ``sigma`` must be non-zero (every ``logsnr`` of the schedule is finite).
    """
    return (alpha * x_t - x0) / sigma


def v_from_eps(x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Velocity from a noise estimate: ``v = (eps - sigma x_t) / alpha``; ``alpha`` must be non-zero."""
    return (eps - sigma * x_t) / alpha


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Clean estimate from a noise estimate: ``x0 = (x_t - sigma eps) / alpha``."""
    return (x_t - sigma * eps) / alpha


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Noise estimate from a clean estimate: ``eps = (x_t - alpha x0) / sigma``."""
    return (x_t - alpha * x0) / sigma


def sigmoid_weight(logsnr: Tensor, bias: float = DEFAULT_SIGMOID_BIAS) -> Tensor:
    """Loss weight on the epsilon-MSE: ``sigmoid(bias - logsnr)``. logsnr: [...] -> [...]."""
    return torch.sigmoid(bias - logsnr)


# How the integer levels of a scheduling matrix (``0 .. S`` for ``S`` sampling steps) map to noise times.
# "uniform": ``t = level / S`` (the pack's own models). "dfot_ddim": DFoT's reference DDIM grid for its discrete
# training table of ``timesteps`` levels: level ``m`` is table index ``k = long(linspace(-1, timesteps - 1,
# S + 1)[m])`` (float32 linspace, truncated, as the reference computes it), ``k = -1`` is clean and index ``k``
# sits at ``t = k / (timesteps - 1)`` on this schedule (the table is the same shifted cosine sampled at those
# times); DFoT samples 50 steps on it.
TIME_GRIDS = ("uniform", "dfot_ddim")
DFOT_TIMESTEPS = 1000
DFOT_SAMPLING_STEPS = 50


@dataclass(frozen=True)
class NoiseSchedule:
    """The shifted cosine logSNR schedule. ``shift`` = base resolution / resolution (0.125 at 256x256).
    ``grid`` / ``timesteps``: how sampling levels map to times (:data:`TIME_GRIDS`, :meth:`level_times`)."""

    shift: float = DEFAULT_SHIFT
    logsnr_min: float = DEFAULT_LOGSNR_RANGE[0]
    logsnr_max: float = DEFAULT_LOGSNR_RANGE[1]
    grid: str = "uniform"
    timesteps: int = DFOT_TIMESTEPS

    def __post_init__(self):
        require(self.grid in TIME_GRIDS, "time grid", f"one of {list(TIME_GRIDS)}", repr(self.grid))
        require(isinstance(self.timesteps, int) and self.timesteps >= 2, "timesteps", "an integer >= 2",
                self.timesteps)
        require(math.isfinite(self.shift) and self.shift > 0, "shift", "a positive number", self.shift)
        require(
            math.isfinite(self.logsnr_min) and math.isfinite(self.logsnr_max) and self.logsnr_min < self.logsnr_max,
            "logsnr range",
            "finite logsnr_min < logsnr_max",
            (self.logsnr_min, self.logsnr_max),
        )

    # Angles of the cosine schedule at t = 0 and t = 1 (plain floats: no tensors are kept).
    @property
    def t_min(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_max))

    @property
    def t_max(self) -> float:
        return math.atan(math.exp(-0.5 * self.logsnr_min))

    @property
    def log_shift(self) -> float:
        """``2 log(shift)``: the offset added to the unshifted logSNR."""
        return 2.0 * math.log(self.shift)

    @property
    def max_logsnr(self) -> float:
        """logSNR at t = 0: the cleanest level the network ever sees (context frames are fed at it)."""
        return self.logsnr_max + self.log_shift

    @property
    def min_logsnr(self) -> float:
        """logSNR at t = 1: pure noise."""
        return self.logsnr_min + self.log_shift

    def logsnr(self, t: Tensor) -> Tensor:
        """t: [...] in [0, 1] (0 = clean, 1 = noise) -> logSNR [...], strictly decreasing in t.

        Integer input is promoted to float32; float input keeps its dtype (use float64 for the exact value).
        """
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            t = t.to(torch.float32)
        angle = self.t_min + t * (self.t_max - self.t_min)
        return -2.0 * torch.log(torch.tan(angle)) + self.log_shift

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        """Inverse of :meth:`logsnr`. logsnr: [...] -> t [...] (outside [0, 1] for out-of-range logSNR)."""
        logsnr = torch.as_tensor(logsnr)
        if not logsnr.is_floating_point():
            logsnr = logsnr.to(torch.float32)
        angle = torch.atan(torch.exp(-0.5 * (logsnr - self.log_shift)))
        return (angle - self.t_min) / (self.t_max - self.t_min)

    def level_times(self, levels: Tensor, steps: int | None = None) -> Tensor:
        """Integer levels [...] in ``[0, steps]`` (``steps`` defaults to the largest) -> float64 times in [0, 1]
        on this schedule's :attr:`grid` (0 exactly for clean)."""
        levels = torch.as_tensor(levels)
        if steps is None:
            steps = int(levels.max())
        require(steps >= 1, "steps", "an integer >= 1 (a matrix with some level above 0)", steps)
        if self.grid == "uniform":
            return levels.to(torch.float64) / steps
        k = torch.linspace(-1, self.timesteps - 1, steps + 1).long()[levels.long()]  # float32, as the reference
        # Table index 0 is the cleanest *noisy* level (sampled only with `timesteps` steps): a time just above 0,
        # so that it is not taken for clean.
        times = k.clamp(min=0).to(torch.float64) / (self.timesteps - 1)
        return torch.where(k < 0, 0.0, torch.where(k == 0, 1e-12, times))

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """t: [...] -> (alpha, sigma), each [...]."""
        return alpha_sigma(self.logsnr(t))
