"""Peak memory of the whole-video commands against the length of the take.

For each length in ``--frames`` (default 50, 500, 2,000) a take is written into a temporary folder: a
``--size`` square exo video and ego video (smooth moving patterns, streamed to disk), a static exo camera and
a moving ego camera track. Then each command of ``--commands`` runs in its own process, as a user would run
it, and its peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) is recorded. The table
puts the lengths side by side and prints, per command, the ratio of the largest peak to the smallest: a
command that streams stays near 1 (the target is <= 1.2); one that holds the take in memory grows with it.

Commands: ``exo2ego`` and ``ego2exo`` (generate, score, write the result set, side-by-side included), ``eval``
(two such takes, sample and baselines scored, each against the other take's ground truth too) and
``interpolate`` (``--video`` mode, one in-between per frame pair). Generation uses the bundled model unless
``--model`` is given; ``--steps`` only sets how long each run takes, not its memory.

:class:`LiveTensors` counts another thing, on every device alike: the peak bytes of tensor storages alive at
once (what a memory plan counts; ``torch.cuda.max_memory_allocated`` on a GPU, up to the allocator's rounding),
where process RSS adds the interpreter, libraries and the allocator's free lists.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..base import limits

COMMANDS = ("exo2ego", "ego2exo", "eval", "interpolate")


class LiveTensors:
    """Peak bytes of live tensor storages per device, while active (``with LiveTensors() as live: ...``; then
    ``live.peak["cpu"]``, ``live.peak["cuda:0"]``): a ``TorchDispatchMode`` sees every tensor an operator returns
    (forward, backward, optimizer, data), counts each storage once, for as long as it lives (a finalizer on the
    storage, which outlives its views), at its current size (``UntypedStorage.resize_``, with which FSDP2 frees
    and re-allocates its gathered weights in place, is followed too). Storages made before entering are not counted;
    enter before building what is to be counted. Python-level overhead per operator: time runs inside it are
    slower."""

    def __init__(self):
        from collections import Counter

        self.live: Counter = Counter()
        self.peak: Counter = Counter()
        self._sizes: dict[int, tuple[str, int]] = {}
        self._mode = None
        self._resize = None

    def _track(self, t: torch.Tensor) -> None:
        import weakref

        from torch.utils._python_dispatch import is_traceable_wrapper_subclass

        if is_traceable_wrapper_subclass(t):  # e.g. FSDP2's DTensor: the tensors it wraps hold the memory
            for name in t.__tensor_flatten__()[0]:
                inner = getattr(t, name)
                if isinstance(inner, torch.Tensor):
                    self._track(inner)
            return
        if t.device.type == "meta":
            return
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
            return
        key, nbytes, device = storage._cdata, storage.nbytes(), str(t.device)
        old = self._sizes.get(key)
        if old is None:
            weakref.finalize(storage, self._free, key)
        elif old[1] == nbytes:
            return
        self.live[device] += nbytes - (old[1] if old else 0)
        self._sizes[key] = (device, nbytes)
        if self.live[device] > self.peak[device]:
            self.peak[device] = self.live[device]

    def _resized(self, storage) -> None:
        key = storage._cdata
        if key in self._sizes:
            device, old = self._sizes[key]
            self._sizes[key] = (device, storage.nbytes())
            self.live[device] += storage.nbytes() - old
            self.peak[device] = max(self.peak[device], self.live[device])

    def _free(self, key: int) -> None:
        device, nbytes = self._sizes.pop(key, ("", 0))
        if device:
            self.live[device] -= nbytes

    def __enter__(self) -> "LiveTensors":
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for leaf in tree_leaves(out):
                    if isinstance(leaf, torch.Tensor):
                        counter._track(leaf)
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        self._resize = resize = torch.UntypedStorage.resize_

        def resize_(storage, size):
            out = resize(storage, size)
            counter._resized(storage)
            return out

        torch.UntypedStorage.resize_ = resize_
        return self

    def __exit__(self, *exc) -> None:
        torch.UntypedStorage.resize_ = self._resize
        self._mode.__exit__(*exc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=limits.arg("synthetic_frames"), nargs="+", default=[50, 500, 2000],
                        help="take lengths, frames per view (default 50 500 2000)")
    parser.add_argument("--size", type=limits.arg("synthetic_size"), default=64,
                        help="width and height of the take's videos (default 64)")
    parser.add_argument("--steps", type=limits.arg("steps"), default=2, help="sampler steps (default 2)")
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS,
                        help=f"commands to measure (default: {' '.join(COMMANDS)})")
    parser.add_argument("--model", default=None, help="a .safetensors model (default: the bundled model)")


def _frames(start: int, n: int, size: int, total: int, phase: float) -> torch.Tensor:
    from .io import synthetic_frames

    t = torch.arange(start, start + n, dtype=torch.float32) / max(total, 1)
    base = synthetic_frames(1, size)[0]
    shift = (0.25 * torch.sin(6.28 * (t + phase)))[:, None, None, None]
    return (base[None] + shift).clamp(0, 1)


def write_long_take(path: Path, frames: int, size: int, phase: float = 0.0) -> Path:
    """A take of ``frames`` exo and ego frames at ``size`` x ``size``, written chunk by chunk (``phase`` shifts
    its content, for a second take that differs)."""
    from ..data.takes import write_take
    from ..geometry.cameras import Cameras

    def chunks(phase: float):
        for start in range(0, frames, 64):
            yield _frames(start, min(64, frames - start), size, frames, phase)

    K = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    exo = Cameras(torch.eye(4)[None], K, size, size)
    c2w = torch.eye(4).repeat(frames, 1, 1)
    angle = torch.arange(frames, dtype=torch.float32) * (2 * math.pi / max(frames, 1))
    c2w[:, 0, 3], c2w[:, 2, 3] = 0.5 * torch.cos(angle), 2.0 + 0.5 * torch.sin(angle)
    ego = Cameras(c2w, K, size, size)
    write_take(path, chunks(phase), exo, chunks(phase + 0.3), ego, fps=30.0, preset="ultrafast")
    return path


def _peak_rss(cmd: list[str]) -> tuple[int, int]:
    """(peak RSS in bytes, exit status) of ``cmd`` run as a child process."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])
    return usage.ru_maxrss * 1024, proc.returncode  # Linux reports kilobytes


def _command(name: str, take: Path, out: Path, args) -> list[str]:
    base = [sys.executable, "-m", "syn2seq_core"]
    model = ["--model", args.model] if args.model else []
    if name == "eval":
        return base + ["eval", "--takes", str(take.parent), "--steps", str(args.steps)] + model
    if name == "interpolate":
        return base + ["interpolate", "--video", str(take / "exo.mp4"), "-n", "1", "--backend", "blend",
                       "--out", str(out / "dense.mp4")]
    return base + [name, "--take", str(take), "--out", str(out / name), "--steps", str(args.steps)] + model


def run(args) -> int:
    peaks: dict[str, dict[int, int]] = {c: {} for c in args.commands}
    failed = False
    with tempfile.TemporaryDirectory(prefix="syn2seq-bench-memory-") as tmp:
        for n in args.frames:
            take = write_long_take(Path(tmp) / f"takes_{n}" / "a", n, args.size)
            if "eval" in args.commands:
                write_long_take(take.parent / "b", n, args.size, phase=0.5)
            out = Path(tmp) / f"out_{n}"
            out.mkdir()
            for name in args.commands:
                rss, code = _peak_rss(_command(name, take, out, args))
                failed |= code != 0
                peaks[name][n] = rss if code == 0 else -1
                print(f"  {name} at {n} frames: {rss / 2**20:.0f} MiB" + ("" if code == 0 else f" (exit {code})"),
                      file=sys.stderr)
    width = max(len("command"), *(len(c) for c in args.commands))
    print(f"peak RSS (MiB) by take length, {args.size}x{args.size} videos, {args.steps} sampler steps")
    print(f"{'command':<{width}}  " + "  ".join(f"{n:>7} fr" for n in args.frames) + "   max/min")
    for name in args.commands:
        values = [peaks[name][n] for n in args.frames]
        ok = [v for v in values if v > 0]
        ratio = f"{max(ok) / min(ok):.2f}" if len(ok) == len(values) else "failed"
        print(f"{name:<{width}}  " + "  ".join(f"{v / 2**20:>10.0f}" if v > 0 else f"{'failed':>10}"
                                             for v in values) + f"   {ratio:>7}")
    print("target: max/min <= 1.2 (memory independent of the take's length)")
    return 1 if failed else 0
