"""``syn2seq eval --takes DIR [--model M | --no-model]``: a model, trivial baselines and other systems' videos over many
takes, overall and per category, at one evaluation resolution (terminal table; with ``--out``: JSON, CSV / Markdown
/ LaTeX tables in two layouts and plots).

Every input is checked before the model loads (takes and their cameras, every other system's video decoded through
the frames it needs, every weights file, every output path), and the outputs (``--out`` files, ``--write-videos``
folders) are staged and moved into place only when every take has been scored: a run completes or leaves nothing
new."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager, suppress
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
    parser.add_argument("--category", action="append", default=None, metavar="NAME",
                        help="with --index: only the takes of this category (repeatable), e.g. 'Cooking'")
    parser.add_argument("--eval-size", default=None, metavar="N|WxH|model",
                        help="the evaluation resolution every method is scored at: N (N x N), WxH, or 'model' (the "
                             "model's own). Ground truth, generated frames and other systems' videos are centre-"
                             "cropped to its aspect and resized with one filter (antialiased bicubic; "
                             "docs/evaluation.md). Default: 'model' with a model, 256 with --no-model")
    parser.add_argument("--no-model", action="store_true",
                        help="load no model: score only --videos and the trivial baselines (copy_last, flat_color)")
    parser.add_argument("--i3d", default=None, metavar="FILE",
                        help="the FVD network: StyleGAN-V's i3d_torchscript.pt (read without running its code) or a "
                             ".safetensors copy (docs/fvd.md); without it FVD is reported as unavailable")
    parser.add_argument("--inception", default=None, metavar="FILE",
                        help="the FID network: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (read as weights "
                             "only) or a .safetensors copy (docs/fvd.md); without it FID is reported as unavailable")
    parser.add_argument("--videos", action="append", default=[], metavar="LABEL=DIR",
                        help="also score another system's videos as method LABEL: DIR/<take>/<view>.mp4 or "
                             "DIR/<take>.mp4 per take (repeatable)")
    parser.add_argument("--write-videos", default=None, help="also write each take's outputs under this folder")
    add_generation_arguments(parser)


def run(args) -> int:
    import time

    from tqdm import tqdm

    from ..errors import Syn2SeqInputError
    from ..evaluation import (
        BASELINES,
        DEFAULT_EVAL_SIZE,
        EVAL_FILTER,
        default_reference,
        format_table,
        frame_curves,
        parse_eval_size,
        score_take,
        summarize_categories,
        training_mean_target,
    )
    from ..generation import views_of
    from ..metrics import PSNR_CAP_DB
    from .generate import lpips_weights, sampling_options

    started = time.monotonic()
    _check_model_options(args)
    eval_size = parse_eval_size(args.eval_size if args.eval_size is not None
                                else (str(DEFAULT_EVAL_SIZE) if args.no_model else "model"))
    loaded, categories, sources = _load_takes(args)
    src, tgt = views_of(args.direction)
    roots = _roots(args.videos)
    external = _check_takes_and_videos(loaded, roots, src, tgt, needs_source=not args.no_model)
    outputs = _check_outputs(args, loaded)
    lpips = lpips_weights(args)  # files checked before the model loads
    i3d = _load_i3d(args)
    inception = _load_inception(args)
    baselines = () if args.no_baselines else tuple(b for b in BASELINES if not (args.no_model and b == "mean_target"))
    if args.no_model and not baselines and not roots:
        raise Syn2SeqInputError("--no-model", "something to score: --videos LABEL=DIR or the baselines",
                                "--no-baselines and no --videos")
    model = None
    if not args.no_model:
        from ..pipeline import load_model

        model = load_model(args.model, device=args.device, lora=args.lora)
        _check_aspect(model, eval_size)
        _check_model_inputs(model, loaded, src)
    mean_target = None if (args.no_baselines or model is None) else training_mean_target(model, args.direction)
    h, w = eval_size if eval_size is not None else model.size
    size_text = (f"{w}x{h}, {EVAL_FILTER}" if eval_size is not None else
                 f"{w}x{h}, the model's resolution (every video read at that size by the decoder)")
    reference = "sample" if model is not None else default_reference(list(roots))
    settings = [f"Evaluated at {w}x{h} pixels ({'every method resized to it' if eval_size else 'the model size'}).",
                f"PSNR per frame capped at {PSNR_CAP_DB:g} dB (identical frames), averaged over frames, then takes."]
    with ExitStack() as stack:
        if args.write_videos:
            stack.enter_context(_removed_unless_used(Path(args.write_videos)))
        staged = {name: stack.enter_context(_staged_result(path)) for name, path in outputs["folders"].items()}
        scores = []  # each take is also scored against its neighbour's ground truth ("own minus other")
        for i, take in enumerate(tqdm(loaded, desc="eval", unit="take", file=sys.stderr, dynamic_ncols=True)):
            scores.append(score_take(take, loaded[(i + 1) % len(loaded)] if len(loaded) > 1 else None, model,
                                     args.direction, eval_size=eval_size, lpips_weights=lpips, baselines=baselines,
                                     mean_target=mean_target,
                                     external={label: paths[take.name] for label, paths in external.items()},
                                     category=categories[i] or take.category, i3d=i3d, inception=inception,
                                     write_to=staged.get(take.name),
                                     **(sampling_options(args) if model is not None else {})))
        summaries = summarize_categories(scores, reference)
        curves = frame_curves(scores)
        summary = summaries["overall"]
        print(format_table(summary))
        for category, part in summaries["categories"].items():
            print(f"\ncategory {category}: " + format_table(part))
        if args.out:
            files, skipped = _render_report(args, outputs["out"], model, summaries, curves, scores, sources,
                                             roots, eval_size, settings, reference)
            _commit_files(files)  # the report files; the staged take folders follow as the stack closes
            tables = [p for p in files if p.suffix in (".csv", ".md", ".tex")]
            plots = [p for p in files if p.suffix == ".png"]
            print(f"report: {outputs['out']}; tables: {', '.join(str(p) for p in tables)}")
            print(f"plots: {', '.join(str(p) for p in plots)}" if plots else f"plots skipped: {skipped}")
    print(f"evaluated {len(scores)} takes at {size_text} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _check_model_options(args) -> None:
    """--no-model refuses what only a model uses."""
    from ..errors import Syn2SeqInputError

    if not args.no_model:
        return
    for flag, value in (("--model", args.model), ("--lora", args.lora), ("--mean", args.mean or None),
                        ("--write-videos", args.write_videos), ("--steps", args.steps)):
        if value is not None:
            raise Syn2SeqInputError("--no-model", "no option that needs a model", f"{flag} as well",
                                    "Leave out --no-model to score a model, or the option to score videos only")
    if args.eval_size is not None and str(args.eval_size).strip().lower() == "model":
        raise Syn2SeqInputError("--eval-size", "N or WxH with --no-model (there is no model size)", "'model'")


def _load_takes(args):
    """The takes to score (by index, split and category, or every take folder), their categories and, for an
    Ego-Exo4D index, where each came from. One take is enough (its means then have no CI)."""
    from ..data.takes import find_takes, load_take
    from ..errors import Syn2SeqInputError

    if args.index:  # a take index (CSV / JSON), or an Ego-Exo4D index whose entries load through it
        from ..data.index import load_takes, read_index, select, take_folders

        entries = select(read_index(args.index), args.split)
        if args.category:
            known = sorted({e.category for e in entries if e.category})
            for name in args.category:
                if name not in known:
                    raise Syn2SeqInputError("--category", f"one of {known} (the categories of "
                                            f"{'split ' + repr(args.split) if args.split else 'the index'})",
                                            repr(name))
            entries = [e for e in entries if e.category in args.category]
        take_folders(args.takes, entries, args.index)  # every entry's folder there, before any work
        entries = entries[: args.limit]
        if not entries:
            raise Syn2SeqInputError("--index", "at least 1 take (of the split)", f"none in {args.index}")
        loaded = load_takes(args.takes, entries, args.index)
        categories = [e.category for e in entries]
        sources = [None if e.egoexo4d is None else {k: getattr(e.egoexo4d, k) for k in (
            "take_uid", "split", "exo_camera", "exo_camera_reason", "ego_camera")} for e in entries]
        return loaded, categories, sources
    if args.split:
        raise Syn2SeqInputError("--split", "an --index that lists the splits", "no --index")
    if args.category:
        raise Syn2SeqInputError("--category", "an --index that lists the categories", "no --index")
    takes = find_takes(args.takes)[: args.limit]
    if not takes:
        raise Syn2SeqInputError("--takes", "a folder with at least 1 take", f"none in {args.takes}")
    loaded = [load_take(t) for t in takes]
    return loaded, [None] * len(loaded), [None] * len(loaded)


def _check_takes_and_videos(loaded, roots: dict, src: str, tgt: str, needs_source: bool) -> dict:
    """Every take's ground truth and cameras, and every other system's video (found, and decoded through the frames
    it needs), before any work. Returns label -> take name -> video."""
    from ..errors import Syn2SeqInputError
    from ..evaluation import check_external_video, external_video

    for take in loaded:
        if not take.has_video(tgt):
            raise Syn2SeqInputError(f"take '{take.name}'", "a ground-truth video of the generated view", "none")
        if not take.has_video(src):
            raise Syn2SeqInputError(f"take '{take.name}'", f"a {src} video (the source view)", "none")
        for view in (src, tgt) if needs_source else (tgt,):
            take.view_cameras(view)  # raises, naming the take, when its cameras do not fit its frames
    external = {label: {t.name: external_video(root, t.name, tgt, label) for t in loaded}
                for label, root in roots.items()}  # every video found before any is decoded
    for label, paths in external.items():
        for take in loaded:
            check_external_video(paths[take.name], take.num_frames(tgt), label, take.name, tgt)
    return external


def _report_files(out: Path) -> list[Path]:
    from ..reports import plot_paths, table_paths

    stem = out.with_suffix("")
    return [out, *table_paths(stem).values(), *plot_paths(stem).values()]


def _check_outputs(args, loaded) -> dict:
    """Every output path, before any work: the --out report and its tables and plots (no folder in the way, a
    folder that can be created and written), and each take's --write-videos folder (atomic.check_result_dir)."""
    from ..atomic import check_result_dir
    from ..errors import Syn2SeqInputError

    out = None
    if args.out:
        out = Path(args.out).expanduser()
        for path in _report_files(out):
            if path.is_dir():
                raise Syn2SeqInputError("--out", f"a file path for {path.name}", f"the folder '{path}'")
        _check_writable_dir(out.parent, "--out")
    folders = {}
    if args.write_videos:
        for take in loaded:
            folders[take.name] = check_result_dir(Path(args.write_videos) / take.name, "--write-videos")
    return {"out": out, "folders": folders}


def _check_writable_dir(folder: Path, name: str) -> None:
    """``folder`` exists as a writable folder, or can be created (its nearest existing ancestor is one)."""
    from ..errors import Syn2SeqInputError

    probe = folder
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise Syn2SeqInputError(name, "a path inside a folder", f"'{probe}' is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise Syn2SeqInputError(name, "a folder this user can write", f"'{probe}' is not writable")


@contextmanager
def _removed_unless_used(folder: Path):
    """A folder this run creates (the --write-videos root) is removed again, if still empty, when the run fails."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed:
            with suppress(OSError):
                folder.rmdir()
        raise


def _staged_result(dest: Path):
    """The staging folder of one take's result set; it replaces ``dest`` when the whole run succeeds."""
    from ..atomic import result_dir

    return result_dir(dest, "--write-videos")


def _load_i3d(args):
    from ..errors import Syn2SeqInputError

    if args.i3d is None:
        return None
    from ..fvd import load_i3d

    if not Path(args.i3d).is_file():
        raise Syn2SeqInputError("--i3d", "an I3D weights file (docs/fvd.md)", f"no file '{args.i3d}'")
    return load_i3d(args.i3d).to(args.device)


def _load_inception(args):
    from ..errors import Syn2SeqInputError

    if args.inception is None:
        return None
    from ..fid import load_inception

    if not Path(args.inception).is_file():
        raise Syn2SeqInputError("--inception", "an FID Inception weights file (docs/fvd.md)",
                                f"no file '{args.inception}'")
    return load_inception(args.inception).to(args.device)


def _check_aspect(model, eval_size) -> None:
    """An evaluation size with the model's aspect ratio: frames of another aspect would be cropped differently
    from the ground truth."""
    from ..errors import Syn2SeqInputError

    if eval_size is None:
        return
    (mh, mw), (h, w) = model.size, eval_size
    if mh * w != mw * h:
        raise Syn2SeqInputError("--eval-size", f"the aspect ratio of model '{model.path}' ({mw}x{mh})", f"{w}x{h}",
                                f"Use --eval-size WxH with that aspect (e.g. {mw * 256 // mh}x256) or 'model'")


def _check_model_inputs(model, loaded, src: str) -> None:
    """What the model needs of every take, before any take is generated: the source view's depth for a cue model
    that cannot run without it (the error names the model and the take: Syn2SeqModel.without_cue)."""
    if model.config.cue == "none" or model.cue_optional:
        return
    for take in loaded:
        if take.depth(src) is None:
            model.without_cue(None, f"take '{take.path}' without {src} depth ({src}_depth.safetensors)")


def _render_report(args, out: Path, model, summaries, curves, scores, sources, roots, eval_size, settings,
                   reference) -> tuple[dict[Path, bytes], str | None]:
    """Every report file (path -> bytes), nothing written yet, and why the plots were skipped (or None)."""
    import json

    from ..evaluation import EVAL_FILTER
    from ..fid import MINIMUM_FRAMES
    from ..fvd import MINIMUM_VIDEOS
    from ..metrics import PSNR_CAP_DB
    from ..reports import render_plots, render_tables

    h, w = eval_size if eval_size is not None else model.size
    report = {"summary": summaries["overall"], "categories": summaries["categories"],
              "model": None if model is None else str(model.path),
              "eval_size": {"width": w, "height": h, "mode": "fixed" if eval_size is not None else "model",
                            "resize": EVAL_FILTER if eval_size is not None else "the decoder's, at the model size"},
              "psnr": f"per frame, capped at {PSNR_CAP_DB:g} dB, mean over frames then takes",
              "psnr_cap_db": PSNR_CAP_DB, "reference": reference,
              "set_metrics": {"fvd_stable_from_videos": MINIMUM_VIDEOS, "fid_stable_from_frames": MINIMUM_FRAMES},
              "direction": args.direction, "index": args.index, "split": args.split, "category": args.category,
              "i3d": args.i3d, "inception": args.inception, "external": {k: str(v) for k, v in roots.items()},
              "frame_curves": curves,
              "per_take": [{"take": s.name, "category": s.category, "methods": s.per_method,
                            "own_psnr": s.own_psnr, "other_psnr": s.other_psnr,
                            **({"egoexo4d": src} if src else {})} for s, src in zip(scores, sources)]}
    if model is not None:
        report.update({"steps": args.steps or model.default_steps,
                       "eta": model.default_eta if args.eta is None else args.eta, "seed": args.seed,
                       "mean_draws": args.mean_draws if args.mean else None})
    stem = out.with_suffix("")
    caption = f"{args.direction}, {len(scores)} takes" + (f", split {args.split}" if args.split else "")
    files = {out: (json.dumps(report, indent=2) + "\n").encode("utf-8")}
    files.update(render_tables(stem, summaries, caption, settings))
    plots, skipped = render_plots(stem, scores, curves, note=" ".join(settings))
    files.update(plots)
    return files, skipped


def _commit_files(files: dict[Path, bytes]) -> None:
    """Write every file beside its destination first, then move them all into place: an error while writing leaves
    none of them."""
    import contextlib

    from ..atomic import temp_file_near

    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            tmp = temp_file_near(path, ".tmp")
            temps.append((tmp, path))
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


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
        if label in out or label in ("sample", "mean", "target", "source", *BASELINES):
            raise Syn2SeqInputError("--videos", "a label not used by another method", repr(label))
        if not Path(folder).is_dir():
            raise Syn2SeqInputError(f"--videos {label}", "a folder of videos", f"no folder '{folder}'")
        out[label] = Path(folder)
    return out
