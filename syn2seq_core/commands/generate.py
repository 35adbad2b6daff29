"""``syn2seq exo2ego|ego2exo --take DIR --out OUT``: generate a take's other view (see syn2seq_core.generation.takes)."""

from __future__ import annotations

import sys
from pathlib import Path


def add_sampling_arguments(parser) -> None:
    """The model and its sampling options (exo2ego, ego2exo, demo, eval, image2video; ranges: limits)."""
    from ..base import limits
    from ..dfot.guidance import HISTORY_GUIDANCE
    from ..dfot.scheduling import SCHEDULING_MATRICES

    parser.add_argument("--model", default=None, help="a .safetensors model (default: the bundled model)")
    parser.add_argument("--lora", default=None, metavar="FILE",
                        help="LoRA adapters (a LoRA run's lora.safetensors) merged into --model, the base they were "
                             "trained on")
    parser.add_argument("--steps", **limits.option("steps", "denoising steps", None,
                                                   default_text="default: the model's, 25; 50 on the reference "
                                                                "grid for converted DFoT models"))
    parser.add_argument("--scheduling", default="full_sequence", choices=sorted(SCHEDULING_MATRICES),
                        help="scheduling matrix (default full_sequence)")
    parser.add_argument("--guidance", default="conditional", choices=sorted(HISTORY_GUIDANCE),
                        help="history guidance (default conditional)")
    parser.add_argument("--guidance-scale", **limits.option("guidance_scale", "history guidance weight w", 1.0))
    parser.add_argument("--stabilization", **limits.option(
        "stabilization", "noise time at which generated history frames are shown to later windows "
        "(DFoT's stabilized guidance for long rollouts, e.g. 0.02; 0 = clean)", 0.0))
    parser.add_argument("--seed", **limits.option("seed", "seed of all noise", 0))
    parser.add_argument("--eta", **limits.option("eta", "DDIM stochasticity: 0 deterministic, 1 ancestral DDPM",
                                                 None, default_text="default: the model's, 0 unless it records one"))
    parser.add_argument("--device", default="cpu", type=limits.device_arg,
                        help="cpu, cuda, cuda:N, mps or xpu, one this machine has (default cpu)")


def add_generation_arguments(parser) -> None:
    """Sampling options shared by exo2ego, ego2exo, demo and eval (ranges: syn2seq_core.base.limits)."""
    from ..base import limits

    add_sampling_arguments(parser)
    parser.add_argument("--mean", action="store_true",
                        help="also the model's conditional mean (its one-shot x0 at full noise, averaged over "
                             "--mean-draws noise draws) next to the sample: <view>_mean.mp4, or scored as 'mean' "
                             "by eval. A blur where the sample commits to details; what PSNR favours")
    parser.add_argument("--mean-draws", **limits.option(
        "mean_draws", "noise draws the conditional mean averages; 1 = a single one-shot x0", 8))
    parser.add_argument("--transition-frames", **limits.option(
        "transition_frames", "transition frames between the views", None,
        default_text="default: as the model was trained"))
    parser.add_argument("--lpips-weights", action="append", default=None, metavar="FILE",
                        help="LPIPS backbone weights: torchvision's AlexNet (alexnet-owt-7be5be79.pth) and/or VGG16 "
                             "(vgg16-397923af.pth) file, or a .safetensors copy; repeat the option for both (the "
                             "network is detected from the file). Without them LPIPS is reported as unavailable")
    parser.set_defaults(_check_options=limits.check_generation_options)


def add_arguments(parser) -> None:
    from ..base import limits
    from ..geometry.reproject import DEFAULT_MEDIAN_DEPTH_M, DEPTH_ESTIMATE_KINDS

    parser.add_argument("--take", required=True, help="a take folder (exo.mp4 and/or ego.mp4 + camera files); "
                        "with --index, the name of a take of the index")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--index", default=None, metavar="FILE",
                        help="a take index (as eval --index: CSV/JSON, or syn2seq index-egoexo4d's .jsonl, whose "
                             "takes load with the index's exo camera and the true Aria camera); needs --takes")
    parser.add_argument("--takes", default=None, metavar="ROOT",
                        help="with --index: the folder its takes are under (an Ego-Exo4D release root)")
    add_generation_arguments(parser)
    parser.add_argument("--source-depth", default=None, metavar="FILE",
                        help="the source view's depth for a model with the depth_warp cue, instead of the take's "
                             "<view>_depth.safetensors: a video of a depth estimator's maps (one frame per source "
                             "frame, grey or RGB, the source video's aspect ratio) or a .safetensors with a "
                             "'depth' tensor [N, h, w]")
    parser.add_argument("--source-depth-kind", default="inverse", choices=DEPTH_ESTIMATE_KINDS,
                        help="inverse: relative inverse depth (MiDaS, Depth Anything; near is bright), depth: "
                             "relative depth, metric: metres (default inverse)")
    parser.add_argument("--source-depth-median", **limits.option(
        "depth_median_m", "relative maps are scaled so their median is this many metres (the default: the "
        "procedural world's median exo depth)", DEFAULT_MEDIAN_DEPTH_M))


def source_depth(path, kind: str, median_m: float):
    """``--source-depth FILE`` -> [N, h, w] metres (:func:`~syn2seq_core.geometry.reproject.depth_from_estimate`)."""
    from ..base.errors import require
    from ..data.takes import DEPTH_KEY
    from ..geometry.reproject import depth_from_estimate
    from ..io.video import read_video

    file = Path(path).expanduser()
    require(file.is_file(), "--source-depth", "an existing depth video or .safetensors file", f"'{file}'")
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as f:
            require(DEPTH_KEY in f.keys(), "--source-depth", f"a '{DEPTH_KEY}' tensor [N, h, w]",
                    f"tensors {sorted(f.keys())} in '{file}'")
            maps = f.get_tensor(DEPTH_KEY).float()
    else:
        maps = read_video(file)
    return depth_from_estimate(maps, kind, median_m)


def lpips_weights(args) -> dict | None:
    """``--lpips-weights`` files -> ``{"alex": path, "vgg": path}`` (each file's network detected), or None."""
    from ..base.errors import Syn2SeqInputError
    from ..metrics.frames import detect_lpips_net

    out: dict = {}
    for path in args.lpips_weights or []:
        net = detect_lpips_net(path)
        if net in out:
            raise Syn2SeqInputError("--lpips-weights", "one file per network (alex, vgg)",
                                    f"two {net} files: {out[net]} and {path}")
        out[net] = path
    return out or None


def progress_callback(desc: str):
    """A tqdm bar fed by the sampler's per-step callback; returns (callback, bar)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step", dynamic_ncols=True, file=sys.stderr)

    def callback(info: dict) -> None:
        bar.total = info["total"]
        bar.n = info["step"]
        bar.refresh()

    return callback, bar


def _metrics_text(m: dict | None) -> str:
    return "no ground truth" if m is None else f"PSNR {m['psnr']['mean']:.2f} dB, SSIM {m['ssim']['mean']:.4f}"


def sampling_options(args) -> dict:
    """The sampling keyword arguments of :func:`syn2seq_core.generation.takes.iter_take` from the shared options."""
    return dict(steps=args.steps, scheduling=args.scheduling, guidance=args.guidance,
                guidance_scale=args.guidance_scale, stabilization=args.stabilization, seed=args.seed, eta=args.eta,
                n_transition=args.transition_frames,
                with_mean=args.mean, mean_draws=args.mean_draws)


def indexed_take(args):
    """``--take NAME`` of ``--index FILE`` under ``--takes ROOT``, loaded as ``eval --index`` loads it."""
    from ..base.errors import require
    from ..data.index import load_take_of_index

    require(args.takes is not None, "--takes", "the folder the index's takes are under (with --index)", "none")
    return load_take_of_index(args.index, args.takes, args.take)


def run_one(take_dir, out, args, direction: str, model=None) -> dict:
    from ..data.takes import load_take
    from ..generation.pipeline import load_model
    from ..generation.takes import run_take, views_of
    from ..io.atomic import check_result_dir

    check_result_dir(out)  # before any expensive work
    take = indexed_take(args) if getattr(args, "index", None) else load_take(take_dir)
    if getattr(args, "source_depth", None):  # checked before the model loads
        take = take.with_depth(views_of(direction)[0], source_depth(args.source_depth, args.source_depth_kind,
                                                                    args.source_depth_median))
    model = model or load_model(args.model, device=args.device, lora=args.lora)
    callback, bar = progress_callback(f"{direction} {take.name}")
    try:
        done = run_take(take, model, direction, out, callback=callback, lpips_weights=lpips_weights(args),
                        extra={"model": str(model.path), "steps": args.steps or model.default_steps, "seed": args.seed,
                               "guidance": args.guidance, "guidance_scale": args.guidance_scale,
                               "stabilization": args.stabilization},
                        **sampling_options(args))
    finally:
        bar.close()
    paths, report = done["paths"], done["report"]
    print(f"{take.name}: {report['generated_frames']} {direction[-3:]} frames -> {paths['video']} "
          f"({_metrics_text(report['metrics'] if isinstance(report['metrics'], dict) else None)})")
    if "mean_video" in paths:
        print(f"conditional mean -> {paths['mean_video']} ({_metrics_text(report.get('mean_metrics'))})")
    return done


def run(args) -> int:
    run_one(Path(args.take), Path(args.out), args, args.command)
    return 0
