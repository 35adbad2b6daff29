"""The reference DFoT network, imported at run time from a checkout the user gives (``bench sampler --reference``).

DFoT's code (Song et al. 2025; MIT) is not part of this project and is never copied into it: the user fetches a
checkout (upstream's public snapshot now holds only a README; the fork ``ktncktnc/diffusion-forcing-transformer``
keeps the code, e.g. at commit a3a0e70) and names its root. Only the backbone package
``algorithms/dfot/backbones`` is imported, as a package of its own, so the Lightning / Hydra training code around it
(``algorithms/dfot/__init__.py``) is never run. The backbones import ``omegaconf``, ``timm`` (which needs
``torchvision``), ``rotary-embedding-torch`` and ``diffusers``; a missing one is named with the install line.

Weights: the reference's ``UViT3DPose`` has the parameter names of :class:`~syn2seq_core.dfot.uvit3d.UViT3DPose`
(the converter maps its checkpoints with the identity), so one network's ``state_dict`` loads into the other.
Inputs: the reference takes the noise level already scaled (``precond_scale * logsnr``) and the rays channel-first.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..base.errors import Syn2SeqInputError, require

BACKBONES = Path("algorithms") / "dfot" / "backbones"
# Modules the reference backbones import that this project does not need, and how to install them.
PACKAGES = {"omegaconf": "omegaconf", "timm": "timm", "torchvision": "torchvision",
            "rotary_embedding_torch": "rotary-embedding-torch", "diffusers": "diffusers", "numpy": "numpy"}
_MODULE = "_syn2seq_reference_dfot_backbones"


def load_backbones(root: str | Path):
    """The reference's ``algorithms/dfot/backbones`` package, imported from the checkout at ``root``."""
    root = Path(root).expanduser()
    package = root / BACKBONES
    if not (package / "u_vit" / "u_vit3d_pose.py").is_file():
        raise Syn2SeqInputError("--reference", f"the root of a checkout of DFoT's code (with {BACKBONES}/u_vit/"
                                "u_vit3d_pose.py inside)", str(root),
                                "Fetch the code (e.g. the fork ktncktnc/diffusion-forcing-transformer, commit a3a0e70) "
                                "and give the folder that holds 'algorithms'")
    if _MODULE in sys.modules:
        loaded = sys.modules[_MODULE]
        if Path(loaded.__path__[0]).resolve() == package.resolve():
            return loaded
        for name in [n for n in sys.modules if n == _MODULE or n.startswith(_MODULE + ".")]:
            del sys.modules[name]
    spec = importlib.util.spec_from_file_location(_MODULE, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        for name in [n for n in sys.modules if n == _MODULE or n.startswith(_MODULE + ".")]:
            del sys.modules[name]
        missing = getattr(e, "name", None) or str(e)
        install = " ".join(sorted(set(PACKAGES.values())))
        raise Syn2SeqInputError("--reference", "a Python environment with the packages DFoT's backbones import",
                                f"{type(e).__name__}: {e}",
                                f"Install them beside this package (pip install {install}; timm imports torchvision, "
                                f"whose build must match torch's) — missing: {missing}") from e
    return module


def reference_uvit3d_pose(backbones, config, frames: int):
    """The reference ``UViT3DPose`` built for ``config`` (:class:`~syn2seq_core.dfot.uvit3d.UViT3DPoseConfig`) and a
    window of ``frames`` frames (the reference runs exactly its window). Random init; load weights into it."""
    from omegaconf import OmegaConf

    c = config
    require(c.height == c.width, "config", "square frames (the reference sizes its RoPE by the width)",
            f"{c.width}x{c.height}")
    require(c.cue == "none", "config", "a U-ViT without a cue (the reference has none)", repr(c.cue))
    require(c.noise_features == 256, "config noise_features", "256 (the reference's U-ViT fixes it)", c.noise_features)
    levels = len(c.channels)
    cfg = OmegaConf.create({
        "name": "u_vit3d_pose", "channels": list(c.channels), "emb_channels": c.emb_channels,
        "patch_size": c.patch_size, "block_types": list(c.block_types), "block_dropouts": list(c.block_dropouts),
        "num_updown_blocks": list(c.num_updown_blocks), "num_mid_blocks": c.num_mid_blocks,
        "num_heads": c.num_heads, "pos_emb_type": "rope", "use_checkpointing": [False] * levels,
        "conditioning": {"dim": c.ray_channels}, "external_cond_dropout": c.pose_dropout,
        "use_fourier_noise_embedding": True,
    })
    return backbones.UViT3DPose(cfg, (c.in_channels, c.height, c.width), frames, c.ray_channels)


def load_weights(reference, state_dict: dict) -> None:
    """Our U-ViT3D-Pose's weights into the reference network: every tensor, names unchanged."""
    missing, unexpected = reference.load_state_dict(state_dict, strict=False)
    require(not missing and not unexpected, "reference weights", "the same parameter names as ours",
            f"missing {missing[:5]}, unexpected {unexpected[:5]}")


def reference_inputs(config, logsnr, rays):
    """Our (logsnr [B, T], rays [B, T, H, W, C]) as the reference takes them: (noise_scale * logsnr, [B, T, C, H, W])."""
    return config.noise_scale * logsnr, rays.permute(0, 1, 4, 2, 3).contiguous()
