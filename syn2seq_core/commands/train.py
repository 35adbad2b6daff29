"""``syn2seq train --config FILE``: run or resume one training stage (see syn2seq_core.training.loop)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_arguments(parser) -> None:
    from ..base import limits

    parser.add_argument("--config", required=True, help="a TOML training config (configs/*.toml; the ranges "
                                                        "of its counts: syn2seq_core.training.config.COUNT_RANGES)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<config name>); resumes if it "
                                                    "holds a checkpoint of the same config (checkpoint.pt, or "
                                                    "checkpoint.prev.pt if that one is damaged)")
    parser.add_argument("--minutes", **limits.option(
        "train_minutes", "stop after this many minutes of this invocation (a checkpoint is written)",
        default_text="default: no limit"))
    parser.add_argument("--max-steps", **limits.option("train_max_steps", "stop at this step",
                                                       default_text="default: the config's max_steps"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import warnings

    from ..training.checkpoints import CheckpointFallbackWarning
    from ..training.config import load_config
    from ..training.loop import train

    cfg = load_config(args.config)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    with warnings.catch_warnings():
        python_form = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            """The pack's warnings as one line, like the command's ``error:`` lines; others as Python has them."""
            if issubclass(category, CheckpointFallbackWarning):
                print(f"syn2seq train: warning: {message}", file=sys.stderr)
            else:
                python_form(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        summary = train(cfg, out, minutes=args.minutes, max_steps=args.max_steps, progress=not args.no_progress)
    if summary["loss_ema"] is not None:
        print(f"{cfg.name}: step {summary['step']}, {summary['elapsed_s'] / 60:.1f} min trained, "
              f"loss {summary['loss_ema']:.4f} -> {out}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker whose work is done and written (checkpoint and log closed, process group
        # destroyed) leaves without interpreter finalization: there, static destructors of gloo/c10d threads
        # can abort the process ("terminate called without an active exception", seen in CI on rank 1), and
        # torchrun would report a finished run as failed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
