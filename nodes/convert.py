"""The one place where ComfyUI types become core types and back.

ComfyUI IMAGE: ``[N, H, W, C]`` float32 in [0, 1] (a video is a batch of frames; C is 3, sometimes 4).
Core frames: ``[T, 3, H, W]`` float in [0, 1] (``syn2seq_core.base.conventions``).
An IMAGE batch with zero frames stands for "no frames" (e.g. the ego output of a take that has no ego
video): optional inputs treat it as absent.
"""

from __future__ import annotations

import math

from ..syn2seq_core.base import conventions
from ..syn2seq_core.base.errors import Syn2SeqInputError

# Largest number of cameras per segment sent to the browser for the camera-path drawing.
MAX_PATH_CAMERAS = 256


def image_to_frames(image, name: str):
    """IMAGE ``[N, H, W, C]`` -> frames ``[N, 3, H, W]`` float32 (RGB; an alpha channel is dropped)."""
    import torch
    from einops import rearrange

    if not isinstance(image, torch.Tensor):
        raise Syn2SeqInputError(name, "an IMAGE batch [N, H, W, C]", type(image).__name__)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise Syn2SeqInputError(name, "an IMAGE batch [N, H, W, C] with C in (1, 3, 4)", tuple(image.shape))
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:-1], 3)
    frames = rearrange(image[..., :3].float(), "n h w c -> n c h w")
    return frames.clamp(0.0, 1.0).contiguous()


def optional_frames(image, name: str):
    """Like :func:`image_to_frames`, but None (not connected) and empty batches give None."""
    if image is None or (hasattr(image, "shape") and len(image.shape) >= 1 and image.shape[0] == 0):
        return None
    return image_to_frames(image, name)


def frames_to_image(frames):
    """frames ``[T, 3, H, W]`` in [0, 1] -> IMAGE ``[T, H, W, 3]`` float32 on ComfyUI's intermediate device."""
    import comfy.model_management
    from einops import rearrange

    image = rearrange(frames.detach().float().clamp(0.0, 1.0), "t c h w -> t h w c").contiguous()
    return image.to(comfy.model_management.intermediate_device())


def empty_image(height: int, width: int):
    """An IMAGE batch of zero frames of the given size (the "no frames" value)."""
    import torch

    return torch.zeros(0, int(height), int(width), 3)


def fit_cameras_to_frames(cameras, frames, name: str = "cameras"):
    """The cameras of ``frames [T, 3, H, W]``: a static camera is repeated, then resized / centre-cropped
    to the frame size exactly like the video reader does. The count must match."""
    from ..syn2seq_core.io.video import broadcast_cameras, resize_plan

    t, h, w = frames.shape[0], frames.shape[-2], frames.shape[-1]
    if len(cameras) == 1 and t != 1:
        cameras = broadcast_cameras(cameras, t)
    if len(cameras) != t:
        raise Syn2SeqInputError(name, f"one camera per frame ({t} frames) or a single static camera",
                                f"{len(cameras)} cameras", "Trim the frames or the camera file so the counts match")
    return resize_plan(cameras.width, cameras.height, (w, h), "center").apply_to_cameras(cameras)


def rays_to_image(rays, order: str):
    """Plücker rays ``[N, H, W, 6]`` -> an IMAGE of their unit directions mapped to colours, d * 0.5 + 0.5."""
    import comfy.model_management

    d = rays[..., :3] if order == "dm" else rays[..., 3:]
    return (d.float() * 0.5 + 0.5).clamp(0.0, 1.0).contiguous().to(comfy.model_management.intermediate_device())


def _round(values, digits: int = 4) -> list:
    return [[round(float(v), digits) if math.isfinite(float(v)) else 0.0 for v in row] for row in values]


def camera_path(segments: dict) -> dict:
    """The UI payload the camera-path widget draws: ``{"segments": [{"role", "centers", "forward"}]}``.

    segments: role name ("exo", "transition", "ego", ...) -> ``Cameras`` or None. Centres and view
    directions (the camera z axis, OpenCV) are world coordinates; at most MAX_PATH_CAMERAS per segment.
    """
    out = []
    for role, cams in segments.items():
        if cams is None or len(cams) == 0:
            continue
        step = max(1, math.ceil(len(cams) / MAX_PATH_CAMERAS))
        c2w = cams.c2w[::step].double()
        out.append({"role": str(role), "count": len(cams),
                    "centers": _round(c2w[:, :3, 3].tolist()), "forward": _round(c2w[:, :3, 2].tolist())})
    return {"segments": out}


def sequence_path(sequence) -> dict:
    """:func:`camera_path` of a Syn2Seq sequence, one segment per role (unknown transition poses left out)."""
    segments = {}
    for role, name in conventions.ROLE_NAMES.items():
        idx = sequence.indices(role)
        if len(idx) == 0:
            continue
        if role == conventions.ROLE_TRANSITION and not bool(sequence.pose_known[idx].all()):
            continue
        segments[name] = sequence.cameras[int(idx[0]):int(idx[-1]) + 1]
    return camera_path(segments)


def ui_camera_path(payload: dict) -> dict:
    """The ``ui`` dict of a node output carrying a camera path (ComfyUI concatenates ui values: a list)."""
    return {"syn2seq_camera_path": [payload]}


def metrics_text(report: dict) -> str:
    """One line per metric of a ``syn2seq_core.metrics.frames.evaluate_frames`` report."""
    lines = [f"frames: {report.get('frames')}"]
    for name, value in report.items():
        if name == "frames":
            continue
        if isinstance(value, str):
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name}: {float(value['mean']):.4f} (mean over frames)")
    return "\n".join(lines)
