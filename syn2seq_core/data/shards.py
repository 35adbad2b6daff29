"""Training triplets prepared once and stored as shards: writing (``syn2seq prepare``) and reading (training).

``prepare`` turns takes into Syn2Seq training samples, one per clip (window) of a take: the exo clip, the
transition frames (any interpolation backend of :mod:`syn2seq_core.interpolation.base`, or ``ideal``: the
procedural scene rendered along the SLERP path, for takes of ``syn2seq render-synthetic`` that record their
seed), the synchronous ego clip, every camera (exo, the SLERP transition cameras, ego) and, when the take has
it, each view's depth, at one frame size and frame stride. The slow part, first-last-frame interpolation
(Wan: minutes per triplet on a GPU), then runs once per triplet instead of once per training step.

Format: webdataset-compatible tar shards
    Each shard ``shard-NNNNNN.tar`` is a plain POSIX (ustar) tar file whose members are grouped by sample key
    the way webdataset expects (``KEY.exo.npy``, ``KEY.transition.npy``, ... consecutive), so it is read by
    ``webdataset.WebDataset`` (sequentially, the streaming read of large-scale video-diffusion training), by
    ``tar``, and by our loader, which reads one sample by one byte-range read (the manifest holds each
    sample's offset), because its sample order is a pure function of (seed, step) (see
    :mod:`syn2seq_core.training.batches`). A tar of whole samples needs no library to write or inspect, streams
    from disks and object stores alike, and hundreds of samples per file keep the file count low. It is
    written with :mod:`tarfile` rather than ``webdataset.TarWriter`` to control every header byte: fixed
    mtime (0), uid/gid (0), empty owner names, mode 0644 and member order, so a re-run writes byte-identical
    shards (their SHA-256 in the manifest proves it).

Per sample (``KEY`` = ``sNNNNNN_MMMM``: shard and position, no dots, as webdataset keys must be)
    ``KEY.exo.npy``, ``KEY.transition.npy``, ``KEY.ego.npy``: uint8 ``[T, H, W, 3]`` RGB (numpy ``.npy``);
    ``KEY.ego2exo.npy`` (``--both-directions``): the transition from the last ego to the first exo frame;
    ``KEY.exo_depth.npy`` / ``KEY.ego_depth.npy`` (optional): float16 ``[T, h, w]`` z-depth in metres;
    ``KEY.cameras.json``: ``{"exo"|"transition"|"ego": {"c2w", "K", "width", "height", "dtype", ...}}``;
    ``KEY.json``: id (``take/clipK``), take, clip, frame indices, fps, category, source, transition backend.
    Frames are raw ``.npy`` rather than PNG or a video: decoding is a copy (a 256x256 PNG costs ~2 ms to
    decode, an H.264 clip must be decoded from its keyframe and is lossy a second time), so the loader is never
    the bottleneck of a training step (``syn2seq bench data``); the price is ~2x the bytes of PNG, which at
    the sizes trained here (<= 256 px, 8-20 frames per sample) is ~3 MB per sample.

Manifest ``manifest.json`` (beside the shards; every file it names must stay inside its folder)
    ``{"format": "syn2seq.shards", "version": 1, "settings": {...}, "takes": [...], "shards": [{"file",
    "samples", "bytes", "sha256", "takes", "failed", "index": [[key, offset, length, id], ...]}, ...]}``.
    Shard ``i`` holds takes ``i * takes_per_shard ...`` of the sorted take list, whatever the other shards
    hold, so shards are independent units of work: worker ``w`` of ``N`` writes shards ``i % N == w``.

Resumable
    A shard is written under a hidden temporary name, fsynced and renamed when complete, then recorded: its
    entry goes to ``shard-NNNNNN.json`` beside it and into the manifest (both written atomically; the
    manifest at most every few seconds, and at the end). A re-run with the same settings and takes skips
    every shard recorded (file present with its recorded size; ``verify`` re-hashes them) and writes the
    rest, so ``kill -9`` loses at most the shards in progress; their temporary files are removed by the next
    run (of this process's shards). Training reads only a complete manifest.
    Per-take failures (an unreadable video, a take too short for one clip, ``ideal`` on a take without a
    seed) are recorded in the shard's entry and in ``failures.jsonl``, and the take is skipped.

Many processes (torchrun ranks, Slurm array tasks, or both; :mod:`syn2seq_core.parallel.distributed`)
    Process ``k`` of ``N`` writes the shards ``i % N == k`` (its :class:`~syn2seq_core.parallel.distributed.Share`), on one device (``cuda:LOCAL_RANK``
    with CUDA, else the CPU; :func:`share_device`), and nothing else: at start-up it removes the temporary
    files of its own shards only (another process may be writing its own), and records each finished shard in
    its entry file. The first process to start writes the (incomplete) manifest, the settings and takes every
    later one is checked against (a hard link: no locks). The complete manifest and ``failures.jsonl`` are
    written by :func:`merge` once every shard is finished: under torchrun by rank 0 after a barrier, in a
    Slurm array by the task that finds every shard finished after writing its own (the last to finish; two
    finishing together both write the same bytes), or by ``prepare --merge``. Shards hold fixed takes and
    entries are deterministic, so N processes write the same bytes as one, and a run may resume on another
    number of processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from ..geometry.cameras import Cameras
from ..io.safe_paths import resolve_inside
from ..parallel.distributed import Share, share_from_env  # noqa: F401  (share_from_env: prepare's, re-exported)
from .synthetic import SOURCE as SYNTHETIC_SOURCE

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "syn2seq.shards"
MANIFEST_VERSION = 1
FAILURES_NAME = "failures.jsonl"
SHARD_PATTERN = "shard-{:06d}.tar"
ENTRY_PATTERN = "shard-{:06d}.json"  # a finished shard's manifest entry, beside it
MANIFEST_EVERY_S = 10.0
IDEAL = "ideal"
# Test hook: seconds to sleep after each finished shard (so a test can kill a run between shards).
SLEEP_ENV = "SYN2SEQ_PREPARE_SLEEP"
# Test hook: a folder; a shard's writer waits there with the shard half-written when asked to (see _hold).
HOLD_ENV = "SYN2SEQ_PREPARE_HOLD"
FRAME_VIEWS = ("exo", "transition", "ego")
VIEWS = ("exo", "ego")

TakeLoader = Callable[[str], Any]  # name -> Take


# --- settings ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareSettings:
    """What a sample holds. size: square frame side (centre crop, then resize); exo/ego/transition_frames per
    sample; transition: an interpolation backend name or ``"ideal"``; stride: take frames per sample frame
    (30 fps takes at stride 4 give 7.5 fps samples); clips: at most this many clips per take, evenly spaced
    over the take; takes_per_shard: takes per shard; depth: keep the views' depth when the take has it;
    both_directions: also the ego -> exo transition (for ``ego2exo_prob`` > 0 in training);
    interpolator_options: JSON object of the backend's constructor options (e.g. a weights path)."""

    size: int = 64
    exo_frames: int = 8
    ego_frames: int = 8
    transition_frames: int = 4
    transition: str = "flow"
    stride: int = 1
    clips: int = 1
    takes_per_shard: int = 64
    depth: bool = True
    both_directions: bool = False
    interpolator_options: str = "{}"

    def check(self) -> PrepareSettings:
        from ..base import limits

        # The ranges of the command's options (syn2seq_core.base.limits), for callers of the library too.
        for name, limit in (("size", "synthetic_size"), ("exo_frames", "synthetic_frames"),
                            ("ego_frames", "synthetic_frames"), ("transition_frames", "transition_frames"),
                            ("stride", "frame_stride"), ("clips", "prepare_clips"),
                            ("takes_per_shard", "takes_per_shard")):
            v = getattr(self, name)
            require(isinstance(v, int) and not isinstance(v, bool), f"prepare --{name.replace('_', '-')}",
                    "an integer", repr(v))
            limits.check(limit, v, f"prepare --{name.replace('_', '-')}")
        options = self.options()
        if self.transition == IDEAL:
            require(not self.both_directions, "prepare --both-directions", "off with --transition ideal (ideal "
                    "in-betweens are rendered exo -> ego only)", True)
            require(not options, "prepare --interpolator-options", "none with --transition ideal", options)
        else:
            from ..interpolation.base import interpolator_class, known_interpolators

            try:
                interpolator_class(self.transition)
            except Syn2SeqInputError:
                raise Syn2SeqInputError("prepare --transition", f"one of {known_interpolators() + [IDEAL]}",
                                        repr(self.transition)) from None
        return self

    def options(self) -> dict:
        try:
            options = json.loads(self.interpolator_options)
        except json.JSONDecodeError as e:
            raise Syn2SeqInputError("prepare --interpolator-options", "a JSON object", f"a parse error ({e})") \
                from None
        require(isinstance(options, dict), "prepare --interpolator-options", "a JSON object", type(options).__name__)
        return options

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- tar writing -------------------------------------------------------------------------------------------
def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json_bytes(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path: Path, samples: Sequence[tuple[str, list[tuple[str, bytes]], str]],
                on_sample: Callable[[int], None] | None = None) -> dict:
    """Write ``samples`` (key, [(extension, bytes), ...], sample id) as the tar shard ``path``, atomically
    (hidden temporary file, fsync, rename). Returns ``{"bytes", "sha256", "index"}``; ``index`` holds per
    sample ``[key, offset, length, id]``: the byte range of its members (headers included). on_sample: called
    with ``k`` after sample ``k`` is in the temporary file (flushed)."""
    from ..io.atomic import temp_file_near

    path = Path(path)
    tmp = temp_file_near(path)
    index = []
    try:
        with open(tmp, "wb") as raw:
            f = _HashingWriter(raw)  # the digest of the bytes as they are written: no second read of the shard
            with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for key, members, sample_id in samples:
                    start = tar.offset
                    for ext, data in members:
                        tar.addfile(_tar_info(f"{key}.{ext}", len(data)), io.BytesIO(data))
                    index.append([key, start, tar.offset - start, sample_id])
                    if on_sample is not None:
                        raw.flush()
                        on_sample(len(index) - 1)
            raw.flush()
            os.fsync(raw.fileno())
        digest, size = f.hash.hexdigest(), f.size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"bytes": size, "sha256": digest, "index": index}


class _HashingWriter:
    """A write-only file object for ``tarfile`` that passes bytes on to ``raw`` and hashes them (SHA-256)."""

    def __init__(self, raw):
        self.raw, self.hash, self.size = raw, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.size


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- one take -> samples -----------------------------------------------------------------------------------
def _uint8(frames: Tensor) -> np.ndarray:
    """[T, 3, H, W] float in [0, 1] -> [T, H, W, 3] uint8."""
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _cameras_json(cams: Cameras) -> dict:
    out = {"c2w": cams.c2w.tolist(), "K": cams.K.tolist(), "width": int(cams.width), "height": int(cams.height),
           "dtype": str(cams.c2w.dtype).replace("torch.", "")}
    if cams.fisheye is not None:
        out["fisheye"] = cams.fisheye.tolist()
    if cams.uncropped_K is not None:
        out["uncropped_K"] = cams.uncropped_K.tolist()
    return out


def cameras_from_json(block: dict, where: str) -> Cameras:
    try:
        dtype = getattr(torch, block.get("dtype", "float32"))
        extra = {k: torch.tensor(block[k], dtype=dtype) for k in ("fisheye", "uncropped_K") if k in block}
        return Cameras(torch.tensor(block["c2w"], dtype=dtype).reshape(-1, 4, 4),
                       torch.tensor(block["K"], dtype=dtype).reshape(-1, 4), int(block["width"]),
                       int(block["height"]), **extra)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise Syn2SeqInputError(where, "a camera track {c2w, K, width, height}", f"{type(e).__name__}: {e}") from None


def clip_starts(take, settings: PrepareSettings) -> list[tuple[int, int]]:
    """``[(exo_start, ego_start), ...]``: up to ``settings.clips`` clips evenly spaced over the take; the ego
    clip starts at the ego frame nearest in time to the first exo frame (synchronous views)."""
    s = settings
    span_e, span_g = (s.exo_frames - 1) * s.stride + 1, (s.ego_frames - 1) * s.stride + 1
    for view in VIEWS:
        require(take.has_video(view), f"take '{take.name}'", "both an exo and an ego video", f"no {view} video")
    n_e, n_g = take.num_frames("exo"), take.num_frames("ego")
    t_e, t_g = take.frame_times("exo"), take.frame_times("ego")

    def ego_start(i: int) -> int:
        return int(torch.argmin((t_g - t_e[i]).abs()))

    valid = [i for i in range(n_e - span_e + 1) if ego_start(i) + span_g <= n_g]
    require(valid, f"take '{take.name}'", f"at least {span_e} exo and {span_g} synchronous ego frames for one "
            f"clip ({s.exo_frames} + {s.ego_frames} frames at stride {s.stride})", f"{n_e} exo, {n_g} ego frames")
    if s.clips == 1 or len(valid) == 1:
        picks = [valid[0]]
    else:
        picks = sorted({valid[round(k * (len(valid) - 1) / (s.clips - 1))] for k in range(min(s.clips, len(valid)))})
    return [(i, ego_start(i)) for i in picks]


def _synthetic_scene(take):
    """(scene, SyntheticConfig) of a take written by ``syn2seq render-synthetic`` (its take.json seed)."""
    from .synthetic import take_scene

    found = take_scene(take)
    require(found is not None, f"take '{take.name}' transition 'ideal'", f"a take of {SYNTHETIC_SOURCE} recording "
            "its seed and world settings in take.json", f"source {take.meta.get('source')!r}, seed "
            f"{(take.meta.get('meta') or {}).get('seed')!r}",
            "Ideal in-betweens exist only in the procedural world; use an interpolator (--transition flow)")
    return found


def _depth(take, view: str, start: int, count: int, stride: int, size: int) -> np.ndarray:
    """float16 [T, h, w] depth of a clip, at most 2 x size per side (nearest: no mixing of fore- and
    background)."""
    d = take.read_depth(view, start, start + (count - 1) * stride + 1, stride, size=size)
    h, w = d.shape[-2:]
    if max(h, w) > 2 * size:
        scale = 2 * size / max(h, w)
        d = torch.nn.functional.interpolate(d[:, None], size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                            mode="nearest-exact")[:, 0]
    return d.to(torch.float16).numpy()


def take_samples(take, settings: PrepareSettings, interpolator=None) -> list[tuple[list[tuple[str, bytes]], str]]:
    """The samples of one take: ``[(members [(extension, bytes), ...], sample id), ...]``, one per clip.
    interpolator: a built backend (:func:`~syn2seq_core.interpolation.base.get_interpolator`; None for
    ``ideal``)."""
    from ..generation.sequence import build_sequence
    from ..geometry.slerp import interpolate_cameras, transition_times
    from ..interpolation.base import interpolate

    s = settings
    out = []
    scene = None
    if s.transition == IDEAL and s.transition_frames:
        scene, world = _synthetic_scene(take)
    for clip, (e0, g0) in enumerate(clip_starts(take, s)):
        e1, g1 = e0 + (s.exo_frames - 1) * s.stride + 1, g0 + (s.ego_frames - 1) * s.stride + 1
        exo_f, exo_c = take.read_view("exo", size=s.size, start=e0, stop=e1, stride=s.stride)
        ego_f, ego_c = take.read_view("ego", size=s.size, start=g0, stop=g1, stride=s.stride)
        n = s.transition_frames
        if scene is not None:
            from .synthetic import render_transition

            t_from = float(take.frame_times("exo")[e1 - 1])
            t_to = float(take.frame_times("ego")[g0])
            times = t_from + transition_times(n, torch.float64) * (t_to - t_from)
            tr = render_transition(scene, exo_c.to(torch.float32), ego_c.to(torch.float32), n, times.float(),
                                   supersample=world.supersample, near=world.near).frames
        elif n:
            tr = interpolate(exo_f[-1], ego_f[0], n, backend=interpolator)
        else:
            tr = exo_f[:0]
        # The sequence builder checks frames and cameras together and gives the SLERP transition cameras.
        seq = build_sequence(exo_c, ego_c, exo_frames=exo_f, ego_frames=ego_f, transition_frames=tr if n else None,
                             n_transition=n, mode="exo2ego")
        tr_c = interpolate_cameras(exo_c, ego_c, n)
        members = [("exo.npy", _npy(_uint8(exo_f))), ("transition.npy", _npy(_uint8(tr))),
                   ("ego.npy", _npy(_uint8(ego_f)))]
        if s.both_directions:
            back = interpolate(ego_f[-1], exo_f[0], n, backend=interpolator) if n else tr
            members.append(("ego2exo.npy", _npy(_uint8(back))))
        if s.depth:
            for view, start, count in (("exo", e0, s.exo_frames), ("ego", g0, s.ego_frames)):
                if take.depth(view) is not None:
                    members.append((f"{view}_depth.npy", _npy(_depth(take, view, start, count, s.stride, s.size))))
        cams = {"exo": _cameras_json(exo_c), "transition": _cameras_json(tr_c), "ego": _cameras_json(ego_c)}
        members.append(("cameras.json", _json_bytes(cams)))
        sample_id = f"{take.name}/clip{clip}"
        meta = {"id": sample_id, "take": take.name, "clip": clip, "exo_frames": list(range(e0, e1, s.stride)),
                "ego_frames": list(range(g0, g1, s.stride)), "fps": take.fps / s.stride,
                "category": take.category, "source": take.meta.get("source"), "transition": s.transition,
                "roles": seq.roles.tolist()}
        members.append(("json", _json_bytes(meta)))
        members.sort(key=lambda m: m[0])  # one fixed member order
        out.append((members, sample_id))
    return out


# --- prepare -----------------------------------------------------------------------------------------------
def _read_manifest_file(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Syn2SeqInputError(str(path), "a shards manifest (JSON)", f"a parse error ({e})") from None
    require(isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT, str(path),
            f"a manifest of format {MANIFEST_FORMAT!r}", repr(data.get("format") if isinstance(data, dict) else data))
    require(data.get("version") == MANIFEST_VERSION, f"{path} version", str(MANIFEST_VERSION), data.get("version"),
            "This manifest was written by a newer syn2seq")
    return data


def _write_manifest(out: Path, doc: dict) -> None:
    from ..io.atomic import write_text_atomic

    write_text_atomic(out / MANIFEST_NAME, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _shard_worker(jobs: list[int], names: list[str], settings: PrepareSettings, out: str, take_loader: TakeLoader,
                  device: str | None, queue) -> None:
    """Write shards ``jobs`` (in order), putting ``("shard", i, entry)`` on ``queue`` after each, then
    ``("done", None, None)``; ``("error", i, text)`` on an unexpected failure."""
    import traceback

    try:
        torch.set_num_threads(1)
        parent = os.getppid()
        interp = _build_interpolator(settings, device)
        for i in jobs:
            if os.getppid() != parent:  # the main process is gone (killed): stop, a re-run resumes
                return
            queue.put(("shard", i, make_shard(i, names, settings, Path(out), take_loader, interp)))
    except BaseException as e:  # noqa: BLE001  reported by the main process
        queue.put(("error", None, "".join(traceback.format_exception(type(e), e, e.__traceback__))))
    queue.put(("done", None, None))


def uses_device(settings: PrepareSettings) -> bool:
    """Whether the transition backend runs on a chosen device (takes a ``device`` option: wan, rife), so that a
    process of many needs one of its own; flow (OpenCV), blend and ideal run on the CPU."""
    if settings.transition == IDEAL or not settings.transition_frames:
        return False
    import inspect

    from ..interpolation.base import interpolator_class

    return "device" in inspect.signature(interpolator_class(settings.transition)).parameters


def _build_interpolator(settings: PrepareSettings, device: str | None):
    if settings.transition == IDEAL or not settings.transition_frames:
        return None
    import inspect

    from ..interpolation.base import get_interpolator, interpolator_class

    options = settings.options()
    if device is not None and "device" in inspect.signature(interpolator_class(settings.transition)).parameters:
        options.setdefault("device", device)
    return get_interpolator(settings.transition, **options)


def shard_takes(i: int, names: list[str], settings: PrepareSettings) -> list[str]:
    k = settings.takes_per_shard
    return names[i * k:(i + 1) * k]


def make_shard(i: int, names: list[str], settings: PrepareSettings, out: Path, take_loader: TakeLoader,
               interpolator) -> dict:
    """Build and write shard ``i``; its manifest entry (failed takes included)."""
    samples, failed, takes = [], [], shard_takes(i, names, settings)
    for name in takes:
        try:
            for members, sample_id in take_samples(take_loader(name), settings, interpolator):
                samples.append((f"s{i:06d}_{len(samples):04d}", members, sample_id))
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001  a bad take is skipped and reported, the others go on
            failed.append({"take": name, "error": f"{type(e).__name__}: {e}"})
    file = SHARD_PATTERN.format(i)
    hold = os.environ.get(HOLD_ENV)
    written = write_shard(out / file, samples, on_sample=(lambda k: _hold(hold, file)) if hold else None)
    return {"file": file, "samples": len(samples), "takes": takes, "failed": failed, **written}


def _hold(folder: str, file: str) -> None:
    """Test hook (``SYN2SEQ_PREPARE_HOLD=DIR``): when ``DIR/hold-FILE`` exists, stop with shard FILE half-written:
    create ``DIR/held-FILE`` and wait until ``DIR/release-FILE`` exists (so a test can start another process while
    this shard is in progress)."""
    folder = Path(folder)
    held, release = folder / f"held-{file}", folder / f"release-{file}"
    if not (folder / f"hold-{file}").exists() or held.exists():
        return
    held.touch()
    while not release.exists():
        time.sleep(0.05)


# --- many processes: torchrun ranks and Slurm array tasks --------------------------------------------------
def share_device(share: Share, devices: Sequence[str] | None) -> str:
    """The one device of a process of a share: ``devices[local_rank % len(devices)]`` when given, else
    ``cuda:LOCAL_RANK`` when CUDA is available (one GPU per process; :func:`syn2seq_core.parallel.distributed.share_device`),
    else ``cpu``."""
    from ..parallel.distributed import share_device as one_device

    if devices:
        return devices[share.local_rank % len(devices)]
    return one_device(share, "cuda" if torch.cuda.is_available() else "cpu")


def _claim_manifest(out: Path, doc: dict) -> None:
    """Write ``doc`` as the manifest unless a manifest exists: the first process of a run to start records the
    settings and takes, every later one is checked against them. Atomic without locks: a complete temporary
    file is hard-linked onto the name, which fails when another process was first (on a file system without
    hard links, the temporary file is renamed onto the name unless it exists)."""
    from ..io.atomic import temp_file_near

    path = out / MANIFEST_NAME
    tmp = temp_file_near(path, ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _run_record(out: Path, settings: PrepareSettings, names: list[str], source: str) -> dict:
    """The manifest in ``out`` (checked: the same settings and takes), or a new one (no shards yet)."""
    doc = _read_manifest_file(out / MANIFEST_NAME)
    settings_doc = settings.to_dict()
    if doc is None:
        return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "settings": settings_doc, "takes": names,
                "source": source, "shards": []}
    if doc.get("settings") != settings_doc or doc.get("takes") != names:
        what = "settings" if doc.get("settings") != settings_doc else "takes"
        raise Syn2SeqInputError(str(out / MANIFEST_NAME), "a manifest of the same settings and takes (a resumed "
                                "run)", f"other {what}", "Use a new --out folder, or the settings the run "
                                "was started with")
    return doc


def _shard_number(file: str) -> int:
    return int(file[len("shard-"):-len(".tar")])


def _finished(out: Path, n_shards: int, doc: dict, verify=()) -> dict[int, dict]:
    """Finished shards: ``{i: entry}`` for each shard whose tar has the size its entry records (its entry file
    beside it, else the manifest's entry); those in ``verify`` also their recorded hash."""
    known = {_shard_number(e["file"]): e for e in doc.get("shards", [])}
    for i in range(n_shards):
        side = out / ENTRY_PATTERN.format(i)
        if side.is_file():
            try:
                known[i] = json.loads(side.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):  # cannot be half-written (atomic): damaged, so redone
                side.unlink(missing_ok=True)
    done = {}
    for i, entry in known.items():
        path = out / SHARD_PATTERN.format(i)
        ok = i < n_shards and entry.get("file") == path.name and path.is_file() and path.stat().st_size == entry["bytes"]
        if ok and i in verify:
            ok = file_sha256(path) == entry["sha256"]
        if ok:
            done[i] = entry
    return done


def _shard_list(numbers: list[int], most: int = 12) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return f"[{shown}{', ...' if len(numbers) > most else ''}]"


def merge(names: Sequence[str], out, settings: PrepareSettings, *, source: str = "", verify: bool = False,
          require_all: bool = True) -> dict:
    """Write the complete manifest (and ``failures.jsonl``, in shard order) of the shards in ``out`` once every
    shard of ``names`` is finished, whichever processes wrote them: the same bytes as one process writes.
    ``prepare --merge``; rank 0 of a torchrun run after the others; the last Slurm array task to finish.
    Missing shards: :class:`Syn2SeqInputError` naming them, or with ``require_all=False`` nothing is written.
    Returns ``{"complete", "missing", "shards", "samples", "failed"}``."""
    settings = settings.check()
    names = list(names)
    out = Path(out).expanduser()
    n_shards = -(-len(names) // settings.takes_per_shard)
    doc = _run_record(out, settings, names, source)
    done = _finished(out, n_shards, doc, verify=range(n_shards) if verify else ())
    missing = [i for i in range(n_shards) if i not in done]
    summary = {"complete": not missing, "missing": missing, "shards": n_shards,
               "samples": sum(e["samples"] for e in done.values()),
               "failed": sum(len(e["failed"]) for e in done.values())}
    if missing:
        require(not require_all, f"prepare --merge {out}", f"all {n_shards} shards written", f"{len(missing)} "
                f"missing: shards {_shard_list(missing)}", "Run the processes that write them (the same prepare "
                "command, on the same launcher) again: they resume, and the last to finish writes the manifest")
        return summary
    from ..io.atomic import write_text_atomic

    entries = [done[i] for i in range(n_shards)]
    failures = "".join(json.dumps({"shard": e["file"], **fail}) + "\n" for e in entries for fail in e["failed"])
    if failures:  # before the manifest: a complete manifest means everything is written
        write_text_atomic(out / FAILURES_NAME, failures)
    _write_manifest(out, {**doc, "shards": entries, "complete": True})
    return summary


def prepare(names: Sequence[str], take_loader: TakeLoader, out, settings: PrepareSettings, *, workers: int = 1,
            devices: Sequence[str] | None = None, source: str = "", verify: bool = False,
            progress: bool = True, share: Share | None = None) -> dict:
    """Write the shards of the takes ``names`` (each loaded by ``take_loader(name) -> Take``) into ``out``;
    resumes a run of the same settings and takes. workers: processes (shard i -> worker i % workers);
    devices: one per worker, round robin (e.g. one process per GPU for ``wan``); source: what the takes are
    (recorded). share: which shards this process writes (:func:`syn2seq_core.parallel.distributed.share_from_env`;
    None: all); with more than one process it writes only its own and leaves the complete manifest to
    :func:`merge`, which one process (prepare's command: rank 0, or the last array task) runs when all are
    written. Returns a summary: shards written / skipped, samples, failed takes (of this process's shards),
    seconds, and ``missing``: shards not finished when this process was done."""
    from tqdm import tqdm

    settings = settings.check()
    names = list(names)
    require(names, "prepare", "at least one take", "none")
    require(len(set(names)) == len(names), "prepare takes", "each take once", "duplicates")
    require(isinstance(workers, int) and workers >= 1, "prepare --workers", "an integer >= 1", workers)
    share = share or Share()  # one process
    require(isinstance(share, Share) and 0 <= share.index < share.count, "prepare share", "index in [0, count)",
            share)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    n_shards = -(-len(names) // settings.takes_per_shard)
    mine = [i for i in range(n_shards) if share.owns(i)]
    # Temporary files of a killed run, of this process's own shards only: another process may be writing its own.
    for i in mine:
        for leftover in out.glob(f".shard-{i:06d}.*.partial.*"):
            leftover.unlink(missing_ok=True)
    doc = _run_record(out, settings, names, source)
    done = _finished(out, n_shards, doc, verify=set(mine) if verify else ())
    todo = [i for i in mine if i not in done]
    doc["shards"] = [done[i] for i in sorted(done)]
    doc["complete"] = False
    alone = share.count == 1
    if alone:
        _write_manifest(out, doc)
    else:
        _claim_manifest(out, doc)
    sleep = float(os.environ.get(SLEEP_ENV, "0") or 0)
    t0 = time.perf_counter()
    new_failures = []
    last_write = [0.0]

    def record(entry: dict) -> None:
        from ..io.atomic import write_text_atomic

        i = _shard_number(entry["file"])
        write_text_atomic(out / ENTRY_PATTERN.format(i), json.dumps(entry, sort_keys=True) + "\n")
        done[i] = entry
        if alone:
            # The manifest (which holds every sample's offset) is rewritten at most every few seconds, not after
            # every shard of a large run; the entry file beside each shard makes it count as finished meanwhile.
            # With many processes only the entry files are written (no process rewrites another's record).
            if time.monotonic() - last_write[0] > MANIFEST_EVERY_S:
                doc["shards"] = [done[k] for k in sorted(done)]
                _write_manifest(out, doc)
                last_write[0] = time.monotonic()
            if entry["failed"]:  # rewritten in shard order by merge() at the end
                with open(out / FAILURES_NAME, "a", encoding="utf-8") as f:
                    f.writelines(json.dumps({"shard": entry["file"], **fail}) + "\n" for fail in entry["failed"])
        new_failures.extend(entry["failed"])
        bar.update(1)
        bar.set_postfix(samples=sum(done[k]["samples"] for k in mine if k in done), failed=len(new_failures))
        if sleep:
            time.sleep(sleep)

    devices = list(devices or [])
    with tqdm(total=len(mine), initial=len(mine) - len(todo), unit="shard", desc="prepare", disable=not progress,
              dynamic_ncols=True) as bar:
        if workers == 1 or len(todo) <= 1:
            interp = _build_interpolator(settings, devices[0] if devices else None)
            for i in todo:
                record(make_shard(i, names, settings, out, take_loader, interp))
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            procs = []
            for w in range(workers):
                jobs = [i for i in todo if mine.index(i) % workers == w]  # alone: shard i -> worker i % N
                if not jobs:
                    continue
                device = devices[w % len(devices)] if devices else None
                p = ctx.Process(target=_shard_worker, args=(jobs, names, settings, str(out), take_loader, device,
                                                            queue), daemon=True)
                p.start()
                procs.append(p)
            running, errors = len(procs), []
            try:
                while running:
                    kind, _, payload = queue.get()
                    if kind == "shard":
                        record(payload)
                    elif kind == "error":
                        errors.append(payload)
                    else:
                        running -= 1
            finally:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                    p.join()
            if errors:
                raise RuntimeError("a prepare worker failed:\n" + errors[0])
    seconds = time.perf_counter() - t0
    if alone:
        missing = merge(names, out, settings, source=source, require_all=False)["missing"]
    else:  # the others' shards as this process sees them now (entry files)
        missing = [i for i in range(n_shards) if i not in _finished(out, n_shards, doc)]
    entries = [done[i] for i in mine if i in done]
    return {"out": str(out), "shards": len(mine), "total_shards": n_shards, "written": len(todo),
            "skipped": len(mine) - len(todo), "samples": sum(e["samples"] for e in entries),
            "failed": sum(len(e["failed"]) for e in entries), "failed_this_run": len(new_failures),
            "seconds": seconds, "missing": missing, "share": share}


# --- take sources ------------------------------------------------------------------------------------------
def folder_takes(root) -> tuple[list[str], TakeLoader]:
    """Takes of a folder of take folders: (names relative to ``root``, loader)."""
    from .takes import find_takes

    root = Path(root).expanduser()
    names = [p.relative_to(root).as_posix() if p != root else p.name for p in find_takes(root)]
    return names, _FolderLoader(str(root))


def _of_category(entries: list, category: str | None, where: str) -> list:
    if category is None:
        return entries
    chosen = [e for e in entries if getattr(e, "category", None) == category]
    known = sorted({e.category for e in entries if getattr(e, "category", None)})
    require(chosen, f"--category of {where}", f"one of the index's categories {known}", repr(category))
    return chosen


def index_takes(index, root, split: str | None = None, category: str | None = None) -> tuple[list[str], TakeLoader]:
    """Takes listed by an index file (:mod:`syn2seq_core.data.index`) under ``root``, of ``split`` and
    ``category`` (None: all)."""
    from .index import read_index, select

    entries = read_index(index)
    if any(e.egoexo4d is not None for e in entries):  # an Ego-Exo4D index.jsonl given as --index
        return egoexo4d_takes(index, root, split, category)
    entries = _of_category(select(entries, split), category, str(index))
    return [e.take for e in entries], _FolderLoader(str(Path(root).expanduser()), str(index))


class _FolderLoader:
    """name -> Take for take folders under a root (picklable, for worker processes)."""

    def __init__(self, root: str, index: str | None = None):
        self.root, self.index = root, index

    def __call__(self, name: str):
        from .takes import load_take

        root = Path(self.root)
        if self.index is None and name == root.name and not (root / name).exists():
            return load_take(root)
        folder = resolve_inside(root, name, owner=f"index '{self.index}'" if self.index else f"takes root '{root}'",
                                entry=f"take {name!r}")
        return load_take(folder)


class _EgoExo4DLoader:
    """name -> Take through ``syn2seq_core.data.egoexo4d_index.load_indexed_take`` (picklable)."""

    def __init__(self, root: str, entries: dict):
        self.root, self.entries = root, entries

    def __call__(self, name: str):
        from .egoexo4d_index import load_indexed_take

        return load_indexed_take(self.root, self.entries[name])


def egoexo4d_takes(index, root, split: str | None = None, category: str | None = None
                   ) -> tuple[list[str], TakeLoader]:
    """Takes of an Ego-Exo4D index (``syn2seq_core.data.egoexo4d_index``, imported only here) of the release
    under ``root``, of ``split``; each loaded by its ``load_indexed_take``."""
    try:
        from .egoexo4d_index import read_egoexo4d_index
    except ImportError as e:
        raise Syn2SeqInputError("--egoexo4d-index", "the Ego-Exo4D indexer (syn2seq_core/data/egoexo4d_index.py)",
                                f"not available ({e})", "Use --index with a take index, or a folder of takes") \
            from None
    entries = list(read_egoexo4d_index(index, split) if split is not None else read_egoexo4d_index(index))
    entries = _of_category(entries, category, str(index))
    names = [str(getattr(e, "take_name", None) or getattr(e, "take", None) or e) for e in entries]
    return names, _EgoExo4DLoader(str(root), dict(zip(names, entries)))


# --- reading -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardSample:
    """One decoded sample. exo / transition / ego: [T, 3, H, W] float32 in [0, 1]; *_cameras: Cameras;
    ego2exo: the ego -> exo transition or None; exo_depth / ego_depth: [T, h, w] float32 or None; meta: KEY.json."""

    exo: Tensor
    transition: Tensor
    ego: Tensor
    exo_cameras: Cameras
    transition_cameras: Cameras
    ego_cameras: Cameras
    ego2exo: Tensor | None
    exo_depth: Tensor | None
    ego_depth: Tensor | None
    meta: dict

    @property
    def id(self) -> str:
        return self.meta["id"]


def _frames(data: bytes) -> Tensor:
    array = np.load(io.BytesIO(data), allow_pickle=False)
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255)


def decode_sample(members: dict[str, bytes], where: str = "sample") -> ShardSample:
    """A :class:`ShardSample` from its members (extension -> bytes)."""
    need = ("exo.npy", "transition.npy", "ego.npy", "cameras.json", "json")
    missing = [m for m in need if m not in members]
    require(not missing, where, f"the members {list(need)}", f"none of {missing}")
    cams = json.loads(members["cameras.json"])

    def depth(name):
        return torch.from_numpy(np.load(io.BytesIO(members[name]))).float() if name in members else None

    return ShardSample(_frames(members["exo.npy"]), _frames(members["transition.npy"]), _frames(members["ego.npy"]),
                       cameras_from_json(cams["exo"], f"{where} exo cameras"),
                       cameras_from_json(cams["transition"], f"{where} transition cameras"),
                       cameras_from_json(cams["ego"], f"{where} ego cameras"),
                       _frames(members["ego2exo.npy"]) if "ego2exo.npy" in members else None,
                       depth("exo_depth.npy"), depth("ego_depth.npy"), json.loads(members["json"]))


@dataclass
class Manifest:
    """A read manifest: its path, settings, and per sample (shard path, offset, length, id)."""

    path: Path
    settings: dict
    shards: list[dict]
    samples: list[tuple[Path, int, int, str]]

    def __len__(self) -> int:
        return len(self.samples)


def read_manifest(path) -> Manifest:
    """Read and check a manifest: format, version, completeness, and that every shard it names is inside its
    folder (links followed) and has its recorded size."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / MANIFEST_NAME
    doc = _read_manifest_file(p)
    if doc is None:
        raise Syn2SeqInputError("[data] shards", "a shards manifest (syn2seq prepare --out DIR writes "
                                f"DIR/{MANIFEST_NAME})", f"no file '{p}'")
    require(doc.get("complete") is True, str(p), "a complete manifest (every shard written)",
            f"{len(doc.get('shards', []))} shards written, run not finished",
            "Run the same syn2seq prepare command again to finish it")
    samples = []
    for k, entry in enumerate(doc["shards"]):
        shard = resolve_inside(p.parent, entry.get("file"), owner=f"manifest '{p}'", entry=f"shards[{k}].file")
        require(shard.is_file() and shard.stat().st_size == entry.get("bytes"), f"manifest '{p}' shard {entry['file']}",
                f"a file of {entry.get('bytes')} bytes", "a missing or different file" if not shard.is_file() else
                f"{shard.stat().st_size} bytes", "Run syn2seq prepare again on this folder")
        for key, offset, length, sample_id in entry["index"]:
            samples.append((shard, int(offset), int(length), str(sample_id)))
    require(samples, str(p), "at least one sample", "none (every take failed? see failures.jsonl)")
    return Manifest(p, doc["settings"], doc["shards"], samples)


class SampleReader:
    """Random access to the samples of a manifest: one ``pread`` of a sample's byte range, parsed as tar
    members. Files are opened lazily per process (safe in DataLoader workers)."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self._files: dict[Path, int] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.manifest)

    def __getstate__(self):
        return {"manifest": self.manifest, "_files": {}, "_pid": None}

    def raw(self, j: int) -> dict[str, bytes]:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        shard, offset, length, _ = self.manifest.samples[j]
        fd = self._files.get(shard)
        if fd is None:
            fd = self._files[shard] = os.open(shard, os.O_RDONLY)
        data = os.pread(fd, length, offset)
        require(len(data) == length, f"shard {shard}", f"{length} bytes at offset {offset}", f"{len(data)} bytes")
        members = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                ext = info.name.partition(".")[2]
                members[ext] = tar.extractfile(info).read()
        return members

    def __getitem__(self, j: int) -> ShardSample:
        return decode_sample(self.raw(j), f"{self.manifest.path} sample {self.manifest.samples[j][3]}")


def iter_shard(path) -> Iterable[dict[str, bytes]]:
    """The samples of one shard file in order, sequentially (as webdataset streams them): extension -> bytes,
    plus ``__key__``."""
    current: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            key, _, ext = info.name.partition(".")
            if current and current["__key__"] != key:
                yield current
                current = {}
            current["__key__"] = key
            current[ext] = tar.extractfile(info).read()
    if current:
        yield current
