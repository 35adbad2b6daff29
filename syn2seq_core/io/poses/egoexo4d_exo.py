"""``egoexo4d_exo``: one static exo (GoPro) camera of an Ego-Exo4D take, from ``trajectory/gopro_calibs.csv``.

The path is the take folder, its ``trajectory`` folder or the csv. ``T_world_cam`` is c2w (metres, quaternion
xyzw); ``intrinsics_0..3`` = fx fy cx cy in pixels of ``image_width x image_height``, with the top-left pixel's
centre at (0, 0) as projectaria_tools reads them (so ``cx_ours = cx + 0.5``, see
:func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`), ``intrinsics_4..7`` = KB3 fisheye k1..k4.
Options: ``camera`` (``cam_uid``, required when the file has several cameras), ``num_frames`` (the static pose
repeated, default 1), ``frame_index`` (picks the row whose ``start_frame_idx..end_frame_idx`` holds it when a
camera has several rows), ``width``, ``height``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...base.errors import Syn2SeqInputError, require
from ...geometry.cameras import intrinsics_from_centre0
from ..safe_paths import Folder
from .common import (CameraTrack, _err, _find_file, _finish, _floats, _int, _Parsed, _poses_from_quaternions,
                     _read_csv_header, _read_text, _size_option)
from .registry import Head, PoseFormat, holds_file, register

_GOPRO_COLUMNS = (
    "cam_uid", "tx_world_cam", "ty_world_cam", "tz_world_cam", "qx_world_cam", "qy_world_cam", "qz_world_cam",
    "qw_world_cam", "image_width", "image_height", "intrinsics_type",
    *(f"intrinsics_{i}" for i in range(8)), "start_frame_idx", "end_frame_idx",
)
_KB3_TYPES = ("KANNALABRANDTK3", "KANNALA_BRANDT_K3")


def read(path: Path, within: Folder, *, camera: str | None = None, num_frames: int = 1,
         frame_index: int | None = None, width: int | None = None, height: int | None = None) -> CameraTrack:
    """The static pose of one GoPro of a take, repeated ``num_frames`` times."""
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


def _sniff(head: Head) -> bool:
    """A CSV header with ``cam_uid`` and ``qw_world_cam``."""
    return head.csv_header is not None and {"cam_uid", "qw_world_cam"} <= head.csv_header


register(PoseFormat("egoexo4d_exo", read, sniff=_sniff,
                    in_folder=holds_file("egoexo4d_exo", "trajectory/gopro_calibs.csv", "gopro_calibs.csv"),
                    folder_label="trajectory/gopro_calibs.csv", folder_rank=40))
