"""LoRA finetuning: low-rank adapters on a network's attention and MLP projections, through ``peft``.

Training (``[lora] rank = r`` in a training config) injects ``peft`` LoRA layers into the network after its
initial weights are loaded (``init_from``) and trains only them. A run then writes, beside the usual files, its
adapters alone as ``lora.safetensors`` (a few MB for a 458M-parameter DFoT) with the base network's arch and
config in the metadata; ``model.safetensors`` holds the base with the adapters merged in, loadable anywhere.
:func:`apply_lora` puts a ``lora.safetensors`` on top of a loaded base network (``--lora`` of the generation
commands): it merges ``W += (alpha / rank) B A`` into the weights, so loading needs no ``peft``.

A LoRA file also keeps its run: the run's training record (as the run's ``model.safetensors``: noise shift,
frame counts, how it samples and which cameras it saw) and the record of the base it was trained on
(``syn2seq.lora_base``: the base file and its metadata record). Loading a base with adapters
(:func:`lora_model_metadata`) uses the run's record, not the base's, so the pair samples as the merged model
does, and refuses a base of another network or another record, naming both files.

peft is an optional dependency (``pip install 'syn2seq[train]'``), needed only to train adapters.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..base.errors import Syn2SeqInputError, require

KEY_LORA = "syn2seq.lora"
KEY_LORA_BASE = "syn2seq.lora_base"
LORA_NAME = "lora.safetensors"
# The metadata that says how a model file is used (its training record, sampling grid and steps, camera
# convention, conversion source): a LoRA run's replaces its base's, and a base must have the one it was trained on.
RECORD_KEYS = ("training", "sampling", "camera_convention", "source")
# The attention and MLP projections of each network (regular expressions over module names, full match).
DEFAULT_TARGETS = {
    "dit3d": r"blocks\.\d+\.((attn|temporal_attn)\.(qkv|out)|mlp_in|mlp_out)",
    "uvit3d_pose": r"(down_blocks|mid_blocks|up_blocks)\.\d+\.(\d+\.)?(fused_attn_mlp_proj|attn_out|mlp_out\.2)",
}


@dataclass(frozen=True)
class LoraConfig:
    """The ``[lora]`` table of a training config. rank 0 = full finetune (no adapters); alpha 0 = rank (scale
    1); targets: a regular expression over module names ("" = the arch's attention / MLP projections)."""

    rank: int = 0
    alpha: float = 0.0
    dropout: float = 0.0
    targets: str = ""

    def scale(self) -> float:
        return (self.alpha or self.rank) / self.rank

    def target_regex(self, arch: str) -> str:
        return self.targets or DEFAULT_TARGETS[arch]


def _peft():
    try:
        import peft
    except ImportError:
        raise Syn2SeqInputError("[lora] rank", "the optional dependency peft for LoRA training",
                                "no module named peft", "pip install 'syn2seq[train]' (or pip install peft)") from None
    return peft


def add_lora(network: nn.Module, cfg: LoraConfig) -> nn.Module:
    """Inject LoRA layers (B zero-initialised: the output is unchanged) and freeze everything else."""
    peft = _peft()
    arch = type(network.config).arch
    regex = cfg.target_regex(arch)
    import re

    names = [n for n, m in network.named_modules() if re.fullmatch(regex, n)]
    require(names, "[lora] targets", f"a pattern matching some of the network's linear layers ({arch})", regex)
    peft.inject_adapter_in_model(peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha or cfg.rank,
                                                 lora_dropout=cfg.dropout, target_modules=regex), network)
    for name, p in network.named_parameters():
        p.requires_grad_("lora_" in name)
    return network


def adapter_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters alone: ``{"<module>.lora_A.weight": [r, in], "<module>.lora_B.weight": [out, r]}``."""
    peft = _peft()
    return {k: v.detach().cpu() for k, v in peft.get_peft_model_state_dict(network).items()}


def merged_state_dict(network: nn.Module, cfg: LoraConfig) -> dict[str, torch.Tensor]:
    """The plain network's state dict (keys as without adapters), every adapter merged into its weight."""
    out = {key.replace(".base_layer.", "."): value.detach().clone()
           for key, value in network.state_dict().items() if "lora_" not in key}
    adapters = adapter_state_dict(network)
    for key, a in adapters.items():
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            b, w = adapters[f"{module}.lora_B.weight"], out[f"{module}.weight"]
            out[f"{module}.weight"] = (w.float() + cfg.scale() * (b.float() @ a.float()).to(w.device)).to(w.dtype)
    return out


def save_lora(path: str | Path, network: nn.Module, cfg: LoraConfig, extra_metadata: dict | None = None) -> Path:
    """Write the adapters of ``network`` with the base network's arch and config (atomic)."""
    from .checkpoint import save_state_dict

    meta = {KEY_LORA: json.dumps({**asdict(cfg), "targets": cfg.target_regex(type(network.config).arch)}),
            **(extra_metadata or {})}
    return save_state_dict(path, adapter_state_dict(network), network.config, meta)


def record_of(meta: dict[str, str]) -> dict[str, str]:
    """The :data:`RECORD_KEYS` entries of a model file's metadata."""
    return {k: meta[k] for k in RECORD_KEYS if k in meta}


def base_record(init_from: str | Path) -> dict:
    """What a LoRA file keeps of its base (``init_from``): the file, and its metadata record when it is a model
    file (a run folder or checkpoint has none: only the network is then checked)."""
    from .checkpoint import read_metadata

    path = Path(init_from)
    record = record_of(read_metadata(path)) if path.suffix == ".safetensors" and path.is_file() else None
    return {"file": str(init_from), "record": record}


def lora_model_metadata(lora: str | Path, base: str | Path, base_meta: dict[str, str], config) -> dict[str, str]:
    """The metadata to use a base (``base``: its file, ``base_meta``: its metadata, ``config``: its network) with
    the adapters of ``lora``: the base's, with the LoRA run's record (:data:`RECORD_KEYS`) in place of the
    base's. Refuses, naming both files, adapters of another network, or of the same network with another
    base record than the one they were trained on."""
    from .checkpoint import read_config, read_metadata

    lora, base = Path(lora), Path(base)
    require(lora.is_file(), "lora", "an existing lora.safetensors file", str(lora))
    meta = read_metadata(lora)
    require(KEY_LORA in meta, "lora", "a LoRA file written by syn2seq training ([lora] rank > 0)",
            f"{lora} without LoRA metadata", "Pass the run's lora.safetensors, not a model file")
    trained_on = json.loads(meta[KEY_LORA_BASE]) if KEY_LORA_BASE in meta else {"file": "?", "record": None}
    hint = (f"Load the base {trained_on['file']} that {lora} was trained on, or the run's model.safetensors "
            "(the adapters merged in)")
    network = read_config(lora)
    if network != config:
        raise Syn2SeqInputError("lora", f"adapters trained on this network ({base}: {type(config).__name__})",
                                f"{lora}, trained on a base of another network ({type(network).__name__} {network})",
                                hint)
    expected = trained_on["record"]
    if expected is not None and record_of(base_meta) != expected:
        differ = sorted(k for k in set(expected) | set(record_of(base_meta))
                        if expected.get(k) != base_meta.get(k))
        raise Syn2SeqInputError("lora", f"the base record {lora} was trained on ({trained_on['file']})",
                                f"{base} with another record ({', '.join(differ)} differ)", hint)
    return {**{k: v for k, v in base_meta.items() if k not in RECORD_KEYS}, **record_of(meta)}


def apply_lora(network: nn.Module, path: str | Path) -> nn.Module:
    """Merge the adapters of a ``lora.safetensors`` into a loaded base network (in place), after checking the
    file was trained on this very network (arch and config)."""
    from safetensors import safe_open

    from .checkpoint import read_config, read_metadata

    path = Path(path)
    require(path.is_file(), "lora", "an existing lora.safetensors file", str(path))
    meta = read_metadata(path)
    require(KEY_LORA in meta, "lora", "a LoRA file written by syn2seq training ([lora] rank > 0)",
            f"{path} without LoRA metadata", "Pass the run's lora.safetensors, not a model file")
    base = read_config(path)
    require(base == network.config, "lora", f"adapters trained on this network ({type(network.config).__name__} "
            f"{network.config})", f"adapters for {base}", "Load the base model the LoRA was trained from")
    cfg = LoraConfig(**json.loads(meta[KEY_LORA]))
    params = dict(network.named_parameters())
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        modules = sorted({k[: -len(".lora_A.weight")] for k in keys if k.endswith(".lora_A.weight")})
        require(modules and all(f"{m}.lora_B.weight" in keys for m in modules), "lora",
                "pairs of lora_A / lora_B weights", f"{len(keys)} tensors in {path}")
        with torch.no_grad():
            for module in modules:
                w = params.get(f"{module}.weight")
                require(w is not None, "lora", "adapters of modules of this network", module)
                a, b = f.get_tensor(f"{module}.lora_A.weight"), f.get_tensor(f"{module}.lora_B.weight")
                require(tuple(b.shape[:1]) + tuple(a.shape[1:]) == tuple(w.shape), "lora",
                        f"{module} adapters of shape {tuple(w.shape)}", (tuple(b.shape), tuple(a.shape)))
                w.add_((cfg.scale() * (b.float() @ a.float())).to(device=w.device, dtype=w.dtype))
    return network
