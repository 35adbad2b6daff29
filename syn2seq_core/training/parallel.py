"""The processes of a training run: :func:`init_distributed` under torchrun (DDP or FSDP2 over gloo on CPU,
NCCL on GPU), the check that DDP replicas agree at the end, and what each process holds (:func:`state_bytes`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.distributed.init_process_group(backend)
    return Dist(rank, world, device)


def weights_digest(model) -> float:
    """A float64 fingerprint of all parameters (equal weights give equal digests)."""
    with torch.no_grad():
        return float(sum((p.detach().double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


def check_ranks_agree(model, dist: Dist, log, step: int) -> None:
    """DDP keeps replicas identical; verify it at the end and record the per-rank digests in the log."""
    digests = [None] * dist.world
    torch.distributed.all_gather_object(digests, weights_digest(model))
    agree = all(d == digests[0] for d in digests)
    if log:
        log.write(json.dumps({"step": step, "ranks": dist.world, "weight_digests": digests, "ranks_agree": agree})
                  + "\n")
        log.flush()
    if not agree:
        raise RuntimeError(f"DDP ranks disagree on the weights after step {step}: {digests}")


def state_bytes(model, ema, optimizer) -> dict[str, int]:
    """Bytes this process holds of the parameters, their gradients, the optimizer state and the EMA (its own
    shards under FSDP2, a full replica under DDP)."""
    def size(t) -> int:
        t = getattr(t, "_local_tensor", t)  # a DTensor's shard
        return t.numel() * t.element_size()

    return {"parameters": sum(size(p) for p in model.parameters()),
            "gradients": sum(size(p.grad) for p in model.parameters() if p.grad is not None),
            "optimizer": sum(size(v) for s in optimizer.state.values() for v in s.values()
                             if isinstance(v, torch.Tensor) and v.ndim > 0),
            "ema": sum(size(p) for p in ema.parameters())}
