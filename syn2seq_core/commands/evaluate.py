"""``syn2seq eval --takes DIR --model M``: the model, trivial baselines and other systems' videos over many takes,
overall and per category (terminal table; with ``--out``: JSON, CSV / Markdown / LaTeX tables and plots)."""

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
    parser.add_argument("--index", default=None,
                        help="a take index (CSV with a header 'take,category,split', or JSON; docs/evaluation.md), or "
                             "an Ego-Exo4D index.jsonl of syn2seq index-egoexo4d (then --takes is the release "
                             "root): score these takes, with these categories")
    parser.add_argument("--split", default=None, help="with --index: only the takes of this split (e.g. test)")
    parser.add_argument("--i3d", default=None, metavar="FILE",
                        help="the FVD network: StyleGAN-V's i3d_torchscript.pt (read without running its code) or a "
                             ".safetensors copy (docs/fvd.md); without it FVD is reported as unavailable")
    parser.add_argument("--videos", action="append", default=[], metavar="LABEL=DIR",
                        help="also score another system's videos as method LABEL: DIR/<take>/<view>.mp4 or "
                             "DIR/<take>.mp4 per take (repeatable)")
    parser.add_argument("--write-videos", default=None, help="also write each take's outputs under this folder")
    add_generation_arguments(parser)


def run(args) -> int:
    from tqdm import tqdm

    from ..atomic import check_result_dir
    from ..data.takes import find_takes, load_take
    from ..errors import Syn2SeqInputError
    from ..evaluation import (BASELINES, external_video, format_table, frame_curves, score_take,
                              summarize_categories, training_mean_target)
    from ..generation import views_of, write_json
    from ..pipeline import load_model
    from ..reports import write_plots, write_tables
    from .generate import lpips_weights, sampling_options

    if args.index:  # a take index (CSV / JSON), or an Ego-Exo4D index whose entries load through it
        from ..data.index import load_takes, read_index, select, take_folders

        entries = select(read_index(args.index), args.split)
        take_folders(args.takes, entries, args.index)  # every entry's folder there, before any work
        entries = entries[: args.limit]
        if len(entries) < 2:
            raise Syn2SeqInputError("--index", "at least 2 takes (of the split)", f"{len(entries)} in {args.index}")
        loaded = load_takes(args.takes, entries, args.index)
        categories = [e.category for e in entries]
        sources = [None if e.egoexo4d is None else {k: getattr(e.egoexo4d, k) for k in (
            "take_uid", "split", "exo_camera", "exo_camera_reason", "ego_camera")} for e in entries]
    else:
        if args.split:
            raise Syn2SeqInputError("--split", "an --index that lists the splits", "no --index")
        takes = find_takes(args.takes)[: args.limit]
        if len(takes) < 2:
            raise Syn2SeqInputError("--takes", "a folder with at least 2 takes", f"{len(takes)} in {args.takes}")
        loaded = [load_take(t) for t in takes]
        categories = sources = [None] * len(loaded)
    _, tgt = views_of(args.direction)
    roots = _roots(args.videos)
    external = {label: {t.name: external_video(root, t.name, tgt, label) for t in loaded}
                for label, root in roots.items()}  # every video found before any work
    for take in loaded:
        if not take.has_video(tgt):
            raise Syn2SeqInputError(f"take '{take.name}'", "a ground-truth video of the generated view", "none")
    if args.write_videos:
        for take in loaded:
            check_result_dir(Path(args.write_videos) / take.name, "--write-videos")
    lpips = lpips_weights(args)  # files checked before the model loads
    i3d = None
    if args.i3d is not None:
        from ..fvd import load_i3d

        if not Path(args.i3d).is_file():
            raise Syn2SeqInputError("--i3d", "an I3D weights file (docs/fvd.md)", f"no file '{args.i3d}'")
        i3d = load_i3d(args.i3d).to(args.device)
    model = load_model(args.model, device=args.device, lora=args.lora)
    mean_target = None if args.no_baselines else training_mean_target(model, args.direction)
    scores = []  # each take is also scored against its neighbour's ground truth ("own minus other")
    for i, take in enumerate(tqdm(loaded, desc="eval", unit="take", file=sys.stderr, dynamic_ncols=True)):
        scores.append(score_take(take, loaded[(i + 1) % len(loaded)], model, args.direction,
                                 lpips_weights=lpips, baselines=() if args.no_baselines else BASELINES,
                                 mean_target=mean_target, **sampling_options(args),
                                 external={label: paths[take.name] for label, paths in external.items()},
                                 category=categories[i] or take.category, i3d=i3d,
                                 write_to=Path(args.write_videos) / take.name if args.write_videos else None))
    summaries = summarize_categories(scores)
    curves = frame_curves(scores)
    summary = summaries["overall"]
    print(format_table(summary))
    for category, part in summaries["categories"].items():
        print(f"\ncategory {category}: " + format_table(part))
    if args.out:
        out = Path(args.out)
        write_json(out, {"summary": summary, "categories": summaries["categories"], "model": str(model.path),
                         "steps": args.steps or model.default_steps,
                         "eta": model.default_eta if args.eta is None else args.eta, "seed": args.seed,
                         "direction": args.direction,
                         "mean_draws": args.mean_draws if args.mean else None, "index": args.index,
                         "split": args.split, "i3d": args.i3d,
                         "external": {k: str(v) for k, v in roots.items()}, "frame_curves": curves,
                         "per_take": [{"take": s.name, "category": s.category, "methods": s.per_method,
                                       "own_psnr": s.own_psnr, "other_psnr": s.other_psnr,
                                       **({"egoexo4d": src} if src else {})} for s, src in zip(scores, sources)]})
        stem = out.with_suffix("")
        tables = write_tables(stem, summaries, caption=f"{args.direction}, {len(scores)} takes")
        plots, skipped = write_plots(stem, scores, curves)
        print(f"report: {out}; tables: {', '.join(str(p) for p in tables.values())}")
        print(f"plots: {', '.join(str(p) for p in plots.values())}" if plots else f"plots skipped: {skipped}")
    return 0


def _roots(specs: list[str]) -> dict[str, Path]:
    """``LABEL=DIR`` options -> label -> folder (labels unique, not those of the built-in methods)."""
    from ..errors import Syn2SeqInputError
    from ..evaluation import BASELINES

    out: dict[str, Path] = {}
    for spec in specs:
        label, sep, folder = spec.partition("=")
        label = label.strip()
        if not sep or not label or not folder:
            raise Syn2SeqInputError("--videos", "LABEL=DIR (e.g. wan=outputs/wan)", repr(spec))
        if label in out or label in ("sample", "mean", *BASELINES):
            raise Syn2SeqInputError("--videos", "a label not used by another method", repr(label))
        if not Path(folder).is_dir():
            raise Syn2SeqInputError(f"--videos {label}", "a folder of videos", f"no folder '{folder}'")
        out[label] = Path(folder)
    return out
