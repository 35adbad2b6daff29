"""FSDP2 for training (``parallel = "fsdp"`` in a training config): torch's ``fully_shard`` over the network's
blocks, then its root, so that each process holds 1/N of the parameters, gradients and optimizer state and
gathers a block's full weights only while that block runs (what lets the 458M-parameter DFoT U-ViT train
where DDP's full replica per GPU does not fit; ``syn2seq bench train`` says where).

Under ``bf16 = true`` the network is sharded with a ``MixedPrecisionPolicy``: its blocks' weights are
all-gathered and computed with in bfloat16 (half the traffic and half the unsharded copy), gradients are
reduce-scattered in float32 into the float32 shards the optimizer steps (as DDP's all-reduce of float32
gradients under autocast). Forward inputs are not cast (autocast decides per op; the noise levels stay
float32). The EMA model is sharded the same way, without a policy: it never runs forward while sharded (its
update is a local op on each shard). Checkpoints stay in the
format of a one-process run: full (unsharded) state dicts gathered to rank 0 with
``torch.distributed.checkpoint.state_dict``, the optimizer's keyed by parameter index as
``optimizer.state_dict()`` keys them, so a run may resume on any number of processes and under DDP or FSDP.
"""

from __future__ import annotations

import torch
from torch import nn


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards one by one: each entry of the network's block lists (DiT blocks, U-ViT ResBlocks,
    transformer blocks, up/down samplers; not the lists inside a block), the units whose weights are
    gathered together."""
    units: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        inside = any(name.startswith(unit + ".") for unit in units)
        if isinstance(module, nn.ModuleList) and not inside:
            units.update((f"{name}.{i}", m) for i, m in enumerate(module) if not isinstance(m, nn.ModuleList))
    return list(units.values())


def mixed_precision(bf16: bool):
    """The FSDP2 policy of a training run: bfloat16 parameters for compute and the all-gather, float32 gradient
    reduction, inputs left to autocast; None without bf16 (everything float32)."""
    if not bf16:
        return None
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def shard(model: nn.Module, bf16: bool = False) -> nn.Module:
    """``fully_shard`` each of :func:`shard_units`, then the root (the embeddings and the output head), over
    all processes of the default process group, with :func:`mixed_precision` (``bf16``). In place; returns
    ``model``."""
    from torch.distributed.fsdp import fully_shard

    policy = mixed_precision(bf16)
    options = {} if policy is None else {"mp_policy": policy}
    for unit in shard_units(model):
        fully_shard(unit, **options)
    fully_shard(model, **options)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict:
    """The full state dict of a sharded ``model`` on rank 0 (CPU tensors), ``{}`` on the other ranks.
    Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options())


def _parameter_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each optimizer parameter, in the order ``optimizer.state_dict()`` numbers them."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The full optimizer state of a sharded ``model`` on rank 0, keyed by parameter index exactly as a
    one-process ``optimizer.state_dict()`` (``{}`` on the other ranks). Collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = get_optimizer_state_dict(model, optimizer, options=_options())
    if not state:
        return {}
    index = {name: i for i, name in enumerate(_parameter_names(model, optimizer))}
    return {"state": {index[name]: value for name, value in state["state"].items()},
            "param_groups": [{**group, "params": [index[name] for name in group["params"]]}
                             for group in state["param_groups"]]}


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a full, index-keyed optimizer state (a checkpoint's, given on every rank) into the optimizer of
    a sharded ``model``: each rank keeps its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _parameter_names(model, optimizer)
    keyed = {"state": {names[i]: value for i, value in state["state"].items()},
             "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                              for group in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, keyed, options=StateDictOptions(full_state_dict=True))


def local_float(value) -> float:
    """A Python float of a tensor that may be a (replicated) DTensor, e.g. the grad norm of sharded grads."""
    if hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return float(value)
