"""Video and image files: probe, streaming reads with resize / centre-crop, atomic H.264 writes.

Frames at this boundary are ``[T, 3, H, W]`` float32 RGB in ``[0, 1]`` (see :mod:`syn2seq_core.base.conventions`).
Decoding and encoding use PyAV (FFmpeg), as ComfyUI itself does; images use Pillow.

Reading
    :func:`iter_video_chunks` decodes frame by frame and yields ``[t, 3, H, W]`` chunks of at most
    ``chunk_frames`` frames, so memory is bounded by one chunk whatever the length of the video.
    :func:`read_video` returns the selected frames as one tensor, filled chunk by chunk into a single
    preallocated buffer. Frames are selected like ``range(start, stop, stride)`` over the decoded
    frames. A start far into a constant-frame-rate video seeks to the keyframe before it instead of
    decoding everything in front.

Resizing (``size`` with ``crop``), applied to frames and cameras alike
    * ``size=None``: the native size.
    * ``size=(w, h)``, ``crop="center"``: scale so the image covers ``w x h`` (aspect kept), then take
      the central ``w x h`` crop. ``crop=None``: plain resize to ``w x h`` (aspect may change).
    * ``size=s`` (int), ``crop="center"``: the central ``s x s`` square after scaling the short side to
      ``s``. ``crop=None``: scale the short side to ``s``, keep the aspect ratio.
    Cameras given to :func:`read_video` go through the same resize and crop (normalised intrinsics are
    unchanged by a resize and shifted by a crop, see :class:`~syn2seq_core.geometry.cameras.Cameras`),
    so pixel ``(u, v)`` of the returned frames and the returned cameras always agree.

Writing
    :func:`write_video` encodes H.264 (libx264, yuv420p, CRF) into ``.mp4``/``.mov``/``.mkv``. The file
    is written to a hidden temporary file in the destination folder and moved into place with
    :func:`os.replace` only when complete. On any exception, ``KeyboardInterrupt`` included, the
    temporary file is removed and a file that already existed at the destination is left untouched.
    yuv420p needs even sizes: odd sizes are refused unless ``pad_to_even=True`` (repeat the last
    row / column).

    Writes are reproducible: the same frames give the same file, in any process. Two things in the
    default path were not (measured on PyAV 18.1 / x264 of its wheel, 8 frames of 32x32, the same
    YUV input 40 times in one process with x264 on one thread: 4 different files; at 64x64 9 different
    files; decoded frames up to 31 levels apart): x264's macroblock tree (``mbtree``, part of its
    lookahead rate control) reads memory it never wrote at small frame sizes, so libx264 runs with
    ``x264-params mbtree=0`` (the same 40 encodes: one file); and the RGB -> YUV conversion runs here on one
    thread (:data:`_CONVERT_THREADS`) instead of inside ``encode`` with the codec's thread count.
    ``tests/core/test_video_io.py`` encodes the same frames many times and in fresh processes.

Known limits: the rotation flag some phones store in the container (display matrix) is not applied;
colour conversion uses FFmpeg's default (BT.601) matrix both ways, so our own round trips are exact
up to compression.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require

if TYPE_CHECKING:
    from ..geometry.cameras import Cameras

# x264 settings that make encodes reproducible (see the module docstring, "Writes are reproducible").
_REPRODUCIBLE_X264 = {"mbtree": "0"}
# Threads for the RGB -> YUV conversion before encoding: one, so the result never depends on slicing.
_CONVERT_THREADS = 1

# Container formats we write, by file suffix.
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
CROP_MODES = ("center", None)
DEFAULT_CHUNK_FRAMES = 16
DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
# Values this far outside [0, 1] mean the caller passed another range ([-1, 1] or [0, 255]), not
# overshoot of a decoder: refuse instead of clamping.
_RANGE_SLACK = 0.5
# Camera tracks whose aspect ratio differs from the video by less than this are rescaled to it.
_ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns without decoding.

    frames: number of frames (container count, or packets counted when the container has none).
    fps: average frame rate. width, height: pixels. codec: FFmpeg decoder name, e.g. ``"h264"``.
    """

    path: str
    frames: int
    fps: float
    width: int
    height: int
    codec: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def duration(self) -> float:
        """Seconds, ``frames / fps``."""
        return self.frames / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class ResizePlan:
    """Resize to (resize_w, resize_h) pixels, then crop the (width x height) box at (left, top)."""

    resize_w: int
    resize_h: int
    left: int
    top: int
    width: int
    height: int

    def apply_to_cameras(self, cams: "Cameras") -> "Cameras":
        """The cameras of the resized and cropped frames."""
        cams = cams.resize(self.resize_w, self.resize_h)
        if (self.left, self.top, self.width, self.height) != (0, 0, self.resize_w, self.resize_h):
            cams = cams.crop(self.left, self.top, self.width, self.height)
        return cams


# --- input checks ---------------------------------------------------------------------------------
def _check_file(path, what: str = "video") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise Syn2SeqInputError(what, "a file path", type(path).__name__)
    p = Path(path)
    if not p.exists():
        raise Syn2SeqInputError(what, "an existing file", f"no file at '{p}'")
    if p.is_dir():
        raise Syn2SeqInputError(what, "a file", f"the folder '{p}'")
    return p


def _open_input(path):
    """Open ``path`` for reading; returns (container, video stream). Clear errors for bad files."""
    import av

    p = _check_file(path)
    try:
        container = av.open(str(p), mode="r")
    except av.FFmpegError as e:
        raise Syn2SeqInputError("video", "a decodable video file (e.g. H.264 .mp4)",
                                f"'{p}', which FFmpeg cannot open ({e.__class__.__name__}: {e})") from None
    if not container.streams.video:
        container.close()
        raise Syn2SeqInputError("video", "a file with a video stream", f"'{p}' with none")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        container.close()
        raise Syn2SeqInputError("video", "a video stream with a known frame size", f"'{p}' without one")
    stream.thread_type = "AUTO"
    return container, stream


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _check_size(size) -> tuple[int, int] | int | None:
    if size is None:
        return None
    if isinstance(size, bool):
        raise Syn2SeqInputError("size", "None, an int or a (width, height) pair", repr(size))
    if isinstance(size, int):
        require(size > 0, "size", "a positive number of pixels", size)
        return size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                                                  for s in size):
        require(size[0] > 0 and size[1] > 0, "size", "positive (width, height)", tuple(size))
        return int(size[0]), int(size[1])
    raise Syn2SeqInputError("size", "None, an int or a (width, height) pair of ints", repr(size))


def resize_plan(src_w: int, src_h: int, size=None, crop: str | None = "center") -> ResizePlan:
    """How a ``src_w x src_h`` image becomes the requested ``size`` (see the module docstring)."""
    size = _check_size(size)
    if crop not in CROP_MODES:
        raise Syn2SeqInputError("crop", "'center' or None", repr(crop))
    if size is None:
        return ResizePlan(src_w, src_h, 0, 0, src_w, src_h)
    if crop is None:
        if isinstance(size, int):
            if src_w <= src_h:
                rw, rh = size, max(1, round(src_h * size / src_w))
            else:
                rw, rh = max(1, round(src_w * size / src_h)), size
        else:
            rw, rh = size
        return ResizePlan(rw, rh, 0, 0, rw, rh)
    out_w, out_h = (size, size) if isinstance(size, int) else size
    # Same arithmetic as Cameras.resize_and_center_crop, so frames and cameras agree to the pixel.
    scale = max(out_w / src_w, out_h / src_h)
    rw, rh = max(out_w, round(src_w * scale)), max(out_h, round(src_h * scale))
    return ResizePlan(rw, rh, (rw - out_w) // 2, (rh - out_h) // 2, out_w, out_h)


def select_frames(n: int, start: int, stop: int | None, stride: int, what: str = "the video") -> range:
    """``range(start, stop, stride)`` clipped to ``n`` frames; refuses bad arguments and empty ranges."""
    for name, v in (("start", start), ("stride", stride)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise Syn2SeqInputError(name, "an int", repr(v))
    require(start >= 0, "start", "a frame index >= 0", start)
    require(stride >= 1, "stride", "an int >= 1", stride)
    if stop is not None:
        if not isinstance(stop, int) or isinstance(stop, bool):
            raise Syn2SeqInputError("stop", "None or an int", repr(stop))
        require(stop >= 0, "stop", "None or a frame index >= 0", stop)
    frames = range(start, n if stop is None else min(stop, n), stride)
    if len(frames) == 0:
        raise Syn2SeqInputError("frame range", f"a non-empty range within the {n} frames of {what}",
                                f"start={start}, stop={stop}, stride={stride}")
    return frames


def _cameras_for(cams: "Cameras", info: VideoInfo, frames: range, plan: ResizePlan) -> "Cameras":
    """Select, broadcast and resize/crop ``cams`` (one per video frame, or one static) for ``frames``."""
    from ..geometry.cameras import Cameras

    if not isinstance(cams, Cameras):
        raise Syn2SeqInputError("cameras", "a Cameras track", type(cams).__name__)
    if cams.size != info.size:
        aspect_c, aspect_v = cams.width / cams.height, info.width / info.height
        if abs(aspect_c / aspect_v - 1) > _ASPECT_TOLERANCE:
            raise Syn2SeqInputError(
                "cameras", f"intrinsics for the video size {info.width}x{info.height} (or the same aspect ratio)",
                f"{cams.width}x{cams.height}", f"The cameras do not belong to '{info.path}'")
        cams = cams.resize(info.width, info.height)
    if len(cams) == 1:
        cams = broadcast_cameras(cams, len(frames))
    elif len(cams) == info.frames:
        cams = cams[frames.start:frames.stop:frames.step]
    else:
        raise Syn2SeqInputError("cameras", f"one camera per video frame ({info.frames}) or a single static camera",
                                f"{len(cams)} cameras for '{info.path}'")
    return plan.apply_to_cameras(cams)


def broadcast_cameras(cams: "Cameras", n: int) -> "Cameras":
    """Repeat a single static camera ``n`` times. cams: 1 camera -> n cameras."""
    require(len(cams) == 1, "cameras", "a single camera to repeat", f"{len(cams)} cameras")
    return cams[torch.zeros(n, dtype=torch.long)]


# --- probing --------------------------------------------------------------------------------------
def probe_video(path) -> VideoInfo:
    """Frame count, fps, size and codec of the first video stream of ``path``, without decoding."""
    import av

    container, stream = _open_input(path)
    try:
        n = int(stream.frames or 0)
        if n <= 0:  # e.g. Matroska stores no frame count: count the packets (no decoding)
            try:
                n = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as e:
                raise Syn2SeqInputError("video", "a readable video file", f"'{path}' ({e})") from None
        return VideoInfo(str(path), n, _stream_fps(stream), stream.codec_context.width,
                         stream.codec_context.height, stream.codec_context.name)
    finally:
        container.close()


# --- decoding -------------------------------------------------------------------------------------
def _decode_selected(path, info: VideoInfo, frames: range, plan: ResizePlan, seek: bool) -> Iterator[np.ndarray]:
    """Yield uint8 ``[H, W, 3]`` RGB arrays of the frames in ``frames``, in order, one at a time."""
    import av

    interpolation = "AREA" if plan.resize_w * plan.resize_h < info.width * info.height else "BICUBIC"
    native = (plan.resize_w, plan.resize_h) == info.size
    crop = (slice(plan.top, plan.top + plan.height), slice(plan.left, plan.left + plan.width))
    first, last, step = frames.start, frames[-1], frames.step
    container, stream = _open_input(path)
    index = -1
    try:
        try:
            decoded, index_of = _start_decoding(container, stream, first if seek else 0)
            for frame in decoded:
                # After a seek, frame indices come from timestamps (robust to frames the decoder drops
                # around the keyframe); otherwise they are counted from the first frame.
                i = index_of(frame) if index_of is not None and frame.pts is not None else index + 1
                index = max(i, index + 1)
                if index > last:
                    break
                if index < first or (index - first) % step:
                    continue
                if native:
                    array = frame.to_ndarray(format="rgb24")
                else:
                    array = frame.to_ndarray(format="rgb24", width=plan.resize_w, height=plan.resize_h,
                                             interpolation=interpolation)
                yield array[crop]
        except av.FFmpegError as e:
            raise Syn2SeqInputError("video", "a decodable video file",
                                    f"'{path}', which fails to decode at frame {index + 1} ({e})") from None
    finally:
        container.close()


def _start_decoding(container, stream, start: int):
    """A frame iterator positioned at or before frame ``start``, and how to number its frames.

    For ``start > 0`` in a constant-frame-rate stream, seek to the keyframe before ``start`` and number
    frames by timestamp (returns ``(frames, index_of)``). Otherwise, or when the timestamps cannot be
    trusted (variable rate, missing, or the seek landed after ``start``), decode from the beginning and
    count frames (returns ``(frames, None)``).
    """
    import itertools

    import av

    fps = _stream_fps(stream)
    cfr = bool(stream.average_rate and stream.base_rate and stream.average_rate == stream.base_rate)
    if start > 0 and cfr and stream.start_time is not None and stream.time_base and fps > 0:
        tb = float(stream.time_base)
        t0 = stream.start_time * tb

        def index_of(frame) -> int:
            return int(round((frame.pts * tb - t0) * fps))

        try:
            container.seek(int(round(stream.start_time + (start / fps) / tb)), stream=stream, backward=True)
            decoded = container.decode(stream)
            head = next(decoded, None)
            if head is not None and head.pts is not None:
                i = (head.pts * tb - t0) * fps
                if abs(i - round(i)) <= 0.25 and round(i) <= start:
                    return itertools.chain([head], decoded), index_of
        except av.FFmpegError:
            pass
    if start > 0:
        container.seek(stream.start_time or 0, stream=stream, backward=True)
    return container.decode(stream), None


def _to_float(arrays: list[np.ndarray]) -> Tensor:
    """list of uint8 [H, W, 3] -> float32 [t, 3, H, W] in [0, 1]."""
    batch = torch.from_numpy(np.stack(arrays))
    return rearrange(batch, "t h w c -> t c h w").to(torch.float32).div_(255.0)


def iter_video_chunks(path, chunk_frames: int = DEFAULT_CHUNK_FRAMES, *, start: int = 0, stop: int | None = None,
                      stride: int = 1, size=None, crop: str | None = "center", seek: bool = True
                      ) -> Iterator[Tensor]:
    """Stream the selected frames of ``path`` as ``[t, 3, H, W]`` float chunks, ``t <= chunk_frames``.

    At most one chunk of decoded frames is alive at a time (plus the decoder's own buffers), so memory
    does not grow with the length of the video. Selection and resizing as in :func:`read_video`.
    """
    require(isinstance(chunk_frames, int) and chunk_frames >= 1, "chunk_frames", "an int >= 1", chunk_frames)
    info = probe_video(path)
    frames = select_frames(info.frames, start, stop, stride, f"'{path}'")
    plan = resize_plan(info.width, info.height, size, crop)
    return _chunks(path, info, frames, plan, chunk_frames, seek)


def _chunks(path, info, frames, plan, chunk_frames, seek) -> Iterator[Tensor]:
    pending: list[np.ndarray] = []
    for array in _decode_selected(path, info, frames, plan, seek):
        pending.append(array)
        if len(pending) == chunk_frames:
            yield _to_float(pending)
            pending = []
    if pending:
        yield _to_float(pending)


def read_video(path, start: int = 0, stop: int | None = None, stride: int = 1, size=None,
               crop: str | None = "center", cameras: "Cameras | None" = None, chunk: int | None = None,
               seek: bool = True):
    """Decode frames ``range(start, stop, stride)`` of ``path``.

    Returns frames ``[T, 3, H, W]`` float32 RGB in [0, 1]; when ``cameras`` is given (one camera per
    video frame, or one static camera), returns ``(frames, cameras)`` with the cameras selected for the
    same frames and resized / cropped like the frames. ``chunk``: frames decoded per step (bounds the
    transient memory; the result itself is allocated once).
    """
    chunk = DEFAULT_CHUNK_FRAMES if chunk is None else chunk
    require(isinstance(chunk, int) and chunk >= 1, "chunk", "None or an int >= 1", chunk)
    info = probe_video(path)
    frames = select_frames(info.frames, start, stop, stride, f"'{path}'")
    plan = resize_plan(info.width, info.height, size, crop)
    cams = None if cameras is None else _cameras_for(cameras, info, frames, plan)
    from ..base import limits

    limits.require_memory(limits.frames_bytes(len(frames), plan.height, plan.width), f"decoding '{path}'",
                          "Read fewer frames (start/stop/stride) or at a smaller size, or stream the video "
                          "(iter_video_chunks)")
    out = torch.empty(len(frames), 3, plan.height, plan.width, dtype=torch.float32)
    filled = 0
    for part in _chunks(path, info, frames, plan, chunk, seek):
        out[filled:filled + len(part)] = part
        filled += len(part)
    if filled == 0:
        raise Syn2SeqInputError("video", "at least one decodable frame in the range",
                                f"none in '{path}' (start={start}, stop={stop}, stride={stride})")
    if filled < len(frames):  # the container over-counted its frames: keep what was decoded
        out = out[:filled].clone()
        cams = None if cams is None else cams[:filled]
    return out if cams is None else (out, cams)


# --- encoding -------------------------------------------------------------------------------------
def _as_uint8_frames(chunk, index: int) -> np.ndarray:
    """A chunk [t, 3, H, W] (float in [0, 1] or uint8) or one frame [3, H, W] -> uint8 [t, H, W, 3]."""
    if isinstance(chunk, np.ndarray):
        chunk = torch.from_numpy(chunk)
    if not isinstance(chunk, Tensor):
        raise Syn2SeqInputError(f"frames chunk {index}", "a tensor [T, 3, H, W]", type(chunk).__name__)
    if chunk.ndim == 3:
        chunk = chunk[None]
    require(chunk.ndim == 4 and chunk.shape[1] == 3, f"frames chunk {index}", "shape [T, 3, H, W]",
            tuple(chunk.shape))
    chunk = chunk.detach().cpu()
    if chunk.dtype == torch.uint8:
        data = chunk
    else:
        require(chunk.is_floating_point(), f"frames chunk {index}", "float or uint8 values", chunk.dtype)
        chunk = chunk.float()
        bad = ~torch.isfinite(chunk)
        if bool(bad.any()):
            raise Syn2SeqInputError(f"frames chunk {index}", "finite values", f"{int(bad.sum())} NaN/inf")
        if chunk.numel():
            lo, hi = float(chunk.min()), float(chunk.max())
            if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
                raise Syn2SeqInputError(f"frames chunk {index}", "values in [0, 1]", f"range [{lo:.3g}, {hi:.3g}]",
                                        "Rescale [-1, 1] frames with (x + 1) / 2 and [0, 255] frames with x / 255")
        data = chunk.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return np.ascontiguousarray(rearrange(data, "t c h w -> t h w c").numpy())


def _iter_chunks(frames) -> Iterator:
    if isinstance(frames, (Tensor, np.ndarray)):
        yield frames
    elif isinstance(frames, Iterable):
        yield from frames
    else:
        raise Syn2SeqInputError("frames", "a tensor [T, 3, H, W] or an iterable of such chunks",
                                type(frames).__name__)


def _x264_params(user: str) -> str:
    """``x264-params`` with :data:`_REPRODUCIBLE_X264` first; a setting the caller gives wins."""
    given = {item.split("=", 1)[0] for item in user.split(":") if item}
    ours = [f"{k}={v}" for k, v in _REPRODUCIBLE_X264.items() if k not in given]
    return ":".join(ours + ([user] if user else []))


def _fps_fraction(fps) -> Fraction:
    if isinstance(fps, Fraction):
        value = fps
    else:
        try:
            value = Fraction(float(fps)).limit_denominator(100_000)
        except (TypeError, ValueError, OverflowError):
            raise Syn2SeqInputError("fps", "a positive number", repr(fps)) from None
    require(0 < value <= 1000, "fps", "a frame rate in (0, 1000]", fps)
    # NTSC rates: 29.97 -> 30000/1001, etc.
    for base in (24, 30, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(float(value) - float(ntsc)) < 5e-3:
            return ntsc
    return value


def atomic_output(path, suffix: str | None = None):
    """A hidden temporary path next to ``path`` (same folder, so os.replace is atomic)."""
    from .atomic import temp_file_near

    return temp_file_near(path, suffix)


class VideoWriter:
    """An H.264 file written chunk by chunk: ``write(chunk)`` encodes ``[t, 3, H, W]`` frames as they come,
    ``close()`` finishes the file and moves it into place, ``abort()`` (or an exception in a ``with`` block)
    removes the partial file and leaves an existing destination untouched. Memory holds one chunk.

    Arguments as :func:`write_video`. ``info`` is the :class:`VideoInfo` of the written file after ``close``.
    """

    def __init__(self, path, fps: float = 30.0, *, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 codec: str = "libx264", pad_to_even: bool = False, options: dict | None = None):
        import av

        if not isinstance(path, (str, os.PathLike)):
            raise Syn2SeqInputError("video path", "a file path", type(path).__name__)
        self.path = Path(path)
        fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise Syn2SeqInputError("video path", f"a file name ending in one of {sorted(OUTPUT_FORMATS)}",
                                    f"'{self.path}'")
        require(isinstance(crf, int) and 0 <= crf <= 51, "crf", "an int in [0, 51]", crf)
        if codec not in av.codecs_available:
            raise Syn2SeqInputError("codec", "an encoder built into PyAV's FFmpeg (e.g. libx264)", repr(codec))
        self.rate = _fps_fraction(fps)
        self._settings = dict(codec=codec, crf=crf, preset=preset, pad_to_even=pad_to_even, options=options or {})
        self._tmp = atomic_output(self.path)
        self._stream, self._size, self._chunks, self.frames = None, None, 0, 0
        self.info: VideoInfo | None = None
        try:
            self._container = av.open(str(self._tmp), mode="w", format=fmt,
                                      options={"movflags": "+faststart"} if fmt in ("mp4", "mov") else {})
        except BaseException:
            self.abort()
            raise

    def write(self, chunk) -> None:
        """Encode ``chunk``: [t, 3, H, W] float in [0, 1] or uint8, or one frame [3, H, W]."""
        import av

        data = _as_uint8_frames(chunk, self._chunks)
        self._chunks += 1
        if data.shape[0] == 0:
            return
        h, w = data.shape[1:3]
        if self._stream is None:
            self._size = (w, h)
            if (w % 2 or h % 2) and not self._settings["pad_to_even"]:
                raise Syn2SeqInputError("frame size", "an even width and height (H.264 yuv420p)",
                                        f"{w}x{h}", "Crop or resize to even sizes, or pass "
                                        "pad_to_even=True to repeat the last row/column")
            stream = self._container.add_stream(self._settings["codec"], rate=self.rate)
            stream.width, stream.height = w + w % 2, h + h % 2
            stream.pix_fmt = "yuv420p"
            options = {k: str(v) for k, v in self._settings["options"].items()}
            if self._settings["codec"] == "libx264":
                options["x264-params"] = _x264_params(options.get("x264-params", ""))
            stream.options = {"crf": str(self._settings["crf"]), "preset": str(self._settings["preset"]), **options}
            self._stream = stream
        elif (w, h) != self._size:
            raise Syn2SeqInputError(f"frames chunk {self._chunks - 1}",
                                    f"frames of size {self._size[0]}x{self._size[1]} like the first", f"{w}x{h}")
        if w % 2 or h % 2:
            data = np.pad(data, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for array in data:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format=self._stream.pix_fmt,
                                                                                threads=_CONVERT_THREADS)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    def close(self) -> VideoInfo:
        """Flush the encoder and move the file into place; returns its :class:`VideoInfo`."""
        try:
            if self._stream is None:
                raise Syn2SeqInputError("frames", "at least one frame to write", "none")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.info = VideoInfo(str(self.path), self.frames, float(self.rate), self._stream.width,
                              self._stream.height, self._stream.codec_context.name)
        return self.info

    def abort(self) -> None:
        """Drop the partial file (the destination stays as it was)."""
        if getattr(self, "_container", None) is not None:
            with suppress(Exception):
                self._container.close()
            self._container = None
        with suppress(OSError):
            os.unlink(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path, frames, fps: float = 30.0, *, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                codec: str = "libx264", pad_to_even: bool = False, options: dict | None = None) -> VideoInfo:
    """Encode frames to an H.264 video at ``path`` (atomic; see the module docstring).

    frames: ``[T, 3, H, W]`` float in [0, 1] (or uint8 0..255), or an iterable of such chunks, which
    are encoded as they arrive (a generator keeps memory bounded). crf: x264 quality (0 lossless,
    18 visually lossless, 23 default). options: extra encoder options, e.g. ``{"g": "12"}``.
    Returns the :class:`VideoInfo` of the written file. :class:`VideoWriter` writes chunks pushed one by one.
    """
    with VideoWriter(path, fps, crf=crf, preset=preset, codec=codec, pad_to_even=pad_to_even,
                     options=options) as writer:
        for chunk in _iter_chunks(frames):
            writer.write(chunk)
    return writer.info


# --- images ---------------------------------------------------------------------------------------
def read_image(path) -> Tensor:
    """A PNG/JPEG image as ``[3, H, W]`` float32 RGB in [0, 1] (grey and alpha are converted to RGB)."""
    from PIL import Image, UnidentifiedImageError

    p = _check_file(path, "image")
    try:
        with Image.open(p) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(im, dtype=np.float32) / (65535.0 if im.mode.startswith("I;16") else
                                                            max(1.0, float(np.asarray(im).max())))
                array = np.repeat(array[..., None], 3, axis=-1)
            else:
                array = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise Syn2SeqInputError("image", "a readable PNG or JPEG file", f"'{p}' ({e})") from None
    return rearrange(torch.from_numpy(np.ascontiguousarray(array)), "h w c -> c h w")


def write_image(path, frame: Tensor, *, quality: int = 95) -> None:
    """Write ``frame`` ``[3, H, W]`` (or ``[1, 3, H, W]``) in [0, 1] as PNG or JPEG, atomically."""
    from PIL import Image

    dest = Path(path)
    fmt = IMAGE_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise Syn2SeqInputError("image path", f"a file name ending in one of {sorted(IMAGE_FORMATS)}", f"'{dest}'")
    if isinstance(frame, Tensor) and frame.ndim == 4 and frame.shape[0] == 1:
        frame = frame[0]
    if not isinstance(frame, Tensor) or frame.ndim != 3:
        raise Syn2SeqInputError("frame", "a tensor [3, H, W]", getattr(frame, "shape", type(frame).__name__))
    data = _as_uint8_frames(frame, 0)[0]
    tmp = atomic_output(dest)
    try:
        Image.fromarray(data, mode="RGB").save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
        os.replace(tmp, dest)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def frames_per_second(frames: int, seconds: float) -> float:
    """Throughput helper for benchmarks (inf when no time elapsed)."""
    return frames / seconds if seconds > 0 else math.inf
