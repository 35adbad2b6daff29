"""The diffusion-forcing training objective (DFoT's continuous-time RealEstate10K recipe).

Every frame gets its own noise time ``t ~ U(0, 1)`` (diffusion forcing: independent per frame), so one
model learns to denoise any mix of clean, partly noisy and pure-noise frames. With
``logsnr = schedule.logsnr(t)``, ``x_t = alpha x0 + sigma eps`` (eps clipped to +-20), the network
predicts ``v`` and the loss is DFoT's::

    loss = mean over weighted elements of  sigmoid(bias - logsnr) * (eps_hat - eps)^2,
    eps_hat = sigma x_t + alpha v_hat.

Because ``eps_hat - eps = alpha (v_hat - v)``, this is the v-MSE weighted by ``alpha^2 sigmoid(bias -
logsnr)``. One deliberate difference from DFoT: the mean is taken over the elements the loss mask keeps
(``sum(w * loss) / sum(w)`` per element), not over all elements, so the scale does not depend on how many
frames are context.

Context frames (shown to the model as conditioning, as at inference): pass ``noise_t = 0`` for them (the
cleanest level, as DFoT's fixed-context training) and ``loss_mask = 0``. Padding or unavailable frames:
``noise_t = 1`` (pure noise, as DFoT) and ``loss_mask = 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..base.errors import check_choice, require
from .sampler import Denoiser, randn
from .schedule import DEFAULT_SIGMOID_BIAS, NOISE_CLIP, NoiseSchedule, alpha_sigma, expand_like, sigmoid_weight


LOSS_WEIGHTINGS = ("sigmoid", "v")


def sample_noise_times(batch: int, frames: int, *, generator: torch.Generator | None = None,
                       device=None) -> Tensor:
    """Independent per-frame noise times ``t ~ U(0, 1)``. -> [batch, frames] float32 on ``device``."""
    if generator is None:
        return torch.rand(batch, frames, device=device)
    return torch.rand(batch, frames, generator=generator, device=generator.device).to(device)


def diffusion_loss(
    denoiser: Denoiser,
    x0: Tensor,
    *,
    rays: Tensor | None = None,
    noise_t: Tensor | None = None,
    loss_mask: Tensor | None = None,
    schedule: NoiseSchedule | None = None,
    sigmoid_bias: float = DEFAULT_SIGMOID_BIAS,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    weighting: str = "sigmoid",
) -> tuple[Tensor, dict]:
    """One training loss evaluation. Returns ``(loss, info)``.

    denoiser: the model in train mode, ``(x_t [B,T,C,H,W], logsnr [B,T], rays | None) -> v [B,T,C,H,W]``.
    x0: [B, T, C, H, W] clean frames in model space. rays: [B, T, H, W, R] or None (no pose).
    noise_t: [B, T] noise times in [0, 1]; default drawn by :func:`sample_noise_times` from ``generator``.
    loss_mask: [B, T] non-negative frame weights (0 = no loss: context or padding; fractions down-weight,
    e.g. synthetic transition frames); default all 1. noise: [B, T, C, H, W] to use instead of drawing.
    weighting: ``"sigmoid"`` (DFoT: eps-MSE x sigmoid(bias - logsnr)) or ``"v"`` (plain v-MSE, i.e. eps-MSE /
    alpha^2). The sigmoid weight vanishes like alpha^2 at high noise, so a short training run barely learns
    the clean estimate there, and the first sampling steps then start from noise-like estimates; ``"v"``
    keeps full weight on them.

    info (all detached): ``frame_loss`` [B, T] the weighted eps-MSE of each frame (before the mask),
    ``logsnr`` [B, T], ``x0_pred`` [B, T, C, H, W] the model's clean estimate.
    """
    schedule = schedule or NoiseSchedule()
    require(x0.ndim == 5, "x0", "shape [B, T, C, H, W]", tuple(x0.shape))
    batch, frames = x0.shape[:2]
    if noise_t is None:
        noise_t = sample_noise_times(batch, frames, generator=generator, device=x0.device)
    require(tuple(noise_t.shape) == (batch, frames), "noise_t", f"shape [{batch}, {frames}]", tuple(noise_t.shape))
    require(bool(((noise_t >= 0) & (noise_t <= 1)).all()), "noise_t", "times in [0, 1]",
            f"range [{float(noise_t.min())}, {float(noise_t.max())}]")
    if loss_mask is None:
        loss_mask = torch.ones(batch, frames, device=x0.device)
    require(tuple(loss_mask.shape) == (batch, frames), "loss_mask", f"shape [{batch}, {frames}]",
            tuple(loss_mask.shape))
    require(bool((loss_mask >= 0).all()), "loss_mask", "weights >= 0", f"minimum {float(loss_mask.min())}")
    if noise is None:
        noise = randn(x0.shape, generator, x0.device, torch.float32)
    require(tuple(noise.shape) == tuple(x0.shape), "noise", f"shape {tuple(x0.shape)}", tuple(noise.shape))
    if rays is not None:
        require(tuple(rays.shape[:2]) == (batch, frames), "rays", f"shape [{batch}, {frames}, H, W, R]",
                tuple(rays.shape))

    x0 = x0.float()
    noise = noise.float().clamp(-NOISE_CLIP, NOISE_CLIP)
    logsnr = schedule.logsnr(noise_t.float())
    alpha, sigma = (expand_like(c, x0) for c in alpha_sigma(logsnr))
    x_t = alpha * x0 + sigma * noise
    v_pred = denoiser(x_t, logsnr, rays).float()
    require(tuple(v_pred.shape) == tuple(x0.shape), "denoiser output", f"shape {tuple(x0.shape)}",
            tuple(v_pred.shape))
    eps_pred = sigma * x_t + alpha * v_pred
    check_choice(weighting, LOSS_WEIGHTINGS, "loss weighting")
    if weighting == "sigmoid":
        frame_loss = (eps_pred - noise).pow(2).flatten(2).mean(dim=2) * sigmoid_weight(logsnr, sigmoid_bias)
    else:
        frame_loss = (v_pred - (alpha * noise - sigma * x0)).pow(2).flatten(2).mean(dim=2)  # [B, T]
    weight = loss_mask.to(frame_loss.dtype)
    loss = (frame_loss * weight).sum() / weight.sum().clamp(min=1e-8)
    info = {
        "frame_loss": frame_loss.detach(),
        "logsnr": logsnr.detach(),
        "x0_pred": (alpha * x_t - sigma * v_pred).detach(),
    }
    return loss, info
