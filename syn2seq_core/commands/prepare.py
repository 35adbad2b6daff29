"""``syn2seq prepare``: turn takes into Syn2Seq training triplets, written as resumable tar shards.

Input: a folder of take folders (``--takes DIR``), or an index file with the folder it indexes (``--index FILE
--root DIR [--split train]``), or an Ego-Exo4D index (``--egoexo4d-index FILE --root RELEASE``). Output:
``--out DIR`` with ``shard-NNNNNN.tar`` files, ``manifest.json`` (what ``[data] shards`` in a training config
names) and ``failures.jsonl`` (takes that could not be used, skipped). Running the same command again resumes:
finished shards are kept as they are, the others are written. Format and guarantees:
:mod:`syn2seq_core.data.shards`.

    syn2seq render-synthetic --out takes --takes 100 --size 32
    syn2seq prepare --takes takes --out shards/synthetic --size 32 --exo-frames 4 --ego-frames 4 \\
        --transition-frames 2 --transition flow --workers 2
    syn2seq prepare --index egoexo4d/index.csv --root egoexo4d/takes --split train --out shards/ee4d \\
        --transition wan --devices cuda:0 cuda:1 --size 256 --stride 4

Many processes, one device each (``syn2seq_core.data.shards``: process k of N writes the shards i % N == k):

    torchrun --standalone --nproc_per_node=8 -m syn2seq_core prepare --takes takes --out shards/x --transition wan
    sbatch --array=1-16 --gres=gpu:1 --wrap "syn2seq prepare --takes takes --out shards/x --transition wan"

Under torchrun rank 0 writes the manifest after the others are done; in a Slurm array the task that finishes
last does (or ``syn2seq prepare ... --merge``, the same command with ``--merge``, once all tasks are done).
"""

from __future__ import annotations

import argparse
import sys

from ..base import limits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--takes", help="a folder of take folders (or one take folder)")
    src.add_argument("--index", help="an index file (CSV or JSON: take, category, split) of takes under --root")
    src.add_argument("--egoexo4d-index", help="an Ego-Exo4D index (syn2seq_core.data.egoexo4d_index) of a "
                                              "release under --root")
    parser.add_argument("--root", help="the folder the index's takes are in (with --index / --egoexo4d-index)")
    parser.add_argument("--split", help="only the index's takes of this split (with an index)")
    parser.add_argument("--category", help="only the index's takes of this category (e.g. Cooking; with an index)")
    parser.add_argument("--out", required=True, help="folder for the shards and manifest.json")
    parser.add_argument("--size", **limits.option("synthetic_size", "square frame size in pixels (centre crop)", 64))
    parser.add_argument("--exo-frames", **limits.option("synthetic_frames", "exo frames per sample", 8))
    parser.add_argument("--ego-frames", **limits.option("synthetic_frames", "ego frames per sample", 8))
    parser.add_argument("--transition-frames", **limits.option("transition_frames", "transition frames per sample", 4))
    parser.add_argument("--transition", default="flow",
                        help="where transition frames come from: an interpolation backend (flow, rife, wan, blend) "
                             "or ideal (rendered along the SLERP path; takes of render-synthetic only); default flow")
    parser.add_argument("--interpolator-options", default="{}",
                        help='JSON object of the backend\'s options, e.g. \'{"weights": "rife.safetensors"}\'')
    parser.add_argument("--stride", **limits.option("frame_stride", "take frames per sample frame (fps = take fps / "
                                                    "stride)", 1))
    parser.add_argument("--clips", **limits.option("prepare_clips", "clips (windows) per take, evenly spaced", 1))
    parser.add_argument("--takes-per-shard", **limits.option("takes_per_shard", "takes per shard", 64))
    parser.add_argument("--depth", action=argparse.BooleanOptionalAction, default=True,
                        help="keep each view's depth where the take has it (default on)")
    parser.add_argument("--both-directions", action="store_true",
                        help="also store the ego -> exo transition (for training with ego2exo_prob > 0)")
    parser.add_argument("--workers", **limits.option("workers", "processes; shard i goes to worker i %% N", 1))
    parser.add_argument("--devices", nargs="+", help="devices of the workers, round robin (e.g. cuda:0 cuda:1: one "
                                                     "process per GPU; --workers defaults to their number); "
                                                     "under torchrun / a Slurm array: the process's device is "
                                                     "devices[LOCAL_RANK %% N] (default cuda:LOCAL_RANK, or cpu)")
    parser.add_argument("--merge", action="store_true",
                        help="write nothing but the complete manifest of shards written by other processes (a "
                             "Slurm array's tasks): the same command plus --merge, once all are done")
    parser.add_argument("--verify", action="store_true", help="re-hash finished shards before skipping them")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..base.errors import Syn2SeqInputError, require
    from ..data import shards

    settings = shards.PrepareSettings(size=args.size, exo_frames=args.exo_frames, ego_frames=args.ego_frames,
                                      transition_frames=args.transition_frames, transition=args.transition,
                                      stride=args.stride, clips=args.clips, takes_per_shard=args.takes_per_shard,
                                      depth=args.depth, both_directions=args.both_directions,
                                      interpolator_options=args.interpolator_options).check()
    if args.takes:
        require(args.root is None and args.split is None and args.category is None, "--root / --split / "
                "--category", "only with --index or --egoexo4d-index", args.root or args.split or args.category)
        names, loader = shards.folder_takes(args.takes)
        source = f"takes {args.takes}"
    else:
        if args.root is None:
            raise Syn2SeqInputError("--root", "the folder the index's takes are in", "none")
        if args.index:
            names, loader = shards.index_takes(args.index, args.root, args.split, args.category)
            source = f"index {args.index} (root {args.root}, split {args.split}, category {args.category})"
        else:
            names, loader = shards.egoexo4d_takes(args.egoexo4d_index, args.root, args.split, args.category)
            source = f"egoexo4d index {args.egoexo4d_index} (root {args.root}, split {args.split}, category {args.category})"
    manifest = f"{args.out}/{shards.MANIFEST_NAME}"
    if args.merge:
        merged = shards.merge(names, args.out, settings, source=source, verify=args.verify)
        print(f"prepare --merge: {merged['shards']} shards, {merged['samples']} samples, {merged['failed']} takes "
              f"failed -> {manifest}")
        return _verdict(merged["samples"])
    from ..parallel.distributed import share_from_env

    share = share_from_env()
    if share.count == 1:
        workers = args.workers if args.workers != 1 or not args.devices else len(args.devices)
        summary = shards.prepare(names, loader, args.out, settings, workers=workers, devices=args.devices,
                                 source=source, verify=args.verify, progress=not args.no_progress)
        print(f"prepare: {summary['shards']} shards ({summary['written']} written, {summary['skipped']} already "
              f"done), {summary['samples']} samples, {summary['failed']} takes failed"
              + (f" (see {args.out}/{shards.FAILURES_NAME})" if summary["failed"] else "")
              + f", {summary['seconds']:.1f} s -> {manifest}")
        return _verdict(summary["samples"])
    return _run_shared(args, share, names, loader, settings, source, manifest)


def _verdict(samples: int) -> int:
    if samples == 0:
        print("syn2seq prepare: no samples: every take failed", file=sys.stderr)
        return 1
    return 0


def _run_shared(args, share, names, loader, settings, source: str, manifest: str) -> int:
    """One process of many: its share of the shards, then the manifest (rank 0 after a barrier under torchrun;
    in a Slurm array the task that finds every shard written)."""
    import os

    import torch

    from ..data import shards
    from ..parallel.distributed import barrier, process_group

    # One device per process where the backend takes one (wan, rife); flow, blend and ideal run on the CPU.
    device = shards.share_device(share, args.devices) if shards.uses_device(settings) else "cpu"
    # gloo for the one barrier, on GPUs too (no tensors move); ranks may wait long for the slowest (7 days).
    with process_group(share, "cpu") as group:
        summary = shards.prepare(names, loader, args.out, settings, workers=args.workers, devices=[device],
                                 source=source, verify=args.verify, progress=not args.no_progress, share=share)
        print(f"prepare ({share.launcher} process {share.index} of {share.count}: shards i % {share.count} == "
              f"{share.index}, {device}): {summary['shards']} of {summary['total_shards']} shards "
              f"({summary['written']} written, {summary['skipped']} already done), {summary['samples']} samples, "
              f"{summary['failed']} takes failed, {summary['seconds']:.1f} s", flush=True)
        barrier("cpu")
        code = 0
        if not group or torch.distributed.get_rank() == 0:
            # Under torchrun alone every shard is written after the barrier (missing ones are an error); in an
            # array the others may still run: then the last of them writes the manifest.
            merged = shards.merge(names, args.out, settings, source=source,
                                  require_all=share.launcher == "torchrun")
            if merged["complete"]:
                print(f"prepare: all {merged['shards']} shards written, {merged['samples']} samples, "
                      f"{merged['failed']} takes failed"
                      + (f" (see {args.out}/{shards.FAILURES_NAME})" if merged["failed"] else "")
                      + f" -> {manifest}", flush=True)
                code = _verdict(merged["samples"])
            else:
                print(f"prepare: {len(merged['missing'])} shards of other processes not written yet; the last "
                      f"process to finish writes {manifest} (or run this command with --merge when all are done)",
                      flush=True)
    if group:
        # As `syn2seq train` under torchrun: leave without interpreter finalization, where static destructors of
        # gloo threads can abort a finished process and torchrun would report the run as failed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
