"""The ranges of every number a user gives, in one table, and memory checks before big allocations.

A count such as ``--steps 1000000000`` or ``--transition-frames 100000000`` would otherwise allocate
gigabytes and die deep inside torch. Every such number has one entry in :data:`LIMITS`; the same entry is
used by the command line (:func:`option` / :func:`arg`: argparse prints ``argument --steps: expected an
integer in [1, 1000], got 1000000000`` and exits 2), by library callers (:func:`check` raises
:class:`~syn2seq_core.base.errors.Syn2SeqInputError`), by the ComfyUI widgets' min/max (``nodes/*.py``) and by
``docs/limits.md`` (generated from :func:`markdown_table`; a test keeps it equal)::

    python -m syn2seq_core.base.limits > docs/limits.md

Where memory follows from sizes the user gives, estimate it first (:func:`frames_bytes`,
:func:`synthetic_render_bytes`) and call :func:`require_memory`, which refuses an estimate above the
memory available now, naming both.

This module imports nothing heavy: torch is imported only to check a device.
"""

from __future__ import annotations

import argparse
import operator
import sys
from dataclasses import dataclass

from .errors import Syn2SeqInputError

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed accepts [-2**63, 2**64 - 1]; seeds here are >= 0


@dataclass(frozen=True)
class Range:
    """The closed range [lo, hi] of one user-given number (``(lo, hi]`` with ``lo_open``).

    kind: ``int`` or ``float``. used_by: the options and node inputs that take it (documentation).
    why: where the bounds come from.
    """

    name: str
    kind: type
    lo: int | float
    hi: int | float
    used_by: tuple[str, ...]
    why: str
    lo_open: bool = False

    @property
    def interval(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo}, {self.hi}]"

    @property
    def expected(self) -> str:
        """``an integer in [1, 1000]`` / ``a number in (0, 1000]``: the "expected X" of an error."""
        return f"{'an integer' if self.kind is int else 'a number'} in {self.interval}"

    @property
    def short(self) -> str:
        """``1..1000`` for help texts (``>0..1000`` when the lower bound is excluded)."""
        return f"{'>' if self.lo_open else ''}{self.lo}..{self.hi}"

    def contains(self, value) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        return bool(above and value <= self.hi)  # NaN fails both comparisons


def _r(name, kind, lo, hi, used_by, why, lo_open=False) -> tuple[str, Range]:
    return name, Range(name, kind, lo, hi, tuple(used_by), why, lo_open)


_GEN = "exo2ego / ego2exo / demo / eval"
_SAMPLE = f"{_GEN} / image2video"  # the sampling options (commands.generate.add_sampling_arguments)

# One entry per kind of user-given number. `used_by` lists CLI options (``command --option``) and node
# widgets (``Node.input``); tests check that every numeric option and widget takes its range from here.
LIMITS: dict[str, Range] = dict([
    # sampling (exo2ego, ego2exo, demo, eval; the model nodes)
    _r("steps", int, 1, 1000, [f"{_SAMPLE} --steps", "Syn2SeqSampler.steps", "Syn2SeqImageToVideo.steps",
                               "interpolate --wan-steps"],
       "DFoT's reference trains with 1000 noise levels; more steps only repeat levels"),
    _r("transition_frames", int, 0, 256,
       [f"{_GEN} --transition-frames", "Syn2SeqBuildSequence.n_transition", "Syn2SeqTransitionPoses.n",
        "Syn2SeqInterpolate.n", "Syn2SeqWanFramesToTransition.n", "prepare --transition-frames"],
       "a bridge between two views: the models are trained with a few; hundreds only cost memory"),
    _r("mean_draws", int, 1, 64, [f"{_GEN} --mean-draws", "Syn2SeqConditionalMean.draws"],
       "each draw is one network pass over the window; the average settles within a few dozen"),
    _r("seed", int, 0, SEED_MAX, [f"{_SAMPLE} --seed", "render-synthetic --seed", "Syn2SeqSampler.seed",
                                  "Syn2SeqConditionalMean.seed", "Syn2SeqImageToVideo.seed", "interpolate --wan-seed"],
       "what torch.Generator.manual_seed accepts (uint64); a command that uses seed .. seed + k - 1 "
       "checks the last one too"),
    _r("guidance_scale", float, 0.0, 20.0,
       [f"{_SAMPLE} --guidance-scale", "Syn2SeqSampler.guidance_scale", "Syn2SeqImageToVideo.guidance_scale",
        "interpolate --wan-guidance"],
       "history guidance weight w; 1 = no guidance; large weights extrapolate far outside the data"),
    _r("stabilization", float, 0.0, 0.99,
       [f"{_SAMPLE} --stabilization", "Syn2SeqSampler.stabilization", "Syn2SeqImageToVideo.stabilization"],
       "noise time of generated history (DFoT uses 0.02); at 1 the history would be pure noise, i.e. dropped"),
    _r("keyframe_density", float, 0.0, 1.0,
       ["image2video --keyframe-density", "Syn2SeqImageToVideo.keyframe_density"],
       "a share of the frames (DFoT uses 0.0625); 1 makes every frame a keyframe", lo_open=True),
    _r("eta", float, 0.0, 1.0, [f"{_SAMPLE} --eta"],
       "DDIM stochasticity: 0 deterministic, 1 ancestral DDPM; above 1 a step would add more noise than the "
       "noise level it lands on"),
    _r("depth_median_m", float, 0.1, 100.0,
       ["exo2ego / ego2exo --source-depth-median", "Syn2SeqDepthFromImage.median_m"],
       "the median depth a relative depth estimate is scaled to, in metres: a room is a few, a stadium a hundred"),
    # camera paths (Syn2SeqCameraPath, geometry.camera_paths)
    _r("path_frames", int, 1, 10_000, ["image2video --path-frames", "Syn2SeqCameraPath.frames"], "cameras in a built track, one per frame"),
    _r("path_keyframes", int, 1, 10_000, ["keyframe lists (image2video --keyframes files, the Syn2SeqCameraPath keyframes widget)"],
       "keyframes of one keyframed camera path; more than one per frame of the longest track is a mistake"),
    _r("path_image_size", int, 1, 8192, ["Syn2SeqCameraPath.width", "Syn2SeqCameraPath.height"],
       "image side in pixels the intrinsics refer to"),
    _r("fov_deg", float, 2.0, 170.0, ["image2video --fov", "Syn2SeqCameraPath.fov_deg", "cameras estimate --fov"],
       "horizontal field of view; a pinhole camera cannot reach 180"),
    _r("path_coordinate", float, -10_000.0, 10_000.0,
       ["Syn2SeqCameraPath.position_x", "Syn2SeqCameraPath.position_y", "Syn2SeqCameraPath.position_z",
        "Syn2SeqCameraPath.target_x", "Syn2SeqCameraPath.target_y", "Syn2SeqCameraPath.target_z"],
       "world coordinates in metres (10 km: far beyond any scene)"),
    _r("path_angle", float, -3600.0, 3600.0, ["image2video --angle", "Syn2SeqCameraPath.angle_deg"], "degrees; ten turns either way"),
    _r("path_distance", float, -1000.0, 1000.0, ["image2video --distance", "Syn2SeqCameraPath.distance"], "metres along or across the view"),
    _r("path_speed", float, 0.0, 100.0, ["image2video --speed", "Syn2SeqCameraPath.speed"], "metres per second of a walk"),
    # cameras from pixels (syn2seq cameras estimate, Syn2SeqEstimateCameras; geometry.sfm)
    _r("sfm_frames", int, 0, 100_000, ["cameras estimate --frames", "Syn2SeqEstimateCameras.max_frames"],
       "frames structure from motion sees, spread evenly over the video (0 = every sampled frame; 1 is refused: "
       "a track needs two); the others are interpolated"),
    _r("sfm_stride", int, 1, 1000, ["cameras estimate --stride", "Syn2SeqEstimateCameras.stride"],
       "every stride-th frame goes to structure from motion (the last frame always does)"),
    _r("sfm_size", int, 64, 4096, ["cameras estimate --sfm-size", "Syn2SeqEstimateCameras.sfm_size"],
       "long side in pixels of the frame copies features are found in; time grows with its square"),
    _r("sfm_focal_px", float, 0.0, 1_000_000.0, ["cameras estimate --focal"],
       "focal length in pixels of the video's frames", lo_open=True),
    _r("sfm_fov_deg", float, 0.0, 170.0, ["Syn2SeqEstimateCameras.fov_deg"],
       "horizontal field of view in degrees; 0 = unknown (estimated, or guessed for a static camera)"),
    _r("sfm_min_registered", float, 0.0, 1.0, ["cameras estimate --min-registered",
                                               "Syn2SeqEstimateCameras.min_registered"],
       "share of the sampled frames that must register, else the estimate fails (at least 2 frames always)"),
    _r("sfm_time_limit", float, 0.0, 86_400.0, ["cameras estimate --time-limit", "Syn2SeqEstimateCameras.time_limit_s"],
       "seconds; 0 = no limit"),
    _r("sfm_threads", int, 0, 1024, ["cameras estimate --threads"], "threads for COLMAP / OpenCV; 0 = all cores"),
    _r("sfm_seed", int, 0, 2**31 - 1, ["cameras estimate --seed", "Syn2SeqEstimateCameras.seed"],
       "RANSAC and mapper seed (COLMAP takes a C int)"),
    # Wan camera control (Syn2SeqWanCameraEmbedding)
    _r("wan_size", int, 16, 16384, ["Syn2SeqWanCameraEmbedding.width", "Syn2SeqWanCameraEmbedding.height"],
       "Wan video side in pixels, a multiple of 16 (VAE /8, camera adapter patch 2; the node checks it); 16384 = "
       "ComfyUI's MAX_RESOLUTION"),
    _r("wan_length", int, 0, 1025, ["Syn2SeqWanCameraEmbedding.length"],
       "Wan frames, 4k + 1 (the node checks it); 0 = one frame per camera; 1025 = 257 latent frames, far past "
       "Wan's 81"),
    # eval
    _r("eval_takes", int, 1, 100_000, ["eval --limit"],
       "one take gives a report without confidence intervals or the own - other take comparison"),
    _r("eval_batch", int, 1, 256, ["eval --batch-size"],
       "takes generated at once, their network calls batched; the device's working memory grows with it"),
    _r("camera_frames", int, 2, 4096, ["eval --camera-frames"],
       "frames whose cameras are re-estimated per video; relative poses need two, structure from motion slows with many"),
    _r("camera_transition_frames", int, 0, 256, ["eval --camera-transition-frames"],
       "interpolated frames per scored transition, as --transition-frames"),
    _r("camera_time_limit_s", float, 0, 3600, ["eval --camera-time-limit"],
       "seconds per camera estimate; an hour is far beyond any clip of a report", lo_open=True),
    # render-synthetic
    _r("synthetic_takes", int, 1, 100_000, ["render-synthetic --takes"],
       "takes are written as take_00000 .. take_99999 (five digits keep them sorted)"),
    _r("synthetic_size", int, 4, 4096, ["render-synthetic --size", "prepare --size"],
       "square frame side in pixels; the renderer needs >= 4, memory is checked before rendering"),
    _r("synthetic_frames", int, 1, 4096, ["render-synthetic --exo-frames", "render-synthetic --ego-frames",
                                          "prepare --exo-frames", "prepare --ego-frames"],
       "frames per view and take"),
    _r("supersample", int, 1, 8, ["render-synthetic --supersample"],
       "rays per pixel side, as SyntheticConfig accepts"),
    _r("synthetic_batch", int, 1, 1024, ["render-synthetic --batch"],
       "takes rendered together; memory is checked before rendering"),
    _r("threads", int, 0, 1024, ["render-synthetic --threads", "bench sampler --threads"],
       "torch threads; 0 = leave torch's setting"),
    # prepare
    _r("prepare_clips", int, 1, 10_000, ["prepare --clips"], "clips (windows) per take, evenly spaced"),
    _r("takes_per_shard", int, 1, 100_000, ["prepare --takes-per-shard"],
       "takes whose samples one shard holds; a shard is the unit of resuming and of parallel work"),
    _r("workers", int, 1, 1024, ["prepare --workers"], "processes"),
    # video
    _r("fps", float, 0, 1000, ["render-synthetic --fps", "interpolate --fps", "image2video --fps",
                               "Syn2SeqCameraPath.fps"],
       "what the video writer accepts", lo_open=True),
    # interpolate
    _r("interpolate_frames", int, 0, 1024, ["interpolate -n/--frames"],
       "frames between two images (or every two video frames); memory grows with it"),
    # convert-dfot
    # the training memory planner (syn2seq bench train)
    _r("plan_vram_gb", float, 1.0, 100_000.0, ["bench train --vram"], "GPU memory to plan for, in GB"),
    _r("plan_overhead_gb", float, 0.0, 1000.0, ["bench train --overhead"],
       "per-GPU memory beyond weights, optimiser and activations (CUDA context, NCCL, fragmentation)"),
    _r("plan_gpus", int, 1, 4096, ["bench train --gpus"], "GPUs per node to plan for"),
    _r("plan_batch", int, 1, 4096, ["bench train --batch"], "sequences per GPU per micro-batch"),
    # the sampler benchmark (syn2seq bench sampler)
    _r("bench_batch", int, 1, 64, ["bench sampler --batch"], "videos per denoising step (guidance branches stack here)"),
    _r("bench_frames", int, 0, 256, ["bench sampler --frames"], "frames per video; 0 = each config's window"),
    _r("bench_reps", int, 1, 100, ["bench sampler --reps"], "timed repeats of each measurement (the median is kept)"),
    _r("plan_steps", int, 1, 1000, ["bench train --measure-steps"],
       "timed training steps per measured setting (after one warm-up step)"),
    _r("model_size", int, 8, 4096, ["convert-dfot --size", "bench train --size", "bench train --probe-size"],
       "frame side in pixels (convert-dfot: the size the checkpoint was trained at; RE10K: 256)"),
    _r("model_window", int, 1, 256, ["convert-dfot --max-frames"], "frames the model sees at once (RE10K: 8)"),
    # download
    _r("timeout", float, 0, 3600, ["download --timeout"], "seconds to wait for the server", lo_open=True),
    # train (the counts of its config files: syn2seq_core.training.loop)
    _r("train_minutes", float, 0, 525_600, ["train --minutes"],
       "up to a year of wall-clock time", lo_open=True),
    _r("train_max_steps", int, 1, 10**9, ["train --max-steps"], "optimizer steps"),
    # node-only widgets
    _r("frame_size", int, 0, 8192, ["Syn2SeqLoadTake.width", "Syn2SeqLoadTake.height",
                                    "Syn2SeqPluckerRays.width", "Syn2SeqPluckerRays.height"],
       "pixels per side; 0 = native size"),
    _r("start_frame", int, 0, 1_000_000, ["Syn2SeqLoadTake.start"], "first frame to read"),
    _r("frame_count", int, 0, 1_000_000, ["Syn2SeqLoadTake.frames"], "frames to read; 0 = to the end"),
    _r("frame_stride", int, 1, 1000, ["Syn2SeqLoadTake.stride", "prepare --stride"], "read every stride-th frame"),
])

# Devices: a torch device string of a kind this table knows, checked against what the machine has.
DEVICE_KINDS = ("cpu", "cuda", "mps", "xpu")
DEVICE_OPTIONS = (f"{_GEN} --device", "interpolate --device")


def get(name: str) -> Range:
    """The range named ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    try:
        return LIMITS[name]
    except KeyError:
        raise KeyError(f"unknown limit {name!r}; known: {sorted(LIMITS)}") from None


# --- checks ------------------------------------------------------------------------------------------

def _as_number(r: Range, value):
    """``value`` as an int (for integer ranges, integral floats included) or a float; None if it is not one."""
    if isinstance(value, bool):
        return None
    if r.kind is int:
        try:
            return operator.index(value)
        except TypeError:
            pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check(name: str, value, label: str | None = None):
    """Return ``value`` (as int or float) if it lies in the range ``name``; else raise
    :class:`Syn2SeqInputError` (``label: expected an integer in [1, 1000], got 1000000000``).

    label: the name shown in the error (default ``name``), e.g. the caller's argument name.
    """
    r = get(name)
    number = _as_number(r, value)
    if number is None or not r.contains(number):
        raise Syn2SeqInputError(label or name, r.expected, repr(value) if number is None else value)
    return number


def check_seed_span(first, count: int, label: str = "seed"):
    """Refuse a first seed whose ``count`` seeds ``first .. first + count - 1`` leave the seed range."""
    seed = check("seed", first, label)
    last = SEED_MAX - max(int(count), 1) + 1
    if seed > last:
        raise Syn2SeqInputError(label, f"an integer in [0, {last}] (it is used with the next {count - 1} seeds)",
                                seed)
    return seed


# --- argparse ----------------------------------------------------------------------------------------

def arg(name: str):
    """An argparse ``type=`` for the range ``name``: parses the text and raises
    ``argparse.ArgumentTypeError`` ("expected an integer in [1, 1000], got 1000000000"), which argparse
    prints as ``syn2seq CMD: error: argument --steps: ...`` with exit status 2."""
    r = get(name)

    def parse(text: str):
        try:
            value = int(text) if r.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {r.expected}, got {text!r}") from None
        if not r.contains(value):
            raise argparse.ArgumentTypeError(f"expected {r.expected}, got {text}")
        return value

    parse.__name__ = name
    return parse


def help_text(name: str, text: str, default=None, default_text: str | None = None) -> str:
    """``text (1..1000, default 25)``; ``default_text`` replaces the shown default (``default: all``)."""
    r = get(name)
    if default_text is not None:
        tail = f", {default_text}"
    else:
        tail = f", default {default}" if default is not None else ""
    return f"{text} ({r.short}{tail})".replace("%", "%%")


def option(name: str, help: str, default=None, default_text: str | None = None, **kwargs) -> dict:
    """Keyword arguments of ``parser.add_argument`` for a number in the range ``name``: ``type``,
    ``default``, ``metavar`` and ``help`` ending in the range and the default (``help`` should not repeat
    them); ``default_text`` describes a default that is not a number (``default: all takes``)."""
    r = get(name)
    if default is not None:
        check(name, default)
    return {"type": arg(name), "default": default, "metavar": "N" if r.kind is int else "X",
            "help": help_text(name, help, default, default_text), **kwargs}


def device_arg(text: str) -> str:
    """An argparse ``type=`` for ``--device``: a torch device string of a known kind that this machine
    has (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``xpu``); returns the text."""
    try:
        return check_device(text)
    except Syn2SeqInputError as e:
        raise argparse.ArgumentTypeError(f"expected {e.expected}, got {e.found}"
                                         + (f". {e.hint}" if e.hint else "")) from None


def check_device(device, label: str = "device") -> str:
    """Return ``device`` (a string or ``torch.device``) as a string if it names a device this machine has;
    else raise :class:`Syn2SeqInputError` naming the devices that are available."""
    import torch

    text = str(device)
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise Syn2SeqInputError(label, f"a device such as {', '.join(available_devices())}", repr(text)) from None
    known = available_devices()
    if dev.type not in DEVICE_KINDS:
        raise Syn2SeqInputError(label, f"one of the device kinds {list(DEVICE_KINDS)}", repr(text))
    if dev.index is None:
        ok = any(k.split(":")[0] == dev.type for k in known)
    else:
        ok = f"{dev.type}:{dev.index}" in known or (dev.index == 0 and dev.type in known)
    if not ok:
        raise Syn2SeqInputError(label, f"a device this machine has ({', '.join(known)})", repr(text))
    return text


def available_devices() -> list[str]:
    """``cpu`` and every accelerator torch sees here (``cuda:0`` ..., ``mps``, ``xpu:0`` ...)."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += [f"xpu:{i}" for i in range(xpu.device_count())]
    return found


# --- memory ------------------------------------------------------------------------------------------

def format_bytes(n: float) -> str:
    """``1.5 GB``, ``320 MB``, ``12 kB``, ``512 bytes`` (decimal units)."""
    n = float(n)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} bytes"


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory_bytes(device=None) -> int | None:
    """Bytes that can be allocated now without swapping, or None if this machine does not say.

    CPU (default): Linux ``MemAvailable`` from ``/proc/meminfo``, else ``psutil`` if installed. A CUDA
    device: its free memory (``torch.cuda.mem_get_info``).
    """
    if device is not None and str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info(torch.device(str(device)))[0])
        return None
    if device is not None and not str(device).startswith("cpu"):
        return None  # mps / xpu share or manage memory in ways this estimate does not know
    if sys.platform.startswith("linux"):
        found = _meminfo_available()
        if found is not None:
            return found
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001  psutil can fail inside odd containers; then we cannot tell
        return None


def require_memory(nbytes: float, what: str, hint: str | None = None, device=None) -> None:
    """Refuse to allocate ``nbytes`` (an estimate) for ``what`` when more than the memory available now.

    Raises :class:`Syn2SeqInputError`: ``what: expected at most 23.4 GB (the memory available on cpu now),
    got an estimated 48.0 GB. <hint>``. Does nothing when the available memory cannot be read.
    """
    available = available_memory_bytes(device)
    if available is None or nbytes <= available:
        return
    where = "this machine" if device is None else str(device)
    raise Syn2SeqInputError(what, f"at most {format_bytes(available)} (the memory available on {where} now)",
                            f"an estimated {format_bytes(nbytes)}", hint)


def frames_bytes(frames: int, height: int, width: int, channels: int = 3, bytes_per_value: int = 4,
                 copies: int = 1) -> int:
    """Bytes of ``copies`` tensors [frames, channels, height, width] (float32 by default)."""
    return int(frames) * int(channels) * int(height) * int(width) * int(bytes_per_value) * int(copies)


# The ray caster of render-synthetic holds about this many bytes per ray of one chunk (measured: a
# 1-Mray chunk peaks at ~0.5 GB), and casts at least this many rays at once (SyntheticConfig.chunk_rays).
RENDER_BYTES_PER_RAY = 512
RENDER_MIN_CHUNK_RAYS = 32768


def synthetic_render_bytes(batch: int, frames_per_take: int, size: int, supersample: int) -> int:
    """Peak bytes of rendering ``batch`` takes of ``frames_per_take`` frames of ``size``² pixels: the
    frames twice (the caster's buffer and the result) and one chunk of rays (a chunk holds at least one
    whole supersampled frame)."""
    rays = max(RENDER_MIN_CHUNK_RAYS, int(supersample) ** 2 * int(size) ** 2)
    return frames_bytes(batch * frames_per_take, size, size, copies=2) + RENDER_BYTES_PER_RAY * rays


# --- checks across the options of one command (called by cli.main before the command runs) -----------

def check_generation_options(args) -> None:
    """exo2ego / ego2exo / demo / eval: with ``--mean`` the seeds ``seed .. seed + mean_draws - 1`` are used."""
    if getattr(args, "mean", False):
        check_seed_span(args.seed, args.mean_draws, "--seed")


def check_render_synthetic_options(args) -> None:
    """render-synthetic: take i uses seed + i; one batch of takes must fit in memory."""
    check_seed_span(args.seed, args.takes, "--seed")
    batch = min(args.batch, args.takes)
    need = synthetic_render_bytes(batch, args.exo_frames + args.ego_frames, args.size, args.supersample)
    require_memory(need, "one batch of takes", f"{batch} takes of {args.exo_frames + args.ego_frames} frames at "
                   f"{args.size}x{args.size}, supersample {args.supersample}: lower --batch, --size or --supersample")


# --- docs --------------------------------------------------------------------------------------------

def markdown_table() -> str:
    """The table of ``docs/limits.md`` (between its markers)."""
    rows = ["| name | range | used by | why |", "| --- | --- | --- | --- |"]
    for r in LIMITS.values():
        kind = "integer" if r.kind is int else "number"
        rows.append(f"| `{r.name}` | {kind} in {r.interval} | {', '.join(f'`{u}`' for u in r.used_by)} | {r.why} |")
    rows.append(f"| `device` | {', '.join(f'`{k}`' for k in DEVICE_KINDS)} (with `:N` where there are several), "
                f"one this machine has | {', '.join(f'`{u}`' for u in DEVICE_OPTIONS)} | checked against "
                "what torch sees here |")
    return "\n".join(rows) + "\n"


TABLE_BEGIN = "<!-- BEGIN limits table: generated by `python -m syn2seq_core.base.limits` -->"
TABLE_END = "<!-- END limits table -->"


def _docs_page() -> str:
    return f"""# Limits of user-given numbers

Every number a user gives to a `syn2seq` command or a Syn2Seq node has a range, checked before any work
starts. Out of range, a command stops with exit status 2 and one line naming the option, the range and
the value:

    syn2seq exo2ego: error: argument --steps: expected an integer in [1, 1000], got 1000000000

Library callers get the same check from `syn2seq_core.base.limits.check(name, value)` (a
`Syn2SeqInputError`), and the nodes' widgets take their min/max from the same table
(`syn2seq_core/base/limits.py`, `LIMITS`). A range `(a, b]` excludes `a`.

Where memory follows from the sizes given (frames x 3 x height x width x 4 bytes, a batch of rendered
takes), the estimate is compared with the memory available now (Linux `MemAvailable`, or `psutil`; a
CUDA device's free memory) and the command refuses with both numbers instead of dying halfway:

    syn2seq render-synthetic: error: one batch of takes: expected at most 20.1 GB (the memory available
    on this machine now), got an estimated 85.9 GB. 8 takes of 16 frames at 4096x4096, supersample 2:
    lower --batch, --size or --supersample

{TABLE_BEGIN}
{markdown_table()}{TABLE_END}

## Unexpected failures

Any other failure ends with one line saying what failed and where the full traceback was written, and
exit status 1:

    syn2seq exo2ego: failed: RuntimeError: <first line> (full traceback: ~/.local/state/syn2seq/logs/...)

The log folder is `$XDG_STATE_HOME/syn2seq/logs` (default `~/.local/state/syn2seq/logs`;
`%LOCALAPPDATA%\\syn2seq\\logs` on Windows), or the system temporary folder when that is not writable.
`syn2seq --debug CMD ...` (or `CMD ... --debug`, or `SYN2SEQ_DEBUG=1`) prints the traceback instead.
Exit statuses: 0 done, 1 failed, 2 bad input, 130 interrupted (Ctrl-C).
"""


if __name__ == "__main__":
    sys.stdout.write(_docs_page())
