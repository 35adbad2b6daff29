"""``flow``: OpenCV DIS optical flow in both directions, both frames warped to time t, then blended.

No weights, a few milliseconds per frame at 256x256 on a CPU. Per pair:

1. DIS flow (Kroeger et al. 2016) on the grey images, ``F01`` (first -> last) and ``F10`` (last -> first).
2. For each time t, the flows from the frame at t back to each endpoint, assuming linear motion and
   using both flows (Jiang et al. 2018, "Super SloMo", eq. 4)::

       F_t0 = -(1 - t) t F01 + t^2 F10          F_t1 = (1 - t)^2 F01 - t (1 - t) F10

3. Both endpoints backward-warped to t with ``cv2.remap`` (bilinear, border replicated) and blended
   with weights ``(1 - t, t)``.

Occlusion-aware blending (``occlusion=True``): a pixel of one frame whose flow fails the
forward-backward check ``|F01 + F10(x + F01)|^2 > 0.01 (|F01|^2 + |F10(x + F01)|^2) + 0.5`` (Sundaram
et al. 2010) is taken to be hidden in the other frame; where the sample taken from one frame is such a
pixel, the other frame's sample is dropped, so content seen in only one frame comes from that frame.
With DIS flow this did not raise PSNR on the real benchmark clip (``syn2seq bench interpolation`` prints
both), because DIS gives smooth, unreliable flow exactly where occlusions are; so it is off by default.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..base.errors import check_choice

# OpenCV's DIS presets by name (attribute names, resolved when cv2 is imported).
DIS_PRESETS = {"ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST", "fast": "DISOPTICAL_FLOW_PRESET_FAST",
               "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM"}
DEFAULT_PRESET = "medium"
# Forward-backward consistency thresholds (alpha_1 relative, alpha_2 in px^2) and the blur (px) of the mask.
FB_ALPHA1, FB_ALPHA2, FB_BLUR = 0.01, 0.5, 1.0
# DIS refuses images with both sides below 12 px; smaller images are edge-padded to this side for the flow.
MIN_FLOW_SIDE = 16


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _remap(image: np.ndarray, flow: np.ndarray, grid) -> np.ndarray:
    """Backward warp: ``out(x) = image(x + flow(x))``. image [H, W, C] or [H, W]; flow [H, W, 2] (x, y)."""
    import cv2

    xs, ys = grid
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _grey_u8(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = DEFAULT_PRESET) -> tuple[np.ndarray, np.ndarray]:
    """DIS optical flow both ways between RGB images ``a``, ``b`` [H, W, 3] float32 in [0, 1].

    Returns ``(F_ab, F_ba)``, each [H, W, 2] float32 in pixels, (x, y) order: ``a(x) ~ b(x + F_ab(x))``.
    """
    import cv2

    check_choice(preset, DIS_PRESETS, "flow preset")
    dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[preset]))
    ga, gb = _grey_u8(a), _grey_u8(b)
    h, w = ga.shape
    pad_h, pad_w = max(0, MIN_FLOW_SIDE - h), max(0, MIN_FLOW_SIDE - w)
    if pad_h or pad_w:
        ga, gb = (cv2.copyMakeBorder(g, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE) for g in (ga, gb))
    f_ab, f_ba = dis.calc(ga, gb, None), dis.calc(gb, ga, None)
    return np.ascontiguousarray(f_ab[:h, :w]), np.ascontiguousarray(f_ba[:h, :w])


def flows_to_time(f01: np.ndarray, f10: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Flows from the frame at time t to frame 0 and to frame 1 (linear motion, both flows). [H, W, 2] each."""
    ft0 = (-(1 - t) * t) * f01 + (t * t) * f10
    ft1 = ((1 - t) ** 2) * f01 - (t * (1 - t)) * f10
    return ft0, ft1


def occlusion_mask(f_ab: np.ndarray, f_ba: np.ndarray, grid) -> np.ndarray:
    """[H, W] in [0, 1]: pixels of frame a that fail the forward-backward check (hidden in frame b)."""
    import cv2

    back = _remap(f_ba, f_ab, grid)
    lhs = np.square(f_ab + back).sum(-1)
    rhs = FB_ALPHA1 * (np.square(f_ab).sum(-1) + np.square(back).sum(-1)) + FB_ALPHA2
    mask = (lhs > rhs).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), FB_BLUR) if FB_BLUR > 0 else mask


def warp_blend(a: np.ndarray, b: np.ndarray, f01: np.ndarray, f10: np.ndarray, t: float,
               occlusions: tuple[np.ndarray, np.ndarray] | None = None, grid=None) -> np.ndarray:
    """The frame at time t from ``a``, ``b`` [H, W, 3] float32 and their flows -> [H, W, 3] float32."""
    grid = _grid(*a.shape[:2]) if grid is None else grid
    ft0, ft1 = flows_to_time(f01, f10, t)
    w0, w1 = 1.0 - t, t
    if occlusions is not None:
        o0 = _remap(occlusions[0], ft0, grid)  # the sample from a is hidden in b
        o1 = _remap(occlusions[1], ft1, grid)  # the sample from b is hidden in a
        w0 = ((1.0 - t) * (1.0 - o1 * (1.0 - o0)) + 1e-4)[..., None]
        w1 = (t * (1.0 - o0 * (1.0 - o1)) + 1e-4)[..., None]
    return (w0 * _remap(a, ft0, grid) + w1 * _remap(b, ft1, grid)) / (w0 + w1)


class FlowInterpolator:
    """Bidirectional DIS optical flow + backward warping (see the module docstring).

    preset: DIS speed/quality preset, one of :data:`DIS_PRESETS` ("medium": best PSNR here, still far
    above real time at 256x256). occlusion: occlusion-aware blend weights.
    """

    name = "flow"
    times_per_call = None  # the flows of a pair serve every time

    def __init__(self, preset: str = DEFAULT_PRESET, occlusion: bool = False):
        self.preset = check_choice(preset, DIS_PRESETS, "flow preset")
        self.occlusion = bool(occlusion)

    def __call__(self, first: Tensor, last: Tensor, times: Tensor) -> Tensor:
        """first, last: [B, 3, H, W] in [0, 1]; times: [n] -> [B, n, 3, H, W]."""
        a_all = rearrange(first.detach().float().cpu(), "b c h w -> b h w c").numpy()
        b_all = rearrange(last.detach().float().cpu(), "b c h w -> b h w c").numpy()
        grid = _grid(*a_all.shape[1:3])
        out = np.empty((len(a_all), len(times), *a_all.shape[1:]), np.float32)
        for i, (a, b) in enumerate(zip(a_all, b_all, strict=True)):
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            f01, f10 = dis_flow(a, b, self.preset)
            occ = (occlusion_mask(f01, f10, grid), occlusion_mask(f10, f01, grid)) if self.occlusion else None
            for k, t in enumerate(times.tolist()):
                out[i, k] = warp_blend(a, b, f01, f10, t, occ, grid)
        frames = torch.from_numpy(out).to(first.device, first.dtype)
        return rearrange(frames, "b n h w c -> b n c h w").clamp(0.0, 1.0)
