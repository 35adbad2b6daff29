"""``syn2seq render-synthetic``: render procedural exo/ego takes with exact cameras into take folders.

Take ``i`` uses seed ``S + i`` and is written to ``OUT/take_<i:05d>`` in the take format (exo.mp4,
ego.mp4, exo_cameras.json, ego_cameras.json, take.json with the seed and the world's settings; with ``--depth``,
the default, also exo_depth.safetensors / ego_depth.safetensors: exact z-depth at the supersampled resolution,
for models with the depth_warp cue), so every loader, command and node reads them. Frame ``i`` of both views is
at ``i / fps`` seconds.

``--textured`` covers every surface with fine procedural noise fixed to the surfaces (deterministic per seed; see
``SyntheticConfig.textured``), so SIFT features match across frames and views and structure from motion can
register the frames at 128-256 pixels (the flat-shaded default gives it little to match). take.json records it
as ``"textured": true`` in its ``synthetic`` settings; untextured takes leave the key out, so they are byte for byte
what they were before the option existed. Python: ``render_takes(seeds, SyntheticConfig(size=160,
textured=True))``.

``--layout egoexo4d`` writes the takes as a local Ego-Exo4D release instead (``OUT/takes.json``,
``OUT/annotations/splits.json``, ``OUT/captures/<capture>/timesync.csv``, ``OUT/takes/<take>/frame_aligned_videos``
and ``trajectory``), the exo views through KB3 lenses and the ego view through the FISHEYE624 lens of its
``online_calibration.jsonl``: see :mod:`syn2seq_core.data.egoexo4d_fixture`. As in the real release the Aria stream
is the raw camera-rgb image turned 90 degrees clockwise (the calibration file describes the raw image), and frame
``i`` is timesync row ``timesync_start_idx + 1 + i``. ``--ego-frames`` frames per take (both views),
``--exo-cameras`` static exo cameras, ``--textured`` as above, ``--marker`` paints an asymmetric marker into the Aria frames (before they
are turned), ``--damaged KIND`` adds a broken take (for indexer tests); ``--exo-frames``, ``--batch`` and
``--depth`` do not apply to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..base import limits

    parser.add_argument("--out", required=True, help="folder to write the takes into")
    parser.add_argument("--takes", required=True, **limits.option("synthetic_takes", "number of takes"))
    parser.add_argument("--seed", **limits.option("seed", "seed of the first take (take i uses seed + i)", 0))
    parser.add_argument("--size", **limits.option("synthetic_size", "frame size in pixels, square", 64))
    parser.add_argument("--exo-frames", **limits.option("synthetic_frames", "exo frames per take", 8))
    parser.add_argument("--ego-frames", **limits.option("synthetic_frames", "ego frames per take", 8))
    parser.add_argument("--fps", **limits.option("fps", "frames per second", 8.0))
    parser.add_argument("--supersample", **limits.option("supersample", "rays per pixel side", 2))
    parser.add_argument("--batch", **limits.option("synthetic_batch", "takes rendered together", 8))
    parser.add_argument("--threads", **limits.option(
        "threads", "torch threads while rendering (1 is the fastest on a busy 2-core machine; 0: torch's setting)",
        1))
    parser.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True,
                        help="write each view's exact z-depth (<view>_depth.safetensors; needed by models with the "
                             "depth_warp cue, e.g. the bundled one); --no-depth leaves it out")
    parser.add_argument("--textured", action="store_true",
                        help="cover every surface with fine procedural noise fixed to it (deterministic per seed), so "
                             "feature matching and structure from motion work on the frames (use 128-256 px); "
                             "recorded in take.json. Default: flat-shaded, as the bundled model was trained")
    parser.add_argument("--overwrite", action="store_true", help="replace takes that already exist")
    parser.add_argument("--layout", choices=("takes", "egoexo4d"), default="takes",
                        help="takes: one take folder per take (default); egoexo4d: a local Ego-Exo4D release "
                             "(takes.json, splits, timesync, frame_aligned_videos, trajectory with the exact "
                             "cameras, FISHEYE624 ego lens)")
    parser.add_argument("--exo-cameras", type=int, default=2, choices=range(1, 5), metavar="1..4",
                        help="egoexo4d layout: static exo cameras per take, 1 to 4 (cam01 is the world's)")
    parser.add_argument("--damaged", action="append", default=[], metavar="KIND",
                        help="egoexo4d layout: also write a broken take of this kind (repeatable): "
                             "missing_folder, missing_video, missing_trajectory, missing_calibration, "
                             "damaged_calibration, damaged_csv, dropped, short_trajectory, short_video, "
                             "missing_timesync, outside_video")
    parser.add_argument("--marker", action="store_true",
                        help="egoexo4d layout: paint an asymmetric marker (white square, tail to the right in the "
                             "raw image) into the Aria frames, to see their orientation")
    parser.set_defaults(_check_options=limits.check_render_synthetic_options)


def run(args) -> int:
    from tqdm import tqdm

    from ..base.errors import require
    from ..data.synthetic import SOURCE, SyntheticConfig, render_takes
    from ..data.takes import write_take

    require(args.seed >= 0, "--seed", "a non-negative integer", args.seed)
    require(args.batch >= 1, "--batch", "a positive number", args.batch)
    config = SyntheticConfig(size=args.size, supersample=args.supersample, exo_frames=args.exo_frames,
                             ego_frames=args.ego_frames, fps=args.fps, threads=args.threads,
                             textured=bool(getattr(args, "textured", False)))
    out = Path(args.out).expanduser()
    if getattr(args, "layout", "takes") == "egoexo4d":
        return _run_egoexo4d(args, config, out)
    settings = synthetic_settings(config)
    render_s = 0.0
    frames = 0
    t0 = time.perf_counter()
    with tqdm(total=args.takes, unit="take", desc="render-synthetic") as bar:
        for start in range(0, args.takes, args.batch):
            idx = list(range(start, min(args.takes, start + args.batch)))
            t1 = time.perf_counter()
            batch = render_takes([args.seed + i for i in idx], config, depth=args.depth)
            render_s += time.perf_counter() - t1
            for j, i in enumerate(idx):
                take = batch.take(j)
                write_take(out / f"take_{i:05d}", take.exo_frames, take.exo_cameras, take.ego_frames,
                           take.ego_cameras, fps=config.fps, overwrite=args.overwrite,
                           depth={"exo": batch.exo_depth[j], "ego": batch.ego_depth[j]} if args.depth else None,
                           meta={"source": SOURCE, "seed": take.seed, "synthetic": settings})
                frames += config.exo_frames + config.ego_frames
                bar.update(1)
    total_s = time.perf_counter() - t0
    print(f"wrote {args.takes} {'textured ' if config.textured else ''}takes ({frames} frames, "
          f"{config.size}x{config.size}) to {out}: "
          f"rendering {frames / max(render_s, 1e-9):.0f} frames/s, with encoding and writing "
          f"{frames / max(total_s, 1e-9):.0f} frames/s ({total_s:.1f} s)")
    return 0


def synthetic_settings(config) -> dict:
    """The world's settings as take.json records them: every field that changes the pixels (not chunk_rays or
    threads), ``textured`` only when on (so untextured takes stay byte for byte as before the option)."""
    skip = ("chunk_rays", "threads") + (() if config.textured else ("textured",))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items() if k not in skip}


def _run_egoexo4d(args, config, out: Path) -> int:
    from tqdm import tqdm

    from ..data.egoexo4d_fixture import write_egoexo4d_fixture

    t0 = time.perf_counter()
    total = args.takes + len(args.damaged)
    with tqdm(total=total, unit="take", desc="render-synthetic (egoexo4d)") as bar:
        written = write_egoexo4d_fixture(out, [args.seed + i for i in range(args.takes)], config,
                                         exo_cameras=args.exo_cameras, damaged=args.damaged,
                                         overwrite=args.overwrite, marker=getattr(args, "marker", False),
                                         progress=lambda _: bar.update(1))
    damaged = [t.take_name + f" ({t.damage})" for t in written if t.damage]
    print(f"wrote an Ego-Exo4D layout with {args.takes} takes ({args.exo_cameras} exo cameras each, "
          f"{config.ego_frames} frames, {config.size}x{config.size}) to {out} in {time.perf_counter() - t0:.1f} s"
          + (f"; damaged: {', '.join(damaged)}" if damaged else ""))
    return 0
