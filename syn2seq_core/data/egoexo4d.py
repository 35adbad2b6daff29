"""Ego-Exo4D take folders as :class:`~syn2seq_core.data.takes.Take` (one exo camera + the Aria ego view).

Layout read (``takes/<take_name>/`` of the Ego-Exo4D release)::

    frame_aligned_videos/cam01.mp4 ...                exo GoPro videos, full resolution
    frame_aligned_videos/aria01_214-1.mp4             Aria RGB video (ego)
    frame_aligned_videos/downscaled/448/cam01.mp4 ... the same, short side 448 (what Exo2Ego-V uses)
    trajectory/gopro_calibs.csv                       static GoPro calibration (T_world_cam, KB3 fisheye)
    trajectory/closed_loop_trajectory.csv             Aria device track (T_world_device, ~1 kHz)

Exo view
    One GoPro chosen by name (``camera="cam01"``; the calibration may call it ``gp01``: either name
    works). Its static pose is repeated for every frame. Intrinsics are given at the calibration size
    (e.g. 3840x2160) and rescaled to the video actually read (e.g. 796x448): the downscaled videos are
    assumed to be plain resizes of the calibrated image (aspect ratios agree to 0.1%). The KB3 fisheye
    coefficients are kept in ``Cameras.fisheye``.

Ego view and time alignment (an assumption the caller must choose)
    The frame-aligned videos share one timeline: frame ``i`` of ``aria01_214-1.mp4`` and of every
    ``camNN.mp4`` are the same moment. The Aria track is indexed by the device clock
    (``tracking_timestamp_us``), so each video frame needs its device time. Give exactly one of:

    * ``ego_timestamps_us``: per-frame device times, a sequence, or a file: plain text (one number per
      line) or a CSV with a column ``tracking_timestamp_us`` / ``timestamp_us`` / ``capture_timestamp_us``
      or ``<aria>_214-1_capture_timestamp_ns`` (nanoseconds, as in the capture's ``timesync.csv``). Rows
      are taken from ``timesync_start_idx`` on (the take's ``timesync_start_idx`` of ``takes.json`` for a
      capture-level ``timesync.csv``). This is the exact option. (That the ``capture_timestamp_ns`` of
      ``timesync.csv`` is on the same device clock as ``tracking_timestamp_us`` is inferred from the
      Exo2Ego-V preprocessing, not from a specification.)
    * ``start_timestamp_us``: device time of frame 0; frame ``i`` is at ``start + i * 1e6 / fps``.
    * ``align="trajectory_start"``: frame 0 is at the first trajectory sample. Only right when the
      trajectory was cut to the take; otherwise the ego poses are shifted in time.

    Poses are resampled at those times (SLERP / linear between the two nearest samples, see
    :func:`~syn2seq_core.geometry.pose_io.load_cameras` format ``egoexo4d_aria``). The pose is the Aria
    *device* frame (as Exo2Ego-V uses it) unless ``T_device_camera`` (the RGB camera extrinsics from the
    device calibration) is given; the device frame differs from the RGB camera by centimetres and a
    rotation of tens of degrees, which matters for Plücker rays. Intrinsics: ``ego_K`` (normalised),
    default an approximate pinhole stand-in for the Aria RGB fisheye (FISHEYE624 in reality).

Files read
    Every file read from the take folder (videos, CSVs) must resolve, links followed, inside it (see
    :mod:`syn2seq_core.safe_paths`); a video or calibration that is a link out of the take is refused. The
    ``ego_timestamps_us`` file is the caller's argument (often the capture's ``timesync.csv``, outside the
    take) and is read where it is.

Aria RGB orientation
    The Aria RGB frames are stored as the sensor sees them, rotated 90 degrees from upright (viewers
    rotate them clockwise; projectaria_tools tutorials use ``np.rot90(image, k=3)``). The reader keeps
    frames and poses in the stored (sensor) orientation, which is self-consistent. To work upright,
    rotate frames and cameras together with :func:`rotate90`.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from ..errors import Syn2SeqInputError, check_choice, require
from ..geometry.cameras import Cameras
from ..safe_paths import Folder, check_inside, check_not_a_playlist
from ..video_io import probe_video
from .takes import Take

RESOLUTIONS = ("auto", "448", "full")
ALIGN_MODES = ("trajectory_start",)
ARIA_RGB_STREAM = "214-1"
VIDEOS_DIR = "frame_aligned_videos"
DOWNSCALED_DIR = ("downscaled", "448")
GOPRO_CALIBS = ("trajectory", "gopro_calibs.csv")
ARIA_TRAJECTORY = ("trajectory", "closed_loop_trajectory.csv")
_TIMESTAMP_US_COLUMNS = ("tracking_timestamp_us", "timestamp_us", "capture_timestamp_us")


def is_egoexo4d_take(path) -> bool:
    """Whether ``path`` looks like an Ego-Exo4D take folder (``frame_aligned_videos/`` inside)."""
    return Path(path, VIDEOS_DIR).is_dir()


def find_egoexo4d_takes(root) -> list[Path]:
    """Ego-Exo4D take folders under ``root`` (``root`` itself if it is one), sorted. A take folder that is a
    link leading out of ``root`` is refused, as in :func:`~syn2seq_core.data.takes.find_takes`."""
    r = Path(root).expanduser()
    require(r.is_dir(), "Ego-Exo4D root", "an existing folder", f"nothing at '{r}'")
    if is_egoexo4d_take(r):
        return [r]
    out = []
    for dirpath, dirnames, _ in os.walk(r):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        hits = [d for d in dirnames if is_egoexo4d_take(here / d)]
        for d in hits:
            check_inside(r, here / d, owner=f"Ego-Exo4D root '{r}'",
                         entry=f"take folder {(here / d).relative_to(r).as_posix()}",
                         hint="Copy the take into the root, or read the folder it links to")
        out += [here / d for d in hits]
        dirnames[:] = [d for d in dirnames if d not in hits]
    return sorted(out)


def _video_dirs(take: Path, resolution: str) -> list[Path]:
    full, small = take / VIDEOS_DIR, take.joinpath(VIDEOS_DIR, *DOWNSCALED_DIR)
    return {"448": [small], "full": [full], "auto": [small, full]}[resolution]


def _aliases(camera: str) -> list[str]:
    """cam01 <-> gp01: the video files and the calibration do not always use the same prefix."""
    for a, b in (("cam", "gp"), ("gp", "cam")):
        if camera.startswith(a) and camera[len(a):].isdigit():
            return [camera, b + camera[len(a):]]
    return [camera]


def list_exo_cameras(path, resolution: str = "auto") -> list[str]:
    """Names of the exo videos of a take (``cam01`` ...), in the first video folder that has any."""
    for folder in _video_dirs(Path(path), check_choice(resolution, RESOLUTIONS, "resolution")):
        names = sorted(p.stem for p in folder.glob("*.mp4") if not p.stem.startswith("aria"))
        if names:
            return names
    return []


def _calib_uids(calib: Path) -> list[str]:
    with open(calib, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if "cam_uid" not in header:
            raise Syn2SeqInputError(str(calib), "a CSV with a cam_uid column", f"columns {header[:12]}")
        i = header.index("cam_uid")
        return sorted({row[i].strip() for row in reader if len(row) > i and row[i].strip()})


def _first_tracking_us(trajectory: Path) -> float:
    with open(trajectory, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if "tracking_timestamp_us" not in header:
            raise Syn2SeqInputError(str(trajectory), "a CSV with a tracking_timestamp_us column",
                                    f"columns {header[:12]}")
        i = header.index("tracking_timestamp_us")
        for row in reader:
            if len(row) > i and row[i].strip():
                return float(row[i])
    raise Syn2SeqInputError(str(trajectory), "at least one trajectory sample", "none")


def _read_timestamps_file(path: Path, aria: str | None, start_idx: int, n: int) -> Tensor:
    """Per-frame device times in microseconds from a text or CSV file (see the module docstring)."""
    require(path.is_file(), "ego_timestamps_us", "an existing file", f"no file at '{path}'")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    require(len(lines) > 0, str(path), "per-frame timestamps", "an empty file")
    scale, column = 1.0, None
    if any(ch.isalpha() for ch in lines[0].replace("e", "").replace("E", "")):  # a header line
        header = [c.strip() for c in next(csv.reader([lines[0]]))]
        suffix = f"_{ARIA_RGB_STREAM}_capture_timestamp_ns"
        ns_cols = [c for c in header if (c == f"{aria}{suffix}" if aria else c.endswith(suffix))]
        us_cols = [c for c in _TIMESTAMP_US_COLUMNS if c in header]
        if len(ns_cols) == 1:
            column, scale = header.index(ns_cols[0]), 1e-3
        elif us_cols and not ns_cols:
            column = header.index(us_cols[0])
        else:
            raise Syn2SeqInputError(str(path), f"one column among {list(_TIMESTAMP_US_COLUMNS)} or "
                                    f"'<aria>{suffix}'", f"columns {header[:16]}",
                                    "Pass aria='aria01' to choose among several Aria columns" if ns_cols else None)
        lines = lines[1:]
    rows = lines[start_idx:start_idx + n]
    if len(rows) < n:
        raise Syn2SeqInputError(str(path), f"{n} timestamps (one per video frame) from row {start_idx}",
                                f"{len(rows)}")
    values = []
    for k, line in enumerate(rows):
        cell = next(csv.reader([line]))[column].strip() if column is not None else line.split(",")[0].strip()
        try:
            values.append(float(cell) * scale)
        except ValueError:
            raise Syn2SeqInputError(f"{path} data row {start_idx + k}", "a number", repr(cell)) from None
    ts = torch.tensor(values, dtype=torch.float64)
    require(bool(torch.isfinite(ts).all()), str(path), "finite timestamps", "NaN/inf")
    return ts


def _ego_times(n: int, fps: float, trajectory: Path, aria: str | None, ego_timestamps_us, start_timestamp_us,
               align, timesync_start_idx: int) -> tuple[Tensor, str]:
    given = [name for name, v in (("ego_timestamps_us", ego_timestamps_us),
                                  ("start_timestamp_us", start_timestamp_us), ("align", align)) if v is not None]
    if len(given) != 1:
        raise Syn2SeqInputError(
            "ego time alignment", "exactly one of ego_timestamps_us (per-frame device times), start_timestamp_us "
            "(device time of frame 0) or align='trajectory_start'", f"{given or 'none'}",
            "The Aria track is on the device clock; the video frames need device times (see the capture's "
            "timesync.csv)")
    if ego_timestamps_us is not None:
        if isinstance(ego_timestamps_us, (str, os.PathLike)):
            p = Path(ego_timestamps_us)
            return _read_timestamps_file(p, aria, timesync_start_idx, n), f"per-frame timestamps from {p.name}"
        ts = torch.as_tensor(ego_timestamps_us, dtype=torch.float64).flatten()
        require(len(ts) == n, "ego_timestamps_us", f"{n} values (one per video frame)", len(ts))
        return ts, "per-frame timestamps given by the caller"
    if align is not None:
        check_choice(align, ALIGN_MODES, "align")
        start = _first_tracking_us(trajectory)
        how = "assumed: frame 0 at the first trajectory sample (align='trajectory_start')"
    else:
        ok = isinstance(start_timestamp_us, (int, float)) and math.isfinite(start_timestamp_us)
        require(ok, "start_timestamp_us", "a device time in microseconds", repr(start_timestamp_us))
        start, how = float(start_timestamp_us), "frame 0 at start_timestamp_us, constant frame rate"
    return start + torch.arange(n, dtype=torch.float64) * (1e6 / fps), how


def load_egoexo4d_take(path, camera: str = "cam01", *, resolution: str = "auto", aria: str | None = None,
                       ego: bool = True, ego_timestamps_us=None, start_timestamp_us: float | None = None,
                       align: str | None = None, timesync_start_idx: int = 0, ego_K=None, ego_fisheye=None,
                       T_device_camera=None) -> Take:
    """Read an Ego-Exo4D take folder into a :class:`Take` (see the module docstring for every option).

    camera: the exo GoPro (``cam01`` ...). resolution: ``"448"`` (``downscaled/448``), ``"full"``, or
    ``"auto"`` (448 when present). aria: ``aria01`` ... (auto-detected when there is one). ego=False
    reads the exo view only (no trajectory or time alignment needed).
    """
    from ..geometry.pose_io import ARIA_RGB_DEFAULT_SIZE, load_cameras

    require(isinstance(path, (str, os.PathLike)), "Ego-Exo4D take", "a folder path", type(path).__name__)
    take = Path(path).expanduser()
    if not is_egoexo4d_take(take):
        raise Syn2SeqInputError("Ego-Exo4D take", f"a take folder with {VIDEOS_DIR}/", f"none in '{take}'")
    check_choice(resolution, RESOLUTIONS, "resolution")
    require(isinstance(camera, str) and camera, "camera", "an exo camera name such as 'cam01'", repr(camera))
    require(isinstance(timesync_start_idx, int) and timesync_start_idx >= 0, "timesync_start_idx",
            "a row index >= 0", timesync_start_idx)
    dirs = _video_dirs(take, resolution)
    # Every file read below must resolve, links followed, inside the take folder.
    within = Folder(take, f"Ego-Exo4D take '{take.name}'")

    def video(path: Path) -> Path:
        return check_not_a_playlist(within.path(path), owner=within.owner, entry=within.relative(path))

    exo_video = next((d / f"{name}.mp4" for d in dirs for name in _aliases(camera) if (d / f"{name}.mp4").is_file()),
                     None)
    if exo_video is None:
        known = list_exo_cameras(take, resolution)
        raise Syn2SeqInputError("camera", f"one of the exo videos of '{take.name}': {known}", repr(camera),
                                f"Looked in {[str(d.relative_to(take)) for d in dirs]}")
    exo_info = probe_video(video(exo_video))
    calib = take.joinpath(*GOPRO_CALIBS)
    if not calib.is_file():
        raise Syn2SeqInputError(f"Ego-Exo4D take '{take.name}'", "the exo calibration trajectory/gopro_calibs.csv",
                                "no such file")
    uids = _calib_uids(within.path(calib))
    uid = next((a for a in _aliases(camera) if a in uids), None)
    if uid is None:
        raise Syn2SeqInputError("camera", f"a camera calibrated in {calib}: {uids}", repr(camera))
    exo_cams = load_cameras(calib, "egoexo4d_exo", root=take, owner=within.owner, camera=uid, width=exo_info.width,
                            height=exo_info.height)

    meta = {"source": "egoexo4d", "notes": f"Ego-Exo4D take {take.name}, exo camera {camera}",
            "meta": {"take_dir": str(take), "exo_camera": camera, "exo_calibration_uid": uid,
                     "resolution": str(exo_video.parent.relative_to(take)),
                     "aria_orientation": "as stored (sensor orientation, 90 degrees from upright)"}}
    ego_video = ego_info = ego_cams = None
    stamps = {}
    if ego:
        pattern = f"{aria}_{ARIA_RGB_STREAM}.mp4" if aria else f"aria*_{ARIA_RGB_STREAM}.mp4"
        for d in [exo_video.parent] + [d for d in _video_dirs(take, "auto") if d != exo_video.parent]:
            found = sorted(d.glob(pattern))
            if len(found) > 1:
                raise Syn2SeqInputError("aria", f"one of {[p.stem.split('_')[0] for p in found]}", "none",
                                        "Pass aria='aria01' (the take has several Aria videos)")
            if found:
                ego_video = found[0]
                break
        aria_name = ego_video.stem.split("_")[0] if ego_video is not None else aria
        trajectory = take.joinpath(*ARIA_TRAJECTORY)
        if not trajectory.is_file():
            raise Syn2SeqInputError(f"Ego-Exo4D take '{take.name}'", "the Aria track "
                                    "trajectory/closed_loop_trajectory.csv", "no such file",
                                    "Pass ego=False to read the exo view only")
        ego_info = probe_video(video(ego_video)) if ego_video is not None else None
        n = ego_info.frames if ego_info is not None else exo_info.frames
        fps = ego_info.fps if ego_info is not None and ego_info.fps > 0 else exo_info.fps
        ts_us, how = _ego_times(n, fps, within.path(trajectory), aria_name, ego_timestamps_us, start_timestamp_us,
                                align, timesync_start_idx)
        size = ego_info.size if ego_info is not None else ARIA_RGB_DEFAULT_SIZE
        ego_cams = load_cameras(trajectory, "egoexo4d_aria", root=take, owner=within.owner, timestamps_us=ts_us,
                                width=size[0], height=size[1], K=ego_K, fisheye=ego_fisheye,
                                T_device_camera=T_device_camera)
        stamps["ego"] = ts_us / 1e6
        if n == exo_info.frames:
            stamps["exo"] = ts_us / 1e6
        meta["meta"].update(aria=aria_name, time_alignment=how,
                            ego_pose="T_world_device @ T_device_camera" if T_device_camera is not None
                            else "T_world_device (the Aria device frame, not the RGB camera)",
                            ego_intrinsics="given" if ego_K is not None else "approximate Aria RGB default")
    return Take(take.name, take, exo_video, ego_video, exo_cams, ego_cams, float(exo_info.fps or 30.0), stamps,
                exo_info, ego_info, meta)


# --- 90-degree rotation of frames and cameras together -------------------------------------------
def rotate90(frames: Tensor | None = None, cameras: Cameras | None = None, clockwise: bool = True):
    """Rotate frames ``[..., C, H, W]`` by 90 degrees and the cameras with them.

    A point at pixel ``(u, v)`` of a ``W x H`` image moves to ``(H - v, u)`` (clockwise) or
    ``(v, W - u)`` (counter-clockwise) of the ``H x W`` result; the camera turns about its optical
    axis accordingly (fisheye coefficients are radial, so unchanged). Returns ``(frames, cameras)``
    (None stays None).
    """
    out_frames = None
    if frames is not None:
        require(isinstance(frames, Tensor) and frames.ndim >= 2, "frames", "a tensor [..., H, W]",
                getattr(frames, "shape", type(frames).__name__))
        out_frames = torch.rot90(frames, k=-1 if clockwise else 1, dims=(-2, -1))
    out_cams = None
    if cameras is not None:
        require(isinstance(cameras, Cameras), "cameras", "a Cameras track", type(cameras).__name__)
        dtype = cameras.c2w.dtype
        M = torch.eye(4, dtype=dtype)
        K = cameras.K
        if clockwise:  # new x = -old y, new y = old x
            M[:3, :3] = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
            K_new = torch.stack([K[:, 1], K[:, 0], 1 - K[:, 3], K[:, 2]], -1)
        else:  # new x = old y, new y = -old x
            M[:3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
            K_new = torch.stack([K[:, 1], K[:, 0], K[:, 3], 1 - K[:, 2]], -1)
        out_cams = replace(cameras, c2w=cameras.c2w @ M, K=K_new, width=cameras.height, height=cameras.width)
    return out_frames, out_cams
