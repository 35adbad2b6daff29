"""``syn2seq image2video --image A.png [--image B.png ...] --cameras CAMS --model M --out DIR``: a video along a
camera track from one or more images, with any DFoT-family model (see syn2seq_core.generation.image2video).

Writes ``DIR/video.mp4`` (every frame, the given images included), ``DIR/cameras.json`` (the track at the
model's size) and ``DIR/image2video.json`` (what was run); the folder appears complete or not at all.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(parser) -> None:
    from ..base import limits
    from ..generation.image2video import DEFAULT_KEYFRAME_DENSITY, MODES
    from .generate import add_sampling_arguments

    parser.add_argument("--image", action="append", required=True, metavar="FILE",
                        help="a PNG/JPEG image; repeat for several (placed at --image-frames)")
    from ..geometry.camera_paths import PRESETS

    track = parser.add_mutually_exclusive_group(required=True)
    track.add_argument("--cameras",
                       help="the camera track: a file or folder in any format load_cameras reads (cameras.json, "
                            "RealEstate10K .txt, transforms.json, COLMAP), one camera per output frame")
    track.add_argument("--path", choices=PRESETS,
                       help="or a built track (geometry.camera_paths, as the Syn2Seq Camera Path node): first camera "
                            "at (0, -4, 1.6) looking at (0, 0, 1), world z up")
    built = parser.add_argument_group("--path")
    built.add_argument("--path-frames", **limits.option("path_frames", "cameras of the built track", 25))
    built.add_argument("--fov", **limits.option("fov_deg", "horizontal field of view, degrees", 60.0))
    built.add_argument("--angle", **limits.option("path_angle", "orbit / pan / tilt sweep, degrees", 90.0))
    built.add_argument("--distance", **limits.option("path_distance", "dolly / look_at travel, metres", 2.0))
    built.add_argument("--speed", **limits.option("path_speed", "walk speed, m/s", 1.4))
    built.add_argument("--keyframes", default=None, help="--path keyframes: a JSON file with the keyframe list")
    parser.add_argument("--cameras-format", default="auto", help="the camera file's format (default auto)")
    parser.add_argument("--image-frames", default=None,
                        help="comma-separated frame of each image in the track (negative from the end), e.g. 0,-1 "
                             "for first and last (default: the first frames)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--mode", default="sliding", choices=MODES,
                        help="sliding window along the track, or keyframes first then the frames between them")
    parser.add_argument("--keyframe-density", **limits.option(
        "keyframe_density", "share of the frames generated first as keyframes (--mode keyframes)",
        DEFAULT_KEYFRAME_DENSITY))
    parser.add_argument("--fps", **limits.option("fps", "frame rate of the video", 10.0))
    add_sampling_arguments(parser)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from ..base.errors import Syn2SeqInputError
    from ..generation.image2video import fit_image, image_sequence, iter_image_to_video
    from ..generation.pipeline import load_model
    from ..generation.takes import write_json
    from ..io.atomic import check_result_dir, result_dir
    from ..io.poses import load_cameras
    from ..io.poses import save_cameras
    from ..io.video import read_image, write_video

    out = check_result_dir(Path(args.out))
    frames_at = None
    if args.image_frames is not None:
        try:
            frames_at = [int(x) for x in args.image_frames.split(",")]
        except ValueError:
            raise Syn2SeqInputError("--image-frames", "comma-separated integers, e.g. 0,-1",
                                    repr(args.image_frames)) from None
    images = [read_image(p) for p in args.image]  # every input checked before the model loads
    if args.path is not None:
        from ..geometry.camera_paths import camera_path

        keyframes = None
        if args.path == "keyframes":
            if args.keyframes is None or not Path(args.keyframes).is_file():
                raise Syn2SeqInputError("--keyframes", "a JSON file of keyframes for --path keyframes",
                                        repr(args.keyframes))
            keyframes = Path(args.keyframes).read_text(encoding="utf-8")
        cameras = camera_path(args.path, args.path_frames, 256, 256, fov_deg=args.fov, fps=args.fps,
                              angle_deg=args.angle, distance=args.distance, speed=args.speed, keyframes=keyframes)
    else:
        cameras = load_cameras(args.cameras, format=args.cameras_format)
    model = load_model(args.model, device=args.device, lora=args.lora)
    height, width = model.size
    cameras = cameras.resize_and_center_crop((width, height))
    fitted = torch.stack([fit_image(im, width, height) for im in images])
    sequence = image_sequence(fitted, cameras, frames_at)
    bar = tqdm(desc="image2video", unit="step", dynamic_ncols=True, file=sys.stderr)

    def callback(info):
        bar.total, bar.n = info["total"], info["step"]
        bar.set_postfix_str(f"pass {info['pass'] + 1}/{info['passes']}")
        bar.refresh()

    frames = sequence.frames.clone()
    order = []
    try:
        for name, index, part in iter_image_to_video(
                model, sequence, mode=args.mode, keyframe_density=args.keyframe_density, callback=callback,
                steps=args.steps, scheduling=args.scheduling, guidance=args.guidance,
                guidance_scale=args.guidance_scale, stabilization=args.stabilization, seed=args.seed, eta=args.eta):
            frames[index] = part.to(frames.dtype)
            order.append({"pass": name, "frames": index})
    finally:
        bar.close()
    with result_dir(out) as folder:
        write_video(folder / "video.mp4", frames, fps=args.fps)
        save_cameras(cameras, folder / "cameras.json")
        write_json(folder / "image2video.json", {
            "model": str(model.path), "images": [str(p) for p in args.image], "cameras": str(args.cameras) if args.path is None else f"path {args.path}",
            "image_frames": [int(i) for i in (frames_at or range(len(images)))], "frames": len(frames),
            "size": [width, height], "mode": args.mode, "keyframe_density": args.keyframe_density,
            "steps": args.steps or model.default_steps, "guidance": args.guidance,
            "guidance_scale": args.guidance_scale, "stabilization": args.stabilization, "seed": args.seed,
            "camera_convention": model.camera_convention, "generation_order": order})
    print(f"{len(frames)} frames ({args.mode}) -> {out / 'video.mp4'}")
    return 0
