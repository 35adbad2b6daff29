"""``syn2seq selfcheck``: check the installation and the camera -> sequence -> rays pipeline end to end.

``syn2seq selfcheck --gpu`` (``make gpu-check``): the GPU check of :mod:`syn2seq_core.commands.gpu_check`, one
JSON summary on stdout (progress on stderr); exit 0 passed, 1 a step failed, 77 no CUDA (nothing ran).
"""

from __future__ import annotations

import importlib
import time


def add_arguments(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the verdict")
    gpu = parser.add_argument_group("GPU check (make gpu-check)")
    gpu.add_argument("--gpu", action="store_true",
                     help="run the GPU check: each step in its own process with its own timeout, one JSON summary "
                          "on stdout; exit 0 passed, 1 a step failed, 77 no CUDA (nothing ran)")
    gpu.add_argument("--dry-run", action="store_true", help="with --gpu: print the plan as JSON, run nothing")
    gpu.add_argument("--only", help="with --gpu: these steps, comma separated (default all, in order)")
    gpu.add_argument("--timeout", action="append", default=[], metavar="STEP=SECONDS",
                     help="with --gpu: another timeout for a step (repeatable)")
    gpu.add_argument("--cpu", action="store_true",
                     help="with --gpu: run the steps that can on the CPU at test sizes (checks the check itself; "
                          "its numbers mean nothing)")
    gpu.add_argument("--work", help="with --gpu: folder for the steps' files and logs (default: a new temporary one)")
    gpu.add_argument("--out", help="with --gpu: also write the JSON summary to this file")


def run_gpu(args) -> int:
    import json
    import sys
    from pathlib import Path

    from ..base.errors import Syn2SeqInputError, require
    from ..io.atomic import write_text_atomic
    from . import gpu_check

    names = list(gpu_check.STEP_NAMES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in gpu_check.STEP_NAMES]
        require(not unknown, "selfcheck --only", f"steps among {list(gpu_check.STEP_NAMES)}", unknown)
    timeouts = {}
    for item in args.timeout:
        name, _, seconds = item.partition("=")
        require(name in gpu_check.STEP_NAMES, "selfcheck --timeout", f"STEP=SECONDS with STEP one of "
                f"{list(gpu_check.STEP_NAMES)}", repr(item))
        try:
            timeouts[name] = float(seconds)
        except ValueError:
            raise Syn2SeqInputError("selfcheck --timeout", "STEP=SECONDS (a number of seconds)", repr(item)) from None
        require(timeouts[name] > 0, "selfcheck --timeout", "a positive number of seconds", repr(item))
    code, summary = gpu_check.check(names, cpu=args.cpu, dry_run=args.dry_run,
                                    work=Path(args.work) if args.work else None, timeouts=timeouts,
                                    say=lambda text: print(text, file=sys.stderr, flush=True))
    text = json.dumps(summary, indent=1)
    if args.out:
        write_text_atomic(args.out, text + "\n")
    print(text, flush=True)
    return code


def run(args) -> int:
    if args.gpu:
        return run_gpu(args)
    for option in ("dry_run", "only", "cpu", "work", "out"):
        if getattr(args, option):
            from ..base.errors import Syn2SeqInputError

            raise Syn2SeqInputError(f"selfcheck --{option.replace('_', '-')}", "only with --gpu", "no --gpu")
    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else print
    for name in ("torch", "einops", "safetensors", "kornia", "numpy", "cv2", "scipy", "av"):
        module = importlib.import_module(name)
        say(f"  {name:<12} {getattr(module, '__version__', '?')}")

    import torch

    from ..generation.sequence import build_sequence
    from ..geometry import Cameras, look_at

    exo = Cameras(look_at(torch.tensor([3.0, 0.0, 2.0]), torch.zeros(3)), [0.9, 0.9, 0.5, 0.5], 32, 32)
    eyes = torch.tensor([[0.3, 0.0, 1.6]]) + torch.linspace(0, 0.2, 6)[:, None] * torch.tensor([0.0, 1.0, 0.0])
    ego = Cameras(look_at(eyes, torch.tensor([0.8, 0.0, 0.8]).expand(6, 3)), [0.6, 0.6, 0.5, 0.5], 32, 32)
    frames = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seq = build_sequence(exo, ego, exo_frames=frames, n_transition=3)
    rays = seq.rays()
    checks = {
        "sequence length = 4 exo + 3 transition + 6 ego": len(seq) == 13,
        "first camera is the reference (zero moments)": float(rays[0, ..., 3:].abs().max()) < 1e-6,
        "ray directions are unit vectors": torch.allclose(rays[..., :3].norm(dim=-1), torch.ones(()), atol=1e-5),
        "transition cameras lie between exo and ego": bool(
            (seq.cameras.centers[4:7, 0] < 3.0).all() and (seq.cameras.centers[4:7, 0] > 0.3).all()),
    }
    for name, ok in checks.items():
        say(f"  [{'ok' if ok else 'FAIL'}] {name}")
    ok = all(checks.values())
    print(f"syn2seq selfcheck: {'OK' if ok else 'FAILED'} ({time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1
