"""``syn2seq index-egoexo4d ROOT --out index.jsonl``: index the usable takes of a local Ego-Exo4D release.

ROOT is the folder the ``egoexo`` downloader wrote (``takes.json``, ``annotations/splits.json``,
``captures/<capture>/timesync.csv``, ``takes/<take>/frame_aligned_videos`` and ``trajectory``). Every take of
``takes.json`` is checked; a take that cannot be used is skipped with its reason and counted in the printed
summary (the reasons, the exo-camera rule and the index format: :mod:`syn2seq_core.data.egoexo4d_index`). Cheap
checks run on every take (videos from ``relative_path``, their frame counts from the container headers, every
frame's device time inside the trajectory, calibrations readable), so the index lists only takes that load;
``--verify`` adds a full load of each. The
index is written atomically as JSON lines; read it with
:func:`~syn2seq_core.data.egoexo4d_index.read_egoexo4d_index` and turn an entry into a take with
:func:`~syn2seq_core.data.egoexo4d_index.load_indexed_take`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="the Ego-Exo4D release folder (with takes.json)")
    parser.add_argument("--out", required=True, help="the index file to write (JSON lines)")
    parser.add_argument("--exo-camera", default="best",
                        help="exo camera per take: a name (cam01; takes without it are skipped), 'first' (the first "
                             "usable in name order) or 'best' (takes.json best_exo when usable, else the first; "
                             "default)")
    parser.add_argument("--resolution", choices=("auto", "448", "full"), default="auto",
                        help="videos to index: downscaled/448, full resolution, or auto (448 when present)")
    parser.add_argument("--require-ego-calibration", action=argparse.BooleanOptionalAction, default=True,
                        help="skip takes without trajectory/online_calibration.jsonl (the true Aria RGB camera; "
                             "default); --no-require-ego-calibration indexes them with the approximate pinhole "
                             "stand-in")
    parser.add_argument("--calibration-reader", choices=("auto", "projectaria", "json"), default="auto",
                        help="how to read online_calibration.jsonl: projectaria_tools, our JSON parser, or auto "
                             "(projectaria_tools when installed)")
    parser.add_argument("--verify", action="store_true",
                        help="also load every take (full trajectory parse) and skip those that fail; slower. The cheap "
                             "checks (videos, frame counts, frame times inside the trajectory, calibrations) "
                             "always run")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index file")


def run(args) -> int:
    from ..base.errors import require
    from ..data.egoexo4d_index import build_egoexo4d_index, write_egoexo4d_index

    out = Path(args.out).expanduser()
    require(args.overwrite or not out.exists(), "--out", "a new index file", f"'{out}' exists",
            "Pass --overwrite to replace it")
    t0 = time.perf_counter()
    result = build_egoexo4d_index(args.root, exo_camera=args.exo_camera, resolution=args.resolution,
                                  require_ego_calibration=args.require_ego_calibration,
                                  calibration_reader=args.calibration_reader, verify=args.verify, progress=True)
    options = {"exo_camera": args.exo_camera, "resolution": args.resolution,
               "require_ego_calibration": args.require_ego_calibration,
               "calibration_reader": args.calibration_reader, "verify": args.verify}
    write_egoexo4d_index(out, result, args.root, options)
    skipped = len(result.skipped)
    total = len(result.entries) + skipped
    print(f"indexed {len(result.entries)} of {total} takes into {out} ({time.perf_counter() - t0:.1f} s)")
    splits = {}
    for e in result.entries:
        splits[e.split or "no split"] = splits.get(e.split or "no split", 0) + 1
    if splits:
        print("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    if skipped:
        print(f"  skipped {skipped}:")
        reasons = [(k, v) for k, v in result.counts.items() if k != "indexed"]
        width = max(len(k) for k, _ in reasons)
        for k, v in reasons:
            print(f"    {k:<{width}}  {v}")
        for s in result.skipped[:10]:
            print(f"    {s['take_name']}: {s['reason']} ({s['detail'][:160]})")
        if skipped > 10:
            print(f"    ... {skipped - 10} more in the index header")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
