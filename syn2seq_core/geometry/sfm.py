"""Camera tracks from pixels: structure from motion on a video.

:func:`estimate_cameras` (frames in memory; for a file,
:func:`syn2seq_core.io.camera_estimation.estimate_cameras_from_video` decodes only the frames it uses) samples frames, runs structure from motion on them and returns a camera for
**every** frame:

- ``mapper="global"`` (default) / ``"incremental"``: pycolmap, COLMAP's own Python bindings (the optional
  ``cameras`` extra: ``pip install 'syn2seq[cameras]'``). SIFT features, *sequential* matching (each frame with
  its next 10 and with frames 2, 4, 8, ... ahead: a video's frames overlap with their neighbours), then COLMAP's
  global mapper (GLOMAP: rotation averaging, global positioning, bundle adjustment) or its incremental mapper.
  The largest reconstruction is kept. On video the global mapper is the reliable one (numbers in
  ``docs/cameras_estimate.md``): incremental mapping needs an initial pair with a wide baseline, which slow,
  smooth camera moves often lack, and then registers a few frames or none.
- ``mapper="opencv"``: the dependency-light fallback for two views and short clips: OpenCV SIFT, the essential
  matrix of each pair of consecutive frames (RANSAC), chained, with the scale of each step carried over from
  the points the step shares with the previous one. No bundle adjustment and no focal length estimation (the
  intrinsics are given or guessed). Chosen on its own, with a note, when pycolmap is absent and the clip is
  short (:data:`OPENCV_AUTO_MAX_FRAMES` sampled frames); for a longer clip without pycolmap the error names the
  extra to install.
- ``static=True``: a fixed camera (a tripod exo view) gives structure from motion no parallax to work with, so
  nothing is estimated: one pose (:data:`FIRST_CAMERA_IN_WORLD`) for every frame, with the intrinsics from ``fov_deg`` /
  ``focal`` or, without either, COLMAP's own prior guess ``f = 1.2 * max(W, H)`` (a horizontal field of view
  of about 45 degrees on a landscape frame), reported as a guess.

Frames that were not sampled (``stride``, ``max_frames``) or not registered get poses by SLERP of rotation and
lerp of centre between the registered frames around them (:func:`~syn2seq_core.geometry.slerp.slerp_poses`),
and hold the first / last registered pose before / after the registered span; they are marked
``interpolated``.

Conventions of the result (:mod:`syn2seq_core.base.conventions`): c2w OpenCV axes; the world is the first
registered frame's camera turned to the pack's z-up world (:data:`FIRST_CAMERA_IN_WORLD`: that camera at the
origin looking along +y, its image up along +z); **the scale is arbitrary** (structure from motion cannot know it): one unit is the
median depth of the scene points that frame sees. :func:`align_to_track` maps an estimate onto a known track by
the least-squares similarity (Sim(3), :func:`~syn2seq_core.geometry.align.umeyama`). Intrinsics are normalised
(``K [T, 4]``: fx/W, fy/H, cx/W, cy/H) and shared by all frames (one camera); ``lens="fisheye"`` estimates
COLMAP's ``OPENCV_FISHEYE`` model, whose four coefficients are our Kannala-Brandt ``fisheye [T, 4]``.

pycolmap writes its database and the sampled frames into a temporary folder that is removed afterwards. Its
frames are written with pycolmap's own image writer: importing pycolmap before Pillow (with neither torch nor
PyAV loaded yet) makes Pillow's PNG encoder crash in pycolmap 4.2.1, so this module never uses Pillow.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, check_choice, require
from .cameras import Cameras
from .slerp import slerp_poses

MAPPERS = ("global", "incremental", "opencv")
DEFAULT_MAPPER = "global"
LENSES = {"pinhole": "SIMPLE_PINHOLE", "fisheye": "OPENCV_FISHEYE"}  # our lens -> COLMAP camera model
DEFAULT_LENS = "pinhole"
# COLMAP's prior focal length when nothing is known: ImageReaderOptions.default_focal_length_factor
# (src/colmap/controllers/image_reader.h lines 82-83: "focal length ... default_focal_length_factor *
# max(width, height)", default 1.2).
GUESS_FOCAL_FACTOR = 1.2
DEFAULT_SFM_SIZE = 640  # long side of the frames features are extracted from (pixels)
DEFAULT_MIN_REGISTERED = 0.5  # share of the sampled frames that must register
# Below these the result would be made up rather than measured. The flat-shaded procedural rooms have a median of
# 73-166 SIFT keypoints per 160 px frame and the global mapper still "registers" all 24 ego frames of some, seeing
# 4-65 scene points each, 1-6 deg off per frame; textured rooms have 515-634 keypoints and 113-305 points per
# frame, the real clip tests/fixtures/bikes_wall_55f_320x136.mp4 503 and at least 263 (docs/cameras_estimate.md).
MIN_FEATURES = 200  # median SIFT keypoints per sampled frame below which the video is refused as featureless
MIN_POINTS_PER_FRAME = 50  # scene points a registered frame must see to count as registered
MIN_REGISTERED_FRAMES = 2
OPENCV_AUTO_MAX_FRAMES = 48  # sampled frames the OpenCV fallback takes on when pycolmap is absent
OPENCV_MIN_INLIERS = MIN_POINTS_PER_FRAME  # essential-matrix inliers a consecutive pair needs to chain
SEQUENTIAL_OVERLAP = 10  # COLMAP's default: each frame is matched with its next 10 (and 2^k ahead)
CAMERAS_EXTRA = "pip install 'syn2seq[cameras]'  (or: pip install pycolmap)"

ProgressFn = Callable[[dict], None]

# The pose of the first registered camera (c2w, OpenCV axes) in an estimated world: at the origin, looking along
# world +y, its image up along world +z (the pack's world is z up; camera paths and the camera-path widget draw it so).
# Where the video's first frame held its camera level, the world's z is the true up.
FIRST_CAMERA_IN_WORLD = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                                      [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)


@dataclass(frozen=True, eq=False)
class EstimatedCameras:
    """The camera track estimated from a video's frames.

    cameras: one camera per frame of the input (``len == T``), OpenCV c2w, normalised K, the input frames' size.
    registered: bool [T], frames structure from motion placed.
    interpolated: bool [T], frames whose pose was filled in (SLERP between registered frames, held before the
        first and after the last); ``~registered`` except for a static camera (neither).
    sampled: bool [T], frames given to structure from motion (``stride`` / ``max_frames``).
    method: e.g. ``"pycolmap 4.2.1 global mapper"``, ``"opencv essential matrix (chained)"``, ``"static"``.
    intrinsics: ``"estimated"``, ``"given"`` or ``"guessed"``.
    notes: what a reader of the file must know (the arbitrary scale first), one sentence each.
    seconds: wall-clock time of the estimate.
    """

    cameras: Cameras
    registered: Tensor
    interpolated: Tensor
    sampled: Tensor
    method: str
    intrinsics: str
    notes: tuple[str, ...]
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def num_registered(self) -> int:
        return int(self.registered.sum())

    def summary(self) -> dict:
        """What the camera file records about the estimate (``"estimate"`` in ``cameras.json``)."""
        return {"method": self.method, "frames": len(self), "sampled": int(self.sampled.sum()),
                "registered": self.num_registered, "interpolated": int(self.interpolated.sum()),
                "intrinsics": self.intrinsics, "seconds": round(float(self.seconds), 3), "notes": list(self.notes)}

    def frame_marks(self) -> list[dict]:
        """Per frame: ``{"registered": bool, "interpolated": bool}`` (for ``cameras.json``)."""
        return [{"registered": bool(r), "interpolated": bool(i)}
                for r, i in zip(self.registered.tolist(), self.interpolated.tolist())]


# --- choosing frames and intrinsics -----------------------------------------------------------------------------

def sample_indices(n: int, stride: int = 1, max_frames: int | None = None) -> list[int]:
    """The frames of an ``n``-frame video that structure from motion sees: every ``stride``-th, thinned evenly to
    at most ``max_frames``, the last frame always included (so no frame lies after the sampled span)."""
    require(isinstance(n, int) and n >= 1, "frames", "at least one frame", n)
    require(isinstance(stride, int) and stride >= 1, "stride", "an integer >= 1", stride)
    picked = list(range(0, n, stride))
    if picked[-1] != n - 1:
        picked.append(n - 1)
    if max_frames is not None:
        require(isinstance(max_frames, int) and max_frames >= 2, "max_frames", "None or an integer >= 2", max_frames)
        if len(picked) > max_frames:
            pos = np.unique(np.round(np.linspace(0, len(picked) - 1, max_frames)).astype(int))
            picked = [picked[i] for i in pos]
    return picked


def focal_prior(width: int, height: int, fov_deg: float | None = None, focal: float | None = None
                ) -> tuple[float, str]:
    """The focal length in pixels of a ``width x height`` frame and where it comes from: ``focal`` (pixels),
    else the horizontal field of view ``fov_deg``, else COLMAP's guess ``1.2 * max(W, H)``.
    Returns ``(f_px, "given" | "guessed")``."""
    require(fov_deg is None or focal is None, "fov_deg / focal", "at most one of them", "both")
    if focal is not None:
        require(math.isfinite(focal) and focal > 0, "focal", "a focal length in pixels > 0", focal)
        return float(focal), "given"
    if fov_deg is not None:
        require(math.isfinite(fov_deg) and 0 < fov_deg < 180, "fov_deg", "a horizontal field of view in (0, 180)",
                fov_deg)
        return 0.5 * width / math.tan(math.radians(fov_deg) / 2), "given"
    return GUESS_FOCAL_FACTOR * max(width, height), "guessed"


def _guess_note(width: int, height: int, f_px: float) -> str:
    fov = math.degrees(2 * math.atan(0.5 * width / f_px))
    return (f"intrinsics guessed, not measured: focal {f_px:.1f} px = {GUESS_FOCAL_FACTOR} x max(width, height) "
            f"(COLMAP's prior; horizontal field of view {fov:.1f} deg), principal point at the centre; give "
            "--fov or --focal if you know the lens")


SCALE_NOTE = ("scale arbitrary: structure from motion cannot measure it; one unit is the median depth of the scene "
              "points seen by the first registered frame (align to a known track with --align-to)")


# --- entry points -------------------------------------------------------------------------------------------------

def estimate_cameras(frames, *, static: bool = False, fov_deg: float | None = None, focal: float | None = None,
                     mapper: str = DEFAULT_MAPPER, stride: int = 1, max_frames: int | None = None,
                     time_limit_s: float | None = None, progress: ProgressFn | None = None,
                     lens: str = DEFAULT_LENS, sfm_size: int = DEFAULT_SFM_SIZE,
                     min_registered: float = DEFAULT_MIN_REGISTERED, num_threads: int | None = None,
                     seed: int = 0) -> EstimatedCameras:
    """Estimate a camera for every frame of ``frames`` [T, 3, H, W] (float in [0, 1] or uint8, RGB).

    static: one fixed camera (nothing estimated; see the module docstring). fov_deg (horizontal, degrees) /
    focal (pixels of these frames): known intrinsics, held fixed; without either they are estimated (guessed
    for ``static`` and ``mapper="opencv"``). mapper: ``"global"``, ``"incremental"`` or ``"opencv"``.
    stride, max_frames: which frames structure from motion sees (:func:`sample_indices`); the others are
    interpolated. time_limit_s: stop with an error when it is spent (feature extraction, matching and incremental
    mapping stop at once; the global mapper, which pycolmap cannot interrupt, at its end). progress: called with
    ``{"step": i, "total": n, "stage": name}``. lens: ``"pinhole"`` or ``"fisheye"``. sfm_size: long side, in
    pixels, of the copies features are found in. min_registered: share of the sampled frames that must register.
    num_threads: threads for pycolmap / OpenCV (None: all cores). seed: RANSAC and mapper seed.

    Raises :class:`~syn2seq_core.base.errors.Syn2SeqInputError` naming the input, what was expected and what was
    found when the frames have too few features, too few frames register, or the time limit is spent.
    """
    clock = _Clock(time_limit_s)
    t = _frames_tensor(frames)
    n, _, height, width = t.shape
    idx = sample_indices(n, stride, max_frames) if not static else [0]
    small = [_to_uint8_hwc(_resize_long_side(t[i:i + 1], sfm_size))[0] for i in idx]
    return _estimate(small, idx, n, width, height, static=static, fov_deg=fov_deg, focal=focal, mapper=mapper,
                     clock=clock, progress=progress, lens=lens, min_registered=min_registered,
                     num_threads=num_threads, seed=seed)


def align_to_track(estimate: EstimatedCameras, reference: Cameras, name: str = "reference") -> EstimatedCameras:
    """The estimate mapped onto ``reference`` (one camera per frame) by the similarity (Sim(3): scale, rotation,
    translation) that best maps the registered frames' camera centres onto the reference's
    (:func:`~syn2seq_core.geometry.align.umeyama`); interpolated frames move with them. Afterwards the
    track has the reference's world frame and units; the notes say so and give the fit's RMS error."""
    from .align import umeyama

    require(isinstance(reference, Cameras), name, "a camera track", type(reference).__name__)
    n = len(estimate)
    require(len(reference) == n, name, f"one camera per video frame ({n})", f"{len(reference)} cameras")
    require(estimate.num_registered >= 3, "estimate", "at least 3 registered frames to align",
            f"{estimate.num_registered}", "A static or nearly unregistered estimate has no track to align")
    reg = estimate.registered
    sim = umeyama(estimate.cameras.centers[reg], reference.centers[reg].to(torch.float64))
    require(sim.scale > 0, name, "a moving camera (its centres spread)", "a static track",
            "A static reference gives no scale to align to")
    c2w = sim.apply_c2w(estimate.cameras.c2w)
    cams = replace(estimate.cameras, c2w=c2w.to(estimate.cameras.c2w.dtype))
    notes = tuple(x for x in estimate.notes if not x.startswith("scale arbitrary")) + (
        f"aligned to {name} by a similarity (Sim(3), Umeyama) of the {estimate.num_registered} registered camera "
        f"centres: scale {sim.scale:.6g}, RMS centre error after alignment {sim.rmse:.4g} (the reference's units); "
        "the world frame and units are now the reference's",)
    return replace(estimate, cameras=cams, notes=notes)


# --- the work -----------------------------------------------------------------------------------------------------

@dataclass
class _Track:
    """What a backend found, for the sampled frames (positions in the sample list)."""

    c2w: dict[int, np.ndarray]  # sample position -> [4, 4] c2w, world = first registered camera, unit = median depth
    K: np.ndarray  # [4] normalised
    fisheye: np.ndarray | None  # [4] Kannala-Brandt or None
    intrinsics: str  # estimated / given / guessed
    method: str
    notes: list[str]


class _Clock:
    """The time limit: ``check(stage)`` raises once it is spent; ``token()`` cancels a pycolmap call at the deadline."""

    def __init__(self, limit: float | None):
        require(limit is None or (math.isfinite(limit) and limit > 0), "time_limit_s", "None or seconds > 0", limit)
        self.start = time.monotonic()
        self.limit = limit

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def check(self, stage: str) -> None:
        if self.limit is not None and self.elapsed > self.limit:
            raise Syn2SeqInputError("time_limit_s", f"an estimate within {self.limit:g} s",
                                    f"{self.elapsed:.1f} s spent by the end of {stage}",
                                    "Raise the time limit, or give structure from motion less work: a larger "
                                    "--stride, fewer --frames, a smaller --sfm-size")

    @contextlib.contextmanager
    def token(self, pycolmap, stage: str):
        """A pycolmap CancellationToken cancelled at the deadline (None when there is no limit); the error pycolmap
        raises when it stops on it becomes the time-limit error of ``stage``."""
        if self.limit is None or not hasattr(pycolmap, "CancellationToken"):
            yield None
            return
        token = pycolmap.CancellationToken()
        timer = threading.Timer(max(self.limit - self.elapsed, 0.0), token.cancel)
        timer.daemon = True
        timer.start()
        try:
            yield token
        except Exception:
            cancelled = token.is_cancelled  # a property in pycolmap 4.2
            if cancelled() if callable(cancelled) else cancelled:
                self.check(stage)  # raises: the deadline has passed
            raise
        finally:
            timer.cancel()


def _estimate(small: list[np.ndarray], idx: list[int], n: int, width: int, height: int, *, static: bool,
              fov_deg, focal, mapper: str, clock: _Clock, progress, lens: str, min_registered: float,
              num_threads, seed: int) -> EstimatedCameras:
    check_choice(mapper, MAPPERS, "mapper")
    check_choice(lens, LENSES, "lens")
    require(0.0 <= min_registered <= 1.0, "min_registered", "a share of the sampled frames in [0, 1]", min_registered)
    require(num_threads is None or (isinstance(num_threads, int) and num_threads >= 1), "num_threads",
            "None or an integer >= 1", num_threads)
    f_px, source = focal_prior(width, height, fov_deg, focal)  # pixels of the input frames
    sampled = torch.zeros(n, dtype=torch.bool)
    sampled[idx] = True
    if static:
        return _static(n, width, height, f_px, source, sampled, clock, lens)
    report = _reporter(progress)
    h_s, w_s = small[0].shape[:2]
    f_small = f_px * w_s / width  # the same field of view on the SfM copies
    known = None if source == "guessed" else f_small
    if mapper == "opencv":
        track = _opencv_track(small, f_small, source, lens, clock, report, num_threads)
    else:
        pycolmap = _import_pycolmap()
        if pycolmap is None:
            if len(small) > OPENCV_AUTO_MAX_FRAMES:
                raise Syn2SeqInputError(
                    "mapper", f"pycolmap installed for the '{mapper}' mapper",
                    "no pycolmap in this Python environment",
                    f"Install the cameras extra: {CAMERAS_EXTRA}. Without it only short clips "
                    f"(<= {OPENCV_AUTO_MAX_FRAMES} sampled frames, here {len(small)}: raise --stride or lower "
                    "--frames) are estimated, with OpenCV (mapper 'opencv')")
            track = _opencv_track(small, f_small, source, lens, clock, report, num_threads)
            track.notes.insert(0, f"pycolmap is not installed: estimated with the OpenCV fallback instead of the "
                                  f"'{mapper}' mapper ({CAMERAS_EXTRA} for COLMAP)")
        else:
            track = _colmap_track(pycolmap, small, mapper, lens, known, clock, report, num_threads, seed)
    return _fill(track, idx, n, width, height, sampled, min_registered, clock)


def _static(n, width, height, f_px, source, sampled, clock, lens) -> EstimatedCameras:
    require(lens == "pinhole", "lens", "'pinhole' for a static camera (no distortion is estimated)", repr(lens))
    K = torch.tensor([f_px / width, f_px / height, 0.5, 0.5], dtype=torch.float64)
    cams = Cameras(FIRST_CAMERA_IN_WORLD.expand(n, 4, 4).clone(), K, width, height)
    notes = ["static camera: one pose for every frame (at the origin, looking along world +y, z up); a fixed camera "
             "gives structure from motion no parallax, so nothing was estimated from the pixels"]
    if source == "guessed":
        notes.append(_guess_note(width, height, f_px))
    none = torch.zeros(n, dtype=torch.bool)
    return EstimatedCameras(cams, none, none.clone(), sampled, "static", source, tuple(notes), clock.elapsed)


def _fill(track: _Track, idx, n, width, height, sampled, min_registered, clock) -> EstimatedCameras:
    """Cameras for all ``n`` frames from the registered sampled ones (SLERP between, held at the ends)."""
    reg_frames = sorted(idx[p] for p in track.c2w)
    need = max(MIN_REGISTERED_FRAMES, math.ceil(min_registered * len(idx)))
    if len(reg_frames) < need:
        raise Syn2SeqInputError(
            "video", f"at least {need} of the {len(idx)} sampled frames registered by structure from motion "
                     f"({track.method})", f"{len(reg_frames)} registered",
            "The frames may lack texture, the camera may not move (use --static), or a scene cut may split the "
            "clip: trim it to one shot, sample more densely (--stride 1), or try the other --mapper")
    by_frame = {idx[p]: torch.from_numpy(c) for p, c in track.c2w.items()}
    c2w = torch.empty(n, 4, 4, dtype=torch.float64)
    for a, b in zip(reg_frames[:-1], reg_frames[1:]):
        c2w[a] = by_frame[a]
        if b - a > 1:
            c2w[a + 1:b] = slerp_poses(by_frame[a], by_frame[b], b - a - 1)
    c2w[reg_frames[-1]] = by_frame[reg_frames[-1]]
    c2w[:reg_frames[0]] = by_frame[reg_frames[0]]
    c2w[reg_frames[-1] + 1:] = by_frame[reg_frames[-1]]
    registered = torch.zeros(n, dtype=torch.bool)
    registered[reg_frames] = True
    fish = None if track.fisheye is None else torch.from_numpy(track.fisheye)
    cams = Cameras(c2w, torch.from_numpy(track.K), width, height, fish)
    held = reg_frames[0] + (n - 1 - reg_frames[-1])
    notes = [SCALE_NOTE, *track.notes]
    filled = ""
    if n > len(reg_frames):
        filled = (f"; the other {n - len(reg_frames)} interpolated (SLERP between registered frames"
                  + (f"; {held} before the first or after the last registered frame hold its pose)" if held else ")"))
    notes.append(f"{len(reg_frames)} of {n} frames registered ({len(reg_frames)} of {len(idx)} sampled){filled}")
    return EstimatedCameras(cams, registered, ~registered, sampled, track.method, track.intrinsics, tuple(notes),
                            clock.elapsed)


def _reporter(progress: ProgressFn | None):
    stages = ("frames", "features", "matches", "mapping", "cameras")

    def report(stage: str) -> None:
        if progress is not None:
            progress({"step": stages.index(stage) + 1, "total": len(stages), "stage": stage})

    return report


# --- pycolmap ----------------------------------------------------------------------------------------------------

def _import_pycolmap():
    """pycolmap, or None when it is not installed."""
    try:
        import pycolmap
    except ImportError:
        return None
    return pycolmap


def pycolmap_version() -> str | None:
    """The installed pycolmap's version, or None."""
    pycolmap = _import_pycolmap()
    return None if pycolmap is None else str(getattr(pycolmap, "__version__", "?"))


@contextlib.contextmanager
def _quiet_logs(pycolmap):
    """COLMAP logs every step (glog, to stderr): only fatal messages while we run; our errors say what failed."""
    logging = getattr(pycolmap, "logging", None)
    if logging is None or not hasattr(logging, "minloglevel"):
        yield
        return
    before = logging.minloglevel
    logging.minloglevel = 3
    try:
        yield
    finally:
        logging.minloglevel = before


def _colmap_track(pycolmap, small, mapper, lens, known_f, clock, report, num_threads, seed) -> _Track:
    threads = -1 if num_threads is None else int(num_threads)
    h, w = small[0].shape[:2]
    model = LENSES[lens]
    with tempfile.TemporaryDirectory(prefix="syn2seq-sfm-") as tmp, _quiet_logs(pycolmap):
        tmp = Path(tmp)
        images = tmp / "images"
        images.mkdir()
        names = [f"{p:06d}.png" for p in range(len(small))]
        for name, image in zip(names, small):
            pycolmap.Bitmap.from_array(np.ascontiguousarray(image)).write(str(images / name))
        report("frames")
        clock.check("writing the frames")
        database = tmp / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = model
        if known_f is not None:
            extra = ",0,0,0,0" if lens == "fisheye" else ""
            params = f"{known_f},{known_f}," if lens == "fisheye" else f"{known_f},"
            reader.camera_params = f"{params}{w / 2},{h / 2}{extra}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = threads
        with clock.token(pycolmap, "feature extraction") as token:
            pycolmap.extract_features(database, images, image_names=names, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=extraction,
                                      device=pycolmap.Device.cpu, **_token(token))
        report("features")
        clock.check("feature extraction")
        _check_features(pycolmap, database, names)
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = threads
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = SEQUENTIAL_OVERLAP
        pairing.num_threads = threads
        with clock.token(pycolmap, "feature matching") as token:
            pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                      device=pycolmap.Device.cpu, **_token(token))
        report("matches")
        clock.check("feature matching")
        out = tmp / "sparse"
        out.mkdir()
        if mapper == "incremental":
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads = threads
            options.random_seed = int(seed)
            if known_f is not None:
                options.ba_refine_focal_length = False
                options.ba_refine_extra_params = False
            with clock.token(pycolmap, "incremental mapping") as token:
                models = pycolmap.incremental_mapping(database, images, out, options, **_token(token))
        else:
            options = pycolmap.GlobalPipelineOptions()
            options.num_threads = threads
            options.random_seed = int(seed)
            options.mapper.num_threads = threads
            options.mapper.random_seed = int(seed)
            if known_f is not None:
                options.mapper.bundle_adjustment.refine_focal_length = False
                options.mapper.bundle_adjustment.refine_extra_params = False
            models = pycolmap.global_mapping(database, images, out, options)
        report("mapping")
        clock.check(f"{mapper} mapping")
        track = _from_reconstruction(pycolmap, models, names, w, h, lens, mapper, known_f)
    report("cameras")
    return track


def _token(token) -> dict:
    return {} if token is None else {"cancellation_token": token}


def _check_features(pycolmap, database: Path, names: list[str]) -> None:
    db = pycolmap.Database.open(str(database))
    try:
        found = {image.name: db.num_keypoints_for_image(image.image_id) for image in db.read_all_images()}
    finally:
        db.close()
    counts = [found.get(name, 0) for name in names]
    median = float(np.median(counts)) if counts else 0.0
    if median < MIN_FEATURES:
        raise Syn2SeqInputError(
            "video", f"textured frames (a median of at least {MIN_FEATURES} SIFT features per sampled frame)",
            f"a median of {median:g} (min {min(counts, default=0)}, max {max(counts, default=0)})",
            "Flat colours, blur or darkness give structure from motion nothing to match; a larger --sfm-size may "
            "help with small detail")


def _from_reconstruction(pycolmap, models: dict, names, w, h, lens, mapper, known_f) -> _Track:
    if not models:
        return _Track({}, np.array([0.5, 0.5, 0.5, 0.5]), None, "estimated", _method(pycolmap, mapper),
                      ["structure from motion found no model"])
    best = max(models.values(), key=lambda r: r.num_reg_images())
    position = {name: p for p, name in enumerate(names)}
    w2c, weak = {}, 0
    for image_id in best.reg_image_ids():
        image = best.images[image_id]
        if sum(1 for p in image.points2D if p.has_point3D()) < MIN_POINTS_PER_FRAME:
            weak += 1
            continue
        m = np.eye(4)
        m[:3, :4] = image.cam_from_world().matrix()
        w2c[position[image.name]] = m
    if not w2c:
        return _Track({}, np.array([0.5, 0.5, 0.5, 0.5]), None, "estimated", _method(pycolmap, mapper),
                      [f"every registered frame sees fewer than {MIN_POINTS_PER_FRAME} scene points"])
    camera = next(iter(best.cameras.values()))
    params = np.asarray(camera.params, dtype=np.float64)
    if lens == "fisheye":  # OPENCV_FISHEYE: fx, fy, cx, cy, k1..k4
        fx, fy, cx, cy = params[:4]
        fish = params[4:8].copy()
    else:  # SIMPLE_PINHOLE: f, cx, cy
        fx = fy = params[0]
        cx, cy = params[1:3]
        fish = None
    K = np.array([fx / w, fy / h, cx / w, cy / h], dtype=np.float64)
    first = min(w2c)
    depth = _median_depth(best, best.images[next(i for i in best.reg_image_ids()
                                                  if position[best.images[i].name] == first)], w2c[first])
    c2w = _normalise(w2c, first, depth)
    notes = []
    if weak:
        notes.append(f"{weak} frame(s) placed by the mapper but seeing fewer than {MIN_POINTS_PER_FRAME} scene points "
                     "are counted as unregistered (interpolated)")
    if len(models) > 1:
        sizes = sorted((r.num_reg_images() for r in models.values()), reverse=True)
        notes.append(f"structure from motion found {len(models)} separate models of {sizes} frames (a scene cut or "
                     "a stretch without matches); the largest is kept")
    intr = "given" if known_f is not None else "estimated"
    if intr == "estimated":
        notes.append(f"intrinsics estimated by bundle adjustment (one camera for all frames, {LENSES[lens]}): "
                     f"fx/W {K[0]:.4f}, fy/H {K[1]:.4f}")
    return _Track(c2w, K, fish, intr, _method(pycolmap, mapper), notes)


def _method(pycolmap, mapper: str) -> str:
    return f"pycolmap {getattr(pycolmap, '__version__', '?')} {mapper} mapper, sequential matching"


def _median_depth(reconstruction, image, w2c: np.ndarray) -> float:
    """The median depth of the 3D points ``image`` observes (1.0 if it observes none)."""
    pts = [reconstruction.points3D[p.point3D_id].xyz for p in image.points2D if p.has_point3D()]
    if not pts:
        return 1.0
    xyz = np.asarray(pts, dtype=np.float64)
    z = xyz @ w2c[2, :3] + w2c[2, 3]
    z = z[z > 0]
    return float(np.median(z)) if len(z) else 1.0


def _normalise(w2c: dict[int, np.ndarray], first: int, depth: float) -> dict[int, np.ndarray]:
    """c2w in the world of camera ``first`` (:data:`FIRST_CAMERA_IN_WORLD`), one unit = ``depth``."""
    ref = w2c[first]
    out = {}
    for p, m in w2c.items():
        c2w = ref @ np.linalg.inv(m)  # camera -> the first camera's frame
        c2w[:3, 3] /= max(depth, 1e-12)
        c2w[3] = [0, 0, 0, 1]
        out[p] = FIRST_CAMERA_IN_WORLD.numpy() @ c2w
    return out


# --- OpenCV: SIFT + essential matrix, chained ----------------------------------------------------------------------

def _opencv_track(small, f_px, source, lens, clock, report, num_threads) -> _Track:
    import cv2

    require(lens == "pinhole", "lens", "'pinhole' with the OpenCV fallback (it estimates no distortion)",
            repr(lens), f"Install pycolmap for fisheye lenses: {CAMERAS_EXTRA}")
    if num_threads is not None:
        cv2.setNumThreads(int(num_threads))
    h, w = small[0].shape[:2]
    K = np.array([[f_px, 0, w / 2], [0, f_px, h / 2], [0, 0, 1]], dtype=np.float64)
    report("frames")
    sift = cv2.SIFT_create(nfeatures=4096)
    feats = []
    for image in small:
        kp, desc = sift.detectAndCompute(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), None)
        feats.append((np.float64([k.pt for k in kp]).reshape(-1, 2), desc))
    report("features")
    clock.check("feature extraction")
    counts = [len(p) for p, _ in feats]
    median = float(np.median(counts))
    if median < MIN_FEATURES:
        raise Syn2SeqInputError(
            "video", f"textured frames (a median of at least {MIN_FEATURES} SIFT features per sampled frame)",
            f"a median of {median:g} (min {min(counts)}, max {max(counts)})",
            "Flat colours, blur or darkness give structure from motion nothing to match")
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    steps = []  # per consecutive pair: (R, t unit, {kp in a: depth in a}, {kp in b: depth in b}) or None
    for a in range(len(small) - 1):
        steps.append(_two_view(cv2, matcher, feats[a], feats[a + 1], K))
        clock.check("two-view geometry")
    report("matches")
    # The longest run of consecutive pairs that chain.
    best, run = (0, 0), None
    for i, s in enumerate(steps + [None]):
        if s is not None and run is None:
            run = i
        elif s is None and run is not None:
            if i - run > best[1] - best[0]:
                best = (run, i)
            run = None
    c2w: dict[int, np.ndarray] = {}
    notes = []
    if best[1] > best[0]:
        w2c = {best[0]: np.eye(4)}
        scale, prev_depths, fallback = 1.0, None, 0
        for i in range(best[0], best[1]):
            R, t, depth_a, depth_b = steps[i]
            if prev_depths is not None:
                common = [k for k in depth_a if k in prev_depths]
                if len(common) >= 8:
                    scale = float(np.median([prev_depths[k] / depth_a[k] for k in common]))
                else:
                    fallback += 1  # keep the previous step's scale
            step = np.eye(4)
            step[:3, :3], step[:3, 3] = R, scale * t
            w2c[i + 1] = step @ w2c[i]
            prev_depths = {k: scale * d for k, d in depth_b.items()}
        first_depth = float(np.median(list(steps[best[0]][2].values())))
        c2w = _normalise(w2c, best[0], first_depth)
        if fallback:
            notes.append(f"{fallback} step(s) shared too few points with the previous one to carry the scale over: "
                         "their scale is the previous step's")
    report("mapping")
    notes.append("OpenCV fallback: essential matrices of consecutive frames chained, no bundle adjustment; "
                 "expect drift on long clips")
    if source == "guessed":
        notes.append(_guess_note(w, h, f_px))
    report("cameras")
    K_norm = np.array([f_px / w, f_px / h, 0.5, 0.5], dtype=np.float64)
    return _Track(c2w, K_norm, None, source, "opencv essential matrix (SIFT, consecutive frames, chained)", notes)


def _two_view(cv2, matcher, fa, fb, K):
    """Relative pose of frame b from frame a (``x_b = R x_a + t``, |t| = 1) and the depths of the inlier points in
    both cameras, keyed by keypoint index; None when the pair does not give a reliable pose."""
    (pa, da), (pb, db) = fa, fb
    if da is None or db is None or len(pa) < 8 or len(pb) < 8:
        return None
    pairs = [m[0] for m in matcher.knnMatch(da, db, k=2) if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(pairs) < OPENCV_MIN_INLIERS:
        return None
    ia = np.array([m.queryIdx for m in pairs])
    ib = np.array([m.trainIdx for m in pairs])
    xa, xb = pa[ia], pb[ib]
    E, mask = cv2.findEssentialMat(xa, xb, K, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    if E is None or E.shape != (3, 3):
        return None
    inliers, R, t, mask, X = cv2.recoverPose(E, xa, xb, K, distanceThresh=1e4, mask=mask)
    keep = mask.ravel() > 0
    if int(keep.sum()) < OPENCV_MIN_INLIERS:
        return None
    X = X[:3, keep] / X[3:, keep]  # points in camera a
    za = X[2]
    zb = (R @ X + t)[2]
    ok = (za > 0) & (zb > 0) & np.isfinite(za) & np.isfinite(zb)
    if int(ok.sum()) < OPENCV_MIN_INLIERS:
        return None
    t = t.ravel() / max(np.linalg.norm(t), 1e-12)
    depth_a = dict(zip(ia[keep][ok].tolist(), za[ok].tolist()))
    depth_b = dict(zip(ib[keep][ok].tolist(), zb[ok].tolist()))
    return R, t, depth_a, depth_b


# --- frames ------------------------------------------------------------------------------------------------------

def _frames_tensor(frames) -> Tensor:
    t = torch.as_tensor(frames) if not isinstance(frames, Tensor) else frames
    require(t.ndim == 4 and t.shape[1] == 3, "frames", "a tensor [T, 3, H, W] (RGB)", tuple(t.shape))
    require(t.shape[0] >= 1 and t.shape[2] >= 8 and t.shape[3] >= 8, "frames", "at least one frame of 8x8 pixels",
            tuple(t.shape))
    if t.dtype == torch.uint8:
        return t
    require(t.is_floating_point(), "frames", "float in [0, 1] or uint8", t.dtype)
    return t.float()


def _long_side_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    require(isinstance(long_side, int) and long_side >= 16, "sfm_size", "an integer >= 16 (pixels)", long_side)
    scale = min(1.0, long_side / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


def _resize_long_side(t: Tensor, long_side: int) -> Tensor:
    """t: [B, 3, H, W] -> float [B, 3, h, w] in [0, 1] with max(h, w) <= long_side (area filter)."""
    h, w = t.shape[-2:]
    x = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    size = _long_side_size(w, h, long_side)
    if size == (w, h):
        return x
    return torch.nn.functional.interpolate(x, size=(size[1], size[0]), mode="area")


def _to_uint8_hwc(t: Tensor) -> np.ndarray:
    """[B, 3, H, W] float in [0, 1] (or uint8) -> [B, H, W, 3] uint8."""
    if t.dtype != torch.uint8:
        t = (t.clamp(0, 1) * 255).round().to(torch.uint8)
    return t.permute(0, 2, 3, 1).contiguous().cpu().numpy()


__all__: Sequence[str] = [
    "DEFAULT_MAPPER", "EstimatedCameras", "LENSES", "MAPPERS", "align_to_track", "estimate_cameras",
    "focal_prior", "pycolmap_version", "sample_indices",
]
