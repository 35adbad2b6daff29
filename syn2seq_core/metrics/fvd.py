"""Fréchet Video Distance (FVD) with the Kinetics-400 I3D of the reference implementation, read safely.

What FVD is here
    Unterthiner et al. (2018/2019): embed every video with an I3D network trained on Kinetics-400, fit one
    Gaussian to each set of embeddings, and report the Fréchet distance between the two Gaussians::

        FVD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

    ``mu``/``S``: mean and covariance (ddof 1, as TF-GAN, fvd-comparison and the FVD code in DFoT's repository
    do; StyleGAN-V's in-training metric uses ddof 0, a relative difference of about 1/N) of the per-video
    features, all in float64.

The network (:class:`I3D`)
    DeepMind's Inception-v1 I3D (Carreira & Zisserman 2017) exactly as the TF-Hub module
    ``deepmind/i3d-kinetics-400/1`` defines it, which is what the original FVD code embeds with: Unit3D =
    Conv3d (no bias) -> BatchNorm (moving statistics, eps 1e-3, beta only: scale fixed to 1) -> ReLU;
    TensorFlow "SAME" padding (asymmetric, extra pixel at the end) for every convolution and max-pool;
    nine Inception blocks; head = AvgPool3D [2, 7, 7] VALID -> Conv3d 1x1x1 with bias to 400 logits ->
    spatial squeeze -> mean over the remaining time steps. The FVD feature is that time-averaged 400-d
    logit vector, before any softmax (the TF reference reads ``RGB/inception_i3d/Mean:0``; StyleGAN-V's
    TorchScript port returns it with ``return_features=True``). Module names follow the PyTorch port that
    ``i3d_torchscript.pt`` was scripted from (``__torch__.src.i3dpt_jit.I3D``, a TorchScript-ready copy of
    ``src/i3dpt.py`` of hassony2/kinetics_i3d_pytorch): ``conv3d_1a_7x7.conv3d.weight``,
    ``conv3d_1a_7x7.batch3d.running_mean``, ``mixed_4b.branch_1.1.conv3d.weight``, ...,
    ``conv3d_0c_1x1.conv3d.bias``. Only at the 224x224 input the reference uses does the final 7x7 map
    exist; at other sizes (tests with tiny inputs only) the head averages the whole map.

Preprocessing (:func:`i3d_features`, :func:`preprocess_videos`)
    Videos ``[N, T, 3, H, W]`` in [0, 1]. Every frame is resized to 224x224 (bilinear, half-pixel centres,
    no antialiasing, aspect ratio NOT kept: the reference squashes, it does not crop), mapped to [-1, 1] by
    ``2x - 1`` and fed as ``[N, 3, T, 224, 224]``. The reference resizes in TF1 (``resize_bilinear`` without
    half-pixel centres); StyleGAN-V's port, like this code, uses PyTorch's resize ("matches the original
    up to the upsampling operation"). Clips need at least :data:`MIN_FRAMES` = 9 frames (the strided
    stages leave ``ceil(T / 8)`` time steps and the head's 2-frame average needs two); no padding or looping
    is done, as in the reference. All frames given are used; 16 is the usual clip length (StyleGAN-V's
    ``fvd2048_16f``), and FVDs are comparable only at equal clip length, frame rate and set size.

The weights file
    ``i3d_torchscript.pt`` (StyleGAN-V, also used by DFoT's evaluation). A TorchScript archive would
    normally be opened with ``torch.jit.load``, which runs the code inside it; that is not done here.
    :func:`read_torchscript_tensors` reads the archive as a zip, unpickles ``*/data.pkl`` with a
    restricted unpickler that knows only tensor rebuilding, storage types, ``OrderedDict``, TorchScript's
    list builders and inert stand-ins for ``__torch__.*`` classes (anything else is refused), and collects
    the tensors by module path. A ``.safetensors`` file or a plain state dict
    (``torch.load(..., weights_only=True)``) with the same keys works too (:func:`convert_i3d_weights` writes
    one), and so do the TF-Hub variable names
    (``RGB/inception_i3d/Mixed_3b/Branch_1/Conv3d_0b_3x3/conv_3d/w``, kernels in TF layout) for a file
    converted from the TF-Hub module. Every key and shape is checked at load.

Without the file, :func:`load_i3d` raises :class:`FVDUnavailable` and reports carry
``"unavailable: <reason>"``: never a number from another network.
"""

from __future__ import annotations

import functools
import io
import math
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base.errors import Syn2SeqInputError, require
from .frames import MetricUnavailable, Unavailable, read_state_dict

I3D_INPUT_SIZE = 224
MIN_FRAMES = 9
FEATURE_DIM = 400
BN_EPS = 1e-3
CONVENTIONAL_FRAMES = 16
RECOMMENDED_VIDEOS = 2048  # per set (StyleGAN-V's fvd2048_16f); docs/fvd.md has the measurement behind both
MINIMUM_VIDEOS = 512  # first size above the 400 features: full-rank covariances, a floor falling as 1/N
I3D_FILE_NAME = "i3d_torchscript.pt"
I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
HOW_TO_GET_I3D = (f"FVD needs the Kinetics-400 I3D of the FVD reference as ported by StyleGAN-V: download "
                  f"{I3D_FILE_NAME} ({I3D_URL}; linked from github.com/universome/stylegan-v "
                  "src/metrics/frechet_video_distance.py, and the file DFoT's evaluation uses) and pass it as "
                  "syn2seq eval --i3d FILE (Python: load_i3d(FILE)). It is read without running the code inside it; a .safetensors copy "
                  "written by syn2seq_core.metrics.fvd.convert_i3d_weights works too. Nothing is downloaded")
_RANGE_SLACK = 0.5  # as metrics.py: values beyond [-0.5, 1.5] mean another range was passed
_MAX_RECORD_BYTES = 4 << 30
_MAX_PICKLE_BYTES = 64 << 20


class FVDUnavailable(MetricUnavailable):
    """FVD cannot be computed here: no I3D weights file. ``reason`` says how to get one."""

    def __init__(self, reason: str):
        super().__init__("fvd", reason)


# --- the network ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class I3DConfig:
    """Layout of the I3D. The defaults ARE the FVD network; ``width`` < 1 scales every channel count
    (same modules, same key names) and ``num_classes`` the logit count, for cheap random-weight tests."""

    width: float = 1.0
    num_classes: int = FEATURE_DIM
    in_channels: int = 3

    def channels(self, c: int) -> int:
        return max(1, round(c * self.width))


# Inception blocks: (name, [branch_0, branch_1 reduce, branch_1, branch_2 reduce, branch_2, branch_3]).
_MIXED = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _pad_same(x: Tensor, kernel: list[int], stride: list[int], value: float) -> Tensor:
    """TensorFlow "SAME" padding of x: [N, C, T, H, W]: output size ceil(in / stride), the odd pixel at the end."""
    pads: list[int] = []
    for d in [2, 1, 0]:  # F.pad lists the last axis first: W, H, T
        size = x.shape[2 + d]
        out = (size + stride[d] - 1) // stride[d]
        total = max((out - 1) * stride[d] + kernel[d] - size, 0)
        pads.append(total // 2)
        pads.append(total - total // 2)
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d (TF SAME padding, no bias) -> BatchNorm3d (eps 1e-3) -> ReLU; the logit layer has a bias and neither."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), *, use_bn: bool = True, relu: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.relu = relu
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.batch3d = nn.BatchNorm3d(c_out, eps=BN_EPS) if use_bn else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride, 0.0))
        if self.batch3d is not None:
            x = self.batch3d(x)
        if self.relu:
            x = F.relu(x)
        return x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF SAME padding (padded cells never win, as in TF)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max-pool -> 1x1, concatenated on channels."""

    def __init__(self, c_in: int, c: Sequence[int]):
        super().__init__()
        self.branch_0 = Unit3D(c_in, c[0])
        self.branch_1 = nn.Sequential(Unit3D(c_in, c[1]), Unit3D(c[1], c[2], (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(c_in, c[3]), Unit3D(c[3], c[4], (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, c[5]))
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1)


class I3D(nn.Module):
    """Kinetics-400 Inception-v1 I3D (see the module docstring). forward(x: [N, 3, T, H, W] in [-1, 1]) ->
    [N, num_classes]: the logits averaged over time, the FVD feature. T >= 9; H = W = 224 for the reference."""

    def __init__(self, config: I3DConfig = I3DConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        self.conv3d_1a_7x7 = Unit3D(config.in_channels, ch(64), (7, 7, 7), (2, 2, 2))
        self.maxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(ch(64), ch(64))
        self.conv3d_2c_3x3 = Unit3D(ch(64), ch(192), (3, 3, 3))
        self.maxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        c = ch(192)
        blocks = {}
        for name, widths in _MIXED.items():
            blocks[name] = Mixed(c, [ch(w) for w in widths])
            c = blocks[name].out_channels
        self.mixed_3b, self.mixed_3c = blocks["mixed_3b"], blocks["mixed_3c"]
        self.maxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.mixed_4b, self.mixed_4c, self.mixed_4d = blocks["mixed_4b"], blocks["mixed_4c"], blocks["mixed_4d"]
        self.mixed_4e, self.mixed_4f = blocks["mixed_4e"], blocks["mixed_4f"]
        self.maxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.mixed_5b, self.mixed_5c = blocks["mixed_5b"], blocks["mixed_5c"]
        self.conv3d_0c_1x1 = Unit3D(c, config.num_classes, use_bn=False, relu=False, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxPool3d_2a_3x3(self.conv3d_1a_7x7(x))
        x = self.maxPool3d_3a_3x3(self.conv3d_2c_3x3(self.conv3d_2b_1x1(x)))
        x = self.maxPool3d_4a_3x3(self.mixed_3c(self.mixed_3b(x)))
        x = self.mixed_4f(self.mixed_4e(self.mixed_4d(self.mixed_4c(self.mixed_4b(x)))))
        x = self.mixed_5c(self.mixed_5b(self.maxPool3d_5a_2x2(x)))
        # AvgPool3D [2, 7, 7] VALID at the reference size (final map 7x7); the whole map at other sizes.
        x = F.avg_pool3d(x, [2, x.shape[3], x.shape[4]], [1, 1, 1])
        x = self.conv3d_0c_1x1(x)  # [N, classes, T', 1, 1]
        return x.flatten(2).mean(dim=2)


# --- reading a TorchScript archive without running it -------------------------------------------
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` & co. stand for in a pickle: only a dtype."""

    dtype: torch.dtype


class _ScriptObject:
    """Inert stand-in for a ``__torch__.*`` class (a TorchScript module or object): holds its pickled state."""

    torch_class = "__torch__"

    def __setstate__(self, state) -> None:
        self.state = state


@functools.cache
def _script_class(qualified: str) -> type:
    return type("TorchScriptObject", (_ScriptObject,), {"torch_class": qualified})


def _as_list(values) -> list:
    return list(values)


def _restore_type_tag(value, _type_string):
    return value


def _check_ints(x, what: str) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in x):
        raise pickle.UnpicklingError(f"tensor {what} is not a tuple of integers: {x!r:.80}")
    return tuple(x)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Our version of ``torch._utils._rebuild_tensor_v2``: a view of one of our storages, bounds-checked."""
    if not isinstance(storage, Tensor) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage record")
    size, stride = _check_ints(size, "size"), _check_ints(stride, "stride")
    if len(size) != len(stride) or not isinstance(storage_offset, int) or storage_offset < 0:
        raise pickle.UnpicklingError(f"inconsistent tensor layout: size {size}, stride {stride}, offset "
                                     f"{storage_offset!r}")
    if any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise pickle.UnpicklingError(f"negative tensor size or stride: {size}, {stride}")
    if 0 not in size:
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.numel():
            raise pickle.UnpicklingError(f"tensor of size {size} reads past its storage of {storage.numel()} elements")
    return storage.as_strided(size, stride, storage_offset).clone(memory_format=torch.contiguous_format)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError("parameter rebuilt from something that is not a tensor")
    return data


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
    ("torch.jit._pickle", "build_strlist"): _as_list,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    ("torch", "device"): str,
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    def __init__(self, qualified: str):
        self.qualified = qualified
        super().__init__(qualified)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl``: tensors come from the archive's storage records; only the globals
    listed in ``_ALLOWED_GLOBALS``, ``torch.<X>Storage`` types and ``__torch__.*`` classes (as inert
    containers) resolve; any other global raises before anything is called."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, Tensor] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        raise _ForbiddenGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
                or not isinstance(pid[2], str) or not re.fullmatch(r"\w+", pid[2]) or not isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.120}")
        dtype, key, numel = pid[1].dtype, pid[2], pid[4]
        cached = self._storages.get(key)
        if cached is not None:
            return cached
        record = f"{self._prefix}/data/{key}"
        try:
            info = self._archive.getinfo(record)
        except KeyError:
            raise pickle.UnpicklingError(f"missing storage record '{record}'") from None
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if numel < 0 or info.file_size < nbytes or info.file_size > _MAX_RECORD_BYTES:
            raise pickle.UnpicklingError(f"storage record '{record}' holds {info.file_size} bytes, {nbytes} expected")
        raw = bytearray(self._archive.read(record)[:nbytes])
        storage = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
        self._storages[key] = storage
        return storage


def _collect_tensors(root) -> dict[str, Tensor]:
    """Tensors found in an unpickled object tree, keyed by dotted path; iterative, so any nesting depth is fine."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    stack = [("", root)]
    while stack:
        path, obj = stack.pop()
        if isinstance(obj, Tensor):
            out.setdefault(path, obj)
            continue
        if id(obj) in seen:
            continue
        if isinstance(obj, _ScriptObject):
            items = [("", getattr(obj, "state", None))]
        elif isinstance(obj, Mapping):
            items = [(k, v) for k, v in obj.items() if isinstance(k, str)]
        elif isinstance(obj, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(obj)]
        else:
            continue
        seen.add(id(obj))
        for key, value in reversed(items):  # reversed: pop in file order, so a shared tensor keeps its first path
            stack.append((f"{path}.{key}" if path and key else path or key, value))
    return out


def _torchscript_prefix(archive: zipfile.ZipFile) -> str | None:
    """The archive's top folder if it is a TorchScript archive (it has code/ or constants.pkl), else None."""
    names = archive.namelist()
    for n in names:
        if n.endswith("/data.pkl") and n.count("/") == 1:
            prefix = n.split("/")[0]
            if any(m.startswith(f"{prefix}/code/") for m in names) or f"{prefix}/constants.pkl" in names:
                return prefix
    return None


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """Every tensor (parameters and buffers) of a TorchScript archive, keyed by module path
    (``mixed_3b.branch_1.0.conv3d.weight``), read WITHOUT running the archive's code (see the module docstring).

    Raises :class:`Syn2SeqInputError` naming the file and the offending global when the pickle references
    anything beyond tensors, storages and TorchScript classes; nothing it references is ever called.
    """
    p = Path(path)
    what = f"I3D file '{p}'"
    try:
        archive = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise Syn2SeqInputError(what, "a TorchScript archive (a zip)", f"a file that is not one ({e})") from None
    with archive:
        prefix = _torchscript_prefix(archive)
        if prefix is None:
            raise Syn2SeqInputError(what, "a TorchScript archive (<name>/data.pkl with <name>/code/)",
                                    f"a zip holding {archive.namelist()[:5]}")
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
            raise Syn2SeqInputError(what, "little-endian tensor data", archive.read(byteorder).strip().decode())
        info = archive.getinfo(f"{prefix}/data.pkl")
        if info.file_size > _MAX_PICKLE_BYTES:
            raise Syn2SeqInputError(what, f"a data.pkl under {_MAX_PICKLE_BYTES >> 20} MiB", f"{info.file_size} bytes")
        try:
            root = _RestrictedUnpickler(archive.read(info), archive, prefix).load()
        except _ForbiddenGlobal as e:
            raise Syn2SeqInputError(what, "a TorchScript archive whose data.pkl references only tensors, storages "
                                    "and TorchScript module classes", f"a reference to the global '{e.qualified}'",
                                    "Nothing in the file was run. It is not the StyleGAN-V I3D; get a fresh "
                                    f"copy ({I3D_URL})") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                RuntimeError, zipfile.BadZipFile) as e:
            raise Syn2SeqInputError(what, "a readable TorchScript archive", f"a damaged one ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:200]})") from None
    return _collect_tensors(root)


# --- any weights file -> our state dict -----------------------------------------------------------
_TF_TOP = {"Conv3d_1a_7x7": "conv3d_1a_7x7", "Conv3d_2b_1x1": "conv3d_2b_1x1", "Conv3d_2c_3x3": "conv3d_2c_3x3",
           "Logits/Conv3d_0c_1x1": "conv3d_0c_1x1"}
_TF_BRANCH = {"Branch_0/Conv3d_0a_1x1": "branch_0", "Branch_1/Conv3d_0a_1x1": "branch_1.0",
              "Branch_1/Conv3d_0b_3x3": "branch_1.1", "Branch_2/Conv3d_0a_1x1": "branch_2.0",
              "Branch_2/Conv3d_0b_3x3": "branch_2.1", "Branch_2/Conv3d_0a_3x3": "branch_2.1",  # Mixed_5b's TF name
              "Branch_3/Conv3d_0b_1x1": "branch_3.1"}
_TF_LEAF = {"conv_3d/w": "conv3d.weight", "conv_3d/b": "conv3d.bias", "batch_norm/beta": "batch3d.bias",
            "batch_norm/moving_mean": "batch3d.running_mean", "batch_norm/moving_variance": "batch3d.running_var"}
_TF_NAME = re.compile(r"^(?:RGB/)?inception_i3d/"
                      r"(?:(Mixed_\d[a-z])/(Branch_\d/Conv3d_\w+?)|(Conv3d_\w+?|Logits/Conv3d_0c_1x1))"
                      r"/(conv_3d/[wb]|batch_norm/\w+)(?::0)?$")


def _from_tf_name(key: str, value: Tensor) -> tuple[str, Tensor] | None:
    """A TF-Hub variable (name, value) -> ours, kernels [kT, kH, kW, in, out] -> [out, in, kT, kH, kW]."""
    m = _TF_NAME.match(key)
    if m is None:
        return None
    mixed, branch, top, leaf = m.groups()
    if mixed is not None:
        if branch not in _TF_BRANCH:
            return None
        module = f"{mixed.lower()}.{_TF_BRANCH[branch]}"
    elif top in _TF_TOP:
        module = _TF_TOP[top]
    else:
        return None
    if leaf not in _TF_LEAF:
        return None
    if leaf == "conv_3d/w" and value.ndim == 5:
        value = value.permute(4, 3, 0, 1, 2)
    elif value.ndim > 1:
        value = value.reshape(-1)
    return f"{module}.{_TF_LEAF[leaf]}", value


def _plain_state_dict(p: Path) -> dict[str, Tensor]:
    return read_state_dict(p, "I3D file", "i3d_torchscript.pt, a .safetensors file or a torch state dict")


def read_i3d_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of an I3D weights file (TorchScript archive, safetensors or state dict), under our key names
    (``module.``/``_orig_mod.`` prefixes stripped, TF-Hub names converted, ``num_batches_tracked`` dropped)."""
    p = Path(path)
    with open(p, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    torchscript = False
    if is_zip:
        try:
            with zipfile.ZipFile(p) as z:
                torchscript = _torchscript_prefix(z) is not None
        except zipfile.BadZipFile:
            torchscript = False
    raw = read_torchscript_tensors(p) if torchscript else _plain_state_dict(p)
    out: dict[str, Tensor] = {}
    tf_named = False
    for key, value in raw.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        if key.endswith("num_batches_tracked"):
            continue
        converted = _from_tf_name(key, value)
        if converted is not None:
            key, value = converted
            tf_named = True
        out[key] = value
    if tf_named:  # TF's batch norm has no scale (gamma = 1)
        for key in [k for k in out if k.endswith("batch3d.bias")]:
            out.setdefault(key[:-len("bias")] + "weight", torch.ones_like(out[key]))
    return out


def _fit_state_dict(sd: Mapping[str, Tensor], config: I3DConfig, source: str) -> dict[str, Tensor]:
    """``sd`` checked key by key and shape by shape against :class:`I3D` (``config``), as float32."""
    with torch.device("meta"):
        expected = {k: v for k, v in I3D(config).state_dict().items() if not k.endswith("num_batches_tracked")}
    what = f"I3D file '{source}'"
    layout = "the FVD I3D" if config == I3DConfig() else f"an I3D with {config}"
    missing = [k for k in expected if k not in sd]
    if missing:
        found = sorted(sd)[:4]
        raise Syn2SeqInputError(f"{what} key '{missing[0]}'", f"every tensor of {layout} ({len(expected)} tensors)",
                                f"{len(missing)} missing ({', '.join(missing[:3])}, ...); the file has {len(sd)} "
                                f"tensors, e.g. {found}", "The names follow the PyTorch I3D port "
                                "i3d_torchscript.pt was scripted from (hassony2/kinetics_i3d_pytorch); a file named "
                                "otherwise needs its keys renamed (e.g. to a .safetensors with these names)")
    extra = [k for k in sd if k not in expected]
    if extra:
        raise Syn2SeqInputError(what, f"only the tensors of {layout}", f"{len(extra)} unknown ones, e.g. {extra[:4]}")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise Syn2SeqInputError(f"{what} key '{k}'", f"shape {tuple(v.shape)} for {layout}",
                                    f"{tuple(sd[k].shape)}")
        if not sd[k].is_floating_point():
            raise Syn2SeqInputError(f"{what} key '{k}'", "floating-point values", sd[k].dtype)
    return {k: sd[k].detach().to(torch.float32).contiguous() for k in expected}


def _check_file(path) -> Path:
    if path is None:
        raise FVDUnavailable(f"no I3D weights given. {HOW_TO_GET_I3D}")
    if not isinstance(path, (str, os.PathLike)):
        raise Syn2SeqInputError("FVD I3D weights", "a file path", type(path).__name__)
    p = Path(path).expanduser()
    if not p.is_file():
        raise FVDUnavailable(f"no I3D weights file at '{p}'. {HOW_TO_GET_I3D}")
    return p


def load_i3d(path: str | os.PathLike | None, config: I3DConfig = I3DConfig()) -> I3D:
    """The I3D with weights from ``path`` (TorchScript archive, .safetensors or state dict), in eval mode on the CPU.

    Raises :class:`FVDUnavailable` (with how to get the file) when ``path`` is None or no file is there, and
    :class:`Syn2SeqInputError` when the file is damaged, references code, or does not fit the network. Loaded
    networks are cached per (file, modification time, config): move a copy, not the cached one, if in doubt.
    """
    p = _check_file(path)
    st = p.stat()
    return _load_i3d_cached(str(p.resolve()), st.st_mtime_ns, st.st_size, config)


@functools.lru_cache(maxsize=2)
def _load_i3d_cached(path: str, _mtime: int, _size: int, config: I3DConfig) -> I3D:
    sd = _fit_state_dict(read_i3d_state_dict(path), config, path)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        net = I3D(config)
    counters = {k: torch.zeros((), dtype=torch.long) for k in net.state_dict() if k.endswith("num_batches_tracked")}
    net.load_state_dict({**sd, **counters}, strict=True, assign=True)
    return net.eval().requires_grad_(False)


def convert_i3d_weights(src: str | os.PathLike, dst: str | os.PathLike, config: I3DConfig = I3DConfig()) -> Path:
    """Write the weights of ``src`` (e.g. ``i3d_torchscript.pt``) as a ``.safetensors`` file with our key names,
    after the same checks as :func:`load_i3d`; reading it later needs no unpickling at all."""
    from safetensors.torch import save_file

    p = _check_file(src)
    sd = _fit_state_dict(read_i3d_state_dict(p), config, str(p))
    out = Path(dst)
    require(out.suffix == ".safetensors", "I3D output file", "a path ending in .safetensors", str(out))
    save_file(sd, str(out), metadata={"format": "syn2seq-i3d", "source": p.name, "config": repr(config)})
    return out


# --- features -------------------------------------------------------------------------------------
def _check_videos(videos: Tensor, name: str = "videos") -> Tensor:
    if not isinstance(videos, Tensor):
        raise Syn2SeqInputError(name, "a tensor [N, T, 3, H, W]", type(videos).__name__)
    require(videos.ndim == 5 and videos.shape[2] == 3, name, "shape [N, T, 3, H, W] (RGB)", tuple(videos.shape))
    require(videos.is_floating_point(), name, "float values in [0, 1]", videos.dtype)
    require(videos.shape[0] > 0, name, "at least one video", tuple(videos.shape))
    require(videos.shape[1] >= MIN_FRAMES, name, f"at least {MIN_FRAMES} frames per video for I3D",
            f"{videos.shape[1]} frames", f"The reference neither pads nor loops; {CONVENTIONAL_FRAMES} frames is the "
            "usual FVD clip length")
    bad = ~torch.isfinite(videos)
    if bool(bad.any()):
        raise Syn2SeqInputError(name, "finite values", f"{int(bad.sum())} NaN/inf entries")
    lo, hi = float(videos.min()), float(videos.max())
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise Syn2SeqInputError(name, "values in [0, 1]", f"range [{lo:.3g}, {hi:.3g}]",
                                "Rescale [0, 255] frames with x / 255 and [-1, 1] frames with (x + 1) / 2")
    return videos


def preprocess_videos(videos: Tensor, size: int = I3D_INPUT_SIZE) -> Tensor:
    """The reference's input: videos [N, T, 3, H, W] in [0, 1] -> [N, 3, T, size, size] float32 in [-1, 1]
    (frames clamped to [0, 1], resized bilinearly with half-pixel centres, no antialiasing, aspect not kept)."""
    n = videos.shape[0]
    x = rearrange(videos.float().clamp(0, 1), "n t c h w -> (n t) c h w")
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return rearrange(x * 2 - 1, "(n t) c h w -> n c t h w", n=n).contiguous()


@torch.inference_mode()
def i3d_features(videos: Tensor, net: nn.Module, batch: int = 8) -> Tensor:
    """FVD features of each video. videos: [N, T, 3, H, W] in [0, 1], T >= 9 -> [N, D] float64 (D = 400).

    Runs ``net`` (from :func:`load_i3d`) in float32 on its own device, ``batch`` videos at a time.
    """
    videos = _check_videos(videos)
    require(isinstance(batch, int) and batch > 0, "batch", "a positive integer", batch)
    device = next(net.parameters()).device
    out = []
    for i in range(0, videos.shape[0], batch):
        x = preprocess_videos(videos[i:i + batch].to(device))
        out.append(net(x).double().cpu())
    return torch.cat(out)


# --- the Fréchet distance -------------------------------------------------------------------------
def _as_float64(x, name: str) -> Tensor:
    try:
        t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Syn2SeqInputError(name, "a tensor or array of numbers", type(x).__name__) from None
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise Syn2SeqInputError(name, "finite values", f"{int(bad.sum())} NaN/inf entries")
    return t


def _sqrt_psd(s: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues below 0 from rounding -> 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    mu: [D], sigma: [D, D] symmetric PSD (tensors or arrays). ``tr((S1 S2)^(1/2))`` is computed as
    ``tr((A S2 A)^(1/2))`` with ``A = S1^(1/2)`` (same eigenvalues, but symmetric: no complex parts from a
    general matrix square root). Rounding below zero is returned as 0.
    """
    m1, m2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    s1, s2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    require(m1.ndim == 1 and m1.shape == m2.shape, "mu1/mu2", "two vectors [D] of the same length",
            f"{tuple(m1.shape)} and {tuple(m2.shape)}")
    d = m1.shape[0]
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        require(tuple(s.shape) == (d, d), name, f"a [{d}, {d}] covariance", tuple(s.shape))
        scale = float(s.abs().max()) if s.numel() else 0.0
        require(float((s - s.T).abs().max()) <= 1e-9 * max(scale, 1e-300), name, "a symmetric matrix",
                f"asymmetry {float((s - s.T).abs().max()):.3g}")
    a = _sqrt_psd((s1 + s1.T) / 2)
    m = a @ ((s2 + s2.T) / 2) @ a
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    value = (m1 - m2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt
    return max(float(value), 0.0)


def feature_stats(features) -> tuple[Tensor, Tensor]:
    """Mean [D] and covariance [D, D] (ddof 1) of features [N, D], N >= 2, in float64."""
    x = _as_float64(features, "features")
    require(x.ndim == 2 and x.shape[0] >= 2, "features", "[N, D] with N >= 2 videos", tuple(x.shape))
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, (xc.T @ xc) / (x.shape[0] - 1)


def fvd(features_a, features_b) -> float:
    """FVD between two sets of I3D features [N_a, D] and [N_b, D] (from :func:`i3d_features`)."""
    mu_a, s_a = feature_stats(features_a)
    mu_b, s_b = feature_stats(features_b)
    require(mu_a.shape == mu_b.shape, "features_a/features_b", "the same feature dimension",
            f"{mu_a.shape[0]} vs {mu_b.shape[0]}")
    return frechet_distance(mu_a, s_a, mu_b, s_b)


def fvd_videos(videos_a: Tensor, videos_b: Tensor, weights, *, batch: int = 8) -> float:
    """FVD between two sets of videos [N, T, 3, H, W] in [0, 1] with the I3D from ``weights``.

    Raises :class:`FVDUnavailable` when ``weights`` is None or missing.
    """
    net = load_i3d(weights)
    return fvd(i3d_features(videos_a, net, batch), i3d_features(videos_b, net, batch))


# --- reports --------------------------------------------------------------------------------------
def fvd_unavailable_reason(weights) -> str | None:
    """None when FVD can be computed with ``weights``; else why not (for ``"unavailable: <reason>"``).

    A file that exists but cannot be used raises :class:`Syn2SeqInputError` instead: a wrong file is an error,
    not an absent metric.
    """
    try:
        load_i3d(weights)
    except FVDUnavailable as e:
        return e.reason
    return None


def fvd_entry(features_a, features_b) -> dict:
    """A JSON-ready report entry: ``{"fvd": x, "videos": [n_a, n_b], "feature_dim": D, "stable": bool}``;
    ``stable`` is False below :data:`MINIMUM_VIDEOS` per set (see docs/fvd.md), where the covariances are
    rank-deficient and the value is dominated by the set size itself. Where FVD is unavailable, report
    ``fvd_unavailable_entry(reason)`` instead."""
    a, b = _as_float64(features_a, "features_a"), _as_float64(features_b, "features_b")
    value = fvd(a, b)
    return {"fvd": value if math.isfinite(value) else str(value), "videos": [int(a.shape[0]), int(b.shape[0])],
            "feature_dim": int(a.shape[1]), "stable": min(a.shape[0], b.shape[0]) >= MINIMUM_VIDEOS}


def fvd_unavailable_entry(reason: str) -> str:
    """``"unavailable: <reason>"``, as metrics.py writes an absent metric."""
    return str(Unavailable(reason))


# --- how many videos: the same-distribution floor -------------------------------------------------
@dataclass(frozen=True)
class FloorPoint:
    """FVD between two independent sets of ``n`` videos from ONE distribution, over ``trials`` draws."""

    n: int
    mean: float
    std: float
    trials: int


def same_distribution_fvd(features, sizes: Sequence[int], trials: int = 8, seed: int = 0) -> list[FloorPoint]:
    """The FVD floor of a feature set [N, D]: for each n in ``sizes`` (2n <= N), the FVD between two disjoint
    random subsets of n rows, ``trials`` times. Run it on real-video features to see what FVD two samples of the
    same data get at your set size: differences between methods below it are noise."""
    x = _as_float64(features, "features")
    require(x.ndim == 2, "features", "[N, D]", tuple(x.shape))
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        require(2 <= n and 2 * n <= x.shape[0], "sizes", f"set sizes with 2 <= n <= N/2 = {x.shape[0] // 2}", n)
        values = []
        for _ in range(trials):
            idx = torch.randperm(x.shape[0], generator=g)
            values.append(fvd(x[idx[:n]], x[idx[n:2 * n]]))
        v = torch.tensor(values, dtype=torch.float64)
        out.append(FloorPoint(int(n), float(v.mean()), float(v.std()) if trials > 1 else math.nan, trials))
    return out


def gaussian_spectrum(dim: int = FEATURE_DIM, decay: float = 1.0) -> Tensor:
    """Covariance eigenvalues ``k^-decay`` (k = 1..dim), scaled to sum 1 (so FVDs come in units of tr(S));
    ``decay = 0`` is isotropic."""
    lam = torch.arange(1, dim + 1, dtype=torch.float64).pow(-decay)
    return lam / lam.sum()


def gaussian_fvd_floor(sizes: Sequence[int], dim: int = FEATURE_DIM, decay: float = 1.0, trials: int = 8,
                       seed: int = 0) -> list[FloorPoint]:
    """The same-distribution FVD floor for Gaussian features with the spectrum :func:`gaussian_spectrum`, in units
    of tr(S): for each n, FVD between two independent draws of n samples (FVD is rotation invariant, so a diagonal
    covariance loses nothing). Cheap: the numbers in docs/fvd.md come from this."""
    scale = gaussian_spectrum(dim, decay).sqrt()
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in sizes:
        require(n >= 2, "sizes", "set sizes >= 2", n)
        values = [fvd(torch.randn(n, dim, generator=g, dtype=torch.float64) * scale,
                      torch.randn(n, dim, generator=g, dtype=torch.float64) * scale) for _ in range(trials)]
        v = torch.tensor(values, dtype=torch.float64)
        out.append(FloorPoint(int(n), float(v.mean()), float(v.std()) if trials > 1 else math.nan, trials))
    return out
