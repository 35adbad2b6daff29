"""``blend``: linear cross-fade ``(1 - t) first + t last``, the baseline every other backend must beat."""

from __future__ import annotations

from torch import Tensor


class BlendInterpolator:
    """Cross-fade between the endpoints; no motion model, no weights."""

    name = "blend"
    times_per_call = None

    def __call__(self, first: Tensor, last: Tensor, times: Tensor) -> Tensor:
        """first, last: [B, 3, H, W]; times: [n] -> [B, n, 3, H, W]."""
        t = times.to(first.device, first.dtype).view(1, -1, 1, 1, 1)
        return (1 - t) * first[:, None] + t * last[:, None]
