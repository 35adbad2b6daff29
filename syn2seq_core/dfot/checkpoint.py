"""Model files: safetensors weights with the network's config as JSON metadata.

Metadata keys (all strings, as safetensors requires):

- ``syn2seq.format``: the file format version (:data:`FORMAT_VERSION`);
- ``syn2seq.arch``: the network (a key of :func:`architectures`: ``dit3d``, ``uvit3d_pose``);
- ``syn2seq.config``: the config dataclass's fields as a JSON object;
- anything passed as ``extra_metadata`` (e.g. ``training``, ``source``), values JSON-encoded unless strings.

:func:`load_model` rebuilds the network from the stored config and refuses a file whose tensors do not
match it, naming the missing, unexpected and mis-shaped tensors. Nothing here unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from ..base.errors import Syn2SeqInputError

FORMAT_VERSION = 1
KEY_FORMAT = "syn2seq.format"
KEY_ARCH = "syn2seq.arch"
KEY_CONFIG = "syn2seq.config"
_SHOW = 5  # names listed per category in mismatch errors


def architectures() -> dict[str, tuple[type, type]]:
    """arch name -> (config dataclass, network class)."""
    from .model import DiT3D, DiT3DConfig
    from .uvit3d import UViT3DPose, UViT3DPoseConfig

    return {DiT3DConfig.arch: (DiT3DConfig, DiT3D), UViT3DPoseConfig.arch: (UViT3DPoseConfig, UViT3DPose)}


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(arch: str, values: dict, where: str = "config"):
    """Rebuild a config dataclass; unknown fields are refused, missing ones take their defaults."""
    archs = architectures()
    if arch not in archs:
        raise Syn2SeqInputError(where, f"a network among {sorted(archs)}", repr(arch))
    cls = archs[arch][0]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise Syn2SeqInputError(where, f"fields of {cls.__name__}", f"unknown fields {unknown}",
                                "The file was written by a newer or different version of syn2seq")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def presets() -> dict[str, tuple[callable, str]]:
    """arch name -> (preset function ``f(name, **overrides) -> config``, default preset name)."""
    from .model import DiT3DConfig, dit3d_preset
    from .uvit3d import UViT3DPoseConfig, uvit3d_preset

    return {DiT3DConfig.arch: (dit3d_preset, "tiny"), UViT3DPoseConfig.arch: (uvit3d_preset, "base")}


def config_from_table(table: dict, where: str = "[model]"):
    """A network config from a training config's ``[model]`` table: ``arch`` (``"dit3d"``, the default, or
    ``"uvit3d_pose"``), ``preset`` (a name of that arch's presets) and field overrides (lists become tuples).
    Errors name the key under ``where``."""
    table = dict(table)
    found = presets()
    arch = table.pop("arch", "dit3d")
    if arch not in found:
        raise Syn2SeqInputError(f"{where} arch", f"one of {sorted(found)}", repr(arch))
    make, default = found[arch]
    preset = table.pop("preset", default)
    cls = architectures()[arch][0]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise Syn2SeqInputError(where, f"keys among {sorted(known | {'arch', 'preset'})}", unknown,
                                f"These are the fields of arch {arch!r} ({cls.__name__})")
    try:
        return make(preset, **{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})
    except Syn2SeqInputError as e:
        raise Syn2SeqInputError(f"{where} {e.name}", e.expected, e.found, e.hint) from None


def build_model(config, operations=None, device=None, dtype=None) -> nn.Module:
    """The network of a config (random weights). ``operations``: see :mod:`syn2seq_core.dfot.ops`."""
    archs = architectures()
    arch = getattr(type(config), "arch", None)
    if arch not in archs:
        raise Syn2SeqInputError("config", f"a config of {sorted(archs)}", type(config).__name__)
    return archs[arch][1](config, operations=operations, device=device, dtype=dtype)


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel


def save_state_dict(path: str | Path, state_dict: dict[str, torch.Tensor], config,
                    extra_metadata: dict | None = None) -> Path:
    """Write ``state_dict`` + ``config`` atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    metadata = {KEY_FORMAT: str(FORMAT_VERSION), KEY_ARCH: type(config).arch,
                KEY_CONFIG: json.dumps(config_to_dict(config), sort_keys=True)}
    for key, value in (extra_metadata or {}).items():
        metadata[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    from ..io.atomic import default_file_mode, temp_file_near

    tmp = temp_file_near(path)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, default_file_mode())  # safetensors creates its file 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_model(path: str | Path, model: nn.Module, extra_metadata: dict | None = None) -> Path:
    """Save a DiT3D / UViT3DPose (its ``config`` travels as metadata). Atomic. Returns the path."""
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if config is None or getattr(type(config), "arch", None) not in architectures():
        raise Syn2SeqInputError("model", "a syn2seq DFoT network with a .config", type(model).__name__)
    return save_state_dict(path, model.state_dict(), config, extra_metadata)


def _open(path: Path):
    """safe_open the file, turning every failure into a message that names the path."""
    from safetensors import safe_open

    if not path.is_file():
        raise Syn2SeqInputError(str(path), "an existing .safetensors model file", "no such file")
    try:
        return safe_open(str(path), framework="pt")
    except Exception as e:  # SafetensorError is not importable under a stable name
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
        text = str(e)
        if head.startswith(b"PK") or head.startswith(b"\x80"):
            found = "a PyTorch pickle/zip checkpoint, not safetensors"
            hint = "A DFoT Lightning .ckpt is converted with: syn2seq convert-dfot IN.ckpt OUT.safetensors"
        elif "incomplete metadata" in text or "invalid header length" in text:
            found = f"a truncated safetensors file ({size} bytes; {text})"
            hint = "The download or copy was cut short: fetch the file again"
        else:
            found = f"a file that is not safetensors ({size} bytes; {text})"
            hint = None
        raise Syn2SeqInputError(str(path), "a safetensors model file", found, hint) from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of a model file (raises on a file that is not safetensors)."""
    with _open(Path(path)) as f:
        return dict(f.metadata() or {})


def read_config(path: str | Path):
    """The config stored in a model file, without loading the weights."""
    path = Path(path)
    meta = read_metadata(path)
    return _config_from_metadata(path, meta)


def _config_from_metadata(path: Path, meta: dict[str, str]):
    if KEY_CONFIG not in meta or KEY_ARCH not in meta:
        raise Syn2SeqInputError(str(path), "a syn2seq model file (safetensors with syn2seq.arch/config metadata)",
                                f"metadata keys {sorted(meta)}",
                                "DFoT checkpoints are converted with: syn2seq convert-dfot IN.ckpt OUT.safetensors")
    version = meta.get(KEY_FORMAT, "?")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise Syn2SeqInputError(str(path), f"format version <= {FORMAT_VERSION}", version,
                                "Update syn2seq to read this file")
    try:
        values = json.loads(meta[KEY_CONFIG])
    except json.JSONDecodeError as e:
        raise Syn2SeqInputError(str(path), "JSON config metadata", f"invalid JSON ({e})") from None
    return config_from_dict(meta[KEY_ARCH], values, where=f"{path} config")


def _describe(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    more = f", ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return f"{len(names)} [{shown}{more}]"


def check_tensors(expected: dict[str, tuple], found: dict[str, tuple], where: str) -> None:
    """Compare name -> shape maps; raise naming missing / unexpected / mis-shaped tensors (first few + counts)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected {_describe(unexpected)}")
        if mismatched:
            shown = [f"{k} {tuple(found[k])} vs {tuple(expected[k])}" for k in mismatched]
            parts.append(f"wrong shape (file vs config) {_describe(shown)}")
        raise Syn2SeqInputError(where, "tensors matching the stored config", "; ".join(parts),
                                "The weights do not belong to this config: the file is damaged or was edited")


def load_model(path: str | Path, device=None, dtype: torch.dtype | None = None, operations=None) -> nn.Module:
    """Load a model file into its network, in eval mode.

    device: where the weights go (default CPU); dtype: cast floating-point *parameters* to it (buffers,
    e.g. the Fourier noise features, stay float32); operations: layer namespace (see ``ops``).
    """
    path = Path(path)
    with _open(path) as f:
        config = _config_from_metadata(path, dict(f.metadata() or {}))
        model = build_model(config, operations=operations, device="meta")
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        check_tensors(expected, found, str(path))
        params = {k for k, _ in model.named_parameters()}
        state = {}
        for key in f.keys():
            t = f.get_tensor(key)
            if dtype is not None and key in params and t.is_floating_point():
                t = t.to(dtype)
            state[key] = t.to(device) if device is not None else t
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
