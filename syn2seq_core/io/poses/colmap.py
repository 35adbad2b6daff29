"""``colmap``: a COLMAP *text* model.

The folder holding ``cameras.txt`` and ``images.txt`` (also its ``sparse/0`` or ``sparse`` sub-folder, or the path of
either file). Camera models: ``SIMPLE_PINHOLE``, ``PINHOLE``; ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``,
``FULL_OPENCV`` load as their pinhole part with the radial / tangential distortion dropped (option
``on_distortion``: ``"warn"`` (default), ``"ignore"`` or ``"error"``; undistort the images with
``colmap image_undistorter`` to avoid it); ``OPENCV_FISHEYE``, ``SIMPLE_RADIAL_FISHEYE``, ``RADIAL_FISHEYE`` load
exactly as Kannala–Brandt fisheye (the last two are KB with ``(k, 0, 0, 0)`` and ``(k1, k2, 0, 0)``). Images are
sorted by ``NAME`` in natural order (``frame2`` before ``frame10``; with zero-padded names this is plain
alphabetical order). All images must share one image size; per-image intrinsics are kept. Binary models
(``*.bin``) are refused with the ``colmap model_converter`` command that turns them into text. Image names are
the ``NAME`` column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...base.errors import check_choice
from ..safe_paths import Folder
from .common import (DISTORTION_POLICIES, CameraTrack, _apply_distortion_policy, _err, _finish, _floats, _int,
                     _is_number, _Parsed, _poses_from_quaternions, _read_text, _rigid_inverse, _size_option)
from .registry import Head, PoseFormat, register

# Every camera model COLMAP writes (for detection; the reader takes those of _COLMAP_PARAMS).
_COLMAP_MODEL_NAMES = (
    "SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV", "FOV",
    "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE",
)

# The models our reader takes, with their number of parameters.
_COLMAP_PARAMS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8,
                  "FULL_OPENCV": 12, "OPENCV_FISHEYE": 8, "SIMPLE_RADIAL_FISHEYE": 4, "RADIAL_FISHEYE": 5}

_COLMAP_BINARY_HINT = ("Only text models are read; convert with `colmap model_converter --input_path MODEL "
                       "--output_path MODEL --output_type TXT`")


def _colmap_dir(p: Path) -> Path | None:
    for d in (p, p / "sparse" / "0", p / "sparse"):
        if (d / "cameras.txt").is_file() and (d / "images.txt").is_file():
            return d
    return None


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


def _natural_key(name: str):
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name)))


def read(path: Path, within: Folder, *, width: int | None = None, height: int | None = None,
         on_distortion: str = "warn") -> CameraTrack:
    """The cameras of a COLMAP text model (its folder, ``sparse/0`` or ``sparse`` above it, or either file)."""
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


# --- detection -----------------------------------------------------------------------------------
def _names_itself(head: Head) -> bool:
    """The comment header COLMAP writes at the top of cameras.txt / images.txt."""
    return any(line.startswith(("# Camera list", "# Image list")) for line in head.comments)


def _sniff(head: Head) -> bool:
    """The first data line is a cameras.txt line (``CAMERA_ID MODEL ...``) or an images.txt line
    (``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME``). Asked after re10k's sniffer (``KNOWN_FORMATS`` order),
    so a line of 19 numbers, which could pass for an images.txt line, is RealEstate10K's."""
    if not head.rows:
        return False
    tok = head.rows[0]
    if len(tok) >= 4 and tok[0].isdigit() and tok[1].upper() in _COLMAP_MODEL_NAMES:
        return True
    return len(tok) >= 10 and tok[0].isdigit() and all(_is_number(t) for t in tok[1:8]) and tok[8].isdigit()


def _in_folder(folder: Path, within: Folder) -> bool:
    return _colmap_dir(folder) is not None


def _explain(path: Path) -> tuple[str, str] | None:
    """A binary model (folder or file), which we do not read."""
    if path.is_dir():
        if any((d / "cameras.bin").is_file() for d in (path, path / "sparse" / "0", path / "sparse")):
            return "a binary COLMAP model (cameras.bin)", _COLMAP_BINARY_HINT
    elif path.suffix == ".bin" and path.stem in ("cameras", "images", "points3D"):
        return "a binary COLMAP model file", _COLMAP_BINARY_HINT
    return None


register(PoseFormat("colmap", read, claims=_names_itself, sniff=_sniff, in_folder=_in_folder,
                    folder_label="cameras.txt + images.txt", folder_rank=10, explain=_explain))
