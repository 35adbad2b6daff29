"""``syn2seq bench interpolation``: reconstruct dropped frames of a real clip with each interpolator.

Keeps every g-th frame (g = 2: drop every other frame; g = 4: drop 3 of every 4), rebuilds the dropped
frames from the kept pairs with each backend (times k / g) and prints PSNR and SSIM against the true
frames, the gain over the ``blend`` baseline and frames/s, all measured side by side in this run.
Also times the ``flow`` backend on 256x256 frames. Default clip: the 48-frame real bikes clip in
``tests/fixtures/interp`` (see its NOTICE.md). Targets: rife and flow beat blend by >= 2 dB at gap 2;
flow makes >= 20 frames/s at 256x256.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..base.errors import Syn2SeqInputError, require

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "interp" / "bikes_fence_48f_256.mp4"
DEFAULT_BACKENDS = "blend,flow,flow+occlusion,rife"
TARGET_GAIN_DB = 2.0
TARGET_FLOW_FPS = 20.0
SPEED_SIZE = 256


def add_arguments(parser) -> None:
    parser.add_argument("--video", default=str(DEFAULT_CLIP), help="clip to test on (default: the bikes fixture)")
    parser.add_argument("--frames", type=int, default=48, help="use the first N frames (default 48)")
    parser.add_argument("--gaps", default="2,4", help="comma-separated gaps (default 2,4)")
    parser.add_argument("--backends", default=DEFAULT_BACKENDS,
                        help=f"comma-separated backends; 'flow+occlusion' is flow with occlusion=True "
                             f"(default {DEFAULT_BACKENDS})")
    parser.add_argument("--rife-weights", default=None, help="RIFE checkpoint (default: the usual search)")
    parser.add_argument("--comfyui", default=None, help="ComfyUI root to search for RIFE weights")
    parser.add_argument("--speed-pairs", type=int, default=24, help="pairs timed for flow at 256x256 (default 24)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and OpenCV threads for this run (default 1: steady timings on a shared CPU; "
                             "0 leaves the libraries' defaults)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def _build(spec: str, args):
    from ..interpolation import get_interpolator

    name, _, extra = spec.partition("+")
    options = {}
    if extra:
        require(name == "flow" and extra == "occlusion", "backend", "a backend name or 'flow+occlusion'", spec)
        options["occlusion"] = True
    if name == "rife":
        options.update(weights=args.rife_weights, comfyui_path=args.comfyui)
    return get_interpolator(name, **options)


def reconstruct(video, gap: int, interp):
    """Rebuild the frames between every ``gap``-th frame. video [T, 3, H, W] -> (pred, target [M, 3, H, W], s)."""
    import torch

    from ..interpolation import interpolate

    keys = list(range(0, len(video), gap))
    keys = [k for k in keys if k + gap < len(video)]
    require(len(keys) >= 1, "clip", f"at least {gap + 1} frames for gap {gap}", len(video))
    interpolate(video[0], video[gap], gap - 1, interp)  # warm-up: allocations, lazy imports
    preds, targets, seconds = [], [], 0.0
    for k in keys:
        t0 = time.perf_counter()
        preds.append(interpolate(video[k], video[k + gap], gap - 1, interp))
        seconds += time.perf_counter() - t0
        targets.append(video[k + 1:k + gap])
    return torch.cat(preds), torch.cat(targets), seconds


def flow_speed(video, pairs: int, interp) -> float:
    """Frames/s of ``interp`` making one middle frame per pair on frames resized to 256x256."""
    import torch.nn.functional as F

    from ..interpolation import interpolate
    from ..io.video import frames_per_second

    small = F.interpolate(video[:pairs + 1], size=(SPEED_SIZE, SPEED_SIZE), mode="bilinear", antialias=True,
                          align_corners=False).clamp(0, 1)
    interpolate(small[0], small[1], 1, interp)  # warm-up
    t0 = time.perf_counter()
    out = interpolate(small[:-1], small[1:], 1, interp)
    return frames_per_second(out.shape[0] * out.shape[1], time.perf_counter() - t0)


def run(args) -> int:
    import cv2
    import torch

    from ..io.video import frames_per_second, read_video
    from ..metrics.frames import psnr, ssim

    require(args.threads >= 0, "--threads", "an int >= 0", args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    clip = Path(args.video)
    if not clip.is_file():
        raise Syn2SeqInputError("--video", "an existing clip", f"no file at '{clip}'",
                                "The default clip lives in the source tree (tests/fixtures/interp); pass --video")
    try:
        gaps = [int(g) for g in args.gaps.split(",") if g.strip()]
    except ValueError:
        raise Syn2SeqInputError("--gaps", "comma-separated ints >= 2", args.gaps) from None
    require(gaps and all(g >= 2 for g in gaps), "--gaps", "comma-separated ints >= 2", args.gaps)
    video = read_video(clip, stop=args.frames)
    print(f"clip {clip.name}: {video.shape[0]} frames {video.shape[3]}x{video.shape[2]}; "
          f"threads: torch {torch.get_num_threads()}, OpenCV {cv2.getNumThreads()}")

    backends, skipped = {}, {}
    for spec in [s.strip() for s in args.backends.split(",") if s.strip()]:
        try:
            backends[spec] = _build(spec, args)
        except Syn2SeqInputError as e:
            if not spec.startswith("rife"):
                raise
            skipped[spec] = str(e)
    for spec, why in skipped.items():
        print(f"  {spec}: skipped ({why})")
    if "blend" not in backends:
        backends = {"blend": _build("blend", args), **backends}
    if "rife" in backends:
        print(f"  rife weights: {backends['rife'].path} ({backends['rife'].config.describe()})")

    results = {"clip": str(clip), "frames": int(video.shape[0]), "gaps": {}, "skipped": skipped}
    for gap in gaps:
        rows = {}
        for spec, interp in backends.items():
            pred, target, seconds = reconstruct(video, gap, interp)
            rows[spec] = {"psnr": float(psnr(pred, target).mean()), "ssim": float(ssim(pred, target).mean()),
                          "fps": frames_per_second(len(pred), seconds), "frames": len(pred)}
        base = rows["blend"]["psnr"]
        for row in rows.values():
            row["gain_db"] = row["psnr"] - base
        results["gaps"][gap] = rows
        print(f"\ngap {gap} (drop {gap - 1} of every {gap}; {rows['blend']['frames']} frames rebuilt)")
        print(f"  {'backend':<16}{'PSNR dB':>9}{'vs blend':>10}{'SSIM':>8}{'frames/s':>10}")
        for spec, row in rows.items():
            print(f"  {spec:<16}{row['psnr']:>9.2f}{row['gain_db']:>+10.2f}{row['ssim']:>8.4f}{row['fps']:>10.1f}")

    speed = flow_speed(video, min(args.speed_pairs, len(video) - 1), backends.get("flow") or _build("flow", args))
    results["flow_fps_256"] = speed
    print(f"\nflow at {SPEED_SIZE}x{SPEED_SIZE}: {speed:.1f} frames/s (target >= {TARGET_FLOW_FPS:g})")
    if 2 in results["gaps"]:
        for spec in ("flow", "rife"):
            if spec in results["gaps"][2]:
                gain = results["gaps"][2][spec]["gain_db"]
                print(f"{spec} vs blend at gap 2: {gain:+.2f} dB (target >= +{TARGET_GAIN_DB:g}): "
                      f"{'met' if gain >= TARGET_GAIN_DB else 'MISSED'}")
    print(f"flow speed target: {'met' if speed >= TARGET_FLOW_FPS else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
