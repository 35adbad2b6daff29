"""``syn2seq``: our own versioned ``cameras.json`` (schema in ``docs/cameras_json.md``), the one format we write
(:func:`save_cameras`). A round trip is exact (floats are written with ``repr`` precision). The file names itself
(``"format": "syn2seq.cameras"``), so detection trusts that over any other sniffer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...base.errors import require
from ...geometry.cameras import Cameras
from ..safe_paths import Folder
from .common import CameraTrack, _err, _finish, _float64, _matrix, _number, _Parsed, _read_json, _size_option
from .registry import Head, PoseFormat, holds_file, register

SYN2SEQ_FORMAT_ID = "syn2seq.cameras"
SYN2SEQ_FORMAT_VERSION = 1
SYN2SEQ_CONVENTION = "opencv_c2w"
SYN2SEQ_FILENAME = "cameras.json"


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


def _write_atomic(target: Path, text: str) -> None:
    from ..atomic import write_text_atomic

    write_text_atomic(target, text)


def read(path: Path, within: Folder, *, width: int | None = None, height: int | None = None) -> CameraTrack:
    """The cameras of a ``cameras.json`` (or of the folder holding one)."""
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


def _names_itself(head: Head) -> bool:
    return isinstance(head.json, dict) and head.json.get("format") == SYN2SEQ_FORMAT_ID


register(PoseFormat("syn2seq", read, claims=_names_itself, in_folder=holds_file("syn2seq", SYN2SEQ_FILENAME),
                    folder_label=SYN2SEQ_FILENAME, folder_rank=30, write=save_cameras))
