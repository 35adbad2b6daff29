"""Ego-Exo4D take folders as :class:`~syn2seq_core.data.takes.Take` (one exo camera + the Aria ego view).

Layout read (``takes/<take_name>/`` of the Ego-Exo4D release)::

    frame_aligned_videos/cam01.mp4 ...                exo GoPro videos, full resolution
    frame_aligned_videos/aria01_214-1.mp4             Aria RGB video (ego)
    frame_aligned_videos/downscaled/448/cam01.mp4 ... the same, short side 448 (what Exo2Ego-V uses)
    trajectory/gopro_calibs.csv                       static GoPro calibration (T_world_cam, KB3 fisheye)
    trajectory/closed_loop_trajectory.csv             Aria device track (T_world_device, ~1 kHz)
    trajectory/online_calibration.jsonl               Aria MPS online calibration (camera-rgb FISHEYE624 +
                                                      T_Device_Camera), one JSON record per line

Exo view
    One GoPro chosen by name (``camera="cam01"``; the calibration may call it ``gp01``: either name
    works). Its static pose is repeated for every frame. Intrinsics are given at the calibration size
    (e.g. 3840x2160) and rescaled to the video actually read (e.g. 796x448): the downscaled videos are
    assumed to be plain resizes of the calibrated image (aspect ratios agree to 0.1%). The KB3 fisheye
    coefficients are kept in ``Cameras.fisheye`` ([N, 4]); when the ego view has the true FISHEYE624 camera
    they are given as their exact FISHEYE624 equivalent ([N, 12] = k1..k4, 0, 0, 0, ...: the same rays) so that
    both views share one lens family (transitions interpolate the coefficients, ``Cameras.cat`` joins them).

Ego view and time alignment (an assumption the caller must choose)
    The frame-aligned videos share one timeline: frame ``i`` of ``aria01_214-1.mp4`` and of every
    ``camNN.mp4`` are the same moment. The Aria track is indexed by the device clock
    (``tracking_timestamp_us``), so each video frame needs its device time. Give exactly one of:

    * ``ego_timestamps_us``: per-frame device times, a sequence, or a file: plain text (one number per
      line) or a CSV with a column ``tracking_timestamp_us`` / ``timestamp_us`` / ``capture_timestamp_us``
      or ``<aria>_214-1_capture_timestamp_ns`` (nanoseconds, as in the capture's ``timesync.csv``). For a
      capture-level ``timesync.csv`` pass the take's ``timesync_start_idx`` of ``takes.json``: frame ``i`` is
      data row ``timesync_start_idx + 1 + i`` (:func:`timesync_first_row`, with its sources); without it rows are
      read from the first on (a file of per-frame times). This is the exact option. ``capture_timestamp_ns`` of
      ``timesync.csv`` is on the clock of ``tracking_timestamp_us`` (the Ego4d gaze tutorial queries the trajectory
      with it; projectaria_tools ``core/mps/MpsDataProvider.cpp`` keys that query by tracking time).
    * ``start_timestamp_us``: device time of frame 0; frame ``i`` is at ``start + i * 1e6 / fps``.
    * ``align="trajectory_start"``: frame 0 is at the first trajectory sample. Only right when the
      trajectory was cut to the take; otherwise the ego poses are shifted in time.

    Poses are resampled at those times (SLERP / linear between the two nearest samples, see
    :func:`~syn2seq_core.io.poses.load_cameras` format ``egoexo4d_aria``).

The true ego camera (``ego_camera="auto"``, the default, or ``"calibration"``)
    When ``trajectory/online_calibration.jsonl`` is present, each ego frame takes the record nearest to its
    device time, and from it the ``camera-rgb`` calibration: FISHEYE624 intrinsics (``Cameras.fisheye``
    [N, 12] = k0..k5 p0 p1 s0..s3, ``K`` from f, cx, cy) and ``T_Device_Camera``, so the ego pose is
    ``c2w = T_world_device @ T_device_camera`` (both map their right-hand frame into the left-hand one:
    projectaria_tools' ``T_a_b`` takes b-frame coordinates to a-frame coordinates). Read through
    projectaria_tools (``mps.read_online_calibration``) when it is installed, else by the JSON fallback
    :func:`read_aria_online_calibration` (``calibration_reader``); see that function for where the two may
    differ. The calibration is of the raw sensor image; the frame-aligned video is that image turned 90 degrees
    clockwise, so the camera is turned with it on reading (see "Aria RGB orientation" below). Pixel convention:
    projectaria_tools puts the centre of the top-left pixel at (0, 0) (its ``scaleParams`` maps
    ``c -> s (c + 0.5) - 0.5``); ours puts it at (0.5, 0.5), so ``cx = cx_aria + 0.5`` — the same shift as for the
    KB3 exo cameras of ``gopro_calibs.csv`` (:func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`) — and
    normalised intrinsics do not depend on the calibration's image size (2880x2880 sensor, 1408 video, 448
    downscaled all give the same ``K``).

The approximate stand-in (``ego_camera="approximate"``, or ``"auto"`` without the calibration file)
    The pose is the Aria *device* frame (as Exo2Ego-V uses it) unless ``T_device_camera`` is given; the device
    frame differs from the RGB camera by centimetres and a rotation of tens of degrees, which matters for
    Plücker rays. Intrinsics: ``ego_K`` (normalised), default a pinhole of about the Aria RGB focal length
    (:data:`~syn2seq_core.io.poses.ARIA_RGB_DEFAULT_K`), which is *not* the FISHEYE624 lens. Giving
    ``ego_K``, ``ego_fisheye`` or ``T_device_camera`` also selects this path (the values given are used).
    ``take.meta["meta"]["ego_intrinsics"]`` says which camera was used.

Files read
    Every file read from the take folder (videos, CSVs, the online calibration) must resolve, links followed,
    inside it (see :mod:`syn2seq_core.io.safe_paths`); a video or calibration that is a link out of the take is
    refused. The ``ego_timestamps_us`` file is the caller's argument (often the capture's ``timesync.csv``,
    outside the take) and is read where it is (:func:`~syn2seq_core.data.egoexo4d_index.load_indexed_take` checks
    it against the release root first).

Aria RGB orientation (:data:`ARIA_ORIENTATION`)
    ``frame_aligned_videos/<aria>_214-1.mp4`` holds the raw VRS ``camera-rgb`` image turned 90 degrees clockwise
    (upright): a raw pixel ``(x, y)`` is at ``(W - 1 - y, x)`` of the video (Ego4d
    ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``, where gaze projected with the raw calibration is turned
    so before it is drawn on the mp4 frame; ``ego4d/internal/human_pose/utils.py`` ``aria_original_to_extracted``).
    ``online_calibration.jsonl`` describes the raw image. The reader keeps the frames as stored and turns the
    calibration with them, once, where it is read (:meth:`AriaCameraCalibration.rotated_cw90`, the same turn as
    projectaria_tools' ``rotate_camera_calib_cw90deg``, which its ``rotate_upright_image_and_calibration`` pairs
    with ``np.rot90(image, k=3)``). Every consumer (index, :func:`load_indexed_take`, prepare, eval, the nodes)
    reads the ego camera through here, so frames and cameras always agree. :func:`rotate90` turns frames and a
    :class:`Cameras` track together when another orientation is wanted.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, check_choice, require
from ..geometry.cameras import Cameras, intrinsics_from_centre0
from ..io.safe_paths import Folder, check_inside, check_not_a_playlist
from ..io.video import probe_video
from .takes import Take

RESOLUTIONS = ("auto", "448", "full")
ALIGN_MODES = ("trajectory_start",)
EGO_CAMERAS = ("auto", "calibration", "approximate")
CALIBRATION_READERS = ("auto", "projectaria", "json")
ARIA_CALIBRATION = ("trajectory", "online_calibration.jsonl")
ARIA_RGB_LABEL = "camera-rgb"
FISHEYE624_PROJECTION = "FisheyeRadTanThinPrism"  # the JSON name of FISHEYE624 (projectaria_tools)
# Image size projectaria_tools gives a Gen1 camera-rgb calibration that names none (its camera config for the
# label; checked with projectaria-tools 2.3.0): the full RGB sensor.
ARIA_RGB_SENSOR_SIZE = (2880, 2880)
ARIA_RGB_STREAM = "214-1"
# The one orientation of the Aria view, everywhere (index, takes, prepare, eval, nodes): frames as stored in
# frame_aligned_videos, which is the raw VRS camera-rgb image turned 90 degrees clockwise (Ego4d gaze tutorial:
# x_mp4 = W - 1 - y_raw, y_mp4 = x_raw), with the camera turned the same way when it is read
# (AriaCameraCalibration.rotated_cw90, as projectaria_tools' rotateCameraCalibCW90Deg).
ARIA_ORIENTATION = ("frames as stored in frame_aligned_videos (raw camera-rgb turned 90 degrees clockwise); "
                    "camera-rgb calibration turned with them (FISHEYE624 parameters, principal point, "
                    "T_Device_Camera), as projectaria_tools rotateCameraCalibCW90Deg")
# Frame i of a take's frame-aligned videos is timesync.csv row timesync_start_idx + 1 + i (timesync_first_row).
FRAME_TIMING = "frame i = timesync.csv row timesync_start_idx + 1 + i"
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


def timesync_first_row(timesync_start_idx: int | None) -> int:
    """The ``timesync.csv`` data row of frame 0 of a take's frame-aligned videos: ``timesync_start_idx + 1``.

    Frame ``i`` is row ``timesync_start_idx + 1 + i`` and a take has ``timesync_end_idx - timesync_start_idx - 1``
    frames (Ego4d ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``: ``start_idx = take["timesync_start_idx"]+1``,
    rows ``range(start_idx, end_idx)`` paired with frame ``i`` of the mp4; ``ego4d/features/config.py``: the
    frame count). ``None`` (a file of per-frame times, not the capture's table): row 0.
    """
    return 0 if timesync_start_idx is None else int(timesync_start_idx) + 1


def _ego_times(n: int, fps: float, trajectory: Path, aria: str | None, ego_timestamps_us, start_timestamp_us,
               align, timesync_start_idx: int | None) -> tuple[Tensor, str]:
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
            first = timesync_first_row(timesync_start_idx)
            how = f"per-frame timestamps from {p.name}" + (
                "" if timesync_start_idx is None else f", rows {first}.. (frame i = row timesync_start_idx + 1 + i)")
            return _read_timestamps_file(p, aria, first, n), how
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


# --- Aria device calibration (online_calibration.jsonl) -------------------------------------------
@dataclass(frozen=True, eq=False)
class AriaCameraCalibration:
    """One Aria camera calibration record (FISHEYE624).

    params: [15] projectaria_tools order ``f, cx, cy, k0..k5, p0, p1, s0..s3`` in pixels of ``image_size``,
    principal point in projectaria_tools' convention (top-left pixel centre at (0, 0)). T_device_camera:
    [4, 4] camera -> device. tracking_timestamp_us: device time of the record. source: the reader used.
    """

    label: str
    params: np.ndarray
    image_size: tuple[int, int]
    T_device_camera: np.ndarray
    tracking_timestamp_us: int | None = None
    source: str = "json"

    @property
    def K(self) -> np.ndarray:
        """[4] normalised intrinsics in our convention (pixel centres at +0.5, as for every Ego-Exo4D camera:
        :func:`~syn2seq_core.geometry.cameras.intrinsics_from_centre0`)."""
        f, cx, cy = self.params[:3]
        return np.array(intrinsics_from_centre0(f, f, cx, cy, *self.image_size))

    def rotated_cw90(self) -> AriaCameraCalibration:
        """The calibration of the image turned 90 degrees clockwise (what ``frame_aligned_videos`` stores).

        As projectaria_tools' ``rotateCameraCalibCW90Deg`` (``core/calibration/CameraCalibration.cpp``): the size
        swaps; ``cx' = H - 1 - cy``, ``cy' = cx`` (its pixel convention); ``k0..k5`` stay; the tangential pair
        becomes ``(-p1, p0)`` and the thin-prism terms ``(-s2, -s3, s0, s1)``; ``T_Device_Camera' =
        T_Device_Camera @ rotZ(-90 deg)`` (the new camera x axis is the old -y, the new y the old x: what was up
        in the raw image is right in the stored one). :func:`rotate90` does the same on a :class:`Cameras` in our
        pixel convention; tests check the two against projectaria_tools' ``rotate_camera_calib_cw90deg``.
        """
        p = np.asarray(self.params, dtype=np.float64)
        w, h = self.image_size
        turned = np.concatenate([[p[0], h - 1 - p[2], p[1]], p[3:9], [-p[10], p[9]], [-p[13], -p[14], p[11], p[12]]])
        rot_z = np.eye(4)
        rot_z[:3, :3] = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # rotZ(-pi/2)
        return replace(self, params=turned, image_size=(h, w), T_device_camera=self.T_device_camera @ rot_z)

    @property
    def fisheye(self) -> np.ndarray:
        """[12] FISHEYE624 distortion k0..k5, p0, p1, s0..s3 (what ``Cameras.fisheye`` holds)."""
        return np.asarray(self.params[3:], dtype=np.float64)


def _calibration_error(path, where: str, expected: str, found) -> Syn2SeqInputError:
    return Syn2SeqInputError(f"{path} {where}".strip(), expected, found)


def _fix_old_json(text: str) -> str:
    """Records written before June 2023 hold the calibrations as a Python-style string (per projectaria_tools'
    reader: True/False and single quotes replaced before parsing)."""
    return text.replace("True", "true").replace("False", "false").replace("'", '"')


def _quat_wxyz_to_R(w: float, x: float, y: float, z: float) -> np.ndarray:
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if not (n > 0 and math.isfinite(n)):
        raise ValueError("a non-zero finite quaternion")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _json_camera(doc: dict, cam: dict, index: int, n_cams: int, path, where: str) -> AriaCameraCalibration:
    proj = cam.get("Projection") or {}
    if proj.get("Name") != FISHEYE624_PROJECTION:
        raise _calibration_error(path, where, f'Projection.Name "{FISHEYE624_PROJECTION}" (FISHEYE624)',
                                 repr(proj.get("Name")))
    params = np.asarray(proj.get("Params"), dtype=np.float64)
    if params.shape != (15,) or not np.isfinite(params).all():
        raise _calibration_error(path, where, "15 finite FISHEYE624 parameters", getattr(params, "shape", None))
    T = cam.get("T_Device_Camera") or {}
    q = T.get("UnitQuaternion")
    t = np.asarray(T.get("Translation"), dtype=np.float64)
    if not (isinstance(q, list) and len(q) == 2 and len(q[1]) == 3) or t.shape != (3,):
        raise _calibration_error(path, where, "T_Device_Camera {Translation: [x, y, z], UnitQuaternion: "
                                 "[w, [x, y, z]]}", repr(T)[:80])
    M = np.eye(4)
    M[:3, :3] = _quat_wxyz_to_R(float(q[0]), *(float(v) for v in q[1]))
    M[:3, 3] = t
    if doc.get("ImageSizes") is not None:  # MPS >= 1.1.0 stores the size of each camera's images
        size = tuple(int(v) for v in doc["ImageSizes"][index])
    elif isinstance(cam.get("ConfigData"), dict):
        size = (int(cam["ConfigData"]["ImageWidth"]), int(cam["ConfigData"]["ImageHeight"]))
    elif cam.get("Label") == ARIA_RGB_LABEL and n_cams not in (4, 5):  # a Gen1 device (projectaria's rule)
        size = ARIA_RGB_SENSOR_SIZE
    else:
        raise _calibration_error(path, where, "an image size (ImageSizes or ConfigData) for this camera",
                                 "none", )
    return AriaCameraCalibration(str(cam.get("Label")), params, size, M, None, "json")


def _read_json_records(path: Path, label: str) -> list[AriaCameraCalibration]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"line {lineno}"
            try:
                doc = json.loads(line)
                cams = doc["CameraCalibrations"]
                if isinstance(doc["tracking_timestamp_us"], str):  # the format before June 2023
                    cams = json.loads(_fix_old_json(cams))
                stamp = int(doc["tracking_timestamp_us"])
            except (ValueError, KeyError, TypeError) as e:
                raise _calibration_error(path, where, "an online calibration record (JSON with "
                                         "tracking_timestamp_us and CameraCalibrations)",
                                         f"{type(e).__name__}: {str(e)[:80]}") from None
            for i, cam in enumerate(cams):
                if isinstance(cam, dict) and cam.get("Label") == label:
                    try:
                        c = _json_camera(doc, cam, i, len(cams), path, where)
                    except (ValueError, KeyError, TypeError, IndexError) as e:
                        if isinstance(e, Syn2SeqInputError):
                            raise
                        raise _calibration_error(path, where, f"a valid {label} calibration",
                                                 f"{type(e).__name__}: {str(e)[:80]}") from None
                    out.append(replace(c, tracking_timestamp_us=stamp))
    return out


def _quiet_stdout():
    """Silence the C++ reader's "Loaded #onlineCalib records" line (printed on file descriptor 1)."""
    import contextlib
    import sys

    @contextlib.contextmanager
    def quiet():
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError, AttributeError):  # no real stdout (captured, closed): leave it
            yield
            return
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)

    return quiet()


def _read_projectaria_records(path: Path, label: str) -> list[AriaCameraCalibration]:
    import datetime

    from projectaria_tools.core import calibration, mps

    try:
        with _quiet_stdout():
            records = mps.read_online_calibration(str(path))
    except RuntimeError as e:  # nlohmann::json parse errors
        raise _calibration_error(path, "", "a readable online calibration (JSON lines)", str(e)[:120]) from None
    out = []
    for rec in records:
        cam = rec.get_camera_calib(label)
        if cam is None:
            continue
        if cam.get_model_name() != calibration.CameraModelType.FISHEYE624:
            raise _calibration_error(path, "", f"a FISHEYE624 {label} calibration", str(cam.get_model_name()))
        stamp = rec.tracking_timestamp // datetime.timedelta(microseconds=1)
        w, h = (int(v) for v in cam.get_image_size())
        out.append(AriaCameraCalibration(label, np.asarray(cam.get_projection_params(), dtype=np.float64), (w, h),
                                         np.asarray(cam.get_transform_device_camera().to_matrix(), np.float64),
                                         int(stamp), "projectaria_tools"))
    return out


def projectaria_available() -> bool:
    """Whether projectaria_tools (the optional ``aria`` extra) can be imported."""
    try:
        from projectaria_tools.core import calibration, mps  # noqa: F401
    except ImportError:
        return False
    return True


def read_aria_online_calibration(path, label: str = ARIA_RGB_LABEL, reader: str = "auto"
                                 ) -> list[AriaCameraCalibration]:
    """The ``label`` camera's calibration of every record of an MPS ``online_calibration.jsonl``, in file order.

    reader: ``"projectaria"`` (projectaria_tools' ``mps.read_online_calibration``), ``"json"`` (our parser of
    the same file) or ``"auto"`` (projectaria_tools when installed, else json).

    Format (from projectaria_tools ``core/mps/OnlineCalibrationsReader.cpp`` and
    ``core/calibration/loader/SensorCalibrationJson.cpp``): one JSON object per line with
    ``tracking_timestamp_us``, ``utc_timestamp_ns``, ``CameraCalibrations`` (each: ``Label``, ``Projection``
    {``Name``, ``Params``}, ``T_Device_Camera`` {``Translation`` [3], ``UnitQuaternion`` [w, [x, y, z]]},
    optional ``ConfigData`` with the image size), ``ImuCalibrations``, and since MPS 1.1.0 ``ImageSizes``
    (one [w, h] per camera). Records before June 2023 hold the calibrations as a quoted Python-style string.

    Where the json fallback may differ from projectaria_tools:

    * image size: taken from ``ImageSizes``, else ``ConfigData``, else (``camera-rgb`` of a Gen1 device only)
      the 2880x2880 sensor; projectaria_tools knows the default of every camera label and device generation,
      the fallback refuses other cameras without a size. Normalised intrinsics do not depend on it as long
      as the size is the calibration's own (see the module docstring);
    * ``T_Device_Camera``: both normalise the quaternion (Sophus does); results agree to float64 rounding
      (tests: 1e-12);
    * projection models other than FISHEYE624 are refused by both here (the ego camera must be FISHEYE624);
    * ``ValidRadius``, ``MaxSolidAngle``, time offsets and readout times are ignored by both (not used).
    """
    check_choice(reader, CALIBRATION_READERS, "calibration_reader")
    p = Path(path)
    require(p.is_file(), "Aria online calibration", "an existing online_calibration.jsonl", f"no file '{p}'")
    if reader == "projectaria" or (reader == "auto" and projectaria_available()):
        if reader == "projectaria" and not projectaria_available():
            raise Syn2SeqInputError("calibration_reader", "projectaria_tools installed (pip install "
                                    "projectaria-tools)", "not importable", "Use calibration_reader='json'")
        records = _read_projectaria_records(p, label)
    else:
        records = _read_json_records(p, label)
    if not records:
        raise _calibration_error(p, "", f"at least one record with a {label} calibration", "none")
    return records


def _nearest_records(records: list[AriaCameraCalibration], ts_us: Tensor) -> list[AriaCameraCalibration]:
    stamps = np.array([r.tracking_timestamp_us for r in records], dtype=np.float64)
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order]
    t = ts_us.numpy()
    j = np.clip(np.searchsorted(stamps, t), 1, max(len(stamps) - 1, 1)) if len(stamps) > 1 else np.zeros(len(t), int)
    if len(stamps) > 1:
        j = np.where(np.abs(stamps[j - 1] - t) <= np.abs(stamps[j] - t), j - 1, j)
    return [records[int(order[i])] for i in j]


def aria_rgb_cameras(records: list[AriaCameraCalibration], ts_us: Tensor, video_size: tuple[int, int], where: str):
    """Per-frame (K [N, 4], fisheye [N, 12], T_device_camera [N, 4, 4]) from the records nearest in time."""
    chosen = _nearest_records(records, ts_us)
    for c in {id(c): c for c in chosen}.values():
        ratio = (video_size[0] / video_size[1]) / (c.image_size[0] / c.image_size[1])
        require(abs(ratio - 1.0) <= 0.01, where, f"an ego video with the aspect ratio of the calibration's "
                f"{c.image_size[0]}x{c.image_size[1]}", f"{video_size[0]}x{video_size[1]}",
                "The calibration must describe the video's image (a resize keeps it, a crop does not)")
    K = np.stack([c.K for c in chosen])
    fish = np.stack([c.fisheye for c in chosen])
    T = np.stack([c.T_device_camera for c in chosen])
    return K, fish, T, chosen


def load_egoexo4d_take(path, camera: str = "cam01", *, resolution: str = "auto", aria: str | None = None,
                       ego: bool = True, ego_timestamps_us=None, start_timestamp_us: float | None = None,
                       align: str | None = None, timesync_start_idx: int | None = None, ego_K=None, ego_fisheye=None,
                       T_device_camera=None, ego_camera: str = "auto", calibration_reader: str = "auto",
                       exo_video: str | None = None, ego_video: str | None = None) -> Take:
    """Read an Ego-Exo4D take folder into a :class:`Take` (see the module docstring for every option).

    camera: the exo GoPro (``cam01`` ...). resolution: ``"448"`` (``downscaled/448``), ``"full"``, or
    ``"auto"`` (448 when present). aria: ``aria01`` ... (auto-detected when there is one). ego=False
    reads the exo view only (no trajectory or time alignment needed). ego_camera: ``"auto"`` (the true Aria
    RGB camera from ``trajectory/online_calibration.jsonl`` when present, else the approximate stand-in),
    ``"calibration"`` (the true camera; an error without the file) or ``"approximate"``. calibration_reader:
    ``"auto"``, ``"projectaria"`` or ``"json"`` (see :func:`read_aria_online_calibration`). timesync_start_idx:
    the take's ``timesync_start_idx`` of ``takes.json`` when ``ego_timestamps_us`` is the capture's
    ``timesync.csv`` (frame ``i`` is row ``timesync_start_idx + 1 + i``, :func:`timesync_first_row`); None for a
    file of per-frame times (row 0 on). exo_video, ego_video: the videos' paths relative to the take folder
    (``frame_aligned_videos[cam][stream].relative_path`` of ``takes.json``, which the index passes); by default
    they are found by name (``<camera>.mp4``, ``<aria>_214-1.mp4``). Either must stay inside the take folder,
    links followed.
    """
    from ..io.poses import ARIA_RGB_DEFAULT_SIZE, load_cameras

    require(isinstance(path, (str, os.PathLike)), "Ego-Exo4D take", "a folder path", type(path).__name__)
    take = Path(path).expanduser()
    if not is_egoexo4d_take(take):
        raise Syn2SeqInputError("Ego-Exo4D take", f"a take folder with {VIDEOS_DIR}/", f"none in '{take}'")
    check_choice(resolution, RESOLUTIONS, "resolution")
    check_choice(ego_camera, EGO_CAMERAS, "ego_camera")
    check_choice(calibration_reader, CALIBRATION_READERS, "calibration_reader")
    require(isinstance(camera, str) and camera, "camera", "an exo camera name such as 'cam01'", repr(camera))
    require(timesync_start_idx is None or (isinstance(timesync_start_idx, int) and timesync_start_idx >= 0),
            "timesync_start_idx", "a row index >= 0 (takes.json) or None", timesync_start_idx)
    dirs = _video_dirs(take, resolution)
    # Every file read below must resolve, links followed, inside the take folder.
    within = Folder(take, f"Ego-Exo4D take '{take.name}'")

    def video(path: Path) -> Path:
        return check_not_a_playlist(within.path(path), owner=within.owner, entry=within.relative(path))

    def named(rel, key: str) -> Path:
        p = within.name(rel, key)
        require(p.is_file(), f"Ego-Exo4D take '{take.name}' {key}", "a video file inside the take folder",
                f"nothing at '{rel}'")
        return p

    exo_named = exo_video
    if exo_named is not None:
        exo_video = named(exo_named, "exo_video")
    else:
        exo_video = next((d / f"{name}.mp4" for d in dirs for name in _aliases(camera)
                          if (d / f"{name}.mp4").is_file()), None)
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
                     "aria_orientation": ARIA_ORIENTATION}}
    ego_named, ego_video = ego_video, None
    ego_info = ego_cams = None
    stamps = {}
    if ego:
        if ego_named is not None:
            ego_video = named(ego_named, "ego_video")
        else:
            pattern = f"{aria}_{ARIA_RGB_STREAM}.mp4" if aria else f"aria*_{ARIA_RGB_STREAM}.mp4"
            for d in [exo_video.parent] + [d for d in _video_dirs(take, "auto") if d != exo_video.parent]:
                found = sorted(d.glob(pattern))
                if len(found) > 1:
                    raise Syn2SeqInputError("aria", f"one of {[p.stem.split('_')[0] for p in found]}", "none",
                                            "Pass aria='aria01' (the take has several Aria videos)")
                if found:
                    ego_video = found[0]
                    break
        aria_name = aria or (ego_video.stem.split("_")[0] if ego_video is not None else None)
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
        calib = take.joinpath(*ARIA_CALIBRATION)
        given = any(v is not None for v in (ego_K, ego_fisheye, T_device_camera))
        if ego_camera == "calibration" and given:
            raise Syn2SeqInputError("ego_camera", "'auto' or 'approximate' when ego_K, ego_fisheye or "
                                    "T_device_camera are given", "'calibration'")
        if ego_camera == "calibration" and not calib.is_file():
            raise Syn2SeqInputError(f"Ego-Exo4D take '{take.name}'", "the Aria calibration "
                                    "trajectory/online_calibration.jsonl", "no such file",
                                    "Pass ego_camera='approximate' for the pinhole stand-in")
        use_calib = not given and ego_camera != "approximate" and calib.is_file()
        ego_source = None
        if use_calib:
            records = read_aria_online_calibration(within.path(calib), ARIA_RGB_LABEL, calibration_reader)
            # The frame-aligned Aria video is the raw camera-rgb image turned 90 degrees clockwise: turn the
            # camera with it (ARIA_ORIENTATION), so frames stay as stored and every ray agrees with them.
            records = [r.rotated_cw90() for r in records]
            ego_K, ego_fisheye, T_device_camera, chosen = aria_rgb_cameras(
                records, ts_us, size, f"Ego-Exo4D take '{take.name}' ego video")
            ego_source = chosen[0].source
        ego_cams = load_cameras(trajectory, "egoexo4d_aria", root=take, owner=within.owner, timestamps_us=ts_us,
                                width=size[0], height=size[1], K=ego_K, fisheye=ego_fisheye,
                                T_device_camera=T_device_camera)
        stamps["ego"] = ts_us / 1e6
        if n == exo_info.frames:
            stamps["exo"] = ts_us / 1e6
        if ego_cams.lens_model == "fisheye624" and exo_cams.lens_model == "kannala_brandt":
            # One lens family for both views, so transitions (SLERP + lerped intrinsics) and Cameras.cat work:
            # KB3 k1..k4 is exactly FISHEYE624 (k1..k4, 0, 0, p = 0, s = 0), the same rays.
            exo_cams = exo_cams.as_fisheye624()
            meta["meta"]["exo_lens"] = "KB3 of gopro_calibs.csv as its exact FISHEYE624 equivalent"
        if use_calib:
            intrinsics = (f"FISHEYE624 camera-rgb from {'/'.join(ARIA_CALIBRATION)} (read by {ego_source}), the "
                          "record nearest to each frame")
        else:
            intrinsics = "given" if given else "approximate Aria RGB default (pinhole stand-in, not the lens)"
        meta["meta"].update(aria=aria_name, time_alignment=how,
                            ego_pose="T_world_device @ T_device_camera" if T_device_camera is not None
                            else "T_world_device (the Aria device frame, not the RGB camera)",
                            ego_intrinsics=intrinsics, ego_lens=ego_cams.lens_model)
    return Take(take.name, take, exo_video, ego_video, exo_cams, ego_cams, float(exo_info.fps or 30.0), stamps,
                exo_info, ego_info, meta)


# --- 90-degree rotation of frames and cameras together -------------------------------------------
def rotate90(frames: Tensor | None = None, cameras: Cameras | None = None, clockwise: bool = True):
    """Rotate frames ``[..., C, H, W]`` by 90 degrees and the cameras with them.

    A point at pixel ``(u, v)`` of a ``W x H`` image moves to ``(H - v, u)`` (clockwise) or
    ``(v, W - u)`` (counter-clockwise) of the ``H x W`` result; the camera turns about its optical
    axis accordingly (Kannala–Brandt coefficients are radial, so unchanged; the FISHEYE624 tangential ``p``
    and thin-prism ``(s0, s2)``, ``(s1, s3)`` pairs are vectors in the image plane and turn with it). Returns
    ``(frames, cameras)``
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
        fish = cameras.fisheye
        if cameras.lens_model == "fisheye624":  # p and the thin-prism pairs (s0, s2), (s1, s3) turn with the image
            f = fish
            sign = 1.0 if clockwise else -1.0  # clockwise: v -> (-v_y, v_x); counter-clockwise: (v_y, -v_x)
            turned = [-sign * f[:, 7], sign * f[:, 6],  # p
                      -sign * f[:, 10], -sign * f[:, 11], sign * f[:, 8], sign * f[:, 9]]  # s0 s1 s2 s3
            fish = torch.cat([f[:, :6], torch.stack(turned, -1)], -1)
        out_cams = replace(cameras, c2w=cameras.c2w @ M, K=K_new, width=cameras.height, height=cameras.width,
                           fisheye=fish)
    return out_frames, out_cams
