"""Per-sequence seeds: everything random about sequence ``i`` of the global batch of a step comes from
:func:`sequence_seed` (seed, step, i), whichever process draws it, so a run does not depend on its number of
processes and resumes exactly."""

from __future__ import annotations

import torch

from .config import TrainConfig


def sequence_seed(seed: int, step: int, index: int) -> int:
    """The seed of sequence ``index`` of the global batch of ``step``: everything random about it (scene,
    noise levels, noise, pose dropout; the network's block dropout, :func:`dropout_seeds`) comes from this
    seed, whichever process draws it."""
    import numpy as np

    return int(np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0])


def dropout_seeds(cfg: TrainConfig, step: int, first: int, count: int) -> torch.Tensor:
    """[count] int64: the seeds of sequences ``first .. first + count - 1`` of the global batch of ``step``
    (:func:`sequence_seed`) for the network's own randomness (the U-ViT's block dropout), whichever process
    holds them."""
    return torch.tensor([sequence_seed(cfg.seed, step, i) % 2**63 for i in range(first, first + count)],
                        dtype=torch.int64)


class PerSequenceSeeds:
    """The training network called micro-batch by micro-batch with each sequence's own ``dropout_seeds``
    (:func:`dropout_seeds`), in the order ``accumulated_backward`` runs the micro-batches of a step. Seen by
    that function as the network: ``module`` is the bare network (its config), ``_orig_mod`` the engine
    (DDP / FSDP2) that controls gradient sync."""

    def __init__(self, net, model):
        self.net, self.module = net, model
        self._orig_mod = getattr(net, "_orig_mod", net)
        self.seeds, self.used = None, 0

    def start(self, seeds: torch.Tensor) -> None:
        self.seeds, self.used = seeds, 0

    def __call__(self, x_t, logsnr, rays=None, **kwargs):
        B = x_t.shape[0]
        if self.used + B > len(self.seeds):
            raise RuntimeError(f"more sequences through the network this step than its {len(self.seeds)}")
        seeds = self.seeds[self.used:self.used + B]
        self.used += B
        return self.net(x_t, logsnr, rays, dropout_seeds=seeds, **kwargs)
