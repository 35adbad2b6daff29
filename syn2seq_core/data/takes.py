"""The take: one synchronised exo/ego recording (or a single view) with its camera tracks.

A take is a folder (full description in ``docs/take_format.md``)::

    my_take/
      exo.mp4              exo (third-person) video            optional if the exo view is generated
      ego.mp4              ego (first-person) video            optional: absent = the view to generate
      exo_cameras.<ext>    exo camera track, any format load_cameras reads (or a COLMAP folder exo_cameras/)
      ego_cameras.<ext>    ego camera track
      exo_depth.safetensors  optional: z-depth of the exo frames ("depth" [N, h, w], metres), for models
                           with the depth_warp cue (likewise ego_depth.safetensors)
      take.json            optional: fps, per-view timestamps, file names, source, notes

Rules
    * A view with a video needs its cameras; a view with cameras and no video is the view to generate
      (exo2ego inference: ``exo.mp4`` + both camera files; ego2exo: ``ego.mp4`` + both). At least one
      view has a video.
    * A camera track has one pose per video frame. A track with a single pose is a static camera and is
      repeated for every frame (typical for an exo tripod camera). Any other count is refused with both
      numbers in the message.
    * The cameras are sized to their video (normalised intrinsics are unchanged by a resize; an aspect
      ratio off by more than 1% is refused).
    * ``fps``: ``take.json`` ``fps``, else the exo video's, else the ego video's.
    * Per-view ``timestamps`` (seconds, one per frame) come from ``take.json`` or from the cameras file
      when it has them; otherwise frame ``i`` is at ``i / fps``.
    * Every file the take names or holds (``take.json``, the videos, the camera files, the files of a
      COLMAP folder) must resolve, links followed, inside the take folder: absolute names, ``..`` that
      climb out and links that lead out are refused (:mod:`syn2seq_core.io.safe_paths`), naming the take, the
      entry and where it leads. A video must be a binary container, not a text playlist / concat script.

:func:`write_take` writes into a hidden temporary folder next to the destination and renames it into
place only when every file is complete, so an interrupted write leaves no half take.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, check_choice, require
from ..geometry.cameras import Cameras
from ..io.atomic import building_dir
from ..io.safe_paths import OutsideFolderError, check_inside, check_not_a_playlist, resolve_inside
from ..io.video import (VideoInfo, broadcast_cameras, iter_video_chunks, probe_video, read_video, resize_plan,
                        select_frames, write_video)

VIEWS = ("exo", "ego")
TAKE_JSON = "take.json"
TAKE_FORMAT_ID = "syn2seq.take"
TAKE_FORMAT_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
_TOP_KEYS = {"format", "version", "fps", "source", "notes", "category", "meta", *VIEWS}
CATEGORY_CHARS = 64  # a label for tables ("Cooking", "Bike"), not a description
_VIEW_KEYS = {"video", "cameras", "cameras_format", "cameras_options", "timestamps", "depth"}
DEPTH_KEY = "depth"  # the tensor of a <view>_depth.safetensors file: [N, h, w] z-depth in metres
DEPTH_MAX_PIXELS = 4096 * 4096  # per map


@dataclass(frozen=True, eq=False)
class Take:
    """A loaded take: paths, probed videos (not decoded) and camera tracks.

    name: the folder name. path: the folder. exo_video / ego_video: video files or None.
    exo_cameras / ego_cameras: :class:`Cameras` with one pose per frame of the view, or None for a
    view the take does not have. fps: frames per second. timestamps: view -> ``[N]`` float64 seconds,
    for the views that have them. exo_info / ego_info: probed :class:`VideoInfo` (None without video).
    meta: free-form ``source``, ``notes``, ``category`` and ``meta`` of ``take.json`` (or of the reader that
    built it); ``category`` (e.g. "Cooking") groups takes in ``syn2seq eval``'s tables.
    exo_depth / ego_depth: the view's depth file (``<view>_depth.safetensors``), or its maps in memory
    (:meth:`with_depth`), or None; :meth:`read_depth`.
    """

    name: str
    path: Path
    exo_video: Path | None
    ego_video: Path | None
    exo_cameras: Cameras | None
    ego_cameras: Cameras | None
    fps: float
    timestamps: Mapping[str, Tensor] = field(default_factory=dict)
    exo_info: VideoInfo | None = None
    ego_info: VideoInfo | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    exo_depth: Path | Tensor | None = None
    ego_depth: Path | Tensor | None = None

    def __post_init__(self):
        require(isinstance(self.fps, (int, float)) and self.fps > 0, f"take '{self.name}' fps",
                "a positive frame rate", self.fps)
        require(self.exo_video is not None or self.ego_video is not None, f"take '{self.name}'",
                "at least one video (exo.mp4 or ego.mp4)", f"none in '{self.path}'")
        stamps = dict(self.timestamps or {})
        for view in VIEWS:
            video, cams = getattr(self, f"{view}_video"), getattr(self, f"{view}_cameras")
            info = getattr(self, f"{view}_info")
            if video is not None and info is None:
                info = probe_video(video)
                object.__setattr__(self, f"{view}_info", info)
            if video is not None and cams is None:
                raise Syn2SeqInputError(f"take '{self.name}' {view} cameras",
                                        f"a cameras file {view}_cameras.<ext> next to {Path(video).name}",
                                        f"none in '{self.path}'",
                                        "Any format load_cameras reads (cameras.json, RealEstate10K .txt, "
                                        f"transforms.json, a COLMAP folder {view}_cameras/)")
            if cams is None:
                continue
            if not isinstance(cams, Cameras):
                raise Syn2SeqInputError(f"take '{self.name}' {view} cameras", "a Cameras track", type(cams).__name__)
            if video is not None:
                if len(cams) == 1 and info.frames != 1:
                    cams = broadcast_cameras(cams, info.frames)
                if len(cams) != info.frames:
                    raise Syn2SeqInputError(
                        f"take '{self.name}' {view}", f"one camera pose per video frame ({info.frames} frames in "
                        f"{Path(video).name}) or a single static pose", f"{len(cams)} poses",
                        "Trim the video or the camera file so that frame and pose counts match")
                if cams.size != info.size:
                    ratio = (cams.width / cams.height) / (info.width / info.height)
                    require(abs(ratio - 1) <= 0.01, f"take '{self.name}' {view} cameras",
                            f"intrinsics for the {info.width}x{info.height} video (same aspect ratio)",
                            f"{cams.width}x{cams.height}")
                    cams = cams.resize(info.width, info.height)
                object.__setattr__(self, f"{view}_cameras", cams)
            if view in stamps and stamps[view] is not None:
                ts = torch.as_tensor(stamps[view], dtype=torch.float64).flatten()
                require(len(ts) == len(cams), f"take '{self.name}' {view} timestamps",
                        f"{len(cams)} values (one per frame)", len(ts))
                require(bool(torch.isfinite(ts).all()), f"take '{self.name}' {view} timestamps", "finite seconds",
                        "NaN/inf")
                stamps[view] = ts
            else:
                stamps.pop(view, None)
        for view in list(stamps):
            check_choice(view, VIEWS, f"take '{self.name}' timestamps view")
            if getattr(self, f"{view}_cameras") is None:
                raise Syn2SeqInputError(f"take '{self.name}' {view} timestamps", "a view with cameras", "no cameras")
        object.__setattr__(self, "timestamps", stamps)
        object.__setattr__(self, "path", Path(self.path))

    # --- access by view name ----------------------------------------------------------------------
    def video(self, view: str) -> Path | None:
        return getattr(self, f"{check_choice(view, VIEWS, 'view')}_video")

    def cameras(self, view: str) -> Cameras | None:
        return getattr(self, f"{check_choice(view, VIEWS, 'view')}_cameras")

    def info(self, view: str) -> VideoInfo | None:
        return getattr(self, f"{check_choice(view, VIEWS, 'view')}_info")

    def depth(self, view: str) -> Path | Tensor | None:
        return getattr(self, f"{check_choice(view, VIEWS, 'view')}_depth")

    def with_depth(self, view: str, depth: Tensor) -> "Take":
        """This take with ``view``'s z-depth given in memory instead of a depth file (nothing is written):
        ``depth`` [N, h, w] metres, one map per frame of the view, at the view's aspect ratio (any resolution),
        non-finite or non-positive values marking no depth; e.g. a monocular estimate aligned by
        :func:`~syn2seq_core.geometry.reproject.depth_from_estimate`."""
        cams = self._require_cameras(view)
        depth = torch.as_tensor(depth)
        require(depth.ndim == 3 and depth.is_floating_point(), f"take '{self.name}' {view} depth",
                "a float tensor [N, h, w] (metres)", f"{depth.dtype} {tuple(depth.shape)}")
        require(depth.shape[0] == len(cams), f"take '{self.name}' {view} depth",
                f"one map per frame ({len(cams)})", f"{depth.shape[0]} maps")
        ratio = (depth.shape[2] / depth.shape[1]) / (cams.width / cams.height)
        require(abs(ratio - 1) <= 0.01, f"take '{self.name}' {view} depth",
                f"maps with the aspect ratio of the {cams.width}x{cams.height} view", f"{depth.shape[2]}x{depth.shape[1]}")
        return replace(self, **{f"{view}_depth": depth.float()})

    def read_depth(self, view: str, start: int = 0, stop: int | None = None, stride: int = 1, size=None,
                   crop: str | None = "center") -> Tensor:
        """[T, h, w] float32 z-depth (metres) of frames ``range(start, stop, stride)`` of ``view``, at the depth
        file's own resolution (normalised intrinsics hold at any size), cropped like :meth:`read_view` crops the
        frames for ``size`` / ``crop`` (to the nearest depth pixel), so the maps go with :meth:`view_cameras`."""
        path = self.depth(view)
        if path is None:
            raise Syn2SeqInputError(f"take '{self.name}' {view} depth", f"a depth file {view}_depth.safetensors",
                                    f"none in '{self.path}'", "syn2seq render-synthetic --depth writes it for "
                                    "procedural takes")
        frames = select_frames(self.num_frames(view), start, stop, stride, f"the {view} view of take '{self.name}'")
        if isinstance(path, Tensor):
            depth = path[frames.start:frames.stop]
        else:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                depth = f.get_slice(DEPTH_KEY)[frames.start:frames.stop]
        depth = depth[::frames.step].float()
        cams = self._require_cameras(view)
        plan = resize_plan(cams.width, cams.height, size, crop)
        hd, wd = depth.shape[-2:]
        x0, x1 = (round(v / plan.resize_w * wd) for v in (plan.left, plan.left + plan.width))
        y0, y1 = (round(v / plan.resize_h * hd) for v in (plan.top, plan.top + plan.height))
        return depth[:, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]

    @property
    def category(self) -> str | None:
        """The take's ``category`` label (``take.json``), or None."""
        return self.meta.get("category")

    @property
    def views(self) -> tuple[str, ...]:
        """The views the take has (a video or cameras)."""
        return tuple(v for v in VIEWS if self.cameras(v) is not None)

    def has_video(self, view: str) -> bool:
        return self.video(view) is not None

    def num_frames(self, view: str) -> int:
        """Frames of ``view``: its video's, or its cameras' for a view to generate."""
        cams = self._require_cameras(view)
        return len(cams)

    def frame_times(self, view: str) -> Tensor:
        """[N] float64 seconds of the frames of ``view`` (its timestamps, else ``i / fps``)."""
        if view in self.timestamps:
            return self.timestamps[view]
        return torch.arange(self.num_frames(view), dtype=torch.float64) / self.fps

    def _require_cameras(self, view: str) -> Cameras:
        cams = self.cameras(view)
        if cams is None:
            raise Syn2SeqInputError(f"take '{self.name}' {view} view", f"{view} cameras", f"none in '{self.path}'")
        return cams

    def _require_video(self, view: str) -> Path:
        video = self.video(view)
        if video is None:
            raise Syn2SeqInputError(f"take '{self.name}' {view} view", "a video to read",
                                    "none (this view has only cameras: it is the view to generate)",
                                    "Use view_cameras() for its cameras")
        return video

    # --- reading ----------------------------------------------------------------------------------
    def read_view(self, view: str, size=None, start: int = 0, stop: int | None = None, stride: int = 1,
                  crop: str | None = "center", chunk: int | None = None) -> tuple[Tensor, Cameras]:
        """Decode ``view``: frames ``[T, 3, H, W]`` in [0, 1] and their cameras, resized / cropped alike.

        Frames ``range(start, stop, stride)``; ``size`` and ``crop`` as in :func:`syn2seq_core.io.video.read_video`.
        """
        video = self._require_video(view)
        return read_video(video, start, stop, stride, size=size, crop=crop, cameras=self._require_cameras(view),
                          chunk=chunk)

    def iter_view(self, view: str, chunk_frames: int = 16, size=None, start: int = 0, stop: int | None = None,
                  stride: int = 1, crop: str | None = "center") -> tuple[Iterator[Tensor], Cameras]:
        """Stream ``view`` in ``[t, 3, H, W]`` chunks (bounded memory) and return its cameras for the range."""
        video = self._require_video(view)
        chunks = iter_video_chunks(video, chunk_frames, start=start, stop=stop, stride=stride, size=size, crop=crop)
        return chunks, self.view_cameras(view, size, start, stop, stride, crop)

    def view_cameras(self, view: str, size=None, start: int = 0, stop: int | None = None, stride: int = 1,
                     crop: str | None = "center") -> Cameras:
        """Cameras of frames ``range(start, stop, stride)`` of ``view`` for frames resized / cropped to ``size``.

        Works for a view without video (the view to generate): its output frames get these cameras.
        """
        cams = self._require_cameras(view)
        frames = select_frames(len(cams), start, stop, stride, f"the {view} view of take '{self.name}'")
        cams = cams[frames.start:frames.stop:frames.step]
        return resize_plan(cams.width, cams.height, size, crop).apply_to_cameras(cams)


# --- loading --------------------------------------------------------------------------------------
def _owner(path: Path) -> str:
    return f"take '{path.name}'"


def _read_take_json(path: Path) -> dict:
    file = path / TAKE_JSON
    if not file.is_file():
        return {}
    check_inside(path, file, owner=_owner(path), entry=TAKE_JSON)
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Syn2SeqInputError(str(file), "valid JSON", f"a parse error ({e})") from None
    require(isinstance(data, dict), str(file), "a JSON object", type(data).__name__)
    unknown = sorted(set(data) - _TOP_KEYS)
    require(not unknown, str(file), f"only the keys {sorted(_TOP_KEYS)}", f"unknown {unknown}")
    if "format" in data:
        require(data["format"] == TAKE_FORMAT_ID, f"{file} format", repr(TAKE_FORMAT_ID), repr(data["format"]))
    if "version" in data:
        require(data["version"] == TAKE_FORMAT_VERSION, f"{file} version", f"{TAKE_FORMAT_VERSION}", data["version"],
                "This take was written by a newer syn2seq; update the package")
    if "fps" in data:
        fps = data["fps"]
        ok = isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0
        require(ok, f"{file} fps", "a positive number", repr(fps))
    if "category" in data:
        check_category(data["category"], f"{file} category")
    for view in VIEWS:
        block = data.get(view, {})
        require(isinstance(block, dict), f"{file} {view}", "an object", type(block).__name__)
        unknown = sorted(set(block) - _VIEW_KEYS)
        require(not unknown, f"{file} {view}", f"only the keys {sorted(_VIEW_KEYS)}", f"unknown {unknown}")
        for key in ("video", "cameras", "cameras_format"):
            if key in block:
                require(isinstance(block[key], str) and block[key], f"{file} {view}.{key}", "a file name",
                        repr(block[key]))
        if "cameras_options" in block:
            require(isinstance(block["cameras_options"], dict), f"{file} {view}.cameras_options", "an object",
                    type(block["cameras_options"]).__name__)
        if "timestamps" in block:
            ts = block["timestamps"]
            ok = isinstance(ts, list) and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in ts)
            require(ok, f"{file} {view}.timestamps", "a list of seconds, one per frame", type(ts).__name__)
    return data


def check_category(value, name: str) -> str:
    """A take's category label: a non-empty string of at most :data:`CATEGORY_CHARS` printable characters."""
    ok = isinstance(value, str) and 0 < len(value.strip()) and len(value) <= CATEGORY_CHARS and value.isprintable()
    require(ok, name, f"a label of 1 to {CATEGORY_CHARS} printable characters (e.g. \"Cooking\")", repr(value)[:80])
    return value.strip()


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _find_video(path: Path, view: str, block: dict) -> Path | None:
    """The view's video: named in take.json or ``<view>.<ext>``; it must resolve inside the take folder."""
    if "video" in block:
        entry = f"{TAKE_JSON} {view}.video"
        p = resolve_inside(path, block["video"], owner=_owner(path), entry=entry)
        if not p.is_file():
            raise Syn2SeqInputError(f"take '{path.name}' {view} video", f"the file named in {TAKE_JSON}",
                                    f"no file at '{p}'")
        return check_not_a_playlist(p, owner=_owner(path), entry=entry)
    found = [path / f"{view}{s}" for s in VIDEO_SUFFIXES if (path / f"{view}{s}").is_file()]
    if len(found) > 1:
        raise Syn2SeqInputError(f"take '{path.name}' {view} video", "one video file",
                                f"several: {[p.name for p in found]}", f"Name one in {TAKE_JSON}")
    if not found:
        return None
    entry = f"{view} video {found[0].name}"
    check_inside(path, found[0], owner=_owner(path), entry=entry)
    return check_not_a_playlist(found[0], owner=_owner(path), entry=entry)


def _find_cameras(path: Path, view: str, block: dict) -> Path | None:
    """The view's cameras file or folder: named in take.json or ``<view>_cameras[.<ext>]``; it must resolve
    inside the take folder (the files of a cameras folder are checked by the reader, against the take)."""
    if "cameras" in block:
        p = resolve_inside(path, block["cameras"], owner=_owner(path), entry=f"{TAKE_JSON} {view}.cameras")
        if not p.exists():
            raise Syn2SeqInputError(f"take '{path.name}' {view} cameras", f"the file named in {TAKE_JSON}",
                                    f"no file at '{p}'")
        return p
    stem = f"{view}_cameras"
    found = sorted(p for p in path.iterdir() if _visible(p) and (p.name == stem or p.name.startswith(stem + "."))
                   and (p.is_file() or p.is_dir()))
    if len(found) > 1:
        raise Syn2SeqInputError(f"take '{path.name}' {view} cameras", f"one {stem}.<ext> file or {stem}/ folder",
                                f"several: {[p.name for p in found]}", f"Name one in {TAKE_JSON}")
    if not found:
        return None
    return check_inside(path, found[0], owner=_owner(path), entry=f"{view} cameras {found[0].name}")


def _find_depth(path: Path, view: str, block: dict, n_cameras: int | None, info: VideoInfo | None) -> Path | None:
    """The view's depth file: named in take.json or ``<view>_depth.safetensors``, inside the take folder, holding
    one float map per frame under ``"depth"`` (the header is checked; the maps are read when needed)."""
    entry = f"{TAKE_JSON} {view}.depth" if "depth" in block else f"{view} depth"
    if "depth" in block:
        p = resolve_inside(path, block["depth"], owner=_owner(path), entry=entry)
        if not p.is_file():
            raise Syn2SeqInputError(f"take '{path.name}' {view} depth", f"the file named in {TAKE_JSON}",
                                    f"no file at '{p}'")
    else:
        p = path / f"{view}_depth.safetensors"
        if not p.is_file():
            return None
        p = check_inside(path, p, owner=_owner(path), entry=entry)
    name = f"take '{path.name}' {view} depth ({p.name})"
    require(n_cameras is not None, name, f"{view} cameras beside it", "none")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            keys = list(f.keys())
            require(DEPTH_KEY in keys, name, f"a tensor '{DEPTH_KEY}'", f"the tensors {keys[:8]}")
            sl = f.get_slice(DEPTH_KEY)
            shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
    except (SafetensorError, OSError) as e:
        raise Syn2SeqInputError(name, "a safetensors file", f"an unreadable file ({e})") from None
    n = info.frames if info is not None else n_cameras
    require(len(shape) == 3 and shape[0] == n, name, f"[{n}, h, w]: one map per frame", list(shape))
    require(dtype in ("F16", "BF16", "F32", "F64"), name, "float depths (metres)", dtype)
    require(0 < shape[1] * shape[2] <= DEPTH_MAX_PIXELS, name, f"maps of at most {DEPTH_MAX_PIXELS} pixels",
            f"{shape[2]}x{shape[1]}")
    return p


def is_take(path) -> bool:
    """Whether ``path`` is a take folder (a take.json, or an exo/ego video)."""
    p = Path(path)
    if not p.is_dir():
        return False
    return (p / TAKE_JSON).is_file() or any((p / f"{v}{s}").is_file() for v in VIEWS for s in VIDEO_SUFFIXES)


def load_take(path) -> Take:
    """Load the take folder ``path`` (or its ``take.json``): cameras loaded, videos probed, not decoded."""
    from ..io.poses import load_camera_track

    require(isinstance(path, (str, os.PathLike)), "take", "a folder path", type(path).__name__)
    p = Path(path).expanduser()
    if p.is_file() and p.name == TAKE_JSON:
        p = p.parent
    if not p.exists():
        raise Syn2SeqInputError("take", "an existing take folder", f"nothing at '{p}'")
    if not p.is_dir():
        raise Syn2SeqInputError("take", "a take folder (exo.mp4, ego.mp4, *_cameras.*, take.json)", f"the file '{p}'")
    data = _read_take_json(p)
    if not data and not is_take(p):
        hint = None
        if (p / "frame_aligned_videos").is_dir():
            hint = "This is an Ego-Exo4D take: use syn2seq_core.data.egoexo4d.load_egoexo4d_take"
        raise Syn2SeqInputError("take", f"a take folder with exo.mp4 or ego.mp4 (or {TAKE_JSON})",
                                f"none in '{p}'", hint)
    videos, infos, cameras, stamps, depths = {}, {}, {}, {}, {}
    for view in VIEWS:
        block = data.get(view, {})
        videos[view] = _find_video(p, view, block)
        infos[view] = None if videos[view] is None else probe_video(videos[view])
        cam_path = _find_cameras(p, view, block)
        if cam_path is None:
            cameras[view] = None
        else:
            options = dict(block.get("cameras_options", {}))
            if infos[view] is not None and "width" not in options and "height" not in options:
                options.update(width=infos[view].width, height=infos[view].height)
            reserved = sorted({"root", "owner"} & set(options))
            require(not reserved, f"{p / TAKE_JSON} {view}.cameras_options", "options of the camera format",
                    f"the reserved keys {reserved}")
            try:  # every file the reader opens (a COLMAP folder's files, ...) must be inside the take too
                track = load_camera_track(cam_path, block.get("cameras_format", "auto"), root=p, owner=_owner(p),
                                          **options)
            except OutsideFolderError:
                raise
            except Syn2SeqInputError as e:
                if str(cam_path) in e.name:
                    raise
                raise Syn2SeqInputError(f"take '{p.name}' {view} cameras ({cam_path.name}): {e.name}", e.expected,
                                        e.found, e.hint) from None
            cameras[view] = track.cameras
            if "timestamps" in block:
                stamps[view] = block["timestamps"]
            elif track.timestamps is not None and len(track.timestamps) == len(track.cameras) > 1:
                stamps[view] = track.timestamps
        depths[view] = _find_depth(p, view, block, None if cameras[view] is None else len(cameras[view]),
                                   infos[view])
    fps = data.get("fps") or next((float(i.fps) for i in (infos["exo"], infos["ego"]) if i and i.fps > 0), None)
    if fps is None:
        raise Syn2SeqInputError(f"take '{p.name}' fps", f"a frame rate in {TAKE_JSON} or in the videos", "none")
    meta = {k: data[k] for k in ("source", "notes", "category", "meta") if k in data}
    return Take(p.name, p, videos["exo"], videos["ego"], cameras["exo"], cameras["ego"], float(fps), stamps,
                infos["exo"], infos["ego"], meta, depths["exo"], depths["ego"])


def find_takes(root) -> list[Path]:
    """Take folders under ``root`` (``root`` itself if it is one), sorted; hidden folders are skipped.

    A take folder that is a link leading out of ``root`` is refused (:class:`OutsideFolderError`), not
    skipped: an evaluation must run on the takes the root shows, all of them, or say why it cannot.
    """
    require(isinstance(root, (str, os.PathLike)), "root", "a folder path", type(root).__name__)
    r = Path(root).expanduser()
    if not r.is_dir():
        raise Syn2SeqInputError("takes root", "an existing folder", f"nothing at '{r}'" if not r.exists() else
                                f"the file '{r}'")
    if is_take(r):
        return [r]
    out = []
    for dirpath, dirnames, _ in os.walk(r):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        keep = []
        for d in dirnames:
            if is_take(here / d):
                rel = (here / d).relative_to(r).as_posix()
                check_inside(r, here / d, owner=f"takes root '{r}'", entry=f"take folder {rel}",
                             hint="Copy the take into the root, or evaluate the folder it links to")
                out.append(here / d)
            else:
                keep.append(d)
        dirnames[:] = keep
    return sorted(out)


# --- writing --------------------------------------------------------------------------------------
def _count(frames) -> int | None:
    if isinstance(frames, Tensor):
        return 1 if frames.ndim == 3 else int(frames.shape[0])
    return None


def write_take(path, exo_frames=None, exo_cameras: Cameras | None = None, ego_frames=None,
               ego_cameras: Cameras | None = None, fps: float = 30.0, meta: Mapping | None = None, *,
               timestamps: Mapping[str, Any] | None = None, overwrite: bool = False, crf: int = 18,
               preset: str = "medium", depth: Mapping[str, Tensor] | None = None) -> Take:
    """Write a take folder atomically and return it loaded.

    exo_frames / ego_frames: ``[T, 3, H, W]`` in [0, 1], or an iterable of chunks, or None (a view with
    only cameras, e.g. the view to generate). exo_cameras / ego_cameras: one pose per frame (or one
    static pose). meta: ``{"source": ..., "notes": ..., ...}`` (``source``/``notes``/``category`` go to the top of
    take.json, the rest under ``meta``). timestamps: view -> [N] seconds. depth: view -> [N, h, w] z-depth in
    metres (stored as float16 in ``<view>_depth.safetensors``). An existing take at ``path`` is replaced only
    with ``overwrite=True``.
    """
    from ..io.poses import save_cameras

    require(isinstance(path, (str, os.PathLike)), "take path", "a folder path", type(path).__name__)
    dest = Path(path).expanduser()
    if dest.exists() and not overwrite:
        raise Syn2SeqInputError("take path", "a folder that does not exist yet", f"'{dest}' exists",
                                "Pass overwrite=True to replace it")
    frames = {"exo": exo_frames, "ego": ego_frames}
    cams = {"exo": exo_cameras, "ego": ego_cameras}
    require(exo_frames is not None or ego_frames is not None, "write_take", "exo_frames or ego_frames", "neither")
    for view in VIEWS:
        if frames[view] is not None and cams[view] is None:
            raise Syn2SeqInputError(f"{view}_cameras", f"the cameras of the {view} frames", "None")
        if cams[view] is not None:
            require(isinstance(cams[view], Cameras), f"{view}_cameras", "a Cameras track", type(cams[view]).__name__)
            n = _count(frames[view])
            if n is not None and len(cams[view]) not in (1, n):
                raise Syn2SeqInputError(f"{view}", f"one camera pose per frame ({n} frames) or a single static pose",
                                        f"{len(cams[view])} poses")
    stamps = dict(timestamps or {})
    for view in stamps:
        check_choice(view, VIEWS, "timestamps view")
    depths = dict(depth or {})
    for view, d in depths.items():
        check_choice(view, VIEWS, "depth view")
        require(isinstance(d, Tensor) and d.ndim == 3 and d.is_floating_point(), f"{view} depth",
                "a float tensor [N, h, w] (metres)", getattr(d, "shape", type(d).__name__))
    meta = dict(meta or {})
    if "category" in meta:
        meta["category"] = check_category(meta["category"], "meta category")
    doc: dict[str, Any] = {"format": TAKE_FORMAT_ID, "version": TAKE_FORMAT_VERSION, "fps": float(fps)}
    for key in ("source", "notes", "category"):
        if key in meta:
            doc[key] = meta.pop(key)
    if meta:
        doc["meta"] = meta

    dest.parent.mkdir(parents=True, exist_ok=True)
    with building_dir(dest) as tmp:
        for view in VIEWS:
            block = {}
            if frames[view] is not None:
                info = write_video(tmp / f"{view}.mp4", frames[view], fps, crf=crf, preset=preset)
                if len(cams[view]) not in (1, info.frames):
                    raise Syn2SeqInputError(f"{view}", f"one camera pose per frame ({info.frames} frames) or a "
                                            "single static pose", f"{len(cams[view])} poses")
                block["video"] = f"{view}.mp4"
            if cams[view] is not None:
                save_cameras(cams[view], tmp / f"{view}_cameras.json")
                block["cameras"] = f"{view}_cameras.json"
            if depths.get(view) is not None:
                from safetensors.torch import save

                (tmp / f"{view}_depth.safetensors").write_bytes(save({DEPTH_KEY: depths[view].to(torch.float16)
                                                                      .contiguous()}))
                block["depth"] = f"{view}_depth.safetensors"
            if view in stamps and stamps[view] is not None:
                block["timestamps"] = [float(t) for t in torch.as_tensor(stamps[view], dtype=torch.float64).flatten()]
            if block:
                doc[view] = block
        (tmp / TAKE_JSON).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        # Validate before it becomes visible (counts of chunked frames, timestamps lengths, ...).
        try:
            load_take(tmp)
        except Syn2SeqInputError as e:
            raise Syn2SeqInputError(e.name.replace(tmp.name, dest.name), e.expected,
                                    str(e.found).replace(str(tmp), str(dest)), e.hint) from None
    return load_take(dest)
