"""The default ``operations`` namespace of the DFoT networks.

Every network constructor takes ``operations=`` and builds its weight-carrying layers through it, so a
host can inject its own layer classes without touching the core (ComfyUI passes
``comfy.ops.disable_weight_init`` or ``manual_cast`` to skip random init and cast weights on the fly).
A namespace only needs the classes it wants to replace: missing names fall back to :class:`TorchOps`.

Layer classes are called like ``torch.nn``'s: ``Linear(in, out, bias=True, device=None, dtype=None)``,
``Conv2d(in, out, kernel_size, stride=1, padding=0, bias=True, device=None, dtype=None)``,
``ConvTranspose2d(...)``, ``GroupNorm(num_groups, num_channels, eps, affine, device=None, dtype=None)``.
"""

from __future__ import annotations

from torch import nn

OP_NAMES = ("Linear", "Conv2d", "ConvTranspose2d", "GroupNorm")


class TorchOps:
    """Plain ``torch.nn`` layers (the default)."""

    Linear = nn.Linear
    Conv2d = nn.Conv2d
    ConvTranspose2d = nn.ConvTranspose2d
    GroupNorm = nn.GroupNorm


def resolve(operations=None):
    """A namespace with every name of :data:`OP_NAMES`: ``operations``' own class, else torch's."""
    if operations is None or operations is TorchOps:
        return TorchOps
    ns = type("ResolvedOps", (), {})
    for name in OP_NAMES:
        setattr(ns, name, getattr(operations, name, getattr(TorchOps, name)))
    return ns
