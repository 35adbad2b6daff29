"""Many processes on one job: which share of the work this process does, on which device, and the one barrier.

A job of N items (takes to evaluate) split over the processes of a launcher, by one fixed rule:

    process k of N does the items i with ``i % N == k``  (round robin: neighbours, which cost about the same,
    go to different processes)

:func:`share_from_env` reads k and N from the launcher's environment variables:

``torchrun``      ``RANK`` of ``WORLD_SIZE``; ``LOCAL_RANK`` is the process's GPU (``cuda:LOCAL_RANK``);
``Slurm array``   task ``k = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`` of
                  ``SLURM_ARRAY_TASK_COUNT`` (``--array=1-8`` and ``--array=0-7`` both give k = 0..7; a list
                  such as ``--array=1,5,9`` is refused: its tasks are not numbered 0..COUNT-1);
both              an array of torchrun jobs: ``k = task * WORLD_SIZE + RANK`` of ``COUNT * WORLD_SIZE``;
neither           one process (k = 0, N = 1): every command behaves as without a launcher.

:func:`process_group` joins torchrun's rendezvous (gloo on the CPU, NCCL on CUDA, one device per process) for
the one collective these jobs need: a barrier before one process merges what all of them wrote. Results move
between processes as files (a shared file system, as a Slurm cluster has), never through the process group, so a
Slurm array (no rendezvous) and a rerun on another number of processes read the same files.

Imports nothing of the project but its errors (the base layer).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from ..base.errors import Syn2SeqInputError, require

# How long torchrun ranks wait at the barrier for the slowest one (the others have finished their share).
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass(frozen=True)
class Share:
    """The items one process does: item ``i`` when ``i % count == index``. launcher: what set it (``single``,
    ``torchrun``, ``slurm-array``, ``slurm-array+torchrun``); rank / world: its torchrun rank and world size
    (0 / 1 without torchrun); local_rank: its rank on its machine, whose GPU it uses."""

    index: int = 0
    count: int = 1
    launcher: str = "single"
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.count > 1

    @property
    def torchrun(self) -> bool:
        return self.world > 1

    @property
    def slurm_array(self) -> bool:
        return self.launcher.startswith("slurm-array")

    def owns(self, i: int) -> bool:
        return i % self.count == self.index

    def items(self, n: int) -> list[int]:
        """The items of ``range(n)`` this process does (empty when ``n <= index``)."""
        return list(range(self.index, n, self.count))

    def describe(self) -> str:
        if self.count == 1:
            return "one process"
        return f"{self.launcher} process {self.index} of {self.count} (items i % {self.count} == {self.index})"


def share_from_env(environ=None) -> Share:
    """This process's :class:`Share` from its launcher's environment variables (module docstring); a malformed
    variable is refused naming it."""
    env = os.environ if environ is None else environ

    def integer(name: str, minimum: int = 0) -> int:
        text = env.get(name)
        require(text is not None and text != "", f"environment variable {name}", "an integer (set by the launcher)",
                "not set")
        try:
            value = int(text)
        except ValueError:
            raise Syn2SeqInputError(f"environment variable {name}", "an integer", repr(text)) from None
        require(value >= minimum, f"environment variable {name}", f"an integer >= {minimum}", value)
        return value

    world = integer("WORLD_SIZE", 1) if env.get("WORLD_SIZE") else 1
    rank = integer("RANK") if world > 1 else 0
    require(rank < world, "environment variable RANK", f"a rank below WORLD_SIZE {world}", rank)
    local = integer("LOCAL_RANK") if world > 1 and env.get("LOCAL_RANK") else 0
    tasks, task = 1, 0
    if env.get("SLURM_ARRAY_TASK_ID"):
        task_id, first = integer("SLURM_ARRAY_TASK_ID"), integer("SLURM_ARRAY_TASK_MIN")
        tasks = integer("SLURM_ARRAY_TASK_COUNT", 1)
        step = integer("SLURM_ARRAY_TASK_STEP", 1) if env.get("SLURM_ARRAY_TASK_STEP") else 1
        offset = task_id - first
        require(offset >= 0 and offset % step == 0 and offset // step < tasks,
                "environment variable SLURM_ARRAY_TASK_ID",
                f"one of the {tasks} tasks {first}, {first + step}, ... (MIN + k * STEP)", task_id,
                "Run a contiguous array (--array=MIN-MAX or MIN-MAX:STEP): task k does the items i % COUNT == k")
        task = offset // step
    launcher = "+".join(n for n, c in (("slurm-array", tasks > 1), ("torchrun", world > 1)) if c) or "single"
    return Share(task * world + rank, tasks * world, launcher, rank, world, local)


def share_device(share: Share, device: str) -> str:
    """The one device of a process: ``--device cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); an explicit
    ``cuda:N`` is refused when several torchrun processes would share it; anything else is kept."""
    import torch

    text = str(device)
    if not share.torchrun or not text.startswith("cuda"):
        return text
    require(text == "cuda", "--device", "cuda (each torchrun process takes cuda:LOCAL_RANK)", repr(text),
            "Give --device cuda under torchrun; CUDA_VISIBLE_DEVICES chooses the GPUs")
    n = torch.cuda.device_count()
    require(share.local_rank < n, "environment variable LOCAL_RANK",
            f"a rank below this machine's {n} CUDA devices (one GPU per process)", share.local_rank,
            "Start at most one process per GPU (torchrun --nproc_per_node)")
    return f"cuda:{share.local_rank}"


@contextmanager
def process_group(share: Share, device: str):
    """Under torchrun (``share.torchrun`` and a rendezvous address), the default process group for this block:
    NCCL when ``device`` is CUDA (``torch.cuda.set_device`` first), gloo otherwise; yields whether there is one.
    Destroyed at the end."""
    import torch
    import torch.distributed as dist

    group = share.torchrun and os.environ.get("MASTER_ADDR") is not None and not dist.is_initialized()
    if group:
        cuda = str(device).startswith("cuda")
        if cuda:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    try:
        yield group
    finally:
        if group:
            dist.destroy_process_group()


def barrier(device: str) -> None:
    """Wait for every process of the group (a no-op without one)."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if str(device).startswith("cuda"):
        dist.barrier(device_ids=[torch.device(device).index or 0])
    else:
        dist.barrier()
