"""Fréchet Inception Distance (FID) of single frames, with the Inception-v3 of pytorch-fid, read safely.

What FID is here
    Heusel et al. 2017, as pytorch-fid (mseitzer/pytorch-fid, the port of the TTUR reference) computes it:
    every frame is embedded with the "FID Inception" (the TF Inception-v3 graph of ``inception-2015-12-05``,
    ported to PyTorch), the 2048-d output of its final average pool ("pool3"); one Gaussian is fitted to
    each set (mean, covariance with ddof 1, ``np.cov``) and FID is the Fréchet distance between them,
    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` (:func:`syn2seq_core.metrics.fvd.frechet_distance`,
    the same formula as pytorch-fid's ``calculate_frechet_distance``, without its complex round-off).
    Here the frames of a method (every generated frame of every take) form one set and the ground-truth
    frames of the same takes the other: a *frame-level* FID, next to FVD's clip-level one.

The network (:class:`FIDInception`)
    torchvision's ``Inception3`` (``num_classes=1008``, no auxiliary head) with pytorch-fid's patches: the
    average pools of the ``InceptionA``/``C``/first ``E`` blocks (``Mixed_5b``-``5d``, ``6b``-``6e``, ``7b``)
    ignore the zero padding (``count_include_pad=False``, as TF's average pool), and the last ``E`` block
    (``Mixed_7c``) pools with a 3x3 max-pool instead. BasicConv2d = Conv2d (no bias) -> BatchNorm (eps 1e-3)
    -> ReLU. The features are the output of the final adaptive average pool; the classifier ``fc`` is never
    run (its weights are accepted, shape-checked and dropped). Module names are torchvision's, so the
    state-dict keys are those of pytorch-fid's weights file ``pt_inception-2015-12-05-6726825d.pth``:
    ``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch_pool.bn.running_var``, ``Mixed_7c.branch3x3dbl_3b.conv
    .weight``, ``fc.bias``. Written here from the layout of those two sources (pytorch-fid is not imported:
    it imports torchvision, which the pack does not need).

Preprocessing (:func:`inception_features`)
    Frames ``[N, 3, H, W]`` in [0, 1] are resized to 299x299 (bilinear, half-pixel centres, no antialiasing,
    aspect not kept: pytorch-fid's ``resize_input``), mapped to [-1, 1] by ``2x - 1`` (``normalize_input``)
    and embedded in float32; the features come back as float64.

The weights file
    pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (:data:`INCEPTION_URL`), a plain state dict,
    read with ``torch.load(..., weights_only=True)`` (no code runs), or a ``.safetensors`` copy with the same
    keys (:func:`convert_inception_weights`). Keys of pytorch-fid's ``InceptionV3`` wrapper
    (``blocks.2.3.branch3x3.conv.weight``) are renamed to torchvision's. Every key and shape is checked at
    load. Without the file, :func:`load_inception` raises :class:`FIDUnavailable` and reports carry
    ``"unavailable: <reason>"``: never a number from another network.

How many frames
    FID is biased upwards like FVD (docs/fvd.md, "FID" section): two samples of one distribution score a
    floor that falls as ``c / N`` only once the 2048-d covariances have full rank. :func:`fid_entry` marks
    sets under :data:`MINIMUM_FRAMES` frames ``"stable": false``. Frames of one clip are correlated, so the
    effective sample is smaller than the frame count: compare methods only at equal N on the same real set.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base.errors import Syn2SeqInputError, require
from .frames import MetricUnavailable, read_state_dict

FEATURE_DIM = 2048
INPUT_SIZE = 299
BN_EPS = 1e-3
NUM_CLASSES = 1008
# The smallest frame set whose FID is marked stable: from N = D = 2048 frames on, the measured same-distribution
# floor falls as c / N; below it the value mostly measures N (docs/fvd.md, "FID"; pytorch-fid's README asks for
# at least 2048 images for the same reason).
MINIMUM_FRAMES = 2048
RECOMMENDED_FRAMES = 10000
INCEPTION_FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
HOW_TO_GET_INCEPTION = (f"FID needs pytorch-fid's FID Inception weights: download {INCEPTION_FILE_NAME} "
                        f"({INCEPTION_URL}) and pass it as syn2seq eval --inception FILE (Python: "
                        "load_inception(FILE)). It is read as weights only (torch.load(weights_only=True)); a "
                        ".safetensors copy written by syn2seq_core.metrics.fid.convert_inception_weights works too. "
                        "Nothing is downloaded")
_RANGE_SLACK = 0.5


class FIDUnavailable(MetricUnavailable):
    """FID cannot be computed here: no Inception weights file. ``reason`` says how to get one."""

    def __init__(self, reason: str):
        super().__init__("fid", reason)


# --- the network ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InceptionConfig:
    """Layout of the FID Inception. The defaults ARE the FID network; ``width`` < 1 scales every channel count
    (same modules and key names) for cheap random-weight tests."""

    width: float = 1.0

    def channels(self, c: int) -> int:
        return max(1, round(c * self.width))


class BasicConv2d(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (eps 1e-3) -> ReLU, under the names ``conv`` and ``bn``."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


# A block is a list of branches run on the same input and concatenated on channels. A branch is a list of steps:
#   (name, out_channels, kernel, stride, padding)   a BasicConv2d registered as ``name``
#   ("avg",) / ("max",)                             3x3 stride-1 pad-1 pooling (avg without the padded zeros)
#   ("maxpool_s2",)                                 3x3 stride-2 max-pool, no padding
#   ("split", step_a, step_b)                       two convolutions of the same input, concatenated
# Channel counts are the reference's; widths in braces come from the block's arguments.
def _block_a(pool_features: int, pool: str = "avg") -> list:
    return [[("branch1x1", 64, 1, 1, 0)],
            [("branch5x5_1", 48, 1, 1, 0), ("branch5x5_2", 64, 5, 1, 2)],
            [("branch3x3dbl_1", 64, 1, 1, 0), ("branch3x3dbl_2", 96, 3, 1, 1), ("branch3x3dbl_3", 96, 3, 1, 1)],
            [(pool,), ("branch_pool", pool_features, 1, 1, 0)]]


def _block_b() -> list:
    return [[("branch3x3", 384, 3, 2, 0)],
            [("branch3x3dbl_1", 64, 1, 1, 0), ("branch3x3dbl_2", 96, 3, 1, 1), ("branch3x3dbl_3", 96, 3, 2, 0)],
            [("maxpool_s2",)]]


def _block_c(c7: int) -> list:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the factorised 7x7
    return [[("branch1x1", 192, 1, 1, 0)],
            [("branch7x7_1", c7, 1, 1, 0), ("branch7x7_2", c7, row[0], 1, row[1]),
             ("branch7x7_3", 192, col[0], 1, col[1])],
            [("branch7x7dbl_1", c7, 1, 1, 0), ("branch7x7dbl_2", c7, col[0], 1, col[1]),
             ("branch7x7dbl_3", c7, row[0], 1, row[1]), ("branch7x7dbl_4", c7, col[0], 1, col[1]),
             ("branch7x7dbl_5", 192, row[0], 1, row[1])],
            [("avg",), ("branch_pool", 192, 1, 1, 0)]]


def _block_d() -> list:
    return [[("branch3x3_1", 192, 1, 1, 0), ("branch3x3_2", 320, 3, 2, 0)],
            [("branch7x7x3_1", 192, 1, 1, 0), ("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
             ("branch7x7x3_3", 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 3, 2, 0)],
            [("maxpool_s2",)]]


def _block_e(pool: str) -> list:
    def split(a, b):
        return ("split", (a, 384, (1, 3), 1, (0, 1)), (b, 384, (3, 1), 1, (1, 0)))

    return [[("branch1x1", 320, 1, 1, 0)],
            [("branch3x3_1", 384, 1, 1, 0), split("branch3x3_2a", "branch3x3_2b")],
            [("branch3x3dbl_1", 448, 1, 1, 0), ("branch3x3dbl_2", 384, 3, 1, 1),
             split("branch3x3dbl_3a", "branch3x3dbl_3b")],
            [(pool,), ("branch_pool", 192, 1, 1, 0)]]


class InceptionBlock(nn.Module):
    """One Inception block from a branch table (above); its convolutions are attributes named as torchvision's."""

    def __init__(self, c_in: int, branches: list, ch):
        super().__init__()
        self.branches = branches
        out = 0
        for branch in branches:
            c = c_in
            for step in branch:
                if step[0] == "split":
                    c = sum(self._conv(c, s, ch) for s in step[1:])
                elif len(step) > 1:
                    c = self._conv(c, step, ch)
            out += c
        self.out_channels = out

    def _conv(self, c_in: int, step, ch) -> int:
        name, c_out, kernel, stride, padding = step
        self.add_module(name, BasicConv2d(c_in, ch(c_out), kernel, stride, padding))
        return ch(c_out)

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        for branch in self.branches:
            y = x
            for step in branch:
                if step[0] == "avg":
                    y = F.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False)
                elif step[0] == "max":
                    y = F.max_pool2d(y, 3, stride=1, padding=1)
                elif step[0] == "maxpool_s2":
                    y = F.max_pool2d(y, 3, stride=2)
                elif step[0] == "split":
                    y = torch.cat([getattr(self, s[0])(y) for s in step[1:]], dim=1)
                else:
                    y = getattr(self, step[0])(y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class FIDInception(nn.Module):
    """pytorch-fid's FID Inception (see the module docstring). forward(x: [N, 3, H, W] in [-1, 1], 299x299 for the
    reference) -> [N, 2048] pool3 features (float32)."""

    def __init__(self, config: InceptionConfig = InceptionConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        self.Conv2d_1a_3x3 = BasicConv2d(3, ch(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(ch(32), ch(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(ch(32), ch(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(ch(64), ch(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(ch(80), ch(192), 3)
        c = ch(192)
        layout = [("Mixed_5b", _block_a(32)), ("Mixed_5c", _block_a(64)), ("Mixed_5d", _block_a(64)),
                  ("Mixed_6a", _block_b()), ("Mixed_6b", _block_c(128)), ("Mixed_6c", _block_c(160)),
                  ("Mixed_6d", _block_c(160)), ("Mixed_6e", _block_c(192)), ("Mixed_7a", _block_d()),
                  ("Mixed_7b", _block_e("avg")), ("Mixed_7c", _block_e("max"))]
        self.mixed = []
        for name, branches in layout:
            block = InceptionBlock(c, branches, ch)
            self.add_module(name, block)
            self.mixed.append(name)
            c = block.out_channels
        self.out_channels = c
        # The classifier of the weights file (1008 classes); kept so its keys load, never run.
        self.fc = nn.Linear(c, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in self.mixed:
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


# --- weights --------------------------------------------------------------------------------------
# pytorch-fid's InceptionV3 wrapper stores the same modules as blocks.<b>.<i>; their torchvision names:
_WRAPPER_NAMES = {0: ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"], 1: ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
                  2: ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
                  3: ["Mixed_7a", "Mixed_7b", "Mixed_7c"]}


def _canonical_key(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        key = key.removeprefix(prefix)
    parts = key.split(".")
    if len(parts) > 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2].isdigit():
        names = _WRAPPER_NAMES.get(int(parts[1]), [])
        if int(parts[2]) < len(names):
            return ".".join([names[int(parts[2])], *parts[3:]])
    return key


def _read_state_dict(p: Path) -> dict[str, Tensor]:
    sd = read_state_dict(p, "Inception file", f"{INCEPTION_FILE_NAME}, a .safetensors copy or a torch state dict")
    return {_canonical_key(k): v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def _fit_state_dict(sd: Mapping[str, Tensor], config: InceptionConfig, source: str) -> dict[str, Tensor]:
    """``sd`` checked key by key and shape by shape against :class:`FIDInception` (``config``), as float32."""
    with torch.device("meta"):
        expected = {k: v for k, v in FIDInception(config).state_dict().items()
                    if not k.endswith("num_batches_tracked")}
    what = f"Inception file '{source}'"
    layout = "the FID Inception" if config == InceptionConfig() else f"an FID Inception with {config}"
    optional = {"fc.weight", "fc.bias"}  # the classifier: checked when present, never needed
    missing = [k for k in expected if k not in sd and k not in optional]
    if missing:
        raise Syn2SeqInputError(f"{what} key '{missing[0]}'", f"every tensor of {layout} (torchvision Inception3 "
                                "names, as pytorch-fid's pt_inception file)", f"{len(missing)} missing "
                                f"({', '.join(missing[:3])}, ...); the file has {len(sd)} tensors, e.g. "
                                f"{sorted(sd)[:4]}")
    extra = [k for k in sd if k not in expected]
    if extra:
        raise Syn2SeqInputError(what, f"only the tensors of {layout}", f"{len(extra)} unknown ones, e.g. {extra[:4]}",
                                "torchvision's own inception_v3 weights (with AuxLogits) are not the FID network")
    for k in (k for k in expected if k in sd):  # in the network's order: the first layer first
        if tuple(sd[k].shape) != tuple(expected[k].shape):
            raise Syn2SeqInputError(f"{what} key '{k}'", f"shape {tuple(expected[k].shape)} for {layout}",
                                    f"{tuple(sd[k].shape)}")
        if not sd[k].is_floating_point():
            raise Syn2SeqInputError(f"{what} key '{k}'", "floating-point values", sd[k].dtype)
    return {k: sd[k].detach().to(torch.float32).contiguous() for k in expected if k in sd}


def _check_file(path) -> Path:
    if path is None:
        raise FIDUnavailable(f"no Inception weights given. {HOW_TO_GET_INCEPTION}")
    if not isinstance(path, (str, os.PathLike)):
        raise Syn2SeqInputError("FID Inception weights", "a file path", type(path).__name__)
    p = Path(path).expanduser()
    if not p.is_file():
        raise FIDUnavailable(f"no Inception weights file at '{p}'. {HOW_TO_GET_INCEPTION}")
    return p


def load_inception(path, config: InceptionConfig = InceptionConfig()) -> FIDInception:
    """The FID Inception with weights from ``path`` (pytorch-fid's .pth, a .safetensors copy or a state dict), in eval
    mode on the CPU. Raises :class:`FIDUnavailable` (with how to get the file) when ``path`` is None or no file is
    there, and :class:`Syn2SeqInputError` when the file is damaged or does not fit the network. Cached per (file,
    modification time, size, config)."""
    p = _check_file(path)
    st = p.stat()
    return _load_cached(str(p.resolve()), st.st_mtime_ns, st.st_size, config)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, _mtime: int, _size: int, config: InceptionConfig) -> FIDInception:
    sd = _fit_state_dict(_read_state_dict(Path(path)), config, path)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        net = FIDInception(config)
    full = net.state_dict()
    counters = {k: torch.zeros((), dtype=torch.long) for k in full if k.endswith("num_batches_tracked")}
    fc = {k: torch.zeros(full[k].shape) for k in ("fc.weight", "fc.bias") if k not in sd}  # never run
    net.load_state_dict({**sd, **counters, **fc}, strict=True, assign=True)
    return net.eval().requires_grad_(False)


def convert_inception_weights(src, dst, config: InceptionConfig = InceptionConfig()) -> Path:
    """Write the weights of ``src`` (e.g. pytorch-fid's .pth) as a ``.safetensors`` file with torchvision's key names,
    after the same checks as :func:`load_inception`; reading it later needs no unpickling at all."""
    from safetensors.torch import save_file

    p = _check_file(src)
    out = Path(dst)
    require(out.suffix == ".safetensors", "Inception output file", "a path ending in .safetensors", str(out))
    sd = _fit_state_dict(_read_state_dict(p), config, str(p))
    save_file(sd, str(out), metadata={"format": "syn2seq-fid-inception", "source": p.name})
    return out


# --- features and the distance --------------------------------------------------------------------
def preprocess_frames(frames: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """pytorch-fid's input: frames [N, 3, H, W] in [0, 1] -> [N, 3, size, size] float32 in [-1, 1] (clamped to
    [0, 1], resized bilinearly with half-pixel centres, no antialiasing, aspect not kept)."""
    x = frames.float().clamp(0, 1)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 2 * x - 1


@torch.inference_mode()
def inception_features(frames: Tensor, net: nn.Module, batch: int = 32) -> Tensor:
    """FID features of each frame. frames: [N, 3, H, W] in [0, 1] -> [N, 2048] float64 (pool3)."""
    if not isinstance(frames, Tensor):
        raise Syn2SeqInputError("frames", "a tensor [N, 3, H, W]", type(frames).__name__)
    require(frames.ndim == 4 and frames.shape[1] == 3, "frames", "shape [N, 3, H, W] (RGB)", tuple(frames.shape))
    require(frames.is_floating_point(), "frames", "float values in [0, 1]", frames.dtype)
    require(isinstance(batch, int) and batch > 0, "batch", "a positive integer", batch)
    if frames.numel():
        bad = ~torch.isfinite(frames)
        if bool(bad.any()):
            raise Syn2SeqInputError("frames", "finite values", f"{int(bad.sum())} NaN/inf entries")
        lo, hi = float(frames.min()), float(frames.max())
        if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
            raise Syn2SeqInputError("frames", "values in [0, 1]", f"range [{lo:.3g}, {hi:.3g}]",
                                    "Rescale [0, 255] frames with x / 255 and [-1, 1] frames with (x + 1) / 2")
    device = next(net.parameters()).device
    out = [net(preprocess_frames(frames[i:i + batch].to(device))).double().cpu()
           for i in range(0, frames.shape[0], batch)]
    return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)


def fid(features_a, features_b) -> float:
    """FID between two sets of Inception features [N_a, D] and [N_b, D] (from :func:`inception_features`)."""
    from .fvd import feature_stats, frechet_distance

    mu_a, s_a = feature_stats(features_a)
    mu_b, s_b = feature_stats(features_b)
    require(mu_a.shape == mu_b.shape, "features_a/features_b", "the same feature dimension",
            f"{mu_a.shape[0]} vs {mu_b.shape[0]}")
    return frechet_distance(mu_a, s_a, mu_b, s_b)


def fid_entry(features_a, features_b) -> dict:
    """A JSON-ready entry ``{"fid": x, "frames": [n_a, n_b], "feature_dim": D, "stable": bool}``; ``stable`` is False
    below :data:`MINIMUM_FRAMES` frames per set (docs/fvd.md, "FID")."""
    a, b = torch.as_tensor(features_a), torch.as_tensor(features_b)
    value = fid(a, b)
    return {"fid": value if math.isfinite(value) else str(value), "frames": [int(a.shape[0]), int(b.shape[0])],
            "feature_dim": int(a.shape[1]), "stable": min(a.shape[0], b.shape[0]) >= MINIMUM_FRAMES}
