"""``syn2seq eval --takes DIR --model M``: the model and trivial baselines over many takes (table + JSON)."""

from __future__ import annotations

import sys
from pathlib import Path

from .generate import add_generation_arguments


def add_arguments(parser) -> None:
    parser.add_argument("--takes", required=True, help="a folder of take folders")
    parser.add_argument("--direction", default="exo2ego", choices=["exo2ego", "ego2exo"])
    parser.add_argument("--out", default=None, help="write the JSON report here (default: print only)")
    from .. import limits

    parser.add_argument("--limit", **limits.option("eval_takes", "evaluate only the first N takes", None,
                                                   default_text="default: all"))
    parser.add_argument("--no-baselines", action="store_true", help="skip the trivial baselines")
    parser.add_argument("--write-videos", default=None, help="also write each take's outputs under this folder")
    add_generation_arguments(parser)


def run(args) -> int:
    from tqdm import tqdm

    from ..atomic import check_result_dir
    from ..data.takes import find_takes, load_take
    from ..errors import Syn2SeqInputError
    from ..evaluation import BASELINES, format_table, score_take, summarize, training_mean_target
    from ..generation import views_of, write_json
    from ..pipeline import load_model
    from .generate import sampling_options

    takes = find_takes(args.takes)[: args.limit]
    if len(takes) < 2:
        raise Syn2SeqInputError("--takes", "a folder with at least 2 takes", f"{len(takes)} in {args.takes}")
    loaded = [load_take(t) for t in takes]
    _, tgt = views_of(args.direction)
    for take in loaded:
        if not take.has_video(tgt):
            raise Syn2SeqInputError(f"take '{take.name}'", "a ground-truth video of the generated view", "none")
    if args.write_videos:
        for take in loaded:
            check_result_dir(Path(args.write_videos) / take.name, "--write-videos")
    model = load_model(args.model, device=args.device)
    mean_target = None if args.no_baselines else training_mean_target(model, args.direction)
    scores = []  # each take is also scored against its neighbour's ground truth ("own minus other")
    for i, take in enumerate(tqdm(loaded, desc="eval", unit="take", file=sys.stderr, dynamic_ncols=True)):
        scores.append(score_take(take, loaded[(i + 1) % len(loaded)], model, args.direction,
                                 lpips_weights=args.lpips_weights, baselines=() if args.no_baselines else BASELINES,
                                 mean_target=mean_target, **sampling_options(args),
                                 write_to=Path(args.write_videos) / take.name if args.write_videos else None))
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
