"""``syn2seq demo``: exo2ego on the bundled sample take with the bundled model."""

from __future__ import annotations

from pathlib import Path

from .generate import add_generation_arguments, run_one

SAMPLE_TAKE = Path(__file__).resolve().parents[1] / "assets" / "sample_take"


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    add_generation_arguments(parser)


def run(args) -> int:
    import time

    t0 = time.perf_counter()
    done = run_one(SAMPLE_TAKE, Path(args.out), args, "exo2ego")
    print(f"demo finished in {time.perf_counter() - t0:.1f} s; outputs: "
          + ", ".join(str(p) for p in done["paths"].values()))
    return 0
