"""``syn2seq eval --takes DIR [--model M | --no-model]``: a model, trivial baselines and other systems' videos over many
takes, overall and per category, at one evaluation resolution (terminal table; with ``--out``: JSON, CSV / Markdown
/ LaTeX tables in two layouts and plots).

Every input is checked before the model loads (takes and their cameras, every other system's video decoded through
the frames it needs, every weights file, every output path), and the outputs (``--out`` files, ``--write-videos``
folders) are staged and moved into place only when every take has been scored: a run completes or leaves nothing
new.

Under torchrun or a Slurm array (``syn2seq_core.parallel.distributed``) take ``i`` is scored by process ``i % N``, which
writes the take's record (scores, FVD / FID features, example frames; what makes it valid) beside ``--out`` as soon
as it is scored, its --write-videos folder moved into place first; a rerun skips recorded takes and refuses records
made otherwise; one process merges every record into the report one process would write (docs/evaluation.md).
``--batch-size N``: N takes generated at once, their network calls batched (``syn2seq_core.evaluation.batching``)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from .generate import add_generation_arguments


# The --camera-* options of --camera-accuracy and their defaults (given without it, they are refused, not ignored).
CAMERA_DEFAULTS = {"camera_frames": 16, "camera_transition_frames": 8, "camera_backends": "flow,rife,blend",
                   "camera_time_limit": 120.0}

def add_arguments(parser) -> None:
    parser.add_argument("--takes", required=True, help="a folder of take folders")
    parser.add_argument("--direction", default="exo2ego", choices=["exo2ego", "ego2exo"])
    parser.add_argument("--out", default=None, help="write the JSON report here (default: print only)")
    from ..base import limits

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
    parser.add_argument("--batch-size", **limits.option(
        "eval_batch", "generate N takes at once, their network calls batched (each take keeps its own noise: the "
        "same samples to float rounding)", 1))
    parser.add_argument("--camera-accuracy", action="store_true",
                        help="also score whether the videos move as their cameras say: re-estimate the cameras of the "
                             "first --camera-frames generated frames of every method and of the ground truth at the "
                             "evaluation size (needs --eval-size N; structure from motion, e.g. 160 for procedural "
                             "takes rendered with --textured) and report RotErr / TransErr against the requested track, "
                             "and the same for the transitions of --camera-backends against their SLERP cameras "
                             "(docs/evaluation.md). A video whose cameras cannot be recovered scores as a static camera")
    parser.add_argument("--camera-frames", **limits.option(
        "camera_frames", "with --camera-accuracy: the first N frames of the generated view are re-estimated",
        CAMERA_DEFAULTS["camera_frames"]))
    parser.add_argument("--camera-transition-frames", **limits.option(
        "camera_transition_frames", "with --camera-accuracy: frames each backend interpolates between the last "
        "source frame and the first target frame (0: no transitions)", CAMERA_DEFAULTS["camera_transition_frames"]))
    parser.add_argument("--camera-backends", default=CAMERA_DEFAULTS["camera_backends"], metavar="LIST",
                        help="with --camera-accuracy: comma-separated interpolation backends whose transitions are "
                             "scored ('none': no backend); procedural takes also score their ideal transition "
                             "(default: flow,rife,blend)")
    parser.add_argument("--camera-time-limit", **limits.option(
        "camera_time_limit_s", "with --camera-accuracy: seconds per camera estimate (a video that runs out scores "
        "as a static camera)", CAMERA_DEFAULTS["camera_time_limit"]))
    parser.add_argument("--merge", action="store_true",
                        help="score nothing: merge the per-take records that the processes of a Slurm array wrote "
                             "beside --out into the report (the same command plus --merge, once all are done)")
    add_generation_arguments(parser)


RECORDS_SUFFIX = "_takes"  # R.json -> R_takes/: the per-take records of a run over many processes


def run(args) -> int:
    import time

    from ..base.errors import Syn2SeqInputError
    from ..evaluation.resolution import DEFAULT_EVAL_SIZE, parse_eval_size
    from ..evaluation.run import BASELINES, default_reference
    from ..generation.takes import views_of
    from ..parallel.distributed import share_device, share_from_env
    from .generate import lpips_weights

    started = time.monotonic()
    _check_model_options(args)
    share = share_from_env()
    many = share.distributed or args.merge  # per-take records, merged into the report
    if many and not args.out:
        raise Syn2SeqInputError("--out", "a report path (the processes leave their per-take records beside it)",
                                "none", f"Give --out R.json under {share.launcher if share.distributed else '--merge'}")
    if args.merge and args.write_videos:
        raise Syn2SeqInputError("--merge", "no --write-videos (the processes wrote them)", "--write-videos as well")
    args.device = share_device(share, args.device)
    eval_size = parse_eval_size(args.eval_size if args.eval_size is not None
                                else (str(DEFAULT_EVAL_SIZE) if args.no_model else "model"))
    loaded, categories, sources = _load_takes(args)
    src, tgt = views_of(args.direction)
    roots = _roots(args.videos)
    external = _check_takes_and_videos(loaded, roots, src, tgt, needs_source=not args.no_model)
    outputs = _check_outputs(args, loaded, records=many)
    lpips = lpips_weights(args)  # files checked before the model loads
    i3d = _load_i3d(args)
    inception = _load_inception(args)
    baselines = () if args.no_baselines else tuple(b for b in BASELINES if not (args.no_model and b == "mean_target"))
    if args.no_model and not baselines and not roots:
        raise Syn2SeqInputError("--no-model", "something to score: --videos LABEL=DIR or the baselines",
                                "--no-baselines and no --videos")
    camera, interpolators = _camera_settings(args, eval_size)
    run = _Run(args, loaded, categories, sources, roots, external, outputs, eval_size, baselines, lpips, i3d,
               inception, src, reference="sample" if not args.no_model else default_reference(list(roots)),
               camera=camera, interpolators=interpolators)
    if many:
        return _run_many(run, share, started)
    run.load_model()
    scores: dict[int, object] = {}
    with ExitStack() as stack:
        if args.write_videos:
            stack.enter_context(_removed_unless_used(Path(args.write_videos)))
        staged = {name: stack.enter_context(_staged_result(path)) for name, path in outputs["folders"].items()}
        for i, s in run.score_all(range(len(loaded)), staged):
            scores[i] = s
        run.report([scores[i] for i in range(len(loaded))], run.facts())
    seconds = time.monotonic() - started
    print(f"evaluated {len(scores)} takes at {run.size_text(run.facts())} in {seconds:.1f} s "
          f"({len(scores) / seconds:.3f} takes/s{run.batch_text()})", file=sys.stderr)
    return 0


class _Run:
    """One evaluation's checked inputs, its model (once loaded) and the steps every mode shares: scoring takes,
    the report of a list of scores."""

    def __init__(self, args, loaded, categories, sources, roots, external, outputs, eval_size, baselines, lpips,
                 i3d, inception, src, reference, camera=None, interpolators=None):
        self.args, self.loaded, self.categories, self.sources = args, loaded, categories, sources
        self.roots, self.external, self.outputs, self.eval_size = roots, external, outputs, eval_size
        self.baselines, self.lpips, self.i3d, self.inception = baselines, lpips, i3d, inception
        self.src, self.reference = src, reference
        self.camera, self.interpolators = camera, interpolators or {}
        self.model = None
        self.mean_target = None
        self.batching: dict = {}  # the Batcher of --batch-size > 1 (its network calls and the calls they served)

    def batch_text(self) -> str:
        b = self.batching.get("batcher")
        if b is None or not b.calls:
            return ""
        return f"; --batch-size {self.args.batch_size}: {b.calls} network calls for {b.served} (mean batch " \
               f"{b.served / b.calls:.2f} takes)"

    def load_model(self) -> None:
        from ..evaluation.run import training_mean_target

        args = self.args
        if args.no_model:
            return
        from ..generation.pipeline import load_model

        self.model = load_model(args.model, device=args.device, lora=args.lora)
        _check_aspect(self.model, self.eval_size)
        _check_model_inputs(self.model, self.loaded, self.src)
        if not args.no_baselines:
            self.mean_target = training_mean_target(self.model, args.direction)

    def facts(self) -> dict:
        """What the report states of the model, resolved (the steps and eta it samples with, its size)."""
        model, args = self.model, self.args
        if model is None:
            return {"model": None}
        return {"model": str(model.path), "size": list(model.size),
                "steps": args.steps or model.default_steps,
                "eta": model.default_eta if args.eta is None else args.eta}

    def size_text(self, facts: dict) -> str:
        from ..evaluation.resolution import EVAL_FILTER

        h, w = self.eval_size if self.eval_size is not None else facts["size"]
        return (f"{w}x{h}, {EVAL_FILTER}" if self.eval_size is not None else
                f"{w}x{h}, the model's resolution (every video read at that size by the decoder)")

    def score_one(self, i: int, model, write_to=None):
        from ..evaluation.run import score_take
        from .generate import sampling_options

        args, loaded = self.args, self.loaded
        take = loaded[i]
        return score_take(take, loaded[(i + 1) % len(loaded)] if len(loaded) > 1 else None, model,
                          args.direction, eval_size=self.eval_size, lpips_weights=self.lpips,
                          baselines=self.baselines, mean_target=self.mean_target,
                          external={label: paths[take.name] for label, paths in self.external.items()},
                          category=self.categories[i] or take.category, i3d=self.i3d, inception=self.inception,
                          camera=self.camera, interpolators=self.interpolators,
                          write_to=write_to, **(sampling_options(args) if model is not None else {}))

    def score_all(self, indices, staged: dict | None = None, finish=None):
        """(index, TakeScores) of the takes at ``indices`` as each is scored (``--batch-size`` at a time); each
        take's --write-videos folder: its entry in ``staged`` (a staging folder committed with the report), or,
        with ``staged`` None, a staging folder of its own committed as soon as the take is scored. ``finish(i,
        scores)``: called in the take's thread once it is scored (and its folder committed)."""
        from tqdm import tqdm

        from ..evaluation.batching import map_batched

        indices = list(indices)

        def one(i: int, model):
            folder = self.outputs["folders"].get(self.loaded[i].name)
            if staged is None and folder is not None:
                with _staged_result(folder) as tmp:
                    s = self.score_one(i, model, tmp)
            else:
                s = self.score_one(i, model, None if staged is None else staged.get(self.loaded[i].name))
            if finish is not None:
                finish(i, s)
            return s

        with tqdm(total=len(indices), desc="eval", unit="take", file=sys.stderr, dynamic_ncols=True) as bar:
            for i, s in map_batched(one, indices, self.model, self.args.batch_size, self.batching):
                bar.update(1)
                yield indices[i], s

    def report(self, scores: list, facts: dict) -> None:
        """Print the tables of ``scores`` (every take, in order) and, with --out, write every report file."""
        from ..evaluation.run import format_table, frame_curves, summarize_categories
        from ..metrics.frames import PSNR_CAP_DB

        args = self.args
        summaries = summarize_categories(scores, self.reference)
        curves = frame_curves(scores)
        print(format_table(summaries["overall"]))
        for category, part in summaries["categories"].items():
            print(f"\ncategory {category}: " + format_table(part))
        cameras = None
        if self.camera is not None:
            from ..evaluation.cameras import format_camera_table, summarize_camera_categories

            cameras = summarize_camera_categories(scores, self.reference)
            print("\n" + format_camera_table(cameras["overall"]))
            for category, part in cameras["categories"].items():
                print(f"\ncategory {category}: " + format_camera_table(part))
        if not args.out:
            return
        h, w = self.eval_size if self.eval_size is not None else facts["size"]
        settings = [f"Evaluated at {w}x{h} pixels ({'every method resized to it' if self.eval_size else 'the model size'}).",
                    f"PSNR per frame capped at {PSNR_CAP_DB:g} dB (identical frames), averaged over frames, then takes."]
        out = self.outputs["out"]
        files, skipped = _render_report(args, out, facts, summaries, curves, scores, self.sources, self.roots,
                                         self.eval_size, settings, self.reference, cameras, self.camera)
        _commit_files(files)  # the report files; the staged take folders follow as the stack closes
        tables = [p for p in files if p.suffix in (".csv", ".md", ".tex")]
        plots = [p for p in files if p.suffix == ".png"]
        print(f"report: {out}; tables: {', '.join(str(p) for p in tables)}")
        print(f"plots: {', '.join(str(p) for p in plots)}" if plots else f"plots skipped: {skipped}")


# --- many processes: torchrun ranks and Slurm array tasks (syn2seq_core.parallel.distributed) ---------------------
def _run_many(run: _Run, share, started: float) -> int:
    """One process of many (or ``--merge``): score this process's share of the takes (take i when
    ``i % N == k``) that have no record yet, writing each take's record as it is scored; then one process merges
    every record into the report: rank 0 after a barrier under torchrun, in a Slurm array the task that finds
    every record written (or ``--merge``)."""
    import time

    from ..parallel.distributed import barrier, process_group

    args, loaded = run.args, run.loaded
    folder = run.outputs["records"]
    valid_for = _valid_for(run)
    expected = [_take_part(run, i) for i in range(len(loaded))]
    done = _check_records(folder, valid_for, expected)  # every record on disk, before the model loads
    if args.merge:
        _merge(run, folder, expected, require_all=True)
        return 0
    mine = [i for i in share.items(len(loaded)) if i not in done]
    code = 0
    with process_group(share, args.device) as group:
        if mine:
            run.load_model()
            facts = run.facts()
            write = _record_writer(folder, valid_for, expected, facts, args)
            with ExitStack() as stack:
                if args.write_videos:
                    stack.enter_context(_removed_unless_used(Path(args.write_videos)))
                for _ in run.score_all(mine, staged=None, finish=write):
                    pass
        print(f"eval ({share.describe()}): {len(mine)} takes scored, "
              f"{sum(1 for i in share.items(len(loaded)) if i in done)} already recorded, of "
              f"{len(loaded)} in {time.monotonic() - started:.1f} s{run.batch_text()}", file=sys.stderr, flush=True)
        barrier(args.device)
        if share.rank == 0:
            merged = _merge(run, folder, expected, require_all=share.launcher == "torchrun")
            if not merged:
                print(f"eval: takes of other processes are not scored yet; the last process to finish writes "
                      f"{run.outputs['out']} (or run this command with --merge when all are done)", flush=True)
    if group:
        # As `syn2seq train`: a torchrun worker whose work is written leaves without interpreter finalization,
        # where static destructors of gloo threads can abort a finished process.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _sha256(path) -> str:
    from ..data.shards import file_sha256

    return file_sha256(path)


def _record_path(folder: Path, i: int) -> Path:
    return folder / f"{i:06d}.safetensors"


def _valid_for(run: _Run) -> dict:
    """What makes a per-take record valid for this run (a record made otherwise is refused, never mixed in): the
    model's and LoRA's bytes, every sampling option, the direction, evaluation size, baselines, other systems'
    folders, the metric networks' bytes and the run's takes in order (a take's "own minus other" reads its
    neighbour). Computed before the model loads."""
    import hashlib
    import json

    from ..base.errors import Syn2SeqInputError

    args = run.args
    model = None
    if not args.no_model:
        from ..generation.pipeline import BUNDLED_MODEL

        path = Path(args.model) if args.model is not None else BUNDLED_MODEL
        if not path.is_file():  # load_model's own refusal, before hashing
            raise Syn2SeqInputError("model", "an existing .safetensors model file", str(path))
        if args.lora and not Path(args.lora).is_file():
            raise Syn2SeqInputError("--lora", "an existing lora.safetensors file", str(args.lora))
        model = {"sha256": _sha256(path), "lora_sha256": _sha256(args.lora) if args.lora else None,
                 "steps": args.steps, "eta": args.eta, "seed": args.seed, "scheduling": args.scheduling,
                 "guidance": args.guidance, "guidance_scale": args.guidance_scale,
                 "stabilization": args.stabilization, "transition_frames": args.transition_frames,
                 "mean": bool(args.mean), "mean_draws": args.mean_draws if args.mean else None}
    takes = [[t.name, run.categories[i] or t.category, run.sources[i]] for i, t in enumerate(run.loaded)]
    camera = {"camera": run.camera.as_dict()} if run.camera is not None else {}  # absent: records of earlier runs
    return {"direction": args.direction, "model": model, **camera,
            "eval_size": list(run.eval_size) if run.eval_size is not None else "model",
            "baselines": list(run.baselines), "external": sorted(run.roots),
            "lpips_sha256": sorted(_sha256(p) for p in (args.lpips_weights or [])),
            "i3d_sha256": _sha256(args.i3d) if args.i3d else None,
            "inception_sha256": _sha256(args.inception) if args.inception else None,
            "takes": len(takes), "takes_sha256": hashlib.sha256(json.dumps(takes).encode()).hexdigest()}


def _take_part(run: _Run, i: int) -> dict:
    """A record's own part: its take, its neighbour and the other systems' videos of it (path and size)."""
    loaded = run.loaded
    take = loaded[i]
    videos = {label: [str(paths[take.name]), paths[take.name].stat().st_size]
              for label, paths in run.external.items()}
    return {"index": i, "name": take.name, "neighbour": loaded[(i + 1) % len(loaded)].name if len(loaded) > 1
            else None, "videos": videos}


def _check_records(folder: Path | None, valid_for: dict, expected: list[dict]) -> set[int]:
    """The takes whose records are already in ``folder``; a record of other settings or of another take is
    refused, naming the file and what differs (before the model loads)."""
    from ..base.errors import Syn2SeqInputError
    from ..evaluation.run import read_record_doc

    done = set()
    if folder is None or not folder.is_dir():
        return done
    for i in range(len(expected)):
        path = _record_path(folder, i)
        if not path.is_file():
            continue
        doc = read_record_doc(path)
        theirs = _flat({**doc.get("valid_for", {}), "take": doc.get("take", {})})
        ours = _flat({**valid_for, "take": expected[i]})
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        if differ:
            raise Syn2SeqInputError(f"eval record '{path}'", "a record of this run's settings and takes",
                                    "a record made otherwise: " + "; ".join(
                                        f"{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in differ[:4]),
                                    f"Give another --out, or delete '{folder}' to score every take again")
        done.add(i)
    return done


def _flat(doc: dict, prefix: str = "") -> dict:
    """``{"model": {"seed": 0}}`` -> ``{"model.seed": 0}`` (so that a refusal names the one setting that differs)."""
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _record_writer(folder: Path, valid_for: dict, expected: list[dict], facts: dict, args):
    """finish(i, scores): write take i's record atomically (the model's resolved facts and how it was computed
    go with it)."""
    from ..evaluation.run import take_record
    from ..io.atomic import write_bytes_atomic

    info = {"run": facts, "device": str(args.device), "batch_size": args.batch_size}

    def finish(i: int, scores) -> None:
        write_bytes_atomic(_record_path(folder, i), take_record(scores, valid_for, expected[i], info))
    return finish


def _merge(run: _Run, folder: Path, expected: list[dict], require_all: bool) -> bool:
    """The report of every take's record (the same report one process writes); False (nothing written) when
    records are missing and not ``require_all``, an error naming them when ``require_all``."""
    from ..base.errors import Syn2SeqInputError
    from ..evaluation.run import read_record_doc, read_take_record

    missing = [i for i in range(len(expected)) if not _record_path(folder, i).is_file()]
    if missing:
        if not require_all:
            return False
        names = ", ".join(f"{i} ({expected[i]['name']})" for i in missing[:5])
        raise Syn2SeqInputError(f"eval records in '{folder}'", f"a record of each of the {len(expected)} takes",
                                f"{len(missing)} missing: takes {names}" + (", ..." if len(missing) > 5 else ""),
                                "Run the processes that score them (records must be on a file system every "
                                "process shares), then merge")
    scores = [read_take_record(_record_path(folder, i)) for i in range(len(expected))]
    facts = read_record_doc(_record_path(folder, 0))["made"]["run"]
    run.report(scores, facts)
    print(f"merged {len(scores)} take records from {folder}", file=sys.stderr)
    return True


def _check_model_options(args) -> None:
    """--no-model refuses what only a model uses."""
    from ..base.errors import Syn2SeqInputError

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
    from ..base.errors import Syn2SeqInputError
    from ..data.takes import find_takes, load_take

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
    from ..base.errors import Syn2SeqInputError
    from ..evaluation.run import check_external_video, external_video

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


def _report_files(out: Path, cameras: bool = False) -> list[Path]:
    from ..evaluation.reports import plot_paths, table_paths

    stem = out.with_suffix("")
    extra = list(table_paths(camera_stem(stem)).values()) if cameras else []
    return [out, *table_paths(stem).values(), *plot_paths(stem).values(), *extra]


def camera_stem(stem: Path) -> Path:
    """Where the camera-accuracy tables go: ``R_cameras.csv`` / ``.md`` / ``.tex`` (and ``_by_category``) beside
    ``R.json``."""
    return stem.with_name(stem.name + "_cameras")


def _camera_settings(args, eval_size):
    """The camera-accuracy settings and built interpolation backends of ``--camera-accuracy`` (None, {} without),
    checked before any work: an explicit evaluation size, known backends (RIFE's weights found), an estimator that
    imports."""
    from ..base.errors import Syn2SeqInputError

    if not getattr(args, "camera_accuracy", False):
        given = [f"--{dest.replace('_', '-')}" for dest, default in CAMERA_DEFAULTS.items()
                 if getattr(args, dest, default) != default]
        if given:
            raise Syn2SeqInputError(", ".join(given), "only together with --camera-accuracy",
                                    "without it (they would be ignored)")
        return None, {}
    if eval_size is None:
        raise Syn2SeqInputError("--eval-size", "N or WxH with --camera-accuracy (cameras are re-estimated from the "
                                "pixels at the evaluation size: a size where features can be matched, e.g. 160)",
                                "'model' (the model's own, often 32 or 64 pixels)")
    from ..evaluation.cameras import CameraEvalSettings
    from ..interpolation.base import get_interpolator, known_interpolators

    text = args.camera_backends.strip().lower()
    names = [] if text == "none" else [b.strip() for b in text.split(",") if b.strip()]
    for b in names:
        if b not in known_interpolators():
            raise Syn2SeqInputError("--camera-backends", f"a comma-separated list of {known_interpolators()} or "
                                    "'none'", repr(b))
    settings = CameraEvalSettings(frames=args.camera_frames, transition_frames=args.camera_transition_frames,
                                  backends=tuple(names), time_limit_s=args.camera_time_limit)
    try:
        from ..geometry import sfm  # noqa: F401
    except ImportError as e:
        raise Syn2SeqInputError("--camera-accuracy", "the pack's structure from motion (syn2seq_core.geometry.sfm)",
                                f"an import error ({e})") from None
    interpolators = {}
    for b in settings.backends:
        try:
            interpolators[b] = get_interpolator(b)
        except Syn2SeqInputError as e:
            raise Syn2SeqInputError("--camera-backends", f"backends that load ({b}: {e.expected})", e.found,
                                    f"Leave '{b}' out of --camera-backends, or install what it needs") from None
    return settings, interpolators


def records_dir(out: Path) -> Path:
    """Where the processes of a run write their per-take records: ``R_takes/`` beside ``R.json``."""
    return out.with_name(out.with_suffix("").name + RECORDS_SUFFIX)


def _check_outputs(args, loaded, records: bool = False) -> dict:
    """Every output path, before any work: the --out report and its tables and plots (no folder in the way, a
    folder that can be created and written), each take's --write-videos folder (atomic.check_result_dir) and, for
    a run over many processes (``records``), the folder of per-take records (a folder, or none yet)."""
    from ..base.errors import Syn2SeqInputError
    from ..io.atomic import check_result_dir

    out = None
    rec = None
    if args.out:
        out = Path(args.out).expanduser()
        for path in _report_files(out, cameras=bool(getattr(args, "camera_accuracy", False))):
            if path.is_dir():
                raise Syn2SeqInputError("--out", f"a file path for {path.name}", f"the folder '{path}'")
        _check_writable_dir(out.parent, "--out")
        if records:
            rec = records_dir(out)
            if rec.exists() and not rec.is_dir():
                raise Syn2SeqInputError("--out", f"a folder (or nothing) at {rec.name} for the per-take records",
                                        f"the file '{rec}'")
    folders = {}
    if args.write_videos:
        for take in loaded:
            folders[take.name] = check_result_dir(Path(args.write_videos) / take.name, "--write-videos")
    return {"out": out, "folders": folders, "records": rec}


def _check_writable_dir(folder: Path, name: str) -> None:
    """``folder`` exists as a writable folder, or can be created (its nearest existing ancestor is one)."""
    from ..base.errors import Syn2SeqInputError

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
    from ..io.atomic import result_dir

    return result_dir(dest, "--write-videos")


def _load_i3d(args):
    from ..base.errors import Syn2SeqInputError

    if args.i3d is None:
        return None
    from ..metrics.fvd import load_i3d

    if not Path(args.i3d).is_file():
        raise Syn2SeqInputError("--i3d", "an I3D weights file (docs/fvd.md)", f"no file '{args.i3d}'")
    return load_i3d(args.i3d).to(args.device)


def _load_inception(args):
    from ..base.errors import Syn2SeqInputError

    if args.inception is None:
        return None
    from ..metrics.fid import load_inception

    if not Path(args.inception).is_file():
        raise Syn2SeqInputError("--inception", "an FID Inception weights file (docs/fvd.md)",
                                f"no file '{args.inception}'")
    return load_inception(args.inception).to(args.device)


def _check_aspect(model, eval_size) -> None:
    """An evaluation size with the model's aspect ratio: frames of another aspect would be cropped differently
    from the ground truth."""
    from ..base.errors import Syn2SeqInputError

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


def _render_report(args, out: Path, facts: dict, summaries, curves, scores, sources, roots, eval_size, settings,
                   reference, cameras=None, camera_settings=None) -> tuple[dict[Path, bytes], str | None]:
    """Every report file (path -> bytes), nothing written yet, and why the plots were skipped (or None). facts:
    the model's path, size and resolved steps and eta (:meth:`_Run.facts`; ``{"model": None}`` without one)."""
    import json

    from ..evaluation.reports import render_plots, render_tables
    from ..evaluation.resolution import EVAL_FILTER
    from ..metrics.fid import MINIMUM_FRAMES
    from ..metrics.frames import PSNR_CAP_DB
    from ..metrics.fvd import MINIMUM_VIDEOS

    h, w = eval_size if eval_size is not None else facts["size"]
    report = {"summary": summaries["overall"], "categories": summaries["categories"],
              "model": facts["model"],
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
                            **({"camera": s.camera} if s.camera is not None else {}),
                            **({"egoexo4d": src} if src else {})} for s, src in zip(scores, sources)]}
    if cameras is not None:
        from ..evaluation.cameras import CAMERA_DEFINITION

        report["camera_accuracy"] = {"settings": camera_settings.as_dict(), "definition": CAMERA_DEFINITION,
                                     "summary": cameras["overall"], "categories": cameras["categories"]}
    if facts["model"] is not None:
        report.update({"steps": facts["steps"], "eta": facts["eta"], "seed": args.seed,
                       "mean_draws": args.mean_draws if args.mean else None})
    stem = out.with_suffix("")
    caption = f"{args.direction}, {len(scores)} takes" + (f", split {args.split}" if args.split else "")
    files = {out: (json.dumps(report, indent=2) + "\n").encode("utf-8")}
    files.update(render_tables(stem, summaries, caption, settings))
    if cameras is not None:
        from ..evaluation.cameras import CAMERA_DEFINITION

        files.update(render_tables(camera_stem(stem), cameras, f"camera accuracy, {caption}",
                                   settings[:1] + [CAMERA_DEFINITION]))
    plots, skipped = render_plots(stem, scores, curves, note=" ".join(settings))
    files.update(plots)
    return files, skipped


def _commit_files(files: dict[Path, bytes]) -> None:
    """Write every file beside its destination first, then move them all into place: an error while writing leaves
    none of them."""
    import contextlib

    from ..io.atomic import temp_file_near

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
    from ..base.errors import Syn2SeqInputError
    from ..evaluation.run import BASELINES, GROUND_TRUTH

    out: dict[str, Path] = {}
    for spec in specs:
        label, sep, folder = spec.partition("=")
        label = label.strip()
        if not sep or not label or not folder:
            raise Syn2SeqInputError("--videos", "LABEL=DIR (e.g. wan=outputs/wan)", repr(spec))
        if label in out or label in ("sample", "mean", "target", "source", GROUND_TRUTH, *BASELINES):
            raise Syn2SeqInputError("--videos", "a label not used by another method", repr(label))
        if not Path(folder).is_dir():
            raise Syn2SeqInputError(f"--videos {label}", "a folder of videos", f"no folder '{folder}'")
        out[label] = Path(folder)
    return out
