"""``syn2seq cameras estimate``: a camera track for every frame of a video, by structure from motion.

    syn2seq cameras estimate --video V [--frames N] [--stride S] [--static] [--fov F | --focal F]
                             [--mapper global|incremental|opencv] [--lens pinhole|fisheye] [--sfm-size N]
                             [--align-to CAMS] [--time-limit S] --out cams.json

Writes a ``cameras.json`` (``docs/cameras_json.md``) with one camera per video frame: the registered frames as
structure from motion placed them, the others interpolated (SLERP) and marked ``"interpolated": true``; the
top-level ``"estimate"`` object says how (method, counts, intrinsics estimated / given / guessed) and that the
scale is arbitrary, unless ``--align-to`` mapped the track onto a known one (Sim(3)). The file is written only
when the estimate succeeds (atomically); on failure nothing is written and the error names what was missing.
Method and numbers: ``docs/cameras_estimate.md``; the maths: :mod:`syn2seq_core.geometry.sfm`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..base import limits
from ..base.errors import Syn2SeqInputError, require


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="cameras_command", metavar="ACTION")
    est = sub.add_parser("estimate", help="estimate a camera track for every frame of a video (structure from motion)",
                         description=__doc__.splitlines()[0])
    _estimate_arguments(est)
    est.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.set_defaults(_parser=parser)


def _estimate_arguments(p) -> None:
    from ..geometry.sfm import DEFAULT_LENS, DEFAULT_MAPPER, DEFAULT_MIN_REGISTERED, DEFAULT_SFM_SIZE, LENSES, MAPPERS

    p.add_argument("--video", required=True, help="the video (any format FFmpeg reads)")
    p.add_argument("--out", required=True, help="the camera file to write (cameras.json; a folder gets cameras.json)")
    p.add_argument("--frames", dest="max_frames", **limits.option(
        "sfm_frames", "frames structure from motion sees, spread evenly over the video; the others are interpolated",
        None, default_text="default: every sampled frame"))
    p.add_argument("--stride", **limits.option("sfm_stride", "every stride-th frame goes to structure from motion", 1))
    p.add_argument("--static", action="store_true",
                   help="a fixed camera: one pose for every frame, nothing estimated (intrinsics from --fov/--focal, "
                        "else guessed and reported as a guess)")
    lens = p.add_mutually_exclusive_group()
    lens.add_argument("--fov", dest="fov_deg", **limits.option(
        "fov_deg", "known horizontal field of view in degrees (held fixed)", None, default_text="default: estimated"))
    lens.add_argument("--focal", **limits.option(
        "sfm_focal_px", "known focal length in pixels of the video's frames (held fixed)", None,
        default_text="default: estimated"))
    p.add_argument("--mapper", choices=MAPPERS, default=DEFAULT_MAPPER,
                   help=f"COLMAP's global (GLOMAP) or incremental mapper (pycolmap), or the OpenCV fallback for short "
                        f"clips (default {DEFAULT_MAPPER}: the reliable one on video)")
    p.add_argument("--lens", choices=sorted(LENSES), default=DEFAULT_LENS,
                   help=f"camera model: pinhole, or fisheye (Kannala-Brandt k1..k4, kept in the file) (default "
                        f"{DEFAULT_LENS})")
    p.add_argument("--sfm-size", **limits.option("sfm_size", "long side in pixels of the frames features are found in",
                                                 DEFAULT_SFM_SIZE))
    p.add_argument("--min-registered", **limits.option(
        "sfm_min_registered", "share of the sampled frames that must register", DEFAULT_MIN_REGISTERED))
    p.add_argument("--align-to", metavar="CAMS",
                   help="a known camera track of the same video (any format load_cameras reads, one camera per "
                        "frame): the estimate is mapped onto it by a similarity (Sim(3), Umeyama), taking its world "
                        "frame and units")
    p.add_argument("--time-limit", **limits.option("sfm_time_limit", "stop with an error after this many seconds", 0,
                                                   default_text="default 0: no limit"))
    p.add_argument("--threads", **limits.option("sfm_threads", "threads for COLMAP / OpenCV", 0,
                                                default_text="default 0: all cores"))
    p.add_argument("--seed", **limits.option("sfm_seed", "RANSAC and mapper seed", 0))
    p.add_argument("--overwrite", action="store_true", help="replace an existing camera file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(_check_options=_check_estimate)


def _out_path(out: str) -> Path:
    from ..io.poses import SYN2SEQ_FILENAME

    target = Path(out).expanduser()
    return target / SYN2SEQ_FILENAME if target.is_dir() else target


def _check_estimate(args) -> None:
    """Before any work: the input exists, the output can be written and is not an earlier file (unless
    --overwrite), --frames is not 1."""
    video = Path(args.video).expanduser()
    require(video.is_file(), "--video", "an existing video file", f"nothing at '{video}'" if not video.exists()
            else f"the folder '{video}'")
    if args.align_to is not None:
        ref = Path(args.align_to).expanduser()
        require(ref.exists(), "--align-to", "an existing camera file or folder", f"nothing at '{ref}'")
        require(not args.static, "--align-to", "a moving camera (not --static)", "--static",
                "A static estimate is one pose: there is no track to align")
    require(args.max_frames in (None, 0) or args.max_frames >= 2, "--frames", "0 (all) or at least 2 frames",
            args.max_frames)
    target = _out_path(args.out)
    if target.exists() and not args.overwrite:
        raise Syn2SeqInputError("--out", "a new file (or --overwrite)", f"'{target}' exists")
    # Writable, checked without creating anything (folders are made when the file is written, on success).
    existing = next(p for p in (target.parent, *target.parent.parents) if p.exists())
    if not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise Syn2SeqInputError("--out", "a path this user can write", f"'{target}' ('{existing}' is not a "
                                                                         "writable folder)")


def run(args) -> int:
    if getattr(args, "cameras_command", None) != "estimate":
        args._parser.print_help()
        return 2
    return _run_estimate(args)


def _run_estimate(args) -> int:
    from ..geometry.sfm import align_to_track
    from ..io.camera_estimation import estimate_cameras_from_video
    from ..io.poses import load_cameras, save_cameras
    from ..io.video import probe_video

    info = probe_video(args.video)
    reference = None
    if args.align_to is not None:
        reference = load_cameras(args.align_to)
        require(len(reference) == info.frames, "--align-to", f"one camera per frame of the video ({info.frames})",
                f"{len(reference)} cameras in '{args.align_to}'")
    callback, bar = _progress_bar(args.quiet)
    try:
        est = estimate_cameras_from_video(
            args.video, static=args.static, fov_deg=args.fov_deg, focal=args.focal, mapper=args.mapper,
            stride=args.stride, max_frames=args.max_frames or None, time_limit_s=args.time_limit or None,
            progress=callback, lens=args.lens, sfm_size=args.sfm_size, min_registered=args.min_registered,
            num_threads=args.threads or None, seed=args.seed)
    finally:
        if bar is not None:
            bar.close()
    if reference is not None:
        est = align_to_track(est, reference, f"--align-to '{args.align_to}'")
    fps = info.fps if info.fps > 0 else None
    timestamps = None if fps is None else [i / fps for i in range(len(est))]
    target = save_cameras(est.cameras, _out_path(args.out), timestamps=timestamps,
                          extra={"estimate": {**est.summary(), "video": str(args.video)}},
                          frame_extra=est.frame_marks())
    n = len(est)
    print(f"wrote {target}: {n} cameras ({est.num_registered} registered, {int(est.interpolated.sum())} "
          f"interpolated), {est.method}, {est.seconds:.1f} s ({est.seconds / max(int(est.sampled.sum()), 1):.2f} s "
          "per sampled frame)")
    for note in est.notes:
        print(f"  - {note}")
    return 0


def _progress_bar(quiet: bool):
    """(callback, bar): a tqdm bar over the estimate's stages (frames, features, matches, mapping, cameras)."""
    if quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=5, desc="cameras estimate", unit="stage", dynamic_ncols=True, file=sys.stderr)

    def callback(info: dict) -> None:
        bar.total = int(info.get("total", bar.total))
        bar.set_postfix_str(str(info.get("stage", "")), refresh=False)
        bar.update(int(info["step"]) - bar.n)

    return callback, bar
