"""Synthetic-world render speed: frames/s of the batched take renderer at several sizes, side by side.

Each size renders ``--takes`` takes (exo + ego frames each) in one batched :func:`render_takes` call, the
path training data comes from; best of ``--repeats`` runs on fresh seeds, for each torch thread count in
``--threads``. Reports wall-clock frames/s and frames per CPU-second (the latter is less sensitive to
other processes on a shared machine; with several threads it also counts their waiting).
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128], help="square sizes (default 32 64 128)")
    parser.add_argument("--takes", type=int, default=8, help="takes per batch (default 8)")
    parser.add_argument("--frames", type=int, default=8, help="exo frames = ego frames per take (default 8)")
    parser.add_argument("--supersample", type=int, default=2, help="rays per pixel side (default 2)")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch thread counts to compare (default: 1 and max(2, the current count))")
    parser.add_argument("--repeats", type=int, default=3, help="take the best of N runs (default 3)")


def _measure(cfg, takes: int, repeats: int, seed: int) -> tuple[float, float]:
    from ..data.synthetic import render_takes

    render_takes(list(range(1_000_000, 1_000_000 + takes)), cfg)  # warm-up
    wall, cpu = float("inf"), float("inf")
    for r in range(repeats):
        seeds = list(range(seed + r * takes, seed + (r + 1) * takes))
        t0, c0 = time.perf_counter(), time.process_time()
        render_takes(seeds, cfg)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def run(args) -> int:
    import torch

    from ..base.errors import require
    from ..data.synthetic import SyntheticConfig

    require(args.takes >= 1 and args.frames >= 1 and args.repeats >= 1, "--takes/--frames/--repeats",
            "positive numbers", (args.takes, args.frames, args.repeats))
    require(all(s >= 4 for s in args.sizes), "--sizes", "sizes >= 4", args.sizes)
    threads = args.threads or sorted({1, max(2, torch.get_num_threads())})
    require(all(t >= 1 for t in threads), "--threads", "positive thread counts", threads)
    n = args.takes * 2 * args.frames
    rows = []
    for size in args.sizes:
        cells = []
        for t in threads:  # the renderer sets (and restores) the thread count per call
            cfg = SyntheticConfig(size=size, supersample=args.supersample, exo_frames=args.frames,
                                  ego_frames=args.frames, threads=t)
            cells.append(_measure(cfg, args.takes, args.repeats, seed=size * 1000))
        rows.append((size, cells))
    print(f"synthetic render: batched takes ({args.takes} x {2 * args.frames} = {n} frames per batch), "
          f"supersample {args.supersample}x{args.supersample}; frames/s (frames per CPU-second)")
    header = ["size", "rays/frame"] + [f"{t} thread{'s' if t > 1 else ''}" for t in threads] + ["time vs first size"]
    print(" | ".join(f"{h:>18}" for h in header))
    for size, cells in rows:
        out = [f"{size}x{size}", f"{(size * args.supersample) ** 2}"]
        out += [f"{n / wall:.0f} ({n / cpu:.0f})" for wall, cpu in cells]
        out.append(f"{cells[0][0] / rows[0][1][0][0]:.2f}x")
        print(" | ".join(f"{c:>18}" for c in out))
    return 0
