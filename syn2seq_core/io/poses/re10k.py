"""``re10k``: RealEstate10K camera ``.txt`` files.

An optional first line with the video URL, then one line per frame
``timestamp_us fx fy cx cy 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` (normalised intrinsics,
world-to-camera ``[R | t]``, OpenCV axes). The file has no image size: options ``width``, ``height``
(default :data:`RE10K_DEFAULT_SIZE` = 640x360, the 16:9 size DFoT and pixelSplat work from). Because the
intrinsics are normalised, the size only fixes the aspect ratio and the pixel units. Timestamps are
``timestamp_us / 1e6`` seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..safe_paths import Folder
from .common import (CameraTrack, _check_poses, _err, _finish, _floats, _is_number, _Parsed, _read_text, _rigid_inverse,
                     _size_option)
from .registry import Head, PoseFormat, register

RE10K_DEFAULT_SIZE = (640, 360)


def read(path: Path, within: Folder, *, width: int | None = None, height: int | None = None) -> CameraTrack:
    """The cameras of a RealEstate10K ``.txt`` file, at ``width x height`` (default :data:`RE10K_DEFAULT_SIZE`)."""
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


def _sniff(head: Head) -> bool:
    """The first data line is 19 numbers, after an optional URL line."""
    if not head.rows:
        return False
    tok = head.rows[0]
    if len(head.rows) == 1 and len(tok) == 1 and tok[0].lower().startswith("http"):
        return True  # a RealEstate10K file with the URL line and no cameras (refused by the reader)
    if len(tok) == 1 and not _is_number(tok[0]) and len(head.rows) > 1:
        tok = head.rows[1]  # RE10K URL line
    return len(tok) == 19 and all(_is_number(t) for t in tok)


register(PoseFormat("re10k", read, sniff=_sniff))
