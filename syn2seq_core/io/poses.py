"""Camera pose files: read the common formats into :class:`Cameras`, write our own ``cameras.json``.

Every loader returns cameras in the project's conventions (:mod:`syn2seq_core.base.conventions`): ``c2w [N, 4, 4]``
float64, OpenCV axes; ``K [N, 4]`` normalised ``(fx/W, fy/H, cx/W, cy/H)``; optional Kannala–Brandt
``fisheye [N, 4]`` (or FISHEYE624 ``[N, 12]``, the Aria RGB lens, see :mod:`syn2seq_core.geometry.plucker`).
Pixel coordinates follow COLMAP / NeRF: the image spans ``[0, W] x [0, H]`` and the centre of the top-left pixel
is ``(0.5, 0.5)``, so a centred principal point is ``cx = W / 2`` (this is the convention of our Plücker rays).
The Ego-Exo4D calibrations (projectaria_tools' convention, top-left pixel centre at ``(0, 0)``) are the one
exception shifted on reading, by :func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`.

Formats (``KNOWN_FORMATS``; ``format="auto"`` looks at the *content*, not the extension):

``syn2seq``
    Our own versioned ``cameras.json`` (schema in ``docs/cameras_json.md``); written by :func:`save_cameras`.
    A round trip is exact (floats are written with ``repr`` precision).
``re10k``
    RealEstate10K ``.txt``: an optional first line with the video URL, then one line per frame
    ``timestamp_us fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` (normalised intrinsics,
    world-to-camera ``[R | t]``, OpenCV axes). The file has no image size: options ``width``, ``height``
    (default :data:`RE10K_DEFAULT_SIZE` = 640x360, the 16:9 size DFoT and pixelSplat work from). Because the
    intrinsics are normalised, the size only fixes the aspect ratio and the pixel units.
``colmap``
    A COLMAP *text* model: the folder holding ``cameras.txt`` and ``images.txt`` (also its ``sparse/0`` or
    ``sparse`` sub-folder, or the path of either file). Camera models: ``SIMPLE_PINHOLE``, ``PINHOLE``;
    ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``, ``FULL_OPENCV`` load as their pinhole part with the radial /
    tangential distortion dropped (option ``on_distortion``: ``"warn"`` (default), ``"ignore"`` or
    ``"error"``; undistort the images with ``colmap image_undistorter`` to avoid it); ``OPENCV_FISHEYE``,
    ``SIMPLE_RADIAL_FISHEYE``, ``RADIAL_FISHEYE`` load exactly as Kannala–Brandt fisheye (the last two are
    KB with ``(k, 0, 0, 0)`` and ``(k1, k2, 0, 0)``). Images are sorted by ``NAME`` in natural order
    (``frame2`` before ``frame10``; with zero-padded names this is plain alphabetical order). All images
    must share one image size; per-image intrinsics are kept. Binary models (``*.bin``) are refused with the
    ``colmap model_converter`` command that turns them into text.
``nerf``
    NeRF / instant-ngp / nerfstudio ``transforms.json`` (the file or its folder): per-frame
    ``transform_matrix`` c2w in OpenGL axes; intrinsics ``fl_x, fl_y, cx, cy, w, h`` or ``camera_angle_x``
    (+ ``camera_angle_y``), top level or per frame (per frame wins); nerfstudio ``camera_model``
    ``OPENCV`` (distortion ``k1 k2 k3 k4 p1 p2`` dropped, see ``on_distortion``) or ``OPENCV_FISHEYE``
    (``k1..k4`` kept exactly). Frames keep the order of the file. When the file gives no image size, it
    comes from the options ``width``, ``height``, else from the header of the first frame's image.
``egoexo4d_exo``
    One static exo (GoPro) camera of an Ego-Exo4D take, from ``trajectory/gopro_calibs.csv`` (the take
    folder, its ``trajectory`` folder or the csv). ``T_world_cam`` is c2w (metres, quaternion xyzw);
    ``intrinsics_0..3`` = fx fy cx cy in pixels of ``image_width x image_height``, with the top-left pixel's
    centre at (0, 0) as projectaria_tools reads them (so ``cx_ours = cx + 0.5``, see
    :func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`), ``intrinsics_4..7`` = KB3 fisheye k1..k4. Options: ``camera`` (``cam_uid``, required when the file has several cameras),
    ``num_frames`` (the static pose repeated, default 1), ``frame_index`` (picks the row whose
    ``start_frame_idx..end_frame_idx`` holds it when a camera has several rows).
``egoexo4d_aria``
    The Aria device track from ``trajectory/closed_loop_trajectory.csv`` (``T_world_device``, same world as
    the GoPro calibration), resampled at ``timestamps_us`` (required; tracking-clock microseconds): rotation
    by SLERP between the two samples around each time, translation by linear interpolation; times outside the
    track are an error. The pose is the *device* frame unless ``T_device_camera`` (4x4) is given
    (``c2w = T_world_device @ T_device_camera``); Exo2Ego-V used the device pose directly. Intrinsics are not
    in this file: options ``K`` (normalised, [4] or [N, 4]), ``width``, ``height``, ``fisheye`` (k1..k4, or the
    twelve FISHEYE624 coefficients of the Aria RGB camera), ``T_device_camera`` ([4, 4] or per frame [N, 4, 4]);
    the defaults :data:`ARIA_RGB_DEFAULT_K` at :data:`ARIA_RGB_DEFAULT_SIZE` are an *approximate* pinhole
    stand-in for the Aria RGB camera (f ~ 610 px at 1408x1408; the real lens is a FISHEYE624 model). Read
    the device calibration for exact values.

For every format except ``re10k`` and ``egoexo4d_aria`` (whose files carry no size) the options ``width`` and
``height`` mean "the size of the frames I will use": the cameras are resized to it, which leaves normalised
intrinsics unchanged, and an aspect ratio that differs by more than 1% is refused (a crop, not a resize, needs
:meth:`Cameras.crop`).

Timestamps and image names live next to the cameras, not on them: :func:`load_camera_track` returns a
:class:`CameraTrack` (cameras + ``timestamps`` in seconds + ``names``); :func:`load_cameras` returns just the
:class:`Cameras`.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import Syn2SeqInputError, check_choice, require
from .safe_paths import Folder
from ..geometry.cameras import Cameras, check_rotations, intrinsics_from_centre0

KNOWN_FORMATS = ("syn2seq", "re10k", "colmap", "nerf", "egoexo4d_exo", "egoexo4d_aria")

SYN2SEQ_FORMAT_ID = "syn2seq.cameras"
SYN2SEQ_FORMAT_VERSION = 1
SYN2SEQ_CONVENTION = "opencv_c2w"
SYN2SEQ_FILENAME = "cameras.json"

RE10K_DEFAULT_SIZE = (640, 360)
# Approximate Aria RGB camera (full resolution 1408x1408, focal ~610 px, centred principal point).
ARIA_RGB_DEFAULT_SIZE = (1408, 1408)
ARIA_RGB_DEFAULT_K = (610.0 / 1408.0, 610.0 / 1408.0, 0.5, 0.5)

DISTORTION_POLICIES = ("warn", "ignore", "error")
_ASPECT_TOLERANCE = 0.01  # relative difference of W/H accepted as "the same frames, resized"
_SNIFF_BYTES = 65536

_GOPRO_COLUMNS = (
    "cam_uid", "tx_world_cam", "ty_world_cam", "tz_world_cam", "qx_world_cam", "qy_world_cam", "qz_world_cam",
    "qw_world_cam", "image_width", "image_height", "intrinsics_type",
    *(f"intrinsics_{i}" for i in range(8)), "start_frame_idx", "end_frame_idx",
)
_ARIA_COLUMNS = (
    "tracking_timestamp_us", "tx_world_device", "ty_world_device", "tz_world_device",
    "qx_world_device", "qy_world_device", "qz_world_device", "qw_world_device",
)
_KB3_TYPES = ("KANNALABRANDTK3", "KANNALA_BRANDT_K3")


@dataclass(frozen=True, eq=False)
class CameraTrack:
    """What a pose file holds.

    cameras: the :class:`Cameras` (``N`` poses).
    timestamps: [N] float64 seconds, or None when the format has no times (RE10K: ``timestamp_us / 1e6``;
        Aria: the requested ``timestamps_us / 1e6``; syn2seq: as saved).
    names: ``N`` image names (COLMAP ``NAME``, NeRF ``file_path``, syn2seq ``name``), or None.
    format: the format the file was read as (one of ``KNOWN_FORMATS``).
    source: the file that was read.
    """

    cameras: Cameras
    timestamps: Tensor | None
    names: tuple[str, ...] | None
    format: str
    source: str

    def __len__(self) -> int:
        return len(self.cameras)


@dataclass
class _Parsed:
    """What a format parser found, before validation. Arrays are float64 numpy."""

    c2w: np.ndarray  # [N, 4, 4]
    K: np.ndarray  # [N, 4] normalised
    width: int
    height: int
    where: list[str]  # where each pose came from in the file, e.g. "line 3", for error messages
    fisheye: np.ndarray | None = None  # [N, 4] Kannala-Brandt or [N, 12] FISHEYE624
    timestamps: np.ndarray | None = None  # [N] seconds
    names: list[str] | None = None
    resizable: bool = True  # the file states the size, so width/height options resize


# --- public API ----------------------------------------------------------------------------------
def load_cameras(path, format: str = "auto", *, root=None, owner: str | None = None, **options) -> Cameras:
    """Read a camera file (or a COLMAP model / take folder) into :class:`Cameras`.

    ``format`` is one of ``KNOWN_FORMATS`` or ``"auto"`` (detected from the content). ``options`` are the
    format's own (see the module docstring); an option the format does not take is an error. Times and image
    names: use :func:`load_camera_track`.

    Files the reader finds through ``path`` (the files of a folder, the images a ``transforms.json`` names)
    must resolve, links followed, inside ``root``: by default the folder ``path`` is, or the folder of the
    file ``path``; a take passes its own folder (then ``path`` itself must be inside it too). ``owner``
    names ``root`` in the refusal (:class:`~syn2seq_core.io.safe_paths.OutsideFolderError`).
    """
    return load_camera_track(path, format, root=root, owner=owner, **options).cameras


def load_camera_track(path, format: str = "auto", *, root=None, owner: str | None = None,
                      **options) -> CameraTrack:
    """Like :func:`load_cameras`, but also return the timestamps (seconds) and image names of the file."""
    p = _existing_path(path)
    within = _folder_of(p, root, owner)
    if format == "auto":
        fmt = _detect(p, options, within)
    else:
        fmt = check_choice(format, KNOWN_FORMATS, "format")
    loader = _LOADERS[fmt]
    accepted = [name for name in inspect.signature(loader).parameters if name not in ("path", "within")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise Syn2SeqInputError(f"options for format {fmt!r}", f"only {accepted}", unknown)
    return loader(p, within, **options)


def detect_format(path) -> str:
    """The format of a camera file or folder, from its content. Raises if unknown or ambiguous."""
    p = _existing_path(path)
    return _detect(p, {}, _folder_of(p, None, None))


def save_cameras(cams: Cameras, path, timestamps=None, names: Sequence[str] | None = None, *,
                 extra: dict | None = None, frame_extra: Sequence[dict] | None = None) -> Path:
    """Write ``cams`` as a syn2seq ``cameras.json`` (schema in ``docs/cameras_json.md``), atomically.

    timestamps: [N] seconds or None. names: ``N`` strings (e.g. image files) or None. ``path`` may be a
    folder, then ``<path>/cameras.json`` is written. Floats are written with ``repr`` precision, so
    :func:`load_cameras` gives back exactly the same float64 values. extra: further top-level keys, and
    frame_extra: ``N`` dicts of further per-frame keys (JSON values; readers ignore keys they do not know, e.g.
    ``"estimate"`` and ``"registered"`` / ``"interpolated"`` of an estimated track); neither may reuse a key of the
    format. Returns the path written.
    """
    require(isinstance(cams, Cameras), "cams", "a Cameras", type(cams).__name__)
    n = len(cams)
    require(n > 0, "cams", "at least one camera", "an empty track")
    ts = None
    if timestamps is not None:
        ts = _float64(timestamps, "timestamps").reshape(-1)
        require(ts.shape == (n,), "timestamps", f"{n} values (one per camera)", ts.shape[0])
        require(bool(np.isfinite(ts).all()), "timestamps", "finite seconds", "NaN/inf")
    if names is not None:
        names = list(names)
        require(len(names) == n, "names", f"{n} names (one per camera)", len(names))
        require(all(isinstance(s, str) for s in names), "names", "strings",
                sorted({type(s).__name__ for s in names}))
    top_keys = {"format", "version", "convention", "width", "height", "frames"}
    frame_keys = {"c2w", "K", "fisheye", "timestamp", "name"}
    if extra is not None:
        require(isinstance(extra, dict) and not (set(extra) & top_keys), "extra",
                f"a dict of keys other than {sorted(top_keys)}", sorted(extra) if isinstance(extra, dict) else extra)
    if frame_extra is not None:
        frame_extra = list(frame_extra)
        require(len(frame_extra) == n, "frame_extra", f"{n} dicts (one per camera)", len(frame_extra))
        clash = sorted({k for d in frame_extra for k in d} & frame_keys)
        require(not clash, "frame_extra", f"keys other than {sorted(frame_keys)}", clash)
    target = Path(path).expanduser()
    if target.is_dir():
        target = target / SYN2SEQ_FILENAME
    c2w = cams.c2w.detach().cpu().to(torch.float64).tolist()
    K = cams.K.detach().cpu().to(torch.float64).tolist()
    fish = None if cams.fisheye is None else cams.fisheye.detach().cpu().to(torch.float64).tolist()
    frames = []
    for i in range(n):
        frame: dict[str, Any] = {"c2w": c2w[i], "K": K[i]}
        if fish is not None:
            frame["fisheye"] = fish[i]
        if ts is not None:
            frame["timestamp"] = float(ts[i])
        if names is not None:
            frame["name"] = names[i]
        if frame_extra is not None:
            frame.update(frame_extra[i])
        frames.append(json.dumps(frame, allow_nan=False, ensure_ascii=False))
    head = {"format": SYN2SEQ_FORMAT_ID, "version": SYN2SEQ_FORMAT_VERSION, "convention": SYN2SEQ_CONVENTION,
            "width": cams.width, "height": cams.height, **(extra or {})}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False, ensure_ascii=False)}," for k, v in head.items()]
    lines += ['  "frames": [', ",\n".join(f"    {f}" for f in frames), "  ]", "}"]
    _write_atomic(target, "\n".join(lines) + "\n")
    return target


# --- shared helpers ------------------------------------------------------------------------------
def _existing_path(path) -> Path:
    require(isinstance(path, (str, os.PathLike)), "path", "a file or folder path", type(path).__name__)
    p = Path(path).expanduser()
    require(p.exists(), str(p), "an existing camera file or folder", "nothing at that path")
    return p


def _folder_of(p: Path, root, owner: str | None) -> Folder:
    """The folder the files read through ``p`` must stay in (see :func:`load_cameras`)."""
    if root is None:
        folder = p if p.is_dir() else p.parent
        return Folder(folder, owner or f"camera {'folder' if p.is_dir() else 'file'} '{p}'")
    within = Folder(Path(root), owner or f"folder '{root}'")
    within.path(p)
    return within


def _err(src, where: str | None, expected: str, found, hint: str | None = None) -> Syn2SeqInputError:
    return Syn2SeqInputError(f"{src}{' ' + where if where else ''}", expected, found, hint)


@contextlib.contextmanager
def _about(src):
    """Prefix the file name to errors raised by code that does not know it (e.g. Cameras)."""
    try:
        yield
    except Syn2SeqInputError as e:
        if e.name.startswith(str(src)):
            raise
        hint = getattr(e, "hint", None)
        if hint is None:  # errors.py does not keep the hint as an attribute: recover it from the message
            head = f"{e.name}: expected {e.expected}, got {e.found}. "
            hint = str(e)[len(head):] if str(e).startswith(head) else None
        raise Syn2SeqInputError(f"{src}: {e.name}", e.expected, e.found, hint) from None


def _write_atomic(target: Path, text: str) -> None:
    from .atomic import write_text_atomic

    write_text_atomic(target, text)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise _err(path, None, "a UTF-8 text file", f"undecodable bytes at offset {e.start}") from None


def _read_json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise _err(path, f"line {e.lineno}", "valid JSON", f"{e.msg} (column {e.colno})") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _floats(tokens: Sequence[str], src, where: str, what: str) -> list[float]:
    out = []
    for tok in tokens:
        try:
            out.append(float(tok))
        except ValueError:
            raise _err(src, where, f"numbers ({what})", repr(tok)) from None
    return out


def _int(token: str, src, where: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise _err(src, where, f"an integer {what}", repr(token)) from None


def _number(value, src, where: str, key: str) -> float:
    """A JSON number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(src, where, f"a number for {key!r}", repr(value))
    return float(value)


def _whole(value, src, where: str, key: str) -> int:
    """A JSON number with an integer value (640 or 640.0)."""
    v = _number(value, src, where, key)
    if not (math.isfinite(v) and v == int(v)):
        raise _err(src, where, f"an integer for {key!r}", repr(value))
    return int(v)


def _matrix(value, src, where: str, key: str, shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _err(src, where, f"{key!r} as a numeric array of shape {' or '.join(map(str, shapes))}",
                   repr(value)[:80]) from None
    if arr.shape not in shapes:
        raise _err(src, where, f"{key!r} of shape {' or '.join(map(str, shapes))}", arr.shape)
    return arr


def _float64(x, name: str) -> np.ndarray:
    """A tensor, array or (nested) list as a float64 numpy array (lists are never rounded through float32)."""
    if isinstance(x, Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise Syn2SeqInputError(name, "a numeric array", repr(x)[:80]) from None


def _rigid_inverse(T: np.ndarray) -> np.ndarray:
    """[N, 4, 4] -> [N, 4, 4], assuming rotations in the top-left 3x3."""
    R = T[:, :3, :3]
    t = T[:, :3, 3:]
    out = np.zeros_like(T)
    Rt = np.transpose(R, (0, 2, 1))
    out[:, :3, :3] = Rt
    out[:, :3, 3:] = -Rt @ t
    out[:, 3, 3] = 1.0
    return out


def _poses_from_quaternions(q_xyzw: np.ndarray, t: np.ndarray, src, where: list[str]) -> np.ndarray:
    """[N, 4] (x, y, z, w) + [N, 3] -> [N, 4, 4] ``[R | t]``. Quaternions must be unit (to 1e-3); they are
    normalised exactly before conversion."""
    from scipy.spatial.transform import Rotation

    bad = ~np.isfinite(q_xyzw).all(1) | ~np.isfinite(t).all(1)
    if bad.any():
        i = int(np.argmax(bad))
        raise _err(src, where[i], "finite pose values", "NaN or inf")
    norm = np.linalg.norm(q_xyzw, axis=1)
    off = np.abs(norm - 1.0)
    if off.size and float(off.max()) > C.ROTATION_TOLERANCE:
        i = int(np.argmax(off))
        raise _err(src, where[i], f"a unit quaternion (| |q| - 1 | <= {C.ROTATION_TOLERANCE})",
                   f"|q| = {norm[i]:.6g}")
    T = np.zeros((len(t), 4, 4))
    T[:, :3, :3] = Rotation.from_quat(q_xyzw / norm[:, None]).as_matrix()
    T[:, :3, 3] = t
    T[:, 3, 3] = 1.0
    return T


def _check_poses(src, c2w: np.ndarray, K: np.ndarray, where: list[str], fisheye: np.ndarray | None,
                 timestamps: np.ndarray | None) -> None:
    """Per-pose checks that name the line / frame of the file (Cameras repeats them without the location)."""
    n = len(c2w)
    for arr, what in ((c2w, "pose values"), (K, "intrinsics"), (fisheye, "fisheye coefficients"),
                      (timestamps, "timestamp")):
        if arr is None:
            continue
        bad = ~np.isfinite(np.reshape(arr, (n, -1))).all(1)
        if bad.any():
            raise _err(src, where[int(np.argmax(bad))], f"finite {what}", "NaN or inf")
    R = c2w[:, :3, :3]
    err = np.abs(np.transpose(R, (0, 2, 1)) @ R - np.eye(3)).max(axis=(1, 2))
    if err.size and float(err.max()) > C.ROTATION_TOLERANCE:
        i = int(np.argmax(err))
        raise _err(src, where[i], f"an orthonormal rotation (max |R^T R - I| <= {C.ROTATION_TOLERANCE})",
                   f"error {float(err[i]):.3g}", "Scaled or sheared matrices are not camera poses")
    det = np.linalg.det(R)
    if det.size and float(det.min()) < 0:
        i = int(np.argmin(det))
        raise _err(src, where[i], "a proper rotation (det = +1)", "a reflection (det = -1)",
                   "Check the axis convention of the file")
    bottom = np.abs(c2w[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    if bottom.size and float(bottom.max()) > 1e-6:
        i = int(np.argmax(bottom))
        raise _err(src, where[i], "last matrix row [0, 0, 0, 1]", c2w[i, 3].tolist())


def _size_option(width, height, fmt: str) -> tuple[int, int] | None:
    if width is None and height is None:
        return None
    require(width is not None and height is not None, f"options for format {fmt!r}",
            "both width and height (or neither)", {"width": width, "height": height})
    for name, v in (("width", width), ("height", height)):
        ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
        require(ok, name, "a positive integer number of pixels", repr(v))
    return int(width), int(height)


def _finish(src: Path, fmt: str, parsed: _Parsed, size: tuple[int, int] | None) -> CameraTrack:
    n = len(parsed.c2w)
    if n == 0:
        raise _err(src, None, "at least one camera", "none")
    _check_poses(src, parsed.c2w, parsed.K, parsed.where, parsed.fisheye, parsed.timestamps)
    fish = None if parsed.fisheye is None else torch.from_numpy(np.ascontiguousarray(parsed.fisheye, np.float64))
    with _about(src):
        cams = Cameras(torch.from_numpy(np.ascontiguousarray(parsed.c2w, np.float64)),
                       torch.from_numpy(np.ascontiguousarray(parsed.K, np.float64)),
                       parsed.width, parsed.height, fish)
    if size is not None and parsed.resizable and size != cams.size:
        w, h = size
        ratio = (w / h) / (cams.width / cams.height)
        if abs(ratio - 1.0) > _ASPECT_TOLERANCE:
            raise _err(src, None, f"width/height with the aspect ratio of the file's {cams.width}x{cams.height} "
                       f"(within {_ASPECT_TOLERANCE:.0%})", f"{w}x{h}",
                       "If your frames were cropped, load without width/height and use Cameras.crop / "
                       "center_crop; for a deliberate squash use Cameras.resize")
        cams = cams.resize(w, h)
    ts = None if parsed.timestamps is None else torch.from_numpy(np.asarray(parsed.timestamps, np.float64))
    names = None if parsed.names is None else tuple(parsed.names)
    return CameraTrack(cams, ts, names, fmt, str(src))


def _apply_distortion_policy(src, policy: str, dropped: dict[str, float]) -> None:
    """dropped: model name -> largest |coefficient| that is being ignored (zero ones are not listed)."""
    if not dropped or policy == "ignore":
        return
    detail = ", ".join(f"{m} (max |coefficient| {v:.3g})" for m, v in sorted(dropped.items()))
    hint = ("Undistort the images first (e.g. `colmap image_undistorter`, which writes a PINHOLE model), or "
            "pass on_distortion='ignore' to use the pinhole part")
    if policy == "error":
        raise _err(src, None, "cameras without radial/tangential distortion", detail, hint)
    warnings.warn(f"{src}: dropping lens distortion of {detail}; the cameras are loaded as pinhole. {hint}.",
                  stacklevel=4)


# --- format detection ----------------------------------------------------------------------------
_COLMAP_MODEL_NAMES = (
    "SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "FOV",
    "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE",
)


def _sniff_file(p: Path) -> list[str]:
    """The formats whose content ``p`` looks like (0 or 1 entries)."""
    try:
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return []
    if b"\x00" in head:
        return []
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(_read_text(p))
        except (json.JSONDecodeError, Syn2SeqInputError):
            return []
        if isinstance(data, dict):
            if data.get("format") == SYN2SEQ_FORMAT_ID:
                return ["syn2seq"]
            frames = data.get("frames")
            if isinstance(frames, list) and frames and isinstance(frames[0], dict) and "transform_matrix" in frames[0]:
                return ["nerf"]
        return []
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if "," in first:
        header = {c.strip() for c in first.split(",")}
        if {"cam_uid", "qw_world_cam"} <= header:
            return ["egoexo4d_exo"]
        if {"tracking_timestamp_us", "qw_world_device"} <= header:
            return ["egoexo4d_aria"]
        return []
    data_lines = []
    for raw in lines[:200]:
        s = raw.strip()
        if s.startswith("# Camera list") or s.startswith("# Image list"):
            return ["colmap"]
        if s and not s.startswith("#"):
            data_lines.append(s.split())
        if len(data_lines) >= 3:
            break
    if not data_lines:
        return []
    tok = data_lines[0]
    if len(data_lines) == 1 and len(tok) == 1 and tok[0].lower().startswith("http"):
        return ["re10k"]  # a RealEstate10K file with the URL line and no cameras (refused by the loader)
    if len(tok) == 1 and not _is_number(tok[0]) and len(data_lines) > 1:
        tok = data_lines[1]  # RE10K URL line
        if len(tok) == 19 and all(_is_number(t) for t in tok):
            return ["re10k"]
        return []
    if len(tok) == 19 and all(_is_number(t) for t in tok):
        return ["re10k"]
    if len(tok) >= 4 and tok[0].isdigit() and tok[1].upper() in _COLMAP_MODEL_NAMES:
        return ["colmap"]
    if len(tok) >= 10 and tok[0].isdigit() and all(_is_number(t) for t in tok[1:8]) and tok[8].isdigit():
        return ["colmap"]
    return []


def _colmap_dir(p: Path) -> Path | None:
    for d in (p, p / "sparse" / "0", p / "sparse"):
        if (d / "cameras.txt").is_file() and (d / "images.txt").is_file():
            return d
    return None


def _folder_candidates(p: Path, within: Folder) -> list[str]:
    found = []
    if _colmap_dir(p) is not None:
        found.append("colmap")
    for rel, fmt in (("transforms.json", "nerf"), (SYN2SEQ_FILENAME, "syn2seq"),
                     ("trajectory/gopro_calibs.csv", "egoexo4d_exo"), ("gopro_calibs.csv", "egoexo4d_exo"),
                     ("trajectory/closed_loop_trajectory.csv", "egoexo4d_aria"),
                     ("closed_loop_trajectory.csv", "egoexo4d_aria")):
        if (p / rel).is_file() and fmt not in found and _sniff_file(within.path(p / rel)) == [fmt]:
            found.append(fmt)
    return found


def _detect(p: Path, options: dict, within: Folder) -> str:
    candidates = _folder_candidates(p, within) if p.is_dir() else _sniff_file(p)
    if len(candidates) > 1 and options:
        # Let the options decide, e.g. a take folder with camera=... (exo) or timestamps_us=... (aria).
        fitting = [f for f in candidates
                   if set(options) <= set(inspect.signature(_LOADERS[f]).parameters) - {"path", "within"}]
        if fitting:
            candidates = fitting
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise Syn2SeqInputError(str(p), "a folder holding cameras in one format", f"several: {candidates}",
                                "Pass format=... (or the path of the file itself)")
    if p.is_dir():
        found = "a folder with none of cameras.txt + images.txt, transforms.json, cameras.json, " \
                "trajectory/gopro_calibs.csv, trajectory/closed_loop_trajectory.csv"
        hint = None
        if any((d / "cameras.bin").is_file() for d in (p, p / "sparse" / "0", p / "sparse")):
            found = "a binary COLMAP model (cameras.bin)"
            hint = _COLMAP_BINARY_HINT
    else:
        hint = None
        with open(p, "rb") as f:
            head = f.read(200)
        if p.suffix == ".bin" and p.stem in ("cameras", "images", "points3D"):
            found, hint = "a binary COLMAP model file", _COLMAP_BINARY_HINT
        elif b"\x00" in head:
            found = "binary content"
        else:
            first = head.decode("utf-8", errors="replace").splitlines()[0] if head.strip() else ""
            found = f"unrecognised content starting {first[:60]!r}" if first else "an empty file"
    raise Syn2SeqInputError(str(p), f"a camera file or folder in one of the known formats {list(KNOWN_FORMATS)}",
                            found, hint or "Pass format=... if the file is in a known format")


_COLMAP_BINARY_HINT = ("Only text models are read; convert with `colmap model_converter --input_path MODEL "
                       "--output_path MODEL --output_type TXT`")


# --- syn2seq cameras.json ------------------------------------------------------------------------
def _load_syn2seq(path: Path, within: Folder, *, width: int | None = None,
                  height: int | None = None) -> CameraTrack:
    size = _size_option(width, height, "syn2seq")
    src = within.path(path / SYN2SEQ_FILENAME) if path.is_dir() else path
    data = _read_json(src)
    if not isinstance(data, dict) or data.get("format") != SYN2SEQ_FORMAT_ID:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise _err(src, None, f'a JSON object with "format": "{SYN2SEQ_FORMAT_ID}"', repr(found))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _err(src, None, '"version" a positive integer', repr(version))
    if version > SYN2SEQ_FORMAT_VERSION:
        raise _err(src, None, f'"version" <= {SYN2SEQ_FORMAT_VERSION}', version,
                   "The file was written by a newer Syn2Seq; update the package")
    if data.get("convention") != SYN2SEQ_CONVENTION:
        raise _err(src, None, f'"convention": "{SYN2SEQ_CONVENTION}"', repr(data.get("convention")))
    w, h = data.get("width"), data.get("height")
    for key, v in (("width", w), ("height", h)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise _err(src, None, f'"{key}" a positive integer', repr(v))
    frames = data.get("frames")
    if not isinstance(frames, list):
        raise _err(src, None, '"frames" a list', type(frames).__name__)
    n = len(frames)
    c2w, K, fish, ts, names, where = np.zeros((n, 4, 4)), np.zeros((n, 4)), [], [], [], []
    for i, frame in enumerate(frames):
        at = f"frames[{i}]"
        where.append(at)
        if not isinstance(frame, dict):
            raise _err(src, at, "a JSON object", type(frame).__name__)
        for key in ("c2w", "K"):
            if key not in frame:
                raise _err(src, at, f'a "{key}" entry', f"keys {sorted(frame)}")
        c2w[i] = _matrix(frame["c2w"], src, at, "c2w", ((4, 4),))
        K[i] = _matrix(frame["K"], src, at, "K", ((4,),))
        fish.append(None if frame.get("fisheye") is None else _matrix(frame["fisheye"], src, at, "fisheye",
                                                                      ((4,), (12,))))
        ts.append(None if frame.get("timestamp") is None else _number(frame["timestamp"], src, at, "timestamp"))
        name = frame.get("name")
        if name is not None and not isinstance(name, str):
            raise _err(src, at, '"name" a string', repr(name))
        names.append(name)
    for key, values in (("fisheye", fish), ("timestamp", ts), ("name", names)):
        given = [v is not None for v in values]
        if any(given) and not all(given):
            i = given.index(False)
            raise _err(src, f"frames[{i}]", f'"{key}" on every frame or on none', f"missing on frame {i}")
    lens = [len(f) for f in fish if f is not None]
    if lens and len(set(lens)) > 1:
        i = lens.index(lens[-1])
        raise _err(src, f"frames[{i}]", f'"fisheye" of one length on every frame ({lens[0]})', lens[-1])
    parsed = _Parsed(c2w, K, w, h, where,
                     fisheye=np.stack(fish) if n and fish[0] is not None else None,
                     timestamps=np.array(ts, dtype=np.float64) if n and ts[0] is not None else None,
                     names=names if n and names[0] is not None else None)
    return _finish(src, "syn2seq", parsed, size)


# --- RealEstate10K -------------------------------------------------------------------------------
def _load_re10k(path: Path, within: Folder, *, width: int | None = None, height: int | None = None) -> CameraTrack:
    w, h = _size_option(width, height, "re10k") or RE10K_DEFAULT_SIZE
    src = path
    rows, where = [], []
    first = True
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        tokens = raw.split()
        if not tokens:
            continue
        if first:
            first = False
            if len(tokens) == 1 and not _is_number(tokens[0]):
                continue  # the video URL
        at = f"line {lineno}"
        if len(tokens) != 19:
            raise _err(src, at, "19 numbers: timestamp_us fx fy cx cy 0 0, then a row-major 3x4 world-to-camera "
                       "matrix", f"{len(tokens)} values")
        rows.append(_floats(tokens, src, at, "RE10K camera line"))
        where.append(at)
    if not rows:
        raise _err(src, None, "at least one camera line after the URL", "none")
    a = np.array(rows, dtype=np.float64)
    n = len(a)
    w2c = np.tile(np.eye(4), (n, 1, 1))
    w2c[:, :3, :4] = a[:, 7:19].reshape(n, 3, 4)
    parsed = _Parsed(_rigid_inverse(w2c), a[:, 1:5], w, h, where, timestamps=a[:, 0] / 1e6, resizable=False)
    _check_poses(src, w2c, parsed.K, where, None, parsed.timestamps)  # before the inverse hides a bad R
    return _finish(src, "re10k", parsed, None)


# --- COLMAP text model ---------------------------------------------------------------------------
def _colmap_intrinsics(model: str, p: list[float]):
    """params -> (fx, fy, cx, cy, fisheye k1..k4 or None, dropped distortion coefficients)."""
    if model == "SIMPLE_PINHOLE":
        return p[0], p[0], p[1], p[2], None, []
    if model == "PINHOLE":
        return p[0], p[1], p[2], p[3], None, []
    if model in ("SIMPLE_RADIAL", "RADIAL"):
        return p[0], p[0], p[1], p[2], None, p[3:]
    if model in ("OPENCV", "FULL_OPENCV"):
        return p[0], p[1], p[2], p[3], None, p[4:]
    if model == "OPENCV_FISHEYE":
        return p[0], p[1], p[2], p[3], p[4:8], []
    if model == "SIMPLE_RADIAL_FISHEYE":
        return p[0], p[0], p[1], p[2], [p[3], 0.0, 0.0, 0.0], []
    if model == "RADIAL_FISHEYE":
        return p[0], p[0], p[1], p[2], [p[3], p[4], 0.0, 0.0], []
    raise AssertionError(model)  # unreachable: models are checked against _COLMAP_PARAMS first


_COLMAP_PARAMS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8,
                  "FULL_OPENCV": 12, "OPENCV_FISHEYE": 8, "SIMPLE_RADIAL_FISHEYE": 4, "RADIAL_FISHEYE": 5}


def _natural_key(name: str):
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


def _load_colmap(path: Path, within: Folder, *, width: int | None = None, height: int | None = None,
                 on_distortion: str = "warn") -> CameraTrack:
    size = _size_option(width, height, "colmap")
    check_choice(on_distortion, DISTORTION_POLICIES, "on_distortion")
    folder = path.parent if path.is_file() else path
    model_dir = _colmap_dir(folder)
    if model_dir is None:
        binary = any((d / "cameras.bin").is_file() for d in (folder, folder / "sparse" / "0", folder / "sparse"))
        raise _err(folder, None, "a COLMAP text model (cameras.txt and images.txt)",
                   "a binary model (cameras.bin)" if binary else "no cameras.txt + images.txt here or in sparse/0",
                   _COLMAP_BINARY_HINT if binary else None)
    cam_src = within.path(model_dir / "cameras.txt")
    cameras = {}
    for lineno, raw in enumerate(_read_text(cam_src).splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        at = f"line {lineno}"
        tok = s.split()
        if len(tok) < 4:
            raise _err(cam_src, at, "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", f"{len(tok)} values")
        cam_id = _int(tok[0], cam_src, at, "CAMERA_ID")
        model = tok[1].upper()
        if model not in _COLMAP_PARAMS:
            raise _err(cam_src, at, f"a camera model in {sorted(_COLMAP_PARAMS)}", repr(tok[1]),
                       "Undistort the images with `colmap image_undistorter` (PINHOLE) first")
        w, h = _int(tok[2], cam_src, at, "WIDTH"), _int(tok[3], cam_src, at, "HEIGHT")
        if len(tok) - 4 != _COLMAP_PARAMS[model]:
            raise _err(cam_src, at, f"{_COLMAP_PARAMS[model]} parameters for {model}", len(tok) - 4)
        if w <= 0 or h <= 0:
            raise _err(cam_src, at, "a positive image size", f"{w}x{h}")
        fx, fy, cx, cy, fish, dropped = _colmap_intrinsics(model, _floats(tok[4:], cam_src, at, "parameters"))
        cameras[cam_id] = (model, w, h, (fx / w, fy / h, cx / w, cy / h), fish, dropped)
    img_src = within.path(model_dir / "images.txt")
    lines = _read_text(img_src).splitlines()
    images = []  # (name, lineno, q_xyzw, t, camera_id)
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        lineno = i + 1
        i += 1
        if not s or s.startswith("#"):
            continue
        at = f"line {lineno}"
        tok = s.split()
        if len(tok) < 10:
            raise _err(img_src, at, "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", f"{len(tok)} values")
        _int(tok[0], img_src, at, "IMAGE_ID")
        q = _floats(tok[1:5], img_src, at, "quaternion QW QX QY QZ")
        t = _floats(tok[5:8], img_src, at, "translation TX TY TZ")
        cam_id = _int(tok[8], img_src, at, "CAMERA_ID")
        if cam_id not in cameras:
            raise _err(img_src, at, f"a CAMERA_ID defined in {cam_src.name} {sorted(cameras)}", cam_id)
        images.append((" ".join(tok[9:]), lineno, [q[1], q[2], q[3], q[0]], t, cam_id))
        # The next line lists the 2D points (X Y POINT3D_ID triples, possibly empty). Tolerate files that
        # leave it out: a line that is not a multiple of 3 values is the next image, not a points line.
        if i < len(lines) and not lines[i].lstrip().startswith("#") and len(lines[i].split()) % 3 == 0:
            i += 1
    if not images:
        raise _err(img_src, None, "at least one image", "none")
    seen = {}
    for name, lineno, *_ in images:
        if name in seen:
            raise _err(img_src, f"line {lineno}", "unique image names", f"{name!r} again (first on line {seen[name]})")
        seen[name] = lineno
    images.sort(key=lambda im: _natural_key(im[0]))
    where = [f"line {im[1]}" for im in images]
    used = [cameras[im[4]] for im in images]
    sizes = sorted({(c[1], c[2]) for c in used})
    if len(sizes) > 1:
        raise _err(img_src, None, "all images with one image size", f"sizes {sizes}",
                   "Load the images of each size separately")
    fisheye_flags = {c[4] is not None for c in used}
    if len(fisheye_flags) > 1:
        raise _err(img_src, None, "all images with pinhole cameras or all with fisheye cameras",
                   f"a mix of {sorted({c[0] for c in used})}")
    dropped: dict[str, float] = {}
    for c in used:
        mag = max((abs(v) for v in c[5]), default=0.0)
        if mag > 0:
            dropped[c[0]] = max(dropped.get(c[0], 0.0), mag)
    _apply_distortion_policy(cam_src, on_distortion, dropped)
    w2c = _poses_from_quaternions(np.array([im[2] for im in images]), np.array([im[3] for im in images]),
                                  img_src, where)
    parsed = _Parsed(_rigid_inverse(w2c), np.array([c[3] for c in used]), sizes[0][0], sizes[0][1], where,
                     fisheye=np.array([c[4] for c in used]) if fisheye_flags == {True} else None,
                     names=[im[0] for im in images])
    return _finish(img_src, "colmap", parsed, size)


# --- NeRF / nerfstudio transforms.json -----------------------------------------------------------
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


def _load_nerf(path: Path, within: Folder, *, width: int | None = None, height: int | None = None,
               on_distortion: str = "warn") -> CameraTrack:
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


# --- Ego-Exo4D -----------------------------------------------------------------------------------
def _find_file(path: Path, filename: str, within: Folder) -> Path:
    if path.is_file():
        return path
    for candidate in (path / "trajectory" / filename, path / filename):
        if candidate.is_file():
            return within.path(candidate)
    raise _err(path, None, f"a take folder with trajectory/{filename}", "no such file")


def _read_csv_header(src: Path, text: str, required: Sequence[str]) -> list[str]:
    first = text.splitlines()[0] if text.strip() else ""
    header = [c.strip() for c in next(csv.reader([first]))] if first else []
    missing = [c for c in required if c not in header]
    if missing:
        raise _err(src, "line 1", f"a CSV header with the columns {list(required)}", f"missing {missing}",
                   f"Found columns: {header[:24]}")
    return header


def _load_egoexo4d_exo(path: Path, within: Folder, *, camera: str | None = None, num_frames: int = 1,
                       frame_index: int | None = None, width: int | None = None,
                       height: int | None = None) -> CameraTrack:
    size = _size_option(width, height, "egoexo4d_exo")
    ok = isinstance(num_frames, (int, np.integer)) and not isinstance(num_frames, bool) and num_frames >= 1
    require(ok, "num_frames", "a positive integer", repr(num_frames))
    src = _find_file(path, "gopro_calibs.csv", within)
    text = _read_text(src)
    header = _read_csv_header(src, text, _GOPRO_COLUMNS)
    col = {name: header.index(name) for name in _GOPRO_COLUMNS}
    reader = csv.reader(io.StringIO(text))
    next(reader)
    rows = []  # (lineno, cells)
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < len(header):
            raise _err(src, f"line {reader.line_num}", f"{len(header)} comma-separated fields", len(cells))
        rows.append((reader.line_num, [c.strip() for c in cells]))
    if not rows:
        raise _err(src, None, "at least one camera row", "none")
    available = sorted({cells[col["cam_uid"]] for _, cells in rows})
    if camera is None:
        if len(available) > 1:
            raise Syn2SeqInputError("camera", f"one of the cameras in {src}: {available}", "none",
                                    "Pass camera='cam01' (or another cam_uid)")
        camera = available[0]
    chosen = [(ln, cells) for ln, cells in rows if cells[col["cam_uid"]] == camera]
    if not chosen:
        raise Syn2SeqInputError("camera", f"one of the cameras in {src}: {available}", repr(camera))
    if len(chosen) > 1:
        ranges = [(_int(c[col["start_frame_idx"]], src, f"line {ln}", "start_frame_idx"),
                   _int(c[col["end_frame_idx"]], src, f"line {ln}", "end_frame_idx")) for ln, c in chosen]
        if frame_index is None:
            raise Syn2SeqInputError("frame_index", f"a frame index to choose among the rows of {camera} in {src} "
                                    f"(start_frame_idx, end_frame_idx: {ranges})", "none")
        hits = [row for row, (a, b) in zip(chosen, ranges)
                if (a < 0 or a <= frame_index) and (b < 0 or frame_index <= b)]
        if not hits:
            raise Syn2SeqInputError("frame_index", f"inside one of the ranges {ranges} of {camera}", frame_index)
        chosen = hits[:1]
    lineno, cells = chosen[0]
    at = f"line {lineno}"

    def num(name: str) -> float:
        return _floats([cells[col[name]]], src, f"{at} column {name}", name)[0]

    kind = cells[col["intrinsics_type"]].upper()
    if kind not in _KB3_TYPES:
        raise _err(src, at, f"intrinsics_type in {list(_KB3_TYPES)}", repr(cells[col["intrinsics_type"]]))
    w = _int(cells[col["image_width"]], src, at, "image_width")
    h = _int(cells[col["image_height"]], src, at, "image_height")
    if w <= 0 or h <= 0:
        raise _err(src, at, "a positive image size", f"{w}x{h}")
    q = np.array([[num(f"q{a}_world_cam") for a in "xyzw"]])
    t = np.array([[num(f"t{a}_world_cam") for a in "xyz"]])
    c2w = _poses_from_quaternions(q, t, src, [at])
    fx, fy, cx, cy = (num(f"intrinsics_{i}") for i in range(4))
    K = np.array([intrinsics_from_centre0(fx, fy, cx, cy, w, h)])  # the file's pixel centres are at (0, 0)
    fish = np.array([[num(f"intrinsics_{i}") for i in range(4, 8)]])
    n = int(num_frames)
    parsed = _Parsed(np.repeat(c2w, n, 0), np.repeat(K, n, 0), w, h, [at] * n, fisheye=np.repeat(fish, n, 0))
    return _finish(src, "egoexo4d_exo", parsed, size)


def _read_trajectory(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """closed_loop_trajectory.csv -> (t_us [M], q_xyzw [M, 4], translation [M, 3]), sorted, validated."""
    text = _read_text(src)
    header = _read_csv_header(src, text, _ARIA_COLUMNS)
    usecols = [header.index(c) for c in _ARIA_COLUMNS]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            data = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=usecols, ndmin=2,
                              comments=None, dtype=np.float64)
    except ValueError:
        data = None
    if data is None:  # find the bad line (slow path, only on error)
        reader = csv.reader(io.StringIO(text))
        next(reader)
        for cells in reader:
            at = f"line {reader.line_num}"
            if not cells:
                continue
            if len(cells) != len(header):
                raise _err(src, at, f"{len(header)} comma-separated fields", len(cells))
            _floats([cells[i] for i in usecols], src, at, ", ".join(_ARIA_COLUMNS))
        raise _err(src, None, "a numeric trajectory table", "unparseable content")
    if len(data) == 0:
        raise _err(src, None, "at least one trajectory sample", "none")
    t_us, trans, q = data[:, 0], data[:, 1:4], data[:, 4:8]
    bad = ~np.isfinite(t_us)
    if bad.any():
        raise _err(src, f"line {int(np.argmax(bad)) + 2}", "a finite tracking_timestamp_us", "NaN or inf")
    step = np.diff(t_us)
    if (step <= 0).any():
        i = int(np.argmax(step <= 0)) + 1
        raise _err(src, f"line {i + 2}", "strictly increasing tracking_timestamp_us",
                   f"{t_us[i]:.0f} after {t_us[i - 1]:.0f}")
    return t_us, q, trans


def _load_egoexo4d_aria(path: Path, within: Folder, *, timestamps_us=None, K=None, width: int | None = None,
                        height: int | None = None, fisheye=None, T_device_camera=None) -> CameraTrack:
    from scipy.spatial.transform import Rotation

    w, h = _size_option(width, height, "egoexo4d_aria") or ARIA_RGB_DEFAULT_SIZE
    if timestamps_us is None:
        raise Syn2SeqInputError("timestamps_us", "the frame times to resample the Aria track at (1-D, tracking-"
                                "clock microseconds)", "none")
    t = _float64(timestamps_us, "timestamps_us")
    require(t.ndim == 1 and t.size > 0, "timestamps_us", "a non-empty 1-D array", tuple(t.shape))
    require(bool(np.isfinite(t).all()), "timestamps_us", "finite values", "NaN/inf")
    src = _find_file(path, "closed_loop_trajectory.csv", within)
    t_s, q_s, x_s = _read_trajectory(src)
    outside = (t < t_s[0]) | (t > t_s[-1])
    if outside.any():
        i = int(np.argmax(outside))
        raise Syn2SeqInputError("timestamps_us", f"times inside the trajectory of {src}: "
                                f"[{t_s[0]:.0f}, {t_s[-1]:.0f}] us", f"{t[i]:.0f} us (entry {i})",
                                "Times are on the Aria tracking clock (tracking_timestamp_us)")
    where_s = [f"line {i + 2}" for i in range(len(t_s))]
    j = np.clip(np.searchsorted(t_s, t, side="right") - 1, 0, max(len(t_s) - 2, 0))
    k = np.minimum(j + 1, len(t_s) - 1)
    used = np.unique(np.concatenate([j, k]))
    T_used = _poses_from_quaternions(q_s[used], x_s[used], src, [where_s[i] for i in used])
    pos = {int(i): r for r, i in enumerate(used)}
    T0 = T_used[[pos[int(i)] for i in j]]
    T1 = T_used[[pos[int(i)] for i in k]]
    span = t_s[k] - t_s[j]
    alpha = np.where(span > 0, (t - t_s[j]) / np.where(span > 0, span, 1.0), 0.0)
    R0, R1 = Rotation.from_matrix(T0[:, :3, :3]), Rotation.from_matrix(T1[:, :3, :3])
    R = R0 * Rotation.from_rotvec((R0.inv() * R1).as_rotvec() * alpha[:, None])  # SLERP on the short arc
    c2w = np.zeros((len(t), 4, 4))
    c2w[:, :3, :3] = np.where((alpha == 0)[:, None, None], T0[:, :3, :3], R.as_matrix())
    c2w[:, :3, 3] = T0[:, :3, 3] + alpha[:, None] * (T1[:, :3, 3] - T0[:, :3, 3])
    c2w[:, 3, 3] = 1.0
    if T_device_camera is not None:  # [4, 4] or one per frame [N, 4, 4]
        Tdc = torch.from_numpy(_float64(T_device_camera, "T_device_camera"))
        require(tuple(Tdc.shape) in ((4, 4), (len(t), 4, 4)), "T_device_camera",
                f"a 4x4 rigid transform or one per frame [{len(t)}, 4, 4]", tuple(Tdc.shape))
        check_rotations(Tdc.reshape(-1, 4, 4), "T_device_camera")
        c2w = c2w @ Tdc.numpy()
    n = len(t)
    K_arr = _float64(ARIA_RGB_DEFAULT_K if K is None else K, "K")
    require(K_arr.shape in ((4,), (n, 4)), "K", f"normalised intrinsics of shape [4] or [{n}, 4]", K_arr.shape)
    fish = None
    if fisheye is not None:
        fish = _float64(fisheye, "fisheye")
        m = fish.shape[-1] if fish.ndim else 0
        require(fish.shape in ((4,), (n, 4), (12,), (n, 12)), "fisheye", f"Kannala-Brandt k1..k4 or FISHEYE624 "
                f"k0..k5 p0 p1 s0..s3: shape [4], [{n}, 4], [12] or [{n}, 12]", fish.shape)
        fish = np.broadcast_to(fish, (n, m)).copy()
    where = [f"timestamps_us[{i}]" for i in range(n)]
    parsed = _Parsed(c2w, np.broadcast_to(K_arr, (n, 4)).copy(), w, h, where, fisheye=fish,
                     timestamps=t / 1e6, resizable=False)
    return _finish(src, "egoexo4d_aria", parsed, None)


_LOADERS = {
    "syn2seq": _load_syn2seq,
    "re10k": _load_re10k,
    "colmap": _load_colmap,
    "nerf": _load_nerf,
    "egoexo4d_exo": _load_egoexo4d_exo,
    "egoexo4d_aria": _load_egoexo4d_aria,
}
