"""Wan camera control: a camera track as the camera embedding of Wan-Fun Control-Camera.

The layout, as ComfyUI 0.3.64 builds and consumes it (``comfy_extras/nodes_camera_trajectory.py`` makes
``WAN_CAMERA_EMBEDDING`` from presets; ``WanCameraImageToVideo`` passes it to the model as
``camera_conditions``; ``comfy/ldm/wan/model.py`` ``WanCamAdapter`` reads it):

Tensor
    ``[1, 24, F, H, W]`` float32, ``F = (length - 1) / 4 + 1`` (Wan's latent frames), ``H x W`` the video's
    pixel size. The adapter pixel-unshuffles by 8 and then patches by 2, so ``H`` and ``W`` are multiples
    of 16 (:data:`WAN_SIZE_MULTIPLE`), and its output is added to the patch-embedded latent, so ``F`` and
    ``H x W`` must be those of the video ``WanCameraImageToVideo`` makes.
Rays
    CameraCtrl's Plücker rays, one per pixel centre: ``(o x d, d)``, moment first (our order ``"md"``),
    ``d`` the unit world-space direction, ``o`` the camera centre. Poses are camera-to-world in OpenCV
    axes (x right, y down, z forward) -- our own convention -- made relative to the first camera, which
    becomes the identity. (ComfyUI's presets are 3x4 ``[R | T]`` rows read as c2w: "Pan Up" moves the
    centre to -y and "Zoom In" to +z, i.e. up and forward in OpenCV axes.)
Frame folding
    Like the Wan VAE folds time: the first frame's ray map is repeated 4 times, the ``length + 3`` maps
    are cut into groups of 4 and the 4 maps of a group are stacked into channels as
    ``channel = 4 * component + frame_in_group``. Latent frame 0 holds frame 0 (four times); latent frame
    ``t >= 1`` holds frames ``4t - 3 .. 4t``. So ``length`` must be ``4k + 1`` (:func:`check_wan_length`).
Intrinsics
    A track's normalised ``K`` refers to its own image size. The cameras are fitted to the Wan video size
    the way ``WanCameraImageToVideo`` fits the start image: scaled to cover ``W x H``, then centre-cropped
    (:func:`fit_cameras_to_frame`, exact, without rounding to whole pixels). ComfyUI's presets state
    ``fx, fy, cx, cy`` normalised to a 1280x720 source (CameraCtrl's RealEstate10K default) and fit them
    the same way, so a preset is ``Cameras(c2w=[R | T], K=(fx, fy, cx, cy), width=1280, height=720)``.
    (ComfyUI leaves ``cx, cy`` relative to the output frame; that agrees with the crop for a centred
    principal point, which is the presets' default, and for any principal point when the aspect ratios
    are equal.)
Frame count
    The track gives one camera per Wan frame. With ``length = 0`` the track's own length is used and must
    be ``4k + 1``: otherwise an error names the nearest valid lengths. With ``length > 0`` (a ``4k + 1``)
    the track is resampled uniformly in time to ``length`` cameras (first and last kept; rotation by
    SLERP, centre and intrinsics linearly between neighbours; a track of that length passes unchanged).

Computed in float64 per frame and stored in float32 whatever autocast is active.
"""

from __future__ import annotations

import operator
from dataclasses import replace

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from .cameras import Cameras, full_precision
from .plucker import plucker_rays

WAN_TEMPORAL_STRIDE = 4  # video frames per latent frame (the first latent frame holds one video frame)
WAN_SIZE_MULTIPLE = 16  # VAE downsampling 8 x the camera adapter's patch 2
WAN_PLUCKER_ORDER = "md"  # CameraCtrl: (o x d, d)
WAN_CAMERA_CHANNELS = 6 * WAN_TEMPORAL_STRIDE  # WanCamAdapter's in_dim_control_adapter = 24


# --- frame count and size rules -------------------------------------------------------------------
def _as_int(value) -> int | None:
    """``value`` as an int (integers of any kind, integral floats), or None if it is not a whole number."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return int(value) if isinstance(value, float) and value.is_integer() else None


def wan_latent_frames(length: int) -> int:
    """Latent frames of a ``length``-frame Wan video: ``(length - 1) // 4 + 1``."""
    return (int(length) - 1) // WAN_TEMPORAL_STRIDE + 1


def nearest_wan_lengths(n: int) -> tuple[int, ...]:
    """The valid Wan lengths (``4k + 1``) nearest to ``n``: one value if ``n`` is valid, else the two
    around it (only the upper one below 1)."""
    n = int(n)
    if n >= 1 and (n - 1) % WAN_TEMPORAL_STRIDE == 0:
        return (n,)
    lower = ((n - 1) // WAN_TEMPORAL_STRIDE) * WAN_TEMPORAL_STRIDE + 1
    upper = lower + WAN_TEMPORAL_STRIDE
    return (upper,) if lower < 1 else (lower, upper)


def check_wan_length(length, name: str = "length", hint: str | None = None) -> int:
    """Return ``length`` if it is a Wan frame count ``4k + 1`` (1, 5, 9, ..., 81, ...); else raise
    :class:`Syn2SeqInputError` naming the nearest valid counts."""
    n = _as_int(length)
    if n is None:
        raise Syn2SeqInputError(name, "a frame count 4k + 1 (1, 5, 9, ..., 81)", repr(length), hint)
    if n < 1 or (n - 1) % WAN_TEMPORAL_STRIDE:
        near = " or ".join(str(v) for v in nearest_wan_lengths(n))
        raise Syn2SeqInputError(name, f"a frame count 4k + 1 (Wan folds 4 frames per latent frame after the "
                                      f"first), e.g. {near}", n, hint)
    return n


def check_wan_side(value, name: str = "width") -> int:
    """Return ``value`` if it is a positive multiple of 16 pixels; else raise, naming the nearest one."""
    m = WAN_SIZE_MULTIPLE
    n = _as_int(value)
    if n is None or n < m or n % m:
        near = m if n is None else max(m, round(n / m) * m)
        raise Syn2SeqInputError(name, f"a positive multiple of {m} pixels (Wan's VAE divides by 8 and its camera "
                                      f"adapter by 2 more), e.g. {near}", repr(value))
    return n


def check_wan_size(width, height) -> tuple[int, int]:
    """Return ``(width, height)`` if both are positive multiples of 16 (:func:`check_wan_side`)."""
    return check_wan_side(width, "width"), check_wan_side(height, "height")


def wan_embedding_bytes(length: int, width: int, height: int) -> int:
    """Bytes of the float32 embedding ``[1, 24, F, H, W]`` of a ``length``-frame ``width x height`` video."""
    return WAN_CAMERA_CHANNELS * wan_latent_frames(length) * int(height) * int(width) * 4


# --- cameras of the Wan frames --------------------------------------------------------------------
def fit_cameras_to_frame(cameras: Cameras, width: int, height: int) -> Cameras:
    """The cameras of the track's image scaled to cover ``width x height`` and centre-cropped to it.

    Exact (no rounding to whole pixels): with the scale ``s = max(W / w, H / h)``, pixel focal lengths
    become ``f * s`` and the principal point moves by half the cropped margin. Fisheye coefficients, in
    normalised focal units, are unchanged. Equal sizes return the track unchanged.
    """
    width, height = int(width), int(height)
    require(width > 0 and height > 0, "width, height", "positive integers", (width, height))
    if cameras.size == (width, height):
        return cameras
    w, h = cameras.width, cameras.height
    s = max(width / w, height / h)
    K = cameras.K
    scaled_w, scaled_h = w * s, h * s  # the covering image, before the crop
    fit = torch.stack([K[:, 0] * scaled_w / width, K[:, 1] * scaled_h / height,
                       (K[:, 2] * scaled_w - (scaled_w - width) / 2) / width,
                       (K[:, 3] * scaled_h - (scaled_h - height) / 2) / height], -1)
    return replace(cameras, K=fit, width=width, height=height)


@full_precision
def resample_cameras(cameras: Cameras, n: int) -> Cameras:
    """``n`` cameras spread uniformly in time over the track (first and last kept).

    Camera ``j`` sits at track time ``u_j = j (N - 1) / (n - 1)``; between the two neighbouring cameras
    the rotation follows shortest-arc quaternion SLERP and the centre, the normalised intrinsics and
    fisheye coefficients follow linear interpolation. A camera that lands on a track camera is that camera
    exactly; ``n == len(cameras)`` returns the track unchanged; a single camera is repeated.
    """
    from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

    from .slerp import quaternion_slerp

    n = int(n)
    count = len(cameras)
    require(n >= 1, "n", "at least 1 camera", n)
    require(count >= 1, "cameras", "at least 1 camera", 0)
    if n == count:
        return cameras
    if count == 1:
        return cameras[[0] * n]
    c2w = cameras.c2w.to(torch.float64)
    u = torch.linspace(0, count - 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    i0 = u.floor().long().clamp(max=count - 2)
    w = u - i0  # in [0, 1]
    q = rotation_matrix_to_quaternion(c2w[:, :3, :3].contiguous())
    R = torch.empty(n, 3, 3, dtype=torch.float64)
    for seg in i0.unique().tolist():  # one SLERP per segment between two track cameras
        sel = (i0 == seg).nonzero()[:, 0]
        R[sel] = quaternion_to_rotation_matrix(quaternion_slerp(q[seg], q[seg + 1], w[sel]))

    def lerp(x: Tensor) -> Tensor:
        x = x.to(torch.float64)
        ww = w.reshape(-1, *[1] * (x.ndim - 1))
        return x[i0] + ww * (x[i0 + 1] - x[i0])

    out = torch.zeros(n, 4, 4, dtype=torch.float64)
    out[:, :3, :3] = R
    out[:, :3, 3] = lerp(c2w[:, :3, 3])
    out[:, 3, 3] = 1.0
    K = lerp(cameras.K)
    fish = None if cameras.fisheye is None else lerp(cameras.fisheye)
    # Frames that fall on a track camera take it exactly (no quaternion round trip).
    for exact, src in ((w == 0, i0), (w == 1, i0 + 1)):
        if bool(exact.any()):
            out[exact] = c2w[src[exact]]
            K[exact] = cameras.K.to(torch.float64)[src[exact]]
            if fish is not None:
                fish[exact] = cameras.fisheye.to(torch.float64)[src[exact]]
    dtype = cameras.c2w.dtype
    return Cameras(out.to(dtype), K.to(dtype), cameras.width, cameras.height,
                   None if fish is None else fish.to(dtype))


def wan_camera_track(cameras: Cameras, width: int, height: int, length: int = 0,
                     start_cameras: Cameras | None = None) -> Cameras:
    """The cameras of the ``length`` frames of a ``width x height`` Wan video (world coordinates).

    cameras: the track the video should follow. start_cameras: the view of the start image (exo for
    exo2ego), or None; its last camera is put before the track, as Wan's frame 0. Both are fitted to the
    video size (:func:`fit_cameras_to_frame`). length: 0 = one frame per camera (the count must then be
    ``4k + 1``), else a ``4k + 1`` count the track is resampled to (:func:`resample_cameras`).
    """
    if not isinstance(cameras, Cameras):
        raise Syn2SeqInputError("cameras", "a camera track (Cameras)", type(cameras).__name__)
    require(len(cameras) > 0, "cameras", "at least one camera", "an empty track")
    width, height = check_wan_size(width, height)
    track = fit_cameras_to_frame(cameras, width, height)
    if start_cameras is not None:
        if not isinstance(start_cameras, Cameras):
            raise Syn2SeqInputError("start_cameras", "a camera track (Cameras) or nothing",
                                    type(start_cameras).__name__)
        require(len(start_cameras) > 0, "start_cameras", "at least one camera", "an empty track")
        start = fit_cameras_to_frame(start_cameras[-1], width, height)
        if (start.fisheye is None) != (track.fisheye is None):
            raise Syn2SeqInputError("start_cameras", "the same lens model as cameras (both pinhole or both "
                                    "fisheye)", "one pinhole and one fisheye track",
                                    "Undistort the fisheye view to a pinhole first")
        track = Cameras.cat([start, track])
    if _as_int(length) == 0:
        counted = "1 start camera + " if start_cameras is not None else ""
        check_wan_length(len(track), "cameras", f"The track has {counted}{len(cameras)} cameras and length 0 "
                         "uses one frame per camera: set length to a 4k + 1 to resample the track to it, or "
                         "give a track of 4k + 1 cameras")
        return track
    return resample_cameras(track, check_wan_length(length))


@full_precision
def wan_camera_embedding(track: Cameras, device=None) -> Tensor:
    """The Wan-Fun Control-Camera embedding of a track with one camera per video frame.

    track: [L] cameras, ``L = 4k + 1``, image size a multiple of 16 (e.g. from :func:`wan_camera_track`).
    Returns ``[1, 24, (L - 1) / 4 + 1, H, W]`` float32 on ``device`` (default CPU): CameraCtrl Plücker
    rays ``(o x d, d)`` relative to the first camera, with ``channel = 4 * component + frame_in_group`` of
    the 4-frame groups of ``[frame 0 x 4, frames 1 .. L - 1]`` (see the module docstring).
    """
    from einops import rearrange

    from ..base import limits

    if not isinstance(track, Cameras):
        raise Syn2SeqInputError("track", "a camera track (Cameras)", type(track).__name__)
    length = check_wan_length(len(track), "track", "One camera per Wan frame: see wan_camera_track")
    width, height = check_wan_size(track.width, track.height)
    frames = wan_latent_frames(length)
    limits.require_memory(wan_embedding_bytes(length, width, height), "the Wan camera embedding",
                          f"{length} frames at {width}x{height}: lower length, width or height",
                          device=None if device is None else str(device))
    rel = track.to(torch.float64).relative_to()
    out = torch.empty(1, WAN_CAMERA_CHANNELS, frames, height, width, dtype=torch.float32, device=device)
    slots = out[0].unflatten(0, (6, WAN_TEMPORAL_STRIDE))  # [c, s, t, H, W], a view: channel = 4 c + s
    for j in range(length):
        rays = plucker_rays(rel.K[j], rel.c2w[j], height, width, WAN_PLUCKER_ORDER,
                            None if rel.fisheye is None else rel.fisheye[j])
        rays = rearrange(rays, "h w c -> c h w").to(device=out.device, dtype=torch.float32)
        padded = [0, 1, 2, 3] if j == 0 else [j + WAN_TEMPORAL_STRIDE - 1]  # frame 0 fills all of group 0
        for p in padded:
            slots[:, p % WAN_TEMPORAL_STRIDE, p // WAN_TEMPORAL_STRIDE] = rays
    return out


__all__ = [
    "WAN_CAMERA_CHANNELS", "WAN_PLUCKER_ORDER", "WAN_SIZE_MULTIPLE", "WAN_TEMPORAL_STRIDE", "check_wan_length",
    "check_wan_side", "check_wan_size", "fit_cameras_to_frame", "nearest_wan_lengths", "resample_cameras", "wan_camera_embedding",
    "wan_camera_track", "wan_embedding_bytes", "wan_latent_frames",
]

