"""Small preview images drawn with Pillow (no plotting library): the per-frame PSNR chart."""

from __future__ import annotations

import math

PLOT_SIZE = (384, 192)
_MARGIN = (34, 12, 10, 22)  # left, top, right, bottom
_PSNR_CAP = 60.0  # identical frames have infinite PSNR: drawn at the cap


def _plottable(value) -> float:
    """A per-frame value of a metrics report (a float, or "inf"/"-inf"/"nan") as a finite float."""
    v = float(value)  # float("inf") and float("nan") parse the report's strings
    if math.isnan(v):
        return 0.0
    return max(min(v, _PSNR_CAP), 0.0)


def per_frame_chart(values: list, label: str = "PSNR (dB)"):
    """A line chart of per-frame values as an IMAGE ``[1, H, W, 3]``."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    w, h = PLOT_SIZE
    left, top, right, bottom = _MARGIN
    img = Image.new("RGB", (w, h), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    ys = [_plottable(v) for v in values]
    if ys:
        lo, hi = math.floor(min(ys)), math.ceil(max(ys))
        if hi - lo < 1:
            lo, hi = lo - 1, hi + 1
        x0, x1, y0, y1 = left, w - right, top, h - bottom
        draw.rectangle([x0, y0, x1, y1], outline=(180, 180, 180))
        n = len(ys)

        def point(i, v):
            x = x0 + (x1 - x0) * (i / (n - 1) if n > 1 else 0.5)
            return x, y1 - (y1 - y0) * (v - lo) / (hi - lo)

        pts = [point(i, v) for i, v in enumerate(ys)]
        if len(pts) > 1:
            draw.line(pts, fill=(33, 102, 172), width=2)
        for x, y in pts:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(33, 102, 172))
        draw.text((2, y0 - 2), f"{hi}", fill=(60, 60, 60))
        draw.text((2, y1 - 10), f"{lo}", fill=(60, 60, 60))
        draw.text((x0, h - bottom + 6), f"{label} per frame, {n} frames", fill=(60, 60, 60))
    else:
        draw.text((10, h // 2), "no frames", fill=(60, 60, 60))
    array = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]
