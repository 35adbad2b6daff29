"""Camera paths built from presets (orbit, dolly, pan, tilt, walk, look-at) or from keyframes.

Conventions (see :mod:`syn2seq_core.base.conventions`): every path is a :class:`Cameras` track of ``frames``
cameras, ``c2w [frames, 4, 4]`` float64, OpenCV camera axes (x right, y down, z forward), metres. The
world is **z-up**, as :func:`~syn2seq_core.geometry.cameras.look_at` assumes (``up = (0, 0, 1)``); the
synthetic scenes and the camera-path widget's top view (the x-y plane) use the same world.

Intrinsics: a centred pinhole with square pixels. ``fov_deg`` is the **horizontal** field of view, so
``fx / W = 1 / (2 tan(fov / 2))``, ``fy / H = fx / W * W / H`` and ``(cx / W, cy / H) = (0.5, 0.5)``.

Time: frame ``i`` is at ``i / fps`` seconds (:func:`frame_times`), the rule takes use when a camera file
has no timestamps. ``fps`` sets the walking distance of ``walk`` and converts keyframe ``time`` to
frames; to keep it with the cameras, write ``save_cameras(cams, path, timestamps=frame_times(len(cams),
fps))`` (a syn2seq ``cameras.json`` with per-frame ``timestamp``).

Presets (``s_i = i / (frames - 1)`` runs from 0 at the first frame to 1 at the last; both ends included,
so a full 360-degree orbit repeats its first camera at the end: use ``360 * (frames - 1) / frames`` for a
seamless loop). The first camera stands at ``position`` and looks at ``target`` (:func:`look_at`):

``orbit``    around the vertical axis through ``target`` by ``angle_deg`` (positive: counter-clockwise
             seen from above, i.e. the camera moves to its right), keeping the horizontal radius and the
             height of ``position`` and looking at ``target`` in every frame.
``dolly``    along the first view direction by ``distance`` metres (negative: backwards); orientation fixed.
``pan``      about the world vertical through the camera centre by ``angle_deg`` (positive: to the right).
``tilt``     about the camera's own x (right) axis by ``angle_deg`` (positive: up).
``walk``     horizontally, along the view direction projected onto the ground, at ``speed`` m/s for
             ``(frames - 1) / fps`` seconds; orientation fixed (a camera looking down keeps looking down).
``look_at``  sideways along the first camera's right axis by ``distance`` metres (0: a static camera),
             looking at ``target`` in every frame.
``keyframes`` see :func:`keyframe_path`.

Parameters a preset does not use are ignored (``keyframes`` is refused by the other presets).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion
from torch import Tensor

from ..base import limits
from ..base.conventions import FOCAL_RANGE
from ..base.errors import Syn2SeqInputError, check_choice, require
from .cameras import Cameras, check_rotations, full_precision, look_at
from .slerp import quaternion_slerp

WORLD_UP = (0.0, 0.0, 1.0)
PRESETS = ("orbit", "dolly", "pan", "tilt", "walk", "look_at", "keyframes")
KEYFRAME_KEYS = ("frame", "time", "position", "look_at", "quaternion", "rotation", "c2w", "fov_deg")
KEYFRAME_ORIENTATIONS = ("look_at", "quaternion", "rotation", "c2w")

# Ranges of the numbers a user gives: syn2seq_core.base.limits.LIMITS (path_frames, path_keyframes, path_image_size,
# fov_deg, fps, path_coordinate, path_angle, path_distance, path_speed), the same entries as the node's widgets.

F64 = torch.float64


# --- public API ------------------------------------------------------------------------------------------
def frame_times(frames: int, fps: float) -> Tensor:
    """[frames] float64 seconds of the frames of a path: frame ``i`` at ``i / fps``."""
    frames = _in("path_frames", frames, "frames")
    fps = _in("fps", fps, "fps")
    return torch.arange(frames, dtype=F64) / fps


def fov_to_intrinsics(fov_deg, width: int, height: int) -> Tensor:
    """Normalised ``K [..., 4]`` of a centred square-pixel pinhole with horizontal field of view ``fov_deg``."""
    fov = torch.as_tensor(fov_deg, dtype=F64)
    fx = 0.5 / torch.tan(torch.deg2rad(fov) / 2)
    half = torch.full_like(fx, 0.5)
    return torch.stack([fx, fx * (width / height), half, half], -1)


@full_precision
def camera_path(preset: str, frames: int, width: int, height: int, *, fov_deg: float = 60.0, fps: float = 24.0,
                position: Sequence[float] = (0.0, -4.0, 1.6), target: Sequence[float] = (0.0, 0.0, 1.0),
                angle_deg: float = 90.0, distance: float = 2.0, speed: float = 1.4,
                keyframes=None) -> Cameras:
    """A camera track of ``frames`` cameras for ``width x height`` images from a preset (module docstring).

    preset: one of :data:`PRESETS`. fov_deg: horizontal field of view, degrees. fps: frames per second
    (``walk``, keyframe ``time``). position, target: [3] world points, metres (z up). angle_deg: sweep
    of ``orbit``, ``pan``, ``tilt``. distance: travel of ``dolly`` and ``look_at``, metres. speed: ``walk``,
    m/s. keyframes: only for ``preset="keyframes"``: a list of keyframe dicts or its JSON text
    (:func:`keyframe_path`). Returns :class:`Cameras` with ``c2w [frames, 4, 4]`` float64.
    """
    check_choice(preset, PRESETS, "preset")
    frames = _in("path_frames", frames, "frames")
    width, height = _size(width, height)
    fov = _in("fov_deg", fov_deg, "fov_deg")
    fps = _in("fps", fps, "fps")
    if preset == "keyframes":
        require(keyframes is not None, "keyframes", "a list of keyframes (or its JSON text) for preset 'keyframes'",
                None)
        return keyframe_path(keyframes, frames, width, height, fov_deg=fov, fps=fps)
    require(keyframes is None, "keyframes", f"None for preset {preset!r} (keyframes are for preset 'keyframes')",
            type(keyframes).__name__)
    eye0 = _point(position, "position")
    at = _point(target, "target")
    s = torch.linspace(0.0, 1.0, frames, dtype=F64) if frames > 1 else torch.zeros(1, dtype=F64)
    if preset == "orbit":
        c2w = _orbit(eye0, at, math.radians(_in("path_angle", angle_deg, "angle_deg")) * s)
    else:
        first = _look(eye0, at)
        if preset == "dolly":
            step = _in("path_distance", distance, "distance") * s
            c2w = _translate(first, first[:3, 2], step)
        elif preset == "pan":
            angles = -math.radians(_in("path_angle", angle_deg, "angle_deg")) * s
            c2w = first.repeat(frames, 1, 1)
            c2w[:, :3, :3] = _axis_rotation(torch.tensor(WORLD_UP, dtype=F64), angles) @ first[:3, :3]
        elif preset == "tilt":
            angles = math.radians(_in("path_angle", angle_deg, "angle_deg")) * s
            c2w = first.repeat(frames, 1, 1)
            c2w[:, :3, :3] = first[:3, :3] @ _axis_rotation(torch.tensor([1.0, 0.0, 0.0], dtype=F64), angles)
        elif preset == "walk":
            v = _in("path_speed", speed, "speed")
            ahead = first[:3, 2].clone()
            ahead[2] = 0.0
            require(float(ahead.norm()) > 1e-9, "target", "a view direction that is not vertical (walk moves along "
                    "the view direction projected onto the ground)", "straight up or down")
            c2w = _translate(first, ahead / ahead.norm(), v * torch.arange(frames, dtype=F64) / fps)
        else:  # look_at
            step = _in("path_distance", distance, "distance") * s
            eyes = eye0 + step[:, None] * first[:3, 0]
            c2w = _look(eyes, at.expand_as(eyes))
    return Cameras(c2w, _intrinsics(torch.tensor([fov], dtype=F64), width, height, "fov_deg").expand(frames, 4),
                   width, height)


@full_precision
def keyframe_path(keyframes, frames: int, width: int, height: int, *, fov_deg: float = 60.0,
                  fps: float = 24.0) -> Cameras:
    """A camera track of ``frames`` cameras through ``keyframes``.

    keyframes: a list of dicts (or its JSON text), each with
      ``position`` [3] (metres, world z up), and exactly one orientation: ``look_at`` [3] (a world point),
      ``quaternion`` [w, x, y, z] (camera-to-world rotation), ``rotation`` [3][3] (camera-to-world) or ``c2w``
      [4][4] / [3][4] (OpenCV camera-to-world; then no ``position``);
      optionally ``frame`` (index, may be fractional) or ``time`` (seconds, ``frame = time * fps``), in
      strictly increasing order within [0, frames - 1]; give them for every keyframe or for none (then the
      keyframes are spread evenly from the first frame to the last);
      optionally ``fov_deg`` (horizontal field of view; default: the ``fov_deg`` argument).

    Camera centres: a C2 cubic spline through the keyframe positions over frame time
    (``scipy.interpolate.CubicSpline``, ``bc_type="clamped"``: zero velocity at the first and last keyframe,
    so the camera eases in and out). Rotations: shortest-arc quaternion SLERP between consecutive keyframes
    (:func:`~syn2seq_core.geometry.slerp.quaternion_slerp`). Field of view: linear between keyframes.
    Before the first and after the last keyframe the camera holds still. At a keyframe's frame the camera
    is exactly the keyframe's. Returns :class:`Cameras` with ``c2w [frames, 4, 4]`` float64.
    """
    from scipy.interpolate import CubicSpline

    frames = _in("path_frames", frames, "frames")
    width, height = _size(width, height)
    fov_default = _in("fov_deg", fov_deg, "fov_deg")
    fps = _in("fps", fps, "fps")
    keys = _parse_keyframes(keyframes)
    times = _key_times(keys, frames, fps)
    positions, rotations, fovs = [], [], []
    for i, key in enumerate(keys):
        p, R = _key_pose(key, f"keyframes[{i}]")
        positions.append(p)
        rotations.append(R)
        fovs.append(fov_default if key.get("fov_deg") is None
                    else _in("fov_deg", key["fov_deg"], f"keyframes[{i}].fov_deg"))
    P = torch.stack(positions)  # [K, 3]
    R = torch.stack(rotations)  # [K, 3, 3]
    t = torch.arange(frames, dtype=F64).clamp(float(times[0]), float(times[-1]))

    if len(keys) == 1:
        centres = P.expand(frames, 3).clone()
    else:
        spline = CubicSpline(times.numpy(), P.numpy(), axis=0, bc_type="clamped")
        centres = torch.from_numpy(spline(t.numpy()))
    rot = R[:1].expand(frames, 3, 3).clone()
    if len(keys) > 1:
        q = rotation_matrix_to_quaternion(R.contiguous())  # [K, 4] (w, x, y, z)
        seg = torch.searchsorted(times, t, right=True).clamp(1, len(keys) - 1) - 1  # segment [seg, seg + 1]
        for j in range(len(keys) - 1):
            idx = torch.nonzero(seg == j).flatten()
            if len(idx):
                s = (t[idx] - times[j]) / (times[j + 1] - times[j])
                rot[idx] = quaternion_to_rotation_matrix(quaternion_slerp(q[j], q[j + 1], s))
    exact = torch.nonzero(t[:, None] == times[None, :])  # frames that sit on a keyframe: its pose exactly
    for f, k in exact.tolist():
        rot[f], centres[f] = R[k], P[k]
    fov = torch.from_numpy(np.interp(t.numpy(), times.numpy(), np.asarray(fovs, dtype=np.float64)))
    c2w = torch.zeros(frames, 4, 4, dtype=F64)
    c2w[:, :3, :3], c2w[:, :3, 3], c2w[:, 3, 3] = rot, centres, 1.0
    return Cameras(c2w, _intrinsics(fov, width, height, "keyframes fov_deg"), width, height)


def parse_keyframes(keyframes) -> list[dict]:
    """The keyframes of :func:`keyframe_path` from a list of dicts or its JSON text, with unknown keys refused."""
    return _parse_keyframes(keyframes)


def _intrinsics(fov: Tensor, width: int, height: int, name: str) -> Tensor:
    """[N, 4] of :func:`fov_to_intrinsics`, refusing a field of view too narrow for a very wide image."""
    K = fov_to_intrinsics(fov, width, height)
    hi = FOCAL_RANGE[1]
    if float(K[:, :2].max()) > hi:
        narrowest = math.degrees(2 * math.atan(0.5 * max(1.0, width / height) / hi))
        raise Syn2SeqInputError(name, f"at least {narrowest:.3g} degrees for a {width}x{height} image (normalised "
                                f"focal lengths up to {hi:g})", f"{float(fov.min()):g}")
    return K


# --- presets ---------------------------------------------------------------------------------------------
def _look(eye: Tensor, at: Tensor) -> Tensor:
    d = at - eye
    require(bool((d.norm(dim=-1) > 1e-9).all()), "target", "a point other than the camera position", at.tolist())
    horizontal = d[..., :2].norm(dim=-1)
    require(bool((horizontal > 1e-9 * d.norm(dim=-1)).all()), "target",
            "a point not straight above or below the camera (the view direction must not be parallel to world up "
            "z)", at.tolist())
    return look_at(eye, at, WORLD_UP)


def _orbit(eye0: Tensor, at: Tensor, angles: Tensor) -> Tensor:
    rel = eye0 - at
    radius = float(rel[:2].norm())
    require(radius > 1e-9, "position", "a point not straight above or below the target (orbit radius > 0)",
            eye0.tolist())
    a = math.atan2(float(rel[1]), float(rel[0])) + angles
    eyes = torch.stack([at[0] + radius * torch.cos(a), at[1] + radius * torch.sin(a),
                        torch.full_like(a, float(eye0[2]))], -1)
    return look_at(eyes, at.expand_as(eyes), WORLD_UP)


def _translate(first: Tensor, direction: Tensor, amounts: Tensor) -> Tensor:
    c2w = first.repeat(len(amounts), 1, 1)
    c2w[:, :3, 3] = first[:3, 3] + amounts[:, None] * direction
    return c2w


def _axis_rotation(axis: Tensor, angles: Tensor) -> Tensor:
    """[S, 3, 3] rotations by ``angles`` [S] (radians, right-handed) about the unit ``axis`` [3] (Rodrigues)."""
    k = torch.zeros(3, 3, dtype=F64)
    k[0, 1], k[0, 2], k[1, 2] = -axis[2], axis[1], -axis[0]
    k = k - k.T
    a = angles[:, None, None]
    return torch.eye(3, dtype=F64) + torch.sin(a) * k + (1 - torch.cos(a)) * (k @ k)


# --- keyframes -------------------------------------------------------------------------------------------
def _parse_keyframes(keyframes) -> list[dict]:
    if isinstance(keyframes, (str, bytes)):
        try:
            keyframes = json.loads(keyframes)
        except json.JSONDecodeError as e:
            raise Syn2SeqInputError("keyframes", "a JSON list of keyframe objects",
                                    f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    require(isinstance(keyframes, Sequence) and not isinstance(keyframes, (str, bytes)), "keyframes",
            "a list of keyframe objects", type(keyframes).__name__)
    lo, hi = limits.LIMITS["path_keyframes"].lo, limits.LIMITS["path_keyframes"].hi
    require(lo <= len(keyframes) <= hi, "keyframes", f"{lo} to {hi} keyframes", len(keyframes))
    out = []
    for i, key in enumerate(keyframes):
        require(isinstance(key, Mapping), f"keyframes[{i}]", 'an object such as {"position": [x, y, z], '
                '"look_at": [x, y, z]}', type(key).__name__)
        unknown = sorted(str(k) for k in key if k not in KEYFRAME_KEYS)
        require(not unknown, f"keyframes[{i}]", f"only the keys {list(KEYFRAME_KEYS)}", unknown)
        out.append(dict(key))
    return out


def _key_times(keys: list[dict], frames: int, fps: float) -> Tensor:
    given = ["frame" in k or "time" in k for k in keys]
    if not any(given):
        n = len(keys)
        return torch.linspace(0.0, frames - 1, n, dtype=F64) if n > 1 else torch.zeros(1, dtype=F64)
    if not all(given):
        i = given.index(False)
        raise Syn2SeqInputError(f"keyframes[{i}]", "a 'frame' or 'time' (every keyframe has one, or none has)",
                                "neither")
    times = []
    for i, k in enumerate(keys):
        require(not ("frame" in k and "time" in k), f"keyframes[{i}]", "one of 'frame' or 'time'", "both")
        if "frame" in k:
            f = _number(k["frame"], f"keyframes[{i}].frame")
        else:
            f = _number(k["time"], f"keyframes[{i}].time") * fps
        require(0 <= f <= frames - 1, f"keyframes[{i}].{'frame' if 'frame' in k else 'time'}",
                f"a frame in [0, {frames - 1}] (the path has {frames} frames at {fps:g} fps)",
                k.get("frame", k.get("time")))
        if times:
            require(f > times[-1], f"keyframes[{i}]", f"a frame after keyframe {i - 1}'s ({times[-1]:g})",
                    f"frame {f:g}", "List keyframes in time order")
        times.append(f)
    return torch.tensor(times, dtype=F64)


def _key_pose(key: dict, name: str) -> tuple[Tensor, Tensor]:
    """(position [3], rotation [3, 3]) of one keyframe."""
    kinds = [k for k in KEYFRAME_ORIENTATIONS if k in key]
    require(len(kinds) == 1, name, f"exactly one orientation key of {list(KEYFRAME_ORIENTATIONS)}",
            kinds or "none")
    kind = kinds[0]
    if kind == "c2w":
        require("position" not in key, name, "'position' or 'c2w', not both (c2w holds the position)", "both")
        T = _matrix(key["c2w"], f"{name}.c2w", ((4, 4), (3, 4)))
        if T.shape[0] == 3:
            T = torch.cat([T, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=F64)])
        check_rotations(T[None], f"{name}.c2w")
        _coordinates(T[:3, 3], f"{name}.c2w")
        return T[:3, 3].clone(), T[:3, :3].clone()
    require("position" in key, name, "a 'position' [x, y, z]", "none")
    p = _point(key["position"], f"{name}.position")
    if kind == "look_at":
        at = _point(key["look_at"], f"{name}.look_at")
        d = at - p
        require(float(d.norm()) > 1e-9, f"{name}.look_at", "a point other than the keyframe's position", at.tolist())
        require(float(d[:2].norm()) > 1e-9 * float(d.norm()), f"{name}.look_at",
                "a point not straight above or below the position (use 'rotation' or 'quaternion' for that)",
                at.tolist())
        return p, look_at(p, at, WORLD_UP)[:3, :3]
    if kind == "quaternion":
        q = _vector(key["quaternion"], 4, f"{name}.quaternion", "4 numbers [w, x, y, z]")
        require(float(q.norm()) > 1e-9, f"{name}.quaternion", "a non-zero quaternion [w, x, y, z]", q.tolist())
        return p, quaternion_to_rotation_matrix(q / q.norm())
    R = _matrix(key["rotation"], f"{name}.rotation", ((3, 3),))
    T = torch.eye(4, dtype=F64)
    T[:3, :3] = R
    check_rotations(T[None], f"{name}.rotation")
    return p, R


# --- checks ----------------------------------------------------------------------------------------------
def _number(value, name: str) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    require(ok and math.isfinite(float(value)), name, "a finite number", repr(value))
    return float(value)


def _in(limit: str, value, name: str):
    """``value`` checked against ``limits.LIMITS[limit]`` (an int or a float), refused under ``name``."""
    if limits.get(limit).kind is float:
        _number(value, name)  # a real, finite number: no strings, booleans or NaN
    return limits.check(limit, value, name)


def _size(width, height) -> tuple[int, int]:
    return _in("path_image_size", width, "width"), _in("path_image_size", height, "height")


def _vector(value, n: int, name: str, expected: str) -> Tensor:
    ok = isinstance(value, (Sequence, np.ndarray, Tensor)) and not isinstance(value, (str, bytes))
    require(ok and len(value) == n, name, expected, repr(value) if not ok else f"{len(value)} values")
    return torch.tensor([_number(v.item() if hasattr(v, "item") else v, f"{name}[{i}]")
                         for i, v in enumerate(value)], dtype=F64)


def _coordinates(p: Tensor, name: str) -> None:
    for i, v in enumerate(p.tolist()):
        limits.check("path_coordinate", v, f"{name}[{i}]")


def _point(value, name: str) -> Tensor:
    p = _vector(value, 3, name, "3 numbers [x, y, z] (metres)")
    _coordinates(p, name)
    return p


def _matrix(value, name: str, shapes: tuple[tuple[int, int], ...]) -> Tensor:
    expected = " or ".join(f"{r}x{c}" for r, c in shapes) + " numbers (a list of rows)"
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Syn2SeqInputError(name, expected, repr(value)[:80]) from None
    require(tuple(m.shape) in shapes, name, expected, f"shape {tuple(m.shape)}")
    require(bool(np.isfinite(m).all()), name, "finite numbers", "NaN/inf")
    return torch.from_numpy(m.copy())
