"""Ego-Exo4D release at scale: time per take of indexing, loading and preparing, at growing release sizes.

``syn2seq bench egoexo4d --takes 100 300 1000 [--prepare 10 30]``: renders ``--base`` distinct takes of the
procedural world in the Ego-Exo4D layout (:mod:`syn2seq_core.data.egoexo4d_fixture`), then, for each size ``N``,
a release of ``N`` takes made of hard-linked copies of them (each copy its own take folder, take uid and capture,
so no cache is shared between takes that a real release would not share), and measures

* **index**: ``build_egoexo4d_index`` (the default cheap checks) over the whole release;
* **load**: ``load_indexed_take`` of every indexed take (cameras, timing; videos are not decoded);
* **prepare** (sizes of ``--prepare``, smaller: it decodes and writes shards): ``syn2seq prepare`` of the indexed
  takes with the ``blend`` transition.

Time per take that stays flat as ``N`` grows is linear scaling; the last column divides the CPU time per take at
each size by that at the smallest (CPU time: wall time on a shared machine drifts with the other jobs). Best of
``--repeats`` rounds, each round over every size in turn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import uuid
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--takes", type=int, nargs="+", default=[100, 300, 1000],
                        help="release sizes to index and load (default 100 300 1000)")
    parser.add_argument("--prepare", type=int, nargs="*", default=[10, 30],
                        help="release sizes to prepare into shards (default 10 30; none to skip)")
    parser.add_argument("--base", type=int, default=4, help="distinct rendered takes the copies are made of (4)")
    parser.add_argument("--size", type=int, default=32, help="frame side of the rendered takes (32)")
    parser.add_argument("--frames", type=int, default=8, help="frames per take (8)")
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs (default 1)")


def _replicate(base: Path, out: Path, n: int) -> None:
    """A release of ``n`` takes under ``out``: take i is a hard-linked copy of base take ``i % len(base)``, with its
    own name, uid, folder and capture (timesync.csv)."""
    takes = json.loads((base / "takes.json").read_text())
    takes = [t for t in takes if not t.get("is_dropped")]
    out_takes, captures, splits = [], [], {}
    for i in range(n):
        src = takes[i % len(takes)]
        name = f"bench_{i:06d}"
        capture = f"bench_capture_{i:06d}"
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"syn2seq-bench-egoexo4d-{i}"))
        t = json.loads(json.dumps(src))
        t.update(take_uid=uid, take_name=name, root_dir=f"takes/{name}", capture_uid=f"c-{uid}")
        t["capture"] = dict(t["capture"], capture_uid=f"c-{uid}", capture_name=capture)
        for dirpath, _, files in os.walk(base / src["root_dir"]):
            rel = Path(dirpath).relative_to(base / src["root_dir"])
            (out / "takes" / name / rel).mkdir(parents=True, exist_ok=True)
            for f in files:
                os.link(Path(dirpath) / f, out / "takes" / name / rel / f)
        (out / "captures" / capture).mkdir(parents=True, exist_ok=True)
        os.link(base / "captures" / src["capture"]["capture_name"] / "timesync.csv",
                out / "captures" / capture / "timesync.csv")
        out_takes.append(t)
        captures.append({"capture_uid": f"c-{uid}", "capture_name": capture, "root_dir": f"captures/{capture}"})
        splits[uid] = ("train", "val", "test")[i % 3]
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "takes.json").write_text(json.dumps(out_takes))
    (out / "captures.json").write_text(json.dumps(captures))
    (out / "annotations" / "splits.json").write_text(json.dumps({"take_uid_to_split": splits}))


def _cpu() -> float:
    """CPU seconds of this process and its finished children (steady where wall time is not: a shared machine)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn):
    """(wall s, cpu s, fn's result)."""
    import gc

    gc.collect()
    t, c = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - t, _cpu() - c, out


def run(args) -> int:
    from ..base.errors import require
    from ..data import shards
    from ..data.egoexo4d_fixture import write_egoexo4d_fixture
    from ..data.egoexo4d_index import build_egoexo4d_index, load_indexed_take
    from ..data.synthetic import SyntheticConfig

    require(all(n >= 1 for n in args.takes + args.prepare) and args.base >= 1, "--takes/--prepare/--base",
            "positive numbers", (args.takes, args.prepare, args.base))
    cfg = SyntheticConfig(size=args.size, exo_frames=args.frames, ego_frames=args.frames, fps=8.0, supersample=1,
                          threads=1)
    sizes = sorted(set(args.takes) | set(args.prepare))
    best: dict = {}  # (n, kind) -> [wall, cpu], each the best of the repeats

    def keep(key, wall, cpu):
        old = best.get(key, [math.inf, math.inf])
        best[key] = [min(old[0], wall), min(old[1], cpu)]

    settings = shards.PrepareSettings(size=args.size, exo_frames=2, ego_frames=2, transition_frames=2,
                                      transition="blend", clips=1, takes_per_shard=8)
    with tempfile.TemporaryDirectory(prefix="syn2seq-bench-egoexo4d-") as tmp:
        base = Path(tmp) / "base"
        t0 = time.perf_counter()
        write_egoexo4d_fixture(base, list(range(args.base)), cfg, exo_cameras=2)
        render_s = time.perf_counter() - t0
        for n in sizes:
            _replicate(base, Path(tmp) / f"release_{n}", n)
        # rounds over all sizes (not all repeats of one size, then the next): a load that drifts over the run
        # (other jobs on the machine) then reaches every size alike
        for _ in range(max(1, args.repeats)):
            for n in sizes:
                root = Path(tmp) / f"release_{n}"
                wall, cpu, result = _timed(lambda root=root: build_egoexo4d_index(root))
                require(result.counts == {"indexed": n}, "bench release", f"{n} indexed takes", result.counts)
                keep((n, "index"), wall, cpu)
                if n in args.takes:
                    def load(root=root, entries=result.entries):
                        for e in entries:
                            load_indexed_take(root, e)

                    keep((n, "load"), *_timed(load)[:2])
                if n in args.prepare:
                    names = [e.take_name for e in result.entries]
                    loader = shards._EgoExo4DLoader(str(root), {e.take_name: e for e in result.entries})
                    out = Path(tempfile.mkdtemp(dir=tmp, prefix="shards-"))
                    keep((n, "prepare"), *_timed(lambda names=names, loader=loader, out=out: shards.prepare(
                        names, loader, out, settings, progress=False))[:2])
    print(f"Ego-Exo4D release of hard-linked copies of {args.base} rendered takes ({args.frames} frames, "
          f"{args.size}x{args.size}, 2 exo cameras; rendered in {render_s:.1f} s); best of {args.repeats}; "
          "ms per take, wall (cpu)")
    kinds = ("index", "load", "prepare")
    header = ("takes", *(f"{k} ms/take" for k in kinds), "cpu per take vs smallest (index / load / prepare)")
    print(" | ".join(header))
    first = {}
    for n in sizes:
        cells, ratios = [str(n)], []
        for k in kinds:
            if (n, k) not in best:
                cells.append("-")
                ratios.append("-")
                continue
            wall, cpu = (1e3 * v / n for v in best[(n, k)])
            first.setdefault(k, cpu)
            cells.append(f"{wall:.1f} ({cpu:.1f})")
            ratios.append(f"{cpu / first[k]:.2f}x")
        cells.append(" / ".join(ratios))
        print(" | ".join(f"{c:>{len(h)}}" for c, h in zip(cells, header)))
    return 0
