"""Video I/O speed: H.264 encode and decode frames/s at 256x256 and 512x512 on synthetic content.

Each size writes ``--frames`` frames of smooth moving colour patterns with :func:`write_video` into a
temporary folder, then decodes them with :func:`read_video` (whole clip), :func:`iter_video_chunks`
(streaming) and :func:`read_video` with a half-size centre crop, all in the same run, so the columns
compare side by side. Best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square sizes (default 256 512)")
    parser.add_argument("--crf", type=int, default=18, help="x264 CRF (default 18)")
    parser.add_argument("--preset", default="medium", help="x264 preset (default medium)")
    parser.add_argument("--chunk", type=int, default=16, help="frames per streamed chunk (default 16)")
    parser.add_argument("--repeats", type=int, default=1, help="take the best of N runs (default 1)")


def synthetic_frames(n: int, size: int) -> torch.Tensor:
    """[n, 3, size, size] smooth moving colour patterns in [0, 1]."""
    y = torch.linspace(0, 1, size)[:, None]
    x = torch.linspace(0, 1, size)[None, :]
    t = (torch.arange(n, dtype=torch.float32) / max(n, 1))[:, None, None]
    r = 0.5 + 0.4 * torch.sin(6.28 * (x + t) + 3 * y)
    g = 0.5 + 0.4 * torch.cos(6.28 * (y - 2 * t) + 2 * x)
    b = (0.5 + 0.3 * torch.sin(9.0 * x * y + 4 * t)).expand(n, size, size)
    return torch.stack([r.expand(n, size, size), g.expand(n, size, size), b], 1).contiguous()


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(args) -> int:
    from ..base.errors import require
    from ..io.video import iter_video_chunks, read_video, write_video

    require(args.frames >= 1, "--frames", "a positive number", args.frames)
    require(all(s >= 16 and s % 2 == 0 for s in args.sizes), "--sizes", "even sizes >= 16", args.sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="syn2seq-bench-io-") as tmp:
        for size in args.sizes:
            frames = synthetic_frames(args.frames, size)
            path = Path(tmp) / f"clip_{size}.mp4"
            enc = _best(lambda p=path, f=frames: write_video(p, f, fps=30, crf=args.crf, preset=args.preset),
                        args.repeats)
            dec = _best(lambda p=path: read_video(p), args.repeats)
            stream = _best(lambda p=path: [None for _ in iter_video_chunks(p, args.chunk)], args.repeats)
            half = _best(lambda p=path, s=size: read_video(p, size=s // 2), args.repeats)
            rows.append((size, args.frames, args.frames / enc, args.frames / dec, args.frames / stream,
                         args.frames / half, path.stat().st_size / 1024))
    print(f"video I/O, H.264 crf {args.crf} preset {args.preset}, {torch.get_num_threads()} torch threads")
    header = ("size", "frames", "encode f/s", "decode f/s", "stream f/s", "decode+resize/2 f/s", "decode/encode",
              "file KB")
    print(" | ".join(f"{h:>10}" for h in header))
    for size, n, e, d, s, h, kb in rows:
        cells = (f"{size}x{size}", n, f"{e:.1f}", f"{d:.1f}", f"{s:.1f}", f"{h:.1f}", f"{d / e:.2f}x", f"{kb:.0f}")
        print(" | ".join(f"{c:>10}" for c in cells))
    return 0
