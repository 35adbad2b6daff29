"""Convert a DFoT PyTorch-Lightning checkpoint (e.g. ``DFoT_RE10K.ckpt``) into a syn2seq model file.

Reading never runs code from the file: ``torch.load(..., weights_only=True)`` uses torch's restricted
unpickler, which rebuilds only tensors, storages, dtypes, ``torch.Size``, ``OrderedDict`` and plain
Python containers and scalars; we allow nothing beyond that built-in list. A file that needs any other
global (a class, a function such as ``os.system``) is refused before anything is built, with the names
of the globals it asked for.

Where DFoT keeps the weights (``algorithms/dfot/dfot_video.py`` and ``utils/lightning_utils.py`` of
the reference code, commit a3a0e70):

- ``checkpoint["state_dict"]``: the LightningModule's state dict; the backbone's tensors are under
  ``diffusion_model.model.`` (``diffusion_model._orig_mod.model.`` when saved from a ``torch.compile``d
  module; DFoT itself strips ``_orig_mod.`` before saving). Other keys (metrics, VAE) are ignored.
- Released "pretrained" checkpoints are EMA-only: ``checkpoint["pretrained_ema"] = True`` and empty
  ``optimizer_states``; then ``state_dict`` already holds the EMA weights.
- Full training checkpoints keep the EMA in the EMA optimizer wrapper's state:
  ``checkpoint["optimizer_states"][0]["ema"]``, a sequence of tensors in the order of
  ``diffusion_model.named_parameters()``. That order is the state dict's key order with the buffers
  (``noise_level_pos_embedding.timesteps.freqs`` / ``phases``) left out, which is how we map them.

Key mapping onto :class:`~syn2seq_core.dfot.uvit3d.UViT3DPose`: strip the prefix
(:func:`dfot_key_to_uvit`); the rest of every name is kept as is. The config (channels, blocks per
level, heads, patch size, ray channels, embedding sizes) is read off the tensor shapes
(:func:`infer_uvit3d_config`); image size and window length are not stored in the weights and come from
the caller (RE10K: 256x256, 8 frames).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ..base.errors import Syn2SeqInputError
from .checkpoint import check_tensors, save_state_dict
from .schedule import DFOT_SAMPLING_STEPS, DFOT_TIMESTEPS
from .uvit3d import UViT3DPose, UViT3DPoseConfig

DTYPES = {"keep": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# --- reading the Lightning file --------------------------------------------------------------------------
_PLAIN_GLOBALS = {"collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray",
                  "builtins.complex", "builtins.slice", "builtins.range", "__builtin__.set"}


def _pickle_globals(data: bytes) -> list[str]:
    """Globals named by the pickles in ``data``, read with ``pickletools`` (parsing only, nothing runs)."""
    import io
    import pickletools

    names, strings, stream = [], [], io.BytesIO(data)
    while stream.tell() < len(data):
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:
            break
    return names


def _unsafe_globals(path: Path) -> list[str]:
    """Best-effort list of the non-tensor globals a checkpoint asks for (for the refusal message)."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        else:
            with open(path, "rb") as f:
                names = _pickle_globals(f.read(1 << 26))
    except Exception:
        return []
    return sorted({n for n in names if not n.startswith("torch.") and n not in _PLAIN_GLOBALS})


def load_lightning_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` (memory-mapped when possible). Refuses anything else.

    Raises :class:`Syn2SeqInputError` naming the path for a missing, damaged or code-carrying file.
    """
    path = Path(path)
    if not path.is_file():
        raise Syn2SeqInputError(str(path), "an existing DFoT .ckpt file", "no such file")
    try:
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as e:
        names = _unsafe_globals(path) or re.findall(r"GLOBAL ([\w.]+)", str(e))
        found = (f"a pickle that needs the globals {sorted(set(names))}" if names
                 else f"a pickle that the safe loader refuses ({str(e).splitlines()[0]})")
        raise Syn2SeqInputError(
            str(path), "a checkpoint holding only tensors and plain containers", found,
            "Refused without running it: loading would execute code from the file. If you trust its "
            "source, re-save only its tensors (state_dict / optimizer_states) in a trusted Python session "
            "and convert that") from None
    except Exception as e:
        raise Syn2SeqInputError(str(path), "a PyTorch (Lightning) checkpoint", f"an unreadable file ({e})",
                                "The file is damaged or is not a .ckpt: download it again") from None
    if not isinstance(ckpt, dict):
        raise Syn2SeqInputError(str(path), "a checkpoint dict", type(ckpt).__name__)
    return ckpt


def dfot_key_to_uvit(key: str) -> str | None:
    """The UViT3DPose parameter name of a DFoT Lightning key, or None for keys outside the backbone."""
    key = key.replace("diffusion_model._orig_mod.", "diffusion_model.")
    for prefix in ("diffusion_model.model._orig_mod.", "diffusion_model.model."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


def _raw_state_dict(ckpt: dict, where: str) -> dict:
    if "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt  # a bare state dict
    else:
        raise Syn2SeqInputError(where, "a Lightning checkpoint with a 'state_dict'", f"keys {sorted(ckpt)[:10]}")
    if not isinstance(sd, dict):
        raise Syn2SeqInputError(f"{where} state_dict", "a dict of tensors", type(sd).__name__)
    return sd


def dfot_backbone_state_dict(ckpt: dict, use_ema: bool = True, where: str = "checkpoint",
                             config: UViT3DPoseConfig | None = None) -> tuple[dict, str]:
    """The backbone's tensors under UViT3DPose names, and a note saying where they came from.

    use_ema: take the EMA weights (from ``state_dict`` of an EMA-only release, else from
    ``optimizer_states[0]["ema"]``); if the file has none, the training weights are used and the note says so.
    config: the network config, needed only to tell parameters from buffers for the EMA list (inferred
    from the shapes when None).
    """
    raw = _raw_state_dict(ckpt, where)
    state: dict[str, torch.Tensor] = {}
    ignored = 0
    for key, value in raw.items():
        name = dfot_key_to_uvit(key)
        if name is None:
            ignored += 1
            continue
        if not isinstance(value, torch.Tensor):
            raise Syn2SeqInputError(f"{where} state_dict[{key!r}]", "a tensor", type(value).__name__)
        state[name] = value
    if not state:
        raise Syn2SeqInputError(where, "DFoT backbone tensors under 'diffusion_model.model.'",
                                f"none among {len(raw)} keys (first: {list(raw)[:3]})")
    extra = f"; {ignored} non-backbone keys ignored" if ignored else ""
    optim = ckpt.get("optimizer_states") or []
    if not use_ema:
        return state, "state_dict (training weights, EMA not requested)" + extra
    if ckpt.get("pretrained_ema", False) and not optim:
        return state, "state_dict (EMA weights: pretrained_ema release)" + extra
    ema = optim[0].get("ema") if optim and isinstance(optim[0], dict) else None
    if ema is None:
        return state, "state_dict (no EMA weights in the file: training weights used)" + extra
    config = config or infer_uvit3d_config(state)
    param_names = {n for n, _ in UViT3DPose(config, device="meta").named_parameters()}
    ordered = [n for n in state if n in param_names]  # the reference's named_parameters() order
    ema = list(ema)
    if len(ema) != len(ordered):
        raise Syn2SeqInputError(f"{where} optimizer_states[0]['ema']", f"{len(ordered)} tensors (one per parameter)",
                                f"{len(ema)} tensors")
    for name, tensor in zip(ordered, ema):
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(state[name].shape):
            raise Syn2SeqInputError(f"{where} optimizer_states[0]['ema']", f"{name} of shape {tuple(state[name].shape)}",
                                    getattr(tensor, "shape", type(tensor).__name__),
                                    "The EMA list is not in the parameter order of the state dict")
        state[name] = tensor
    return state, "optimizer_states[0]['ema'] (EMA weights)" + extra


# --- the config from the shapes ----------------------------------------------------------------------------
def _indices(state: dict, prefix: str) -> list[int]:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return sorted(found)


def infer_uvit3d_config(state: dict, **overrides) -> UViT3DPoseConfig:
    """A UViT3DPoseConfig matching the tensor shapes of a backbone state dict (UViT3DPose names).

    ``overrides`` set what the weights do not store: height, width, max_frames, pose_dropout, ...
    """
    def shape(key: str) -> tuple:
        if key not in state:
            raise Syn2SeqInputError("checkpoint", f"a U-ViT3D-Pose backbone with tensor {key!r}", "none",
                                    "Only DFoT's U-ViT3D-Pose (the RE10K model) is supported")
        return tuple(state[key].shape)

    emb, noise_features = shape("noise_level_pos_embedding.embedding.linear_1.weight")
    _, ray_channels, patch, _ = shape("external_cond_embedding.patch_embedder.proj.weight")
    ch0, in_channels, _, _ = shape("embed_input.proj.weight")
    n_down = len(_indices(state, "down_blocks."))
    channels, updown, types = [ch0], [], []
    head_dim = None

    def kind(prefix: str) -> str:
        nonlocal head_dim
        if f"{prefix}fused_attn_mlp_proj.weight" in state:
            head_dim = shape(f"{prefix}q_norm.weight")[0]
            return "TransformerBlock"
        return "ResBlock"

    for level in range(n_down):
        blocks = _indices(state, f"down_blocks.{level}.")
        updown.append(len(blocks) - 1)
        types.append(kind(f"down_blocks.{level}.0."))
        channels.append(shape(f"down_blocks.{level}.{blocks[-1]}.conv.weight")[0])
    mid = len(_indices(state, "mid_blocks."))
    types.append(kind("mid_blocks.0.") if mid else "TransformerBlock")
    heads = channels[-1] // head_dim if head_dim else UViT3DPoseConfig.num_heads
    values = dict(in_channels=in_channels, channels=tuple(channels), emb_channels=emb, patch_size=patch,
                  block_types=tuple(types), block_dropouts=tuple(0.1 if t == "TransformerBlock" else 0.0 for t in types),
                  num_updown_blocks=tuple(updown), num_mid_blocks=mid, num_heads=heads,
                  ray_channels=ray_channels, noise_features=noise_features)
    values.update(overrides)
    return UViT3DPoseConfig(**values)


# --- the conversion ----------------------------------------------------------------------------------------
def convert_dfot_checkpoint(in_path: str | Path, out_path: str | Path, *, height: int = 256, width: int = 256,
                            max_frames: int = 8, use_ema: bool = True, dtype: str = "keep") -> dict:
    """Read a DFoT Lightning checkpoint and write a syn2seq safetensors model file. Returns a summary dict.

    The mapped tensors are checked against the UViT3DPose built from the inferred config (names and
    shapes) before anything is written; the write is atomic.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if dtype not in DTYPES:
        raise Syn2SeqInputError("dtype", f"one of {sorted(DTYPES)}", repr(dtype))
    ckpt = load_lightning_checkpoint(in_path)
    state, _ = dfot_backbone_state_dict(ckpt, use_ema=False, where=str(in_path))
    config = infer_uvit3d_config(state, height=height, width=width, max_frames=max_frames)
    state, source = dfot_backbone_state_dict(ckpt, use_ema=use_ema, where=str(in_path), config=config)
    model = UViT3DPose(config, device="meta")
    check_tensors({k: tuple(v.shape) for k, v in model.state_dict().items()},
                  {k: tuple(v.shape) for k, v in state.items()}, str(in_path))
    params = {n for n, _ in model.named_parameters()}
    target = DTYPES[dtype]
    if target is not None:
        state = {k: v.to(target) if k in params and v.is_floating_point() else v for k, v in state.items()}
    state = {k: state[k] for k in model.state_dict()}  # the network's order
    summary = {"source_file": in_path.name, "weights": source, "tensors": len(state),
               "parameters": sum(state[k].numel() for k in params),
               "global_step": ckpt.get("global_step"), "epoch": ckpt.get("epoch"),
               "lightning_version": ckpt.get("pytorch-lightning_version")}
    # How the reference samples this network and which intrinsics it saw: the pipeline follows both.
    sampling = {"grid": "dfot_ddim", "timesteps": DFOT_TIMESTEPS, "steps": DFOT_SAMPLING_STEPS}
    save_state_dict(out_path, state, config, extra_metadata={"source": summary, "sampling": sampling,
                                                             "camera_convention": "re10k"})
    summary.update(config=config, sampling=sampling, camera_convention="re10k")
    return summary
