"""First–last-frame interpolation ("WFLF" transition frames): Wan FLF2V, RIFE v4.x, DIS optical flow, cross-fade.

    from syn2seq_core.interpolation import interpolate
    frames = interpolate(first, last, n=8, backend="rife")   # [3, H, W] x 2 -> [8, 3, H, W]

Backends are listed in :data:`INTERPOLATORS`; :func:`get_interpolator` builds one (load RIFE once and
pass the object as ``backend`` to reuse it). :mod:`.wan` maps Wan first-last-frame clips onto transition
frames and matches their colours to the endpoints; :mod:`.wan_diffusers` is the ``wan`` backend (diffusers,
local weights only). Heavy modules (OpenCV, the RIFE network, diffusers) are imported only when a backend is
built.
"""

from .base import (DEFAULT_BACKEND, INTERPOLATORS, Interpolator, Progress, get_interpolator, insert_frames, interpolate,
                   known_interpolators)
from .wan import wan_length, wan_to_transition, wan_transition_indices

__all__ = ["DEFAULT_BACKEND", "INTERPOLATORS", "Interpolator", "Progress", "get_interpolator", "insert_frames",
           "interpolate", "known_interpolators", "wan_length", "wan_to_transition", "wan_transition_indices"]
