"""``nerf``: NeRF / instant-ngp / nerfstudio ``transforms.json`` (the file or its folder).

Per-frame ``transform_matrix`` c2w in OpenGL axes; intrinsics ``fl_x, fl_y, cx, cy, w, h`` or ``camera_angle_x``
(+ ``camera_angle_y``), top level or per frame (per frame wins); nerfstudio ``camera_model`` ``OPENCV`` (distortion
``k1 k2 k3 k4 p1 p2`` dropped, see ``on_distortion`` in :mod:`.colmap`) or ``OPENCV_FISHEYE`` (``k1..k4`` kept
exactly). Frames keep the order of the file. When the file gives no image size, it comes from the options
``width``, ``height``, else from the header of the first frame's image. Image names are the ``file_path`` entries.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...base.errors import check_choice
from ..safe_paths import Folder
from .common import (DISTORTION_POLICIES, CameraTrack, _apply_distortion_policy, _err, _finish, _matrix, _number,
                     _Parsed, _read_json, _size_option, _whole)
from .registry import Head, PoseFormat, holds_file, register

_NERF_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "camera_model",
              "k1", "k2", "k3", "k4", "p1", "p2")
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _image_size(src: Path, file_path, within: Folder) -> tuple[int, int] | None:
    """The size of the image ``file_path`` that ``src`` (a transforms.json) names, from its header."""
    if not isinstance(file_path, str) or not file_path:
        return None
    from PIL import Image

    entry = f"{within.relative(src)} frames[0].file_path"
    base = within.name(file_path, entry, base=src.parent)
    for candidate in (base, *(base.with_name(base.name + ext) for ext in (".png", ".jpg", ".jpeg"))):
        if candidate.is_file():
            within.path(candidate, f"{entry} ({candidate.name})")
            try:
                with Image.open(candidate) as im:
                    return im.size
            except OSError:
                return None
    return None


def read(path: Path, within: Folder, *, width: int | None = None, height: int | None = None,
         on_distortion: str = "warn") -> CameraTrack:
    """The cameras of a ``transforms.json`` (or of the folder holding one)."""
    size = _size_option(width, height, "nerf")
    check_choice(on_distortion, DISTORTION_POLICIES, "on_distortion")
    src = within.path(path / "transforms.json") if path.is_dir() else path
    data = _read_json(src)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise _err(src, None, 'a JSON object with a "frames" list', type(data).__name__ if not isinstance(data, dict)
                   else f"keys {sorted(data)[:12]}")
    frames = data["frames"]
    n = len(frames)
    if n == 0:
        raise _err(src, None, "at least one camera in \"frames\"", "none")
    merged, where = [], []
    for i, frame in enumerate(frames):
        at = f"frames[{i}]"
        where.append(at + (f" ({frame['file_path']})" if isinstance(frame, dict) and
                           isinstance(frame.get("file_path"), str) else ""))
        if not isinstance(frame, dict):
            raise _err(src, at, "a JSON object", type(frame).__name__)
        if "transform_matrix" not in frame:
            raise _err(src, where[i], 'a "transform_matrix" entry', f"keys {sorted(frame)}")
        merged.append({k: frame.get(k, data.get(k)) for k in _NERF_KEYS})
    # Image size: from the file (per frame or top level), else the options, else the first image's header.
    sizes = set()
    for i, m in enumerate(merged):
        if m["w"] is not None or m["h"] is not None:
            if m["w"] is None or m["h"] is None:
                raise _err(src, where[i], '"w" and "h" together', {"w": m["w"], "h": m["h"]})
            sizes.add((_whole(m["w"], src, where[i], "w"), _whole(m["h"], src, where[i], "h")))
    resizable = True
    if len(sizes) > 1:
        raise _err(src, None, "one image size for all frames", f"sizes {sorted(sizes)}")
    if sizes:
        w, h = sizes.pop()
        if any(m["w"] is None for m in merged):
            raise _err(src, where[[m["w"] is None for m in merged].index(True)], '"w"/"h" (other frames have them)',
                       "none")
    elif size is not None:
        (w, h), resizable = size, False
    else:
        found = _image_size(src, frames[0].get("file_path"), within) if n else None
        if found is None:
            raise _err(src, None, 'the image size ("w", "h") in the file', "none",
                       "Pass width=... and height=... (the size of the frames)")
        w, h = found
    c2w, K, fish = np.zeros((n, 4, 4)), np.zeros((n, 4)), np.zeros((n, 4))
    models, dropped = set(), {}
    for i, (frame, m) in enumerate(zip(frames, merged)):
        at = where[i]
        T = _matrix(frame["transform_matrix"], src, at, "transform_matrix", ((4, 4), (3, 4)))
        if T.shape == (3, 4):
            T = np.vstack([T, [0.0, 0.0, 0.0, 1.0]])
        c2w[i] = T @ _GL_TO_CV
        num = {k: None if m[k] is None else _number(m[k], src, at, k) for k in _NERF_KEYS if k != "camera_model"}
        if num["fl_x"] is not None:
            fx = num["fl_x"] / w
            fy = (num["fl_y"] if num["fl_y"] is not None else num["fl_x"]) / h
        elif num["camera_angle_x"] is not None:
            fx = 0.5 / math.tan(0.5 * num["camera_angle_x"])
            if num["camera_angle_y"] is not None:
                fy = 0.5 / math.tan(0.5 * num["camera_angle_y"])
            else:
                fy = fx * w / h  # square pixels
        else:
            raise _err(src, at, 'intrinsics: "fl_x" (pixels) or "camera_angle_x" (radians)', "neither")
        cx = 0.5 if num["cx"] is None else num["cx"] / w
        cy = 0.5 if num["cy"] is None else num["cy"] / h
        K[i] = (fx, fy, cx, cy)
        model = str(m["camera_model"] or "OPENCV").upper()
        models.add(model)
        coeff = [num[k] or 0.0 for k in ("k1", "k2", "k3", "k4")]
        if model == "OPENCV_FISHEYE":
            fish[i] = coeff
        elif model in ("OPENCV", "PINHOLE"):
            mag = max(abs(v) for v in coeff + [num["p1"] or 0.0, num["p2"] or 0.0])
            if mag > 0:
                dropped[model] = max(dropped.get(model, 0.0), mag)
        else:
            raise _err(src, at, 'camera_model "OPENCV" or "OPENCV_FISHEYE"', repr(m["camera_model"]))
    if len(models) > 1:
        raise _err(src, None, "one camera_model for all frames", sorted(models))
    _apply_distortion_policy(src, on_distortion, dropped)
    names = [f.get("file_path") for f in frames]
    parsed = _Parsed(c2w, K, w, h, where, fisheye=fish if models == {"OPENCV_FISHEYE"} else None,
                     names=names if n and all(isinstance(s, str) for s in names) else None, resizable=resizable)
    return _finish(src, "nerf", parsed, size)


def _sniff(head: Head) -> bool:
    """A JSON object whose first frame has a ``transform_matrix``."""
    data = head.json
    if not isinstance(data, dict):
        return False
    frames = data.get("frames")
    return isinstance(frames, list) and bool(frames) and isinstance(frames[0], dict) and "transform_matrix" in frames[0]


register(PoseFormat("nerf", read, sniff=_sniff, in_folder=holds_file("nerf", "transforms.json"),
                    folder_label="transforms.json", folder_rank=20))
