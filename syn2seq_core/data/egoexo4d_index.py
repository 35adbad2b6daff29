"""From a local Ego-Exo4D release to an index of usable takes, and from an index entry back to a :class:`Take`.

``syn2seq index-egoexo4d ROOT --out index.jsonl`` (:mod:`syn2seq_core.commands.index_egoexo4d`) calls
:func:`build_egoexo4d_index` and :func:`write_egoexo4d_index`; other code reads the result with
:func:`read_egoexo4d_index` and turns an entry into a take with :func:`load_indexed_take`.

Release layout read (paths relative to ROOT, the folder the ``egoexo`` downloader wrote)
    Verified against the sources named; (inferred) marks what no source states.

    ``takes.json``: a list of takes. Fields used: ``take_uid``, ``take_name``, ``root_dir`` (``takes/<take_name>``,
    relative to ROOT), ``is_dropped``, ``parent_task_name`` (the scenario, e.g. "Bike Repair"), ``task_name``,
    ``best_exo`` (the exo camera that shows the task best, may be null), ``duration_sec``,
    ``capture`` {``capture_uid``, ``capture_name``, ``cameras`` [{``cam_id``, ``is_ego``}]} (also a top-level
    ``capture_uid``), ``timesync_start_idx`` / ``timesync_end_idx`` and ``frame_aligned_videos``
    {cam_id: {stream name: {``cam_id``, ``relative_path`` (relative to ``root_dir``), ``is_collage``, ...}}}
    with the Aria RGB stream under the name ``rgb`` (sources: docs.ego-exo4d-data.org/data/metadata for the
    sample fields; facebookresearch/Ego4d ``ego4d/internal/download/manifest_gen.py``, ``ego4d/internal/
    downscale.py``, ``ego4d/features/config.py``, ``ego4d/internal/human_pose/main.py`` for root_dir,
    frame_aligned_videos, capture.capture_name, capture.cameras and the timesync indices). ``validated`` is
    read when present (inferred: its meaning is not documented; a take with ``validated: false`` is kept).
    ``annotations/splits.json``: ``{"take_uid_to_split": {take_uid: split}, "take_uid_to_benchmark": {...}}``
    (manifest_gen.py; it lower-cases the split names, so they are lower-cased here).
    ``captures/<capture_name>/timesync.csv`` (the capture's ``root_dir`` of ``captures.json`` when listed there;
    the docs page writes ``capture/<capture_name>/timesync.csv``, the Ego4d tools ``captures/``): one row per
    synchronised frame, columns
    ``<cam>_<stream>_capture_timestamp_ns`` among others, ``aria01_214-1_capture_timestamp_ns`` for the Aria RGB
    stream (docs.ego-exo4d-data.org/data/takes; human_pose/main.py). Frame ``i`` of the take's videos is row
    ``timesync_start_idx + 1 + i``, and a take has ``timesync_end_idx - timesync_start_idx - 1`` frames
    (docs.ego-exo4d-data.org/data/takes "Take-Timing Information"; Ego4d
    ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``: ``start_idx = take["timesync_start_idx"]+1``, rows
    ``range(start_idx, end_idx)`` paired with mp4 frame ``i``; ``ego4d/features/config.py``: ``frame_count``).
    Videos: ``frame_aligned_videos[cam][stream].relative_path``, relative to the take folder
    (``ego4d/features/config.py``, ``ego4d/internal/downscale.py``), kept inside it, links followed; at 448
    ``frame_aligned_videos/downscaled/448/<its file name>`` (manifest_gen.py). The Aria video is the ``rgb``
    stream, stored turned 90 degrees clockwise from the raw sensor image (see
    :data:`~syn2seq_core.data.egoexo4d.ARIA_ORIENTATION`) — every frame ``i`` is the same moment in every video
    (docs, data/takes).
    ``takes/<take_name>/trajectory/``: the take's MPS outputs (``--parts take_trajectory``, docs data/takes;
    manifest_gen.py lists the folder, not its file names). The file names ``gopro_calibs.csv``,
    ``closed_loop_trajectory.csv`` and ``online_calibration.jsonl`` are those of the capture-level trajectory
    folder (human_pose/main.py) and of MPS SLAM outputs (projectaria_tools ``MpsDataPathsProvider``): that
    the take folder uses the same names is inferred. Columns: ``gopro_calibs.csv`` = ``cam_uid, graph_uid,
    {t,q}{x,y,z(,w)}_world_cam, image_width, image_height, intrinsics_type, intrinsics_0..7, start_frame_idx,
    end_frame_idx, quality`` (projectaria_tools ``core/mps/StaticCameraCalibrationReader.cpp``, Aria docs
    "Ego-Exo4D data format"); ``closed_loop_trajectory.csv`` = ``graph_uid, tracking_timestamp_us,
    utc_timestamp_ns, {t,q}{x,y,z(,w)}_world_device, velocities, gravity, quality_score``
    (``core/mps/TrajectoryReaders.cpp``); ``online_calibration.jsonl``: see
    :func:`~syn2seq_core.data.egoexo4d.read_aria_online_calibration`.
    ``captures/<capture_name>/trajectory/`` (the same files for the whole capture) is not read.

Which takes are usable, and why not (``SKIP_REASONS``; a skipped take is counted, never a crash)
    The index lists only takes that load: the cheap checks run on every take (no decoding, no full trajectory
    parse); ``verify=True`` adds a full load. dropped (``is_dropped``), bad entry (a takes.json entry without
    its names), outside root (a root_dir, timesync or link leading out of ROOT, :mod:`syn2seq_core.io.safe_paths`),
    outside take (a video ``relative_path`` leading out of the take folder), missing folder, missing video (no
    usable exo video or no Aria RGB video), missing trajectory, missing calibration (no gopro_calibs.csv, no
    calibrated exo camera with a video, or no online_calibration.jsonl when the true ego camera is required),
    missing timesync, damaged CSV, damaged JSON, damaged video (unreadable, or exo and ego frame counts
    differ), wrong frame count (a video's container header disagrees with ``timesync_end_idx -
    timesync_start_idx - 1``), frames outside trajectory (a frame's device time before the first or after the
    last trajectory sample), exo camera unavailable (the requested one has no video or calibration), failed
    verification (``verify=True``: the take does not load).

Exo camera choice (``exo_camera``)
    A name (``cam01``: that camera, else the take is skipped), ``"first"`` (the first usable exo camera in
    name order) or ``"best"`` (the take's ``best_exo`` when it is usable, else the first usable one; the
    entry's ``exo_camera_reason`` says which rule applied). Usable: listed as a non-ego camera of the take,
    with a video at the chosen resolution and a row in ``gopro_calibs.csv`` (``camNN`` and ``gpNN`` name the same
    camera).

Index file (JSON lines, written atomically)
    Line 1: a header ``{"format": "syn2seq.egoexo4d_index", "version": 2, "root": ..., "conventions":
    {"frame_timing", "aria_orientation"}, "options": {...}, "counts": {...}, "skipped": [{"take_name",
    "take_uid", "reason", "detail"}]}``; then one entry per usable
    take (see :class:`IndexedTake`). Paths in entries are relative: ``root_dir`` to ROOT, videos to
    ``root_dir``, ``timesync.path`` to ROOT; :func:`load_indexed_take` keeps them inside ROOT, links followed.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from ..base.errors import Syn2SeqInputError, check_choice, require
from ..io.safe_paths import OutsideFolderError, resolve_inside

INDEX_FORMAT = "syn2seq.egoexo4d_index"
INDEX_VERSION = 2  # 2: frame i = timesync row start + 1 + i; the Aria camera turned with its stored frames
EXO_CHOICES = ("first", "best")
SKIP_REASONS = ("dropped", "bad entry", "outside root", "outside take", "missing folder", "missing video",
                "missing trajectory", "missing calibration", "missing timesync", "damaged CSV", "damaged JSON",
                "damaged video", "wrong frame count", "frames outside trajectory", "exo camera unavailable",
                "failed verification")


@dataclass(frozen=True)
class IndexedTake:
    """One usable take of the index (a JSON line).

    take_name, take_uid; root_dir: the take folder relative to ROOT; capture_uid, capture_name; category: the
    scenario (``parent_task_name``), task_name; split: the official split (None when the split file lacks the
    take); exo_cameras: usable exo cameras; exo_camera: the chosen one, exo_camera_reason: why; best_exo: the
    release's choice (may be None); aria: the Aria device (``aria01``); exo_video, ego_video: relative to
    ``root_dir``; resolution: ``"448"`` or ``"full"``; frames, fps, duration_sec (frames / fps); exo_size,
    ego_size: (width, height); timesync: {"path": relative to ROOT, "start_idx", "end_idx"}; ego_camera:
    ``"calibration"`` (true FISHEYE624 camera) or ``"approximate"`` (pinhole stand-in, no calibration file);
    calibration_records: online calibration records read. exo_videos: {camera: video relative to ``root_dir``} of
    every usable exo camera (``load_indexed_take(..., camera=...)`` reads another one's). aria_orientation,
    frame_timing: the conventions the
    entry was indexed under (:data:`~syn2seq_core.data.egoexo4d.ARIA_ORIENTATION`, ``FRAME_TIMING``).
    """

    take_name: str
    take_uid: str
    root_dir: str
    capture_uid: str | None
    capture_name: str | None
    category: str | None
    task_name: str | None
    split: str | None
    exo_cameras: list[str]
    exo_camera: str
    exo_camera_reason: str
    best_exo: str | None
    aria: str
    exo_video: str
    ego_video: str
    resolution: str
    frames: int
    fps: float
    duration_sec: float
    exo_size: list[int]
    ego_size: list[int]
    timesync: dict
    ego_camera: str
    calibration_records: int = 0
    extra: dict = field(default_factory=dict)
    aria_orientation: str = ""
    frame_timing: str = ""
    exo_videos: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict, where: str = "index entry") -> IndexedTake:
        require(isinstance(data, dict), where, "a JSON object", type(data).__name__)
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        require(not missing, where, f"the fields {sorted(required)}", f"missing {missing}")
        unknown = sorted(set(data) - names)
        require(not unknown, where, f"only the fields {sorted(names)}", f"unknown {unknown}")
        for key in ("take_name", "take_uid", "root_dir", "exo_camera", "aria", "exo_video", "ego_video"):
            require(isinstance(data[key], str) and data[key], f"{where} {key}", "a non-empty string", repr(data[key]))
        ok = isinstance(data["frames"], int) and data["frames"] > 0
        require(ok, f"{where} frames", "a positive integer", repr(data["frames"]))
        ts = data["timesync"]
        require(isinstance(ts, dict) and isinstance(ts.get("path"), str) and isinstance(ts.get("start_idx"), int),
                f"{where} timesync", '{"path": ..., "start_idx": int, "end_idx": int}', repr(ts)[:80])
        return cls(**data)


# --- reading the release metadata ----------------------------------------------------------------------
def _load_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise Syn2SeqInputError(str(path), f"{what} (UTF-8 JSON)", "binary data") from None
    except json.JSONDecodeError as e:
        raise Syn2SeqInputError(str(path), f"{what} (valid JSON)", f"a parse error ({e})") from None


def read_captures(root) -> dict[str, str]:
    """{capture_uid: root_dir} from ``captures.json`` (empty when the file is absent or unreadable)."""
    p = Path(root).expanduser() / "captures.json"
    if not p.is_file():
        return {}
    try:
        data = _load_json(p, "the list of captures")
    except Syn2SeqInputError:
        return {}
    if not isinstance(data, list):
        return {}
    return {c["capture_uid"]: c["root_dir"] for c in data
            if isinstance(c, dict) and isinstance(c.get("capture_uid"), str) and isinstance(c.get("root_dir"), str)}


def read_release(root) -> tuple[list, dict[str, str], str | None]:
    """(takes.json list, {take_uid: split}, a note when the split file is missing) of a release root."""
    r = Path(root).expanduser()
    require(r.is_dir(), "Ego-Exo4D root", "an existing folder", f"nothing at '{r}'")
    takes_file = r / "takes.json"
    require(takes_file.is_file(), "Ego-Exo4D root", "a release folder with takes.json (egoexo --parts metadata)",
            f"no takes.json in '{r}'")
    takes = _load_json(resolve_inside(r, "takes.json", owner=f"Ego-Exo4D root '{r}'", entry="takes.json"),
                       "the list of takes")
    require(isinstance(takes, list), str(takes_file), "a list of take objects", type(takes).__name__)
    splits_file = r / "annotations" / "splits.json"
    if not splits_file.is_file():
        return takes, {}, "annotations/splits.json not found: no take has a split"
    data = _load_json(resolve_inside(r, "annotations/splits.json", owner=f"Ego-Exo4D root '{r}'",
                                     entry="annotations/splits.json"), "the split file")
    table = data.get("take_uid_to_split") if isinstance(data, dict) else None
    require(isinstance(table, dict), str(splits_file), 'an object with "take_uid_to_split"',
            sorted(data)[:8] if isinstance(data, dict) else type(data).__name__)
    return takes, {str(k): str(v).lower() for k, v in table.items()}, None


# --- one take -------------------------------------------------------------------------------------------
class _Skip(Exception):
    def __init__(self, reason: str, detail: str):
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _exo_names(take: dict) -> list[str]:
    """Non-ego cameras of the take's frame_aligned_videos (capture.cameras says which are ego)."""
    ego = {c.get("cam_id") for c in (take.get("capture") or {}).get("cameras") or [] if isinstance(c, dict)
           and c.get("is_ego")}
    videos = take.get("frame_aligned_videos")
    if isinstance(videos, dict) and videos:
        def collage(streams) -> bool:  # a collage of all views is not a camera
            return isinstance(streams, dict) and bool(streams) and all(
                isinstance(v, dict) and v.get("is_collage") for v in streams.values())

        names = [k for k, v in videos.items() if isinstance(k, str) and k not in ego
                 and not k.lower().startswith("aria") and not collage(v)]
        return sorted(names)
    return []


def _aria_name(take: dict) -> str | None:
    videos = take.get("frame_aligned_videos")
    if isinstance(videos, dict):
        arias = sorted(k for k in videos if isinstance(k, str) and k.lower().startswith("aria"))
        if arias:
            return arias[0]
    return None


def _relative_path(take: dict, cam: str, aria: bool) -> tuple[str, str] | None:
    """(stream name, ``relative_path``) of a camera's video in takes.json: the ``rgb`` stream of an Aria, else
    the first non-collage stream (GoPros have one, ``"0"``); None when the release names no file for it."""
    streams = (take.get("frame_aligned_videos") or {}).get(cam)
    if not isinstance(streams, dict):
        return None
    names = ["rgb"] if aria else sorted(streams)
    for name in names:
        st = streams.get(name)
        if isinstance(st, dict) and not st.get("is_collage") and isinstance(st.get("relative_path"), str) \
                and st["relative_path"]:
            return name, st["relative_path"]
    return None


def _video_path(root: Path, folder: Path, take: dict, cam: str, aria: bool, small: bool) -> Path | None:
    """The video of ``cam`` from its ``relative_path`` (relative to the take folder: ``ego4d/features/config.py``
    joins ``root_dir`` and ``relative_path``), or its ``downscaled/448`` twin (``frame_aligned_videos/downscaled/
    448/<file name>``: ``ego4d/internal/download/manifest_gen.py``). Refused (``outside take``) unless it stays
    inside the take folder, links followed; None when takes.json names no file for the camera."""
    from .egoexo4d import DOWNSCALED_DIR, VIDEOS_DIR

    named = _relative_path(take, cam, aria)
    if named is None:
        return None
    stream, rel = named
    where = f"takes.json {take['take_name']} frame_aligned_videos.{cam}.{stream}.relative_path"
    try:
        full = resolve_inside(folder, rel, owner=f"Ego-Exo4D take '{take['take_name']}'", entry=where)
        if not small:
            return full
        base = Path(rel).name
        return resolve_inside(folder, "/".join([VIDEOS_DIR, *DOWNSCALED_DIR, base]),
                              owner=f"Ego-Exo4D take '{take['take_name']}'", entry=f"{where} (448)")
    except OutsideFolderError as e:
        raise _Skip("outside take", str(e)) from None
    except Syn2SeqInputError as e:
        raise _Skip("bad entry", str(e)) from None


def _check_trajectory_span(path: Path) -> tuple[float, float]:
    """(first, last) ``tracking_timestamp_us`` of closed_loop_trajectory.csv from its header, first sample and
    last line (a full parse is ``verify=True``'s): cheap on a 1 kHz track of any length."""
    from ..io.poses.egoexo4d_aria import _ARIA_COLUMNS

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in _ARIA_COLUMNS if c not in header]
        if missing:
            raise _Skip("damaged CSV", f"{path.name}: header without {missing}")
        row = next(reader, None)
        if row is None:
            raise _Skip("damaged CSV", f"{path.name}: no samples")
        try:
            values = [float(row[header.index(c)]) for c in _ARIA_COLUMNS]
        except (ValueError, IndexError):
            raise _Skip("damaged CSV", f"{path.name}: line 2 is not numeric") from None
        if not all(math.isfinite(v) for v in values):
            raise _Skip("damaged CSV", f"{path.name}: line 2 has NaN/inf")
    col = header.index("tracking_timestamp_us")
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 8192))
        tail = f.read().decode("utf-8", "replace").splitlines()
    last_line = next((ln for ln in reversed(tail) if ln.strip()), "")
    try:
        last = float(next(csv.reader([last_line]))[col])
    except (ValueError, IndexError):
        raise _Skip("damaged CSV", f"{path.name}: the last line is not a sample") from None
    first = values[0]
    if not (math.isfinite(last) and last >= first):
        raise _Skip("damaged CSV", f"{path.name}: last tracking_timestamp_us {last:.0f} before the first {first:.0f}")
    return first, last


def _timesync_column(path: Path, aria: str, cache: dict | None):
    """All rows of the ``<aria>_214-1_capture_timestamp_ns`` column of a capture's timesync.csv, in
    microseconds (numpy, NaN where empty); read once per capture when ``cache`` is given."""
    import numpy as np

    key = (str(path), aria)
    if cache is not None and key in cache:
        return cache[key]
    column = f"{aria}_{'214-1'}_capture_timestamp_ns"
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if column not in header:
            raise Syn2SeqInputError(str(path), f"a column {column}", f"columns {header[:12]}")
        i = header.index(column)
        values = []
        for row in reader:
            cell = row[i].strip() if len(row) > i else ""
            try:
                values.append(float(cell) * 1e-3 if cell else math.nan)
            except ValueError:
                raise Syn2SeqInputError(f"{path} line {reader.line_num}", "a number", repr(cell)) from None
    out = np.asarray(values, dtype=np.float64)
    if cache is not None:
        cache[key] = out
    return out


def index_take(root: Path, take: dict, splits: dict, *, exo_camera: str = "best", resolution: str = "auto",
               require_ego_calibration: bool = True, calibration_reader: str = "auto",
               verify: bool = False, captures: dict | None = None, cache: dict | None = None) -> IndexedTake:
    """The index entry of one takes.json entry; raises ``_Skip`` (reason, detail) when it cannot be used.

    Cheap checks, always (a take that passes them loads): the videos named by ``relative_path`` exist inside
    the take folder and their container headers hold ``timesync_end_idx - timesync_start_idx - 1`` frames; the
    calibrations read; every frame's device time (timesync rows ``timesync_start_idx + 1 + i``) lies inside the
    trajectory's first..last sample. ``verify=True`` also loads the take (full trajectory parse). cache: shared
    between takes of one build (a capture's timesync.csv is read once).
    """
    from ..io.video import probe_video
    from .egoexo4d import (ARIA_CALIBRATION, ARIA_ORIENTATION, ARIA_TRAJECTORY, FRAME_TIMING, GOPRO_CALIBS, _aliases,
                           _calib_uids, read_aria_online_calibration, timesync_first_row)

    if not isinstance(take, dict) or not all(isinstance(take.get(k), str) and take.get(k)
                                             for k in ("take_name", "take_uid", "root_dir")):
        raise _Skip("bad entry", "no take_name / take_uid / root_dir")
    name = take["take_name"]
    if take.get("is_dropped"):
        raise _Skip("dropped", "is_dropped in takes.json")
    try:
        folder = resolve_inside(root, take["root_dir"], owner=f"Ego-Exo4D root '{root}'",
                                entry=f"takes.json {name} root_dir")
    except OutsideFolderError as e:
        raise _Skip("outside root", str(e)) from None
    except Syn2SeqInputError as e:
        raise _Skip("bad entry", str(e)) from None
    if not folder.is_dir():
        raise _Skip("missing folder", f"no folder {take['root_dir']}")
    owner = f"Ego-Exo4D take '{name}'"

    def inside(p: Path) -> Path:
        try:
            return resolve_inside(root, os.path.relpath(p, root), owner=owner, entry=os.path.relpath(p, folder))
        except OutsideFolderError as e:
            raise _Skip("outside root", str(e)) from None

    def rel(p: Path) -> str:
        return os.path.relpath(p, folder).replace(os.sep, "/")

    # videos: frame_aligned_videos[cam][stream].relative_path (downscaled/448/<its file name> at 448)
    aria = _aria_name(take)
    if aria is None or _relative_path(take, aria, True) is None:
        raise _Skip("missing video", "takes.json names no Aria rgb video (frame_aligned_videos.<aria>.rgb)")
    small_ego = _video_path(root, folder, take, aria, True, True)
    full_ego = _video_path(root, folder, take, aria, True, False)
    small = {"448": True, "full": False, "auto": small_ego.is_file()}[resolution]
    ego_video = small_ego if small else full_ego
    if not ego_video.is_file():
        raise _Skip("missing video", f"no Aria RGB video {rel(ego_video)}")
    exo_listed = _exo_names(take)
    exo_videos = {}
    for cam in exo_listed:
        hit = _video_path(root, folder, take, cam, False, small)
        if hit is not None and hit.is_file():
            exo_videos[cam] = hit
    if not exo_videos:
        raise _Skip("missing video", f"no exo video of {exo_listed} ({'448' if small else 'full'})")
    # trajectory and calibrations
    trajectory = folder.joinpath(*ARIA_TRAJECTORY)
    if not trajectory.is_file():
        raise _Skip("missing trajectory", "/".join(ARIA_TRAJECTORY))
    track_first, track_last = _check_trajectory_span(inside(trajectory))
    gopro = folder.joinpath(*GOPRO_CALIBS)
    if not gopro.is_file():
        raise _Skip("missing calibration", "/".join(GOPRO_CALIBS))
    try:
        uids = set(_calib_uids(inside(gopro)))
    except (Syn2SeqInputError, UnicodeDecodeError, csv.Error) as e:
        raise _Skip("damaged CSV", f"{'/'.join(GOPRO_CALIBS)}: {e}") from None
    usable = sorted(c for c in exo_videos if any(a in uids for a in _aliases(c)))
    if not usable:
        raise _Skip("missing calibration", f"no exo camera with a video ({sorted(exo_videos)}) is calibrated in "
                    f"gopro_calibs.csv ({sorted(uids)})")
    calib = folder.joinpath(*ARIA_CALIBRATION)
    records, sizes = 0, set()
    if calib.is_file():
        try:
            read = read_aria_online_calibration(inside(calib), reader=calibration_reader)
        except Syn2SeqInputError as e:
            raise _Skip("damaged JSON", f"{'/'.join(ARIA_CALIBRATION)}: {e}") from None
        records, sizes = len(read), {r.rotated_cw90().image_size for r in read}
    elif require_ego_calibration:
        raise _Skip("missing calibration", "/".join(ARIA_CALIBRATION) + " (the true Aria RGB camera)")
    # the Aria video's container header, then its frames' device times against the trajectory
    try:
        ego_info = probe_video(inside(ego_video))
    except (Syn2SeqInputError, OSError) as e:
        raise _Skip("damaged video", str(e)) from None
    start, end = take.get("timesync_start_idx"), take.get("timesync_end_idx")
    expected = end - start - 1 if isinstance(start, int) and isinstance(end, int) else None
    if expected is not None and ego_info.frames != expected:  # ego4d/features/config.py: end - start - 1
        raise _Skip("wrong frame count", f"timesync_end_idx - timesync_start_idx - 1 = {expected} frames, the Aria "
                    f"video {rel(ego_video)} holds {ego_info.frames}")
    if ego_info.frames <= 0:
        raise _Skip("damaged video", f"no frames in {rel(ego_video)}")
    for w, h in sizes:  # the calibration must describe the stored image (a resize keeps it, a crop does not)
        if abs((ego_info.width / ego_info.height) / (w / h) - 1.0) > 0.01:
            raise _Skip("damaged video", f"the Aria video {rel(ego_video)} is {ego_info.width}x{ego_info.height}, its "
                        f"calibration (turned as the stored frames) {w}x{h}: not the same aspect ratio")
    # time alignment: the capture's timesync.csv, every frame inside the trajectory
    capture = take.get("capture") if isinstance(take.get("capture"), dict) else {}
    capture_name = capture.get("capture_name")
    capture_uid = capture.get("capture_uid") or take.get("capture_uid")
    if not isinstance(capture_name, str) or not isinstance(start, int) or start < 0:
        raise _Skip("missing timesync", "takes.json has no capture.capture_name or timesync_start_idx")
    capture_dir = (captures or {}).get(str(capture_uid)) or f"captures/{capture_name}"
    ts_rel = f"{capture_dir.rstrip('/')}/timesync.csv"
    try:
        ts_path = resolve_inside(root, ts_rel, owner=owner, entry="timesync.csv")
    except OutsideFolderError as e:
        raise _Skip("outside root", str(e)) from None
    if not ts_path.is_file():
        raise _Skip("missing timesync", ts_rel)
    first = timesync_first_row(start)
    try:
        column = _timesync_column(ts_path, aria, cache)
    except (Syn2SeqInputError, UnicodeDecodeError, csv.Error) as e:
        raise _Skip("damaged CSV", f"{ts_rel}: {e}") from None
    times = column[first:first + ego_info.frames]
    if len(times) < ego_info.frames or not all(math.isfinite(t) for t in (times.min(), times.max())):
        raise _Skip("damaged CSV", f"{ts_rel}: rows {first}..{first + ego_info.frames - 1} "
                    f"({FRAME_TIMING}) are not all there, or not all numbers")
    if times.min() < track_first or times.max() > track_last:
        raise _Skip("frames outside trajectory", f"frame device times {times.min():.0f}..{times.max():.0f} us "
                    f"(rows {first}..{first + ego_info.frames - 1} of {ts_rel}), trajectory "
                    f"{track_first:.0f}..{track_last:.0f} us")
    # exo camera choice
    best = take.get("best_exo") if isinstance(take.get("best_exo"), str) else None
    if exo_camera == "first":
        chosen, why = usable[0], "first usable exo camera"
    elif exo_camera == "best":
        best_hit = next((c for c in usable if best and best in _aliases(c)), None)
        if best_hit is not None:
            chosen, why = best_hit, "takes.json best_exo"
        else:
            chosen = usable[0]
            why = (f"best_exo {best!r} not usable, first usable exo camera" if best else
                   "no best_exo, first usable exo camera")
    else:
        chosen = next((c for c in usable if exo_camera in _aliases(c)), None)
        if chosen is None:
            raise _Skip("exo camera unavailable", f"{exo_camera!r} not among the usable {usable}")
        why = "requested"
    try:
        exo_info = probe_video(inside(exo_videos[chosen]))
    except (Syn2SeqInputError, OSError) as e:
        raise _Skip("damaged video", str(e)) from None
    if exo_info.frames != ego_info.frames:
        reason = "wrong frame count" if expected is not None else "damaged video"
        raise _Skip(reason, f"{exo_info.frames} exo frames ({rel(exo_videos[chosen])}), {ego_info.frames} ego frames")
    try:  # the chosen camera's row of gopro_calibs.csv parses (pose, KB3 intrinsics)
        from ..io.poses import load_cameras

        uid = next(a for a in _aliases(chosen) if a in uids)
        load_cameras(inside(gopro), "egoexo4d_exo", root=folder, owner=owner, camera=uid)
    except (Syn2SeqInputError, UnicodeDecodeError, csv.Error) as e:
        raise _Skip("damaged CSV", f"{'/'.join(GOPRO_CALIBS)} row of {chosen}: {e}") from None
    fps = float(ego_info.fps or exo_info.fps or 30.0)
    entry = IndexedTake(
        take_name=name, take_uid=take["take_uid"], root_dir=take["root_dir"], capture_uid=capture_uid,
        capture_name=capture_name,
        category=take.get("parent_task_name") if isinstance(take.get("parent_task_name"), str) else None,
        task_name=take.get("task_name") if isinstance(take.get("task_name"), str) else None,
        split=splits.get(take["take_uid"]), exo_cameras=usable, exo_camera=chosen, exo_camera_reason=why,
        best_exo=best, aria=aria, exo_video=rel(exo_videos[chosen]), ego_video=rel(ego_video),
        resolution="448" if small else "full", frames=int(ego_info.frames), fps=fps,
        duration_sec=ego_info.frames / fps, exo_size=list(exo_info.size), ego_size=list(ego_info.size),
        timesync={"path": ts_rel, "start_idx": start, "end_idx": end if isinstance(end, int) else None},
        ego_camera="calibration" if records else "approximate", calibration_records=records,
        extra={k: take[k] for k in ("validated", "duration_sec", "task_id", "parent_task_id") if k in take},
        aria_orientation=ARIA_ORIENTATION, frame_timing=FRAME_TIMING,
        exo_videos={c: rel(exo_videos[c]) for c in usable})
    if verify:
        try:
            load_indexed_take(root, entry, calibration_reader=calibration_reader)
        except (Syn2SeqInputError, OSError, ValueError) as e:
            raise _Skip("failed verification", str(e)[:300]) from None
    return entry


@dataclass
class IndexResult:
    """entries: usable takes; skipped: [{"take_name", "take_uid", "reason", "detail"}]; counts: reason -> n
    (and "indexed"); notes: release-wide remarks (e.g. no split file)."""

    entries: list[IndexedTake]
    skipped: list[dict]
    counts: dict
    notes: list[str]


def build_egoexo4d_index(root, *, exo_camera: str = "best", resolution: str = "auto",
                         require_ego_calibration: bool = True, calibration_reader: str = "auto",
                         verify: bool = False, progress: bool = False) -> IndexResult:
    """Index every take of ``takes.json`` under ``root`` (see the module docstring); never stops on a bad take."""
    from .egoexo4d import CALIBRATION_READERS, RESOLUTIONS

    check_choice(resolution, RESOLUTIONS, "resolution")
    check_choice(calibration_reader, CALIBRATION_READERS, "calibration_reader")
    require(isinstance(exo_camera, str) and exo_camera.strip(), "exo_camera",
            "'first', 'best' or a camera name such as 'cam01'", repr(exo_camera))
    r = Path(root).expanduser()
    takes, splits, note = read_release(r)
    captures = read_captures(r)
    entries, skipped = [], []
    counts = {k: 0 for k in SKIP_REASONS}
    iterator = takes
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(takes, unit="take", desc="index-egoexo4d")
        iterator = bar
    seen = set()
    cache: dict = {}  # a capture's timesync.csv, read once for all its takes
    for take in iterator:
        try:
            if isinstance(take, dict) and take.get("take_uid") in seen:
                raise _Skip("bad entry", "a take_uid listed twice")
            entry = index_take(r, take, splits, exo_camera=exo_camera, resolution=resolution,
                               require_ego_calibration=require_ego_calibration,
                               calibration_reader=calibration_reader, verify=verify, captures=captures,
                               cache=cache)
            entries.append(entry)
            seen.add(entry.take_uid)
        except _Skip as s:
            counts[s.reason] += 1
            skipped.append({"take_name": take.get("take_name") if isinstance(take, dict) else None,
                            "take_uid": take.get("take_uid") if isinstance(take, dict) else None,
                            "reason": s.reason, "detail": s.detail})
    if bar is not None:
        bar.close()
    counts = {"indexed": len(entries), **{k: v for k, v in counts.items() if v}}
    return IndexResult(entries, skipped, counts, [note] if note else [])


def write_egoexo4d_index(path, result: IndexResult, root, options: dict) -> Path:
    """Write the index as JSON lines (header, then one entry per take), atomically."""
    from ..io.atomic import write_text_atomic
    from .egoexo4d import ARIA_ORIENTATION, FRAME_TIMING

    header = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "root": str(Path(root).expanduser()),
              "conventions": {"frame_timing": FRAME_TIMING, "aria_orientation": ARIA_ORIENTATION},
              "options": options, "counts": result.counts, "notes": result.notes, "skipped": result.skipped}
    lines = [json.dumps(header)] + [e.to_json() for e in result.entries]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def _read_lines(path) -> tuple[dict, list[tuple[int, dict]]]:
    p = Path(path).expanduser()
    require(p.is_file(), "Ego-Exo4D index", "an index file written by syn2seq index-egoexo4d", f"no file '{p}'")
    rows = []
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Syn2SeqInputError(str(p), "a JSON-lines text file", "binary data") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise Syn2SeqInputError(f"{p} line {lineno}", "a JSON object", f"a parse error ({e})") from None
    require(rows and isinstance(rows[0][1], dict) and rows[0][1].get("format") == INDEX_FORMAT, str(p),
            f'a first line {{"format": "{INDEX_FORMAT}", ...}}', repr(rows[0][1])[:80] if rows else "an empty file")
    header = rows[0][1]
    require(header.get("version") == INDEX_VERSION, f"{p} line 1 version", f"{INDEX_VERSION}",
            header.get("version"), "Re-run syn2seq index-egoexo4d with this version")
    return header, rows[1:]


def read_egoexo4d_index_header(path) -> dict:
    """The header line of an index (format, version, root, options, counts, skipped)."""
    return _read_lines(path)[0]


def read_egoexo4d_index(path, split: str | None = None) -> list[IndexedTake]:
    """The entries of an index written by :func:`write_egoexo4d_index` (of ``split`` only, when given)."""
    _, rows = _read_lines(path)
    out = [IndexedTake.from_dict(d, f"{path} line {ln}") for ln, d in rows]
    if split is not None:
        known = sorted({e.split for e in out if e.split})
        out = [e for e in out if e.split == split]
        require(out, "split", f"one of the index's splits {known}", repr(split))
    return out


def load_indexed_take(root, entry, **options):
    """The :class:`~syn2seq_core.data.takes.Take` of an index entry (an :class:`IndexedTake` or its dict).

    root: the release root the index was built from. options: passed to
    :func:`~syn2seq_core.data.egoexo4d.load_egoexo4d_take` (e.g. ``ego_camera="approximate"``,
    ``calibration_reader="json"``); the exo camera, resolution, Aria device and time alignment (the capture's
    timesync.csv from the take's ``timesync_start_idx``) come from the entry unless given. Every path of the
    entry is resolved inside ``root``, links followed.
    """
    from .egoexo4d import load_egoexo4d_take

    if isinstance(entry, dict):
        entry = IndexedTake.from_dict(entry)
    require(isinstance(entry, IndexedTake), "entry", "an IndexedTake or its dict", type(entry).__name__)
    r = Path(root).expanduser()
    owner = f"Ego-Exo4D root '{r}'"
    folder = resolve_inside(r, entry.root_dir, owner=owner, entry=f"index {entry.take_name} root_dir")
    require(folder.is_dir(), f"index entry {entry.take_name}", f"a take folder {entry.root_dir} under '{r}'",
            "nothing there")
    for key in ("exo_video", "ego_video"):
        resolve_inside(folder, getattr(entry, key), owner=f"Ego-Exo4D take '{entry.take_name}'",
                       entry=f"index {key}")
    timesync = resolve_inside(r, entry.timesync["path"], owner=owner, entry=f"index {entry.take_name} timesync")
    kwargs = dict(camera=entry.exo_camera, resolution=entry.resolution, aria=entry.aria,
                  ego_timestamps_us=timesync, timesync_start_idx=int(entry.timesync["start_idx"]),
                  exo_video=entry.exo_video, ego_video=entry.ego_video)
    kwargs.update(options)
    # the videos the index resolved from takes.json relative_path, for the camera and resolution asked
    if options.get("resolution", entry.resolution) != entry.resolution:
        kwargs.update(exo_video=options.get("exo_video"), ego_video=options.get("ego_video"))
    elif "camera" in options and "exo_video" not in options:
        from .egoexo4d import _aliases

        kwargs["exo_video"] = next((v for c, v in entry.exo_videos.items() if options["camera"] in _aliases(c)),
                                   entry.exo_video if options["camera"] in _aliases(entry.exo_camera) else None)
    take = load_egoexo4d_take(folder, **kwargs)
    meta = dict(take.meta)
    meta["meta"] = {**dict(meta.get("meta") or {}), "take_uid": entry.take_uid, "split": entry.split,
                    "exo_camera_reason": entry.exo_camera_reason}
    if entry.category:
        meta["category"] = entry.category
    return replace(take, meta=meta)
