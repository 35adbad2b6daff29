"""The evaluation resolution: ``--eval-size`` parsed (:func:`parse_eval_size`) and every method's frames brought
to it the same way (:func:`to_eval_size`: a centre crop to the aspect ratio, then :data:`EVAL_FILTER`), so
numbers of models with different native resolutions compare."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require


# Without a model, the evaluation resolution unless --eval-size says otherwise (the DFoT paper's 256x256).
DEFAULT_EVAL_SIZE = 256


EVAL_SIZE_RANGE = (16, 4096)


EVAL_FILTER = ("centre crop to the evaluation aspect ratio, then bicubic resampling (PyTorch "
               "F.interpolate(mode='bicubic', antialias=True, align_corners=False): PIL's BICUBIC kernel, a = -0.5, "
               "widened when shrinking), values clamped to [0, 1]")


def parse_eval_size(text) -> tuple[int, int] | None:
    """``"256"`` -> (256, 256), ``"320x256"`` (WxH) -> (256, 320) as (h, w); ``"model"`` -> None (the model's
    resolution). Sides within :data:`EVAL_SIZE_RANGE`."""
    if text is None or str(text).strip().lower() == "model":
        return None
    s = str(text).strip().lower()
    parts = s.split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise Syn2SeqInputError("--eval-size", "N (an N x N square), WxH, or 'model'", repr(text))
    w = int(parts[0])
    h = int(parts[-1])
    lo, hi = EVAL_SIZE_RANGE
    require(lo <= w <= hi and lo <= h <= hi, "--eval-size", f"sides in [{lo}, {hi}] pixels", f"{w}x{h}")
    return h, w


def _crop_to_aspect(frames: Tensor, h: int, w: int) -> Tensor:
    """The central crop of frames [..., H, W] with the aspect ratio w / h (whole pixels)."""
    src_h, src_w = frames.shape[-2:]
    if src_w * h > src_h * w:  # wider than the target: crop the sides
        cw = max(1, min(src_w, round(src_h * w / h)))
        left = (src_w - cw) // 2
        return frames[..., :, left:left + cw]
    ch = max(1, min(src_h, round(src_w * h / w)))
    top = (src_h - ch) // 2
    return frames[..., top:top + ch, :]


def to_eval_size(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """frames [..., 3, H, W] in [0, 1] -> [..., 3, h, w] float32 at the evaluation size ``(h, w)``, by
    :data:`EVAL_FILTER` (a no-op for frames already that size)."""
    h, w = size
    x = _crop_to_aspect(frames, h, w)
    if tuple(x.shape[-2:]) == (h, w):
        return x.float()
    lead = x.shape[:-3]
    flat = x.float().reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    return out.reshape(*lead, *out.shape[-3:])
