"""What every pose-file reader shares: :class:`CameraTrack` (what a file holds), ``_Parsed`` (what a reader found,
before checks) and ``_finish`` (the checks, then :class:`Cameras`), errors that name the file and line, and the
parsing of numbers, matrices and quaternions. Format modules import from here; this module imports no format.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ...base import conventions as C
from ...base.errors import Syn2SeqInputError, require
from ...geometry.cameras import Cameras
from ..safe_paths import Folder

DISTORTION_POLICIES = ("warn", "ignore", "error")
_ASPECT_TOLERANCE = 0.01  # relative difference of W/H accepted as "the same frames, resized"


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


# --- errors that name the file -------------------------------------------------------------------
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


# --- reading text, numbers and poses -------------------------------------------------------------
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


# --- checks, then Cameras ------------------------------------------------------------------------
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


# --- Ego-Exo4D take folders (egoexo4d_exo, egoexo4d_aria) ----------------------------------------
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
