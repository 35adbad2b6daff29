"""Synthetic-world render speed: frames/s of the batched take renderer at several sizes, side by side.

Each size renders ``--takes`` takes (exo + ego frames each) in one batched :func:`render_takes` call,
the path training data comes from; best of ``--repeats`` runs on fresh seeds. Reports wall-clock frames/s,
frames per CPU-second (less sensitive to other processes on a shared machine), rays/s and the cost
relative to the first size.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128], help="square sizes (default 32 64 128)")
    parser.add_argument("--takes", type=int, default=8, help="takes per batch (default 8)")
    parser.add_argument("--frames", type=int, default=8, help="exo frames = ego frames per take (default 8)")
    parser.add_argument("--supersample", type=int, default=2, help="rays per pixel side (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="take the best of N runs (default 3)")


def run(args) -> int:
    import torch

    from ..data.synthetic import SyntheticConfig, render_takes
    from ..errors import require

    require(args.takes >= 1 and args.frames >= 1 and args.repeats >= 1, "--takes/--frames/--repeats",
            "positive numbers", (args.takes, args.frames, args.repeats))
    require(all(s >= 4 for s in args.sizes), "--sizes", "sizes >= 4", args.sizes)
    rows = []
    seed = 0
    for size in args.sizes:
        cfg = SyntheticConfig(size=size, supersample=args.supersample, exo_frames=args.frames, ego_frames=args.frames)
        render_takes(list(range(1_000_000, 1_000_000 + args.takes)), cfg)  # warm-up
        wall, cpu = float("inf"), float("inf")
        for _ in range(args.repeats):
            seeds = list(range(seed, seed + args.takes))
            seed += args.takes
            t0, c0 = time.perf_counter(), time.process_time()
            render_takes(seeds, cfg)
            wall = min(wall, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        n = args.takes * 2 * args.frames
        rays = n * (size * args.supersample) ** 2
        rows.append((size, n, wall, n / wall, n / cpu, rays / wall / 1e6))
    print(f"synthetic render, batched takes ({args.takes} x {2 * args.frames} frames), supersample "
          f"{args.supersample}x{args.supersample}, {torch.get_num_threads()} torch threads")
    header = ("size", "frames", "s/batch", "frames/s", "frames/cpu-s", "Mrays/s", "time vs first")
    print(" | ".join(f"{h:>12}" for h in header))
    for size, n, wall, fps, fpc, mrays in rows:
        cells = (f"{size}x{size}", n, f"{wall:.3f}", f"{fps:.0f}", f"{fpc:.0f}", f"{mrays:.1f}",
                 f"{wall / rows[0][2]:.2f}x")
        print(" | ".join(f"{c:>12}" for c in cells))
    return 0
