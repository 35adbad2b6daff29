"""``syn2seq eval --takes DIR --model M``: the model and trivial baselines over many takes (table + JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

from .generate import add_generation_arguments


def add_arguments(parser) -> None:
    parser.add_argument("--takes", required=True, help="a folder of take folders")
    parser.add_argument("--direction", default="exo2ego", choices=["exo2ego", "ego2exo"])
    parser.add_argument("--out", default=None, help="write the JSON report here (default: print only)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N takes")
    parser.add_argument("--no-baselines", action="store_true", help="skip the trivial baselines")
    parser.add_argument("--write-videos", default=None, help="also write each take's outputs under this folder")
    add_generation_arguments(parser)


def run(args) -> int:
    from tqdm import tqdm

    from ..data.takes import find_takes, load_take
    from ..errors import Syn2SeqInputError
    from ..evaluation import (BASELINES, TakeScores, baseline_frames, format_table, score_methods, summarize,
                              training_mean_target)
    from ..generation import generate_take, views_of, write_json, write_result
    from ..pipeline import load_model

    takes = find_takes(args.takes)[: args.limit]
    if len(takes) < 2:
        raise Syn2SeqInputError("--takes", "a folder with at least 2 takes", f"{len(takes)} in {args.takes}")
    model = load_model(args.model, device=args.device)
    mean_target = None if args.no_baselines else training_mean_target(model, args.direction)
    loaded = [load_take(t) for t in takes]
    _, tgt = views_of(args.direction)
    for take in loaded:
        if not take.has_video(tgt):
            raise Syn2SeqInputError(f"take '{take.name}'", "a ground-truth video of the generated view", "none")
    results = []  # generate everything first: each take is scored against its neighbour's ground truth too
    for take in tqdm(loaded, desc="eval", unit="take", file=sys.stderr, dynamic_ncols=True):
        result = generate_take(take, model, args.direction, steps=args.steps, scheduling=args.scheduling,
                               guidance=args.guidance, guidance_scale=args.guidance_scale, seed=args.seed, eta=args.eta,
                               n_transition=args.transition_frames, lpips_weights=args.lpips_weights,
                               with_mean=args.mean, mean_draws=args.mean_draws)
        results.append(result)
        if args.write_videos:
            write_result(result, Path(args.write_videos) / take.name)
    scores = []
    for i, result in enumerate(results):
        preds = {"sample": result.generated}
        if result.mean is not None:
            preds["mean"] = result.mean
        if not args.no_baselines:
            for name in BASELINES:
                frames = baseline_frames(name, result.source, len(result.generated), mean_target)
                if frames is not None:
                    preds[name] = frames
        other = results[(i + 1) % len(results)].target
        reports, own, other_psnr = score_methods(preds, result.target, other, args.lpips_weights,
                                                 known={"sample": result.metrics, "mean": result.mean_metrics})
        scores.append(TakeScores(result.take_name, reports, own, other_psnr))
    summary = summarize(scores)
    print(format_table(summary))
    if args.out:
        write_json(Path(args.out), {"summary": summary, "model": str(model.path), "steps": args.steps, "eta": args.eta,
                                    "seed": args.seed, "direction": args.direction,
                                    "mean_draws": args.mean_draws if args.mean else None,
                                    "per_take": [{"take": s.name, "methods": s.per_method, "own_psnr": s.own_psnr,
                                                  "other_psnr": s.other_psnr} for s in scores]})
        print(f"report: {args.out}")
    return 0
