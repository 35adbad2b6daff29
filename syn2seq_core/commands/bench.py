"""``syn2seq bench TARGET``: benchmarks that print ratios measured side by side in one run.

Each target is a module ``syn2seq_core/benchmarks/<target>.py`` defining ``add_arguments(parser)`` and
``run(args) -> int``; a new module is a new target (``data``: the shard loader against the training step).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from .. import benchmarks
from ..base.errors import check_choice


def targets() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help=f"one of: {', '.join(targets())}")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of the target (see TARGET --help)")


def run(args) -> int:
    check_choice(args.target, targets(), "bench target")
    module = importlib.import_module(f".{args.target}", benchmarks.__name__)
    parser = argparse.ArgumentParser(prog=f"syn2seq bench {args.target}", description=module.__doc__)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.options)) or 0)
