"""Image-quality metrics on generated frames, and their aggregation over clips.

Every metric takes ``pred, target: [..., 3, H, W]`` float RGB in [0, 1] and returns one value per
frame, shape ``[...]`` (float64). Score only the generated view's frames (ego for exo2ego): never the
context frames nor the synthetic transition frames.

PSNR
    ``10 log10(1 / MSE)`` with data range 1, MSE over channels and pixels of one frame. :func:`psnr` returns
    ``inf`` for identical frames; with ``cap=`` it returns ``min(PSNR, cap)``. Reports (:func:`evaluate_frames`,
    ``syn2seq eval``, ``exo2ego``'s metrics.json) cap every frame at :data:`PSNR_CAP_DB` = 100 dB, as papers
    do, so that an identical frame (copy_last on a static take, a perfect system) gives a finite mean and CI
    instead of ``inf``. Frames within the cap are near-identical: one 8-bit step in one channel of one pixel is
    89.0 dB at 64x64 and 101.1 dB at 256x256 (counted as 100).
SSIM
    Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), population (co)variances,
    ``K1 = 0.01``, ``K2 = 0.03``, data range 1, per channel, averaged over the *valid* region (the map
    without its 5-pixel border) and then over channels. This equals scikit-image's
    ``structural_similarity(..., channel_axis=-1, data_range=1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. Frames need at least 11x11 pixels.
LPIPS
    Zhang et al. 2018 (v0.1), as the ``lpips`` package computes it: inputs scaled to [-1, 1], then
    ``(x - shift) / scale`` per channel (its ScalingLayer), AlexNet or VGG16 trunks equal layer for layer
    to torchvision's ``alexnet().features`` / ``vgg16().features``, five ReLU taps (AlexNet relu1 ..
    relu5 = ``features.1, 4, 7, 9, 11``; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 =
    ``features.3, 8, 15, 22, 29``), each unit-normalised over channels (``x / (sqrt(sum x^2) + 1e-10)``),
    squared difference, a 1x1 linear head per tap (no bias), spatial mean, summed over taps. Frames need
    at least 31x31 pixels (AlexNet) or 16x16 (VGG16). The ImageNet backbone weights come ONLY from a
    file the user supplies: torchvision's published ``alexnet-owt-7be5be79.pth`` or
    ``vgg16-397923af.pth`` (:data:`LPIPS_BACKBONE_URLS`) as downloaded, or the same weights as a
    ``.safetensors`` or other ``torch.save`` state dict (``.pth`` is read with ``weights_only=True``),
    under torchvision key names ``features.N.weight`` or the lpips package's ``net.sliceK.N.weight``.
    The linear heads come from ``heads=`` (first), the same file (``lin0.model.1.weight`` or
    ``lin0.weight`` ...), or the files an installed ``lpips`` (``weights/v0.1/alex.pth``) or
    ``torchmetrics`` package ships (found without importing either). Without weights or heads,
    :func:`lpips` raises :class:`LPIPSUnavailable` whose reason names the file needed and where to get
    it, and reports carry ``"unavailable: <reason>"``: never a number.

Aggregation
    Per-frame values, per-clip means (mean over the frames of a clip), and the mean over clips with a
    two-sided Student-t confidence interval (default 95%): ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``,
    ``s`` the sample standard deviation (ddof 1) of the clip means. Clips, not frames, are the
    independent samples (frames of one clip are strongly correlated). :func:`paired_difference` does
    the same on per-clip differences ``a - b`` of two methods scored on the same clips (ablations).
    With a single clip the interval is undefined (NaN).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..base.errors import Syn2SeqInputError, check_choice, require

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
LPIPS_NETS = ("alex", "vgg")
DEFAULT_CONFIDENCE = 0.95
PSNR_CAP_DB = 100.0  # per-frame PSNR of reports is min(PSNR, 100 dB) (identical frames: 100, not inf)
_RANGE_SLACK = 0.5  # values beyond [-0.5, 1.5] mean another range ([0, 255] or [-1, 1]) was passed


# --- results that are not numbers ---------------------------------------------------------------
class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (e.g. missing weights); ``reason`` says why."""

    def __init__(self, metric: str, reason: str):
        self.metric = metric
        self.reason = reason
        super().__init__(f"{metric} unavailable: {reason}")


class LPIPSUnavailable(MetricUnavailable):
    """LPIPS weights are absent: ``reason`` says which and where they were looked for."""

    def __init__(self, reason: str, net: str = "alex"):
        self.net = net
        super().__init__(f"lpips_{net}", reason)


@dataclass(frozen=True)
class Unavailable:
    """Stands in a report where a metric could not be computed. ``str()`` is ``"unavailable: <reason>"``."""

    reason: str

    def __str__(self) -> str:
        return f"unavailable: {self.reason}"

    def to_json(self) -> str:
        return str(self)


# --- input checks ---------------------------------------------------------------------------------
def _check_pair(pred: Tensor, target: Tensor, channels: int | None = None) -> tuple[Tensor, Tensor]:
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor):
            raise Syn2SeqInputError(name, "a tensor [..., 3, H, W]", type(x).__name__)
        require(x.ndim >= 3, name, "shape [..., C, H, W]", tuple(x.shape))
        require(x.is_floating_point(), name, "float values in [0, 1]", x.dtype)
    require(pred.shape == target.shape, "pred/target", "the same shape",
            f"{tuple(pred.shape)} vs {tuple(target.shape)}")
    if channels is not None:
        require(pred.shape[-3] == channels, "pred", f"{channels} channels in [..., {channels}, H, W]",
                tuple(pred.shape))
    for name, x in (("pred", pred), ("target", target)):
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            raise Syn2SeqInputError(name, "finite values", f"{int(bad.sum())} NaN/inf entries")
        if x.numel() and (float(x.min()) < -_RANGE_SLACK or float(x.max()) > 1 + _RANGE_SLACK):
            raise Syn2SeqInputError(name, "values in [0, 1]", f"range [{float(x.min()):.3g}, {float(x.max()):.3g}]",
                                    "Rescale [0, 255] frames with x / 255 and [-1, 1] frames with (x + 1) / 2")
    return pred, target


# --- PSNR and SSIM --------------------------------------------------------------------------------
def psnr(pred: Tensor, target: Tensor, cap: float | None = None) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1. pred, target: [..., C, H, W] -> [...] float64; identical
    frames give ``inf``, or ``cap`` (every value is ``min(PSNR, cap)``) when a cap is given."""
    pred, target = _check_pair(pred, target)
    mse = (pred.double() - target.double()).square().mean(dim=(-3, -2, -1))
    value = 10.0 * torch.log10(1.0 / mse)
    if cap is not None:
        require(isinstance(cap, (int, float)) and math.isfinite(cap) and cap > 0, "cap", "a positive number of dB",
                cap)
        value = value.clamp(max=float(cap))
    return value


def _gaussian_1d(size: int, sigma: float, dtype, device) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian filter without padding. x: [N, 1, H, W] -> [N, 1, H - k + 1, W - k + 1]."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim(pred: Tensor, target: Tensor, *, window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """Structural similarity (see the module docstring). pred, target: [..., C, H, W] -> [...] float64."""
    pred, target = _check_pair(pred, target)
    h, w = pred.shape[-2:]
    require(h >= window and w >= window, "frame size", f"at least {window}x{window} pixels for SSIM", f"{w}x{h}")
    lead = pred.shape[:-3]
    x = rearrange(pred.double(), "... c h w -> (... c) 1 h w")
    y = rearrange(target.double(), "... c h w -> (... c) 1 h w")
    g = _gaussian_1d(window, sigma, torch.float64, x.device)
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # data range 1
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x * mu_x
    var_y = _filter_valid(y * y, g) - mu_y * mu_y
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    per_channel = s.mean(dim=(-3, -2, -1))
    return per_channel.view(*lead, pred.shape[-3]).mean(dim=-1)


# --- LPIPS ----------------------------------------------------------------------------------------
# The trunks, layer for layer as torchvision's ``alexnet().features`` and ``vgg16().features`` (VGG
# configuration "D") up to the last ReLU that LPIPS taps; indices follow those ``features`` Sequentials
# so that their state-dict keys load unchanged. (out_channels, kernel, stride, padding) is a convolution,
# "R" a ReLU, ("M", kernel, stride) a max-pool (no padding, floor mode).
_ALEX = [(64, 11, 4, 2), "R", ("M", 3, 2), (192, 5, 1, 2), "R", ("M", 3, 2), (384, 3, 1, 1), "R",
         (256, 3, 1, 1), "R", (256, 3, 1, 1), "R"]
_VGG16 = []
for _block, (_c, _n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
    if _block:
        _VGG16.append(("M", 2, 2))
    _VGG16 += [(_c, 3, 1, 1), "R"] * _n
_LAYOUTS = {"alex": _ALEX, "vgg": _VGG16}
# The ReLU outputs LPIPS compares: AlexNet relu1 .. relu5; VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
_MIN_SIZE = {"alex": 31, "vgg": 16}  # smallest H and W for which every tap has at least one pixel
_SHIFT = (-0.030, -0.088, -0.188)  # LPIPS ScalingLayer, applied to the input in [-1, 1]
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # unit normalisation over channels: x / (sqrt(sum_c x^2) + eps)
_NET_NAMES = {"alex": "AlexNet", "vgg": "VGG16"}
# torchvision's published ImageNet weights (AlexNet_Weights.IMAGENET1K_V1, VGG16_Weights.IMAGENET1K_V1),
# the backbones the lpips package loads; and where the lpips package's v0.1 linear heads live.
LPIPS_BACKBONE_URLS = {"alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                       "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth"}
LPIPS_HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth"


class LPIPSNet(nn.Module):
    """LPIPS v0.1 with an AlexNet or VGG16 trunk. forward(x0, x1: [N, 3, H, W] in [0, 1]) -> [N]."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        check_choice(net, LPIPS_NETS, "net")
        self.net = net
        layers, channels, c_in = [], [], 3  # channels[i]: channels out of layer i
        for spec in _LAYOUTS[net]:
            if spec == "R":
                layers.append(nn.ReLU())
            elif spec[0] == "M":
                layers.append(nn.MaxPool2d(spec[1], spec[2]))
            else:
                c_out, k, s, p = spec
                layers.append(nn.Conv2d(c_in, c_out, k, s, p))
                c_in = c_out
            channels.append(c_in)
        self.features = nn.Sequential(*layers)
        self.taps = _TAPS[net]
        self.tap_channels = [channels[t] for t in self.taps]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.tap_channels)

    def _taps(self, x: Tensor) -> list[Tensor]:
        out, last = [], self.taps[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + _EPS))
            if i == last:
                break
        return out

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        shift = torch.tensor(_SHIFT, dtype=x0.dtype, device=x0.device).view(1, 3, 1, 1)
        scale = torch.tensor(_SCALE, dtype=x0.dtype, device=x0.device).view(1, 3, 1, 1)
        x = (torch.cat([x0, x1]) * 2 - 1 - shift) / scale  # one pass: identical inputs give identical features
        total = 0.0
        for lin, f in zip(self.lins, self._taps(x), strict=True):
            f0, f1 = f.chunk(2)
            total = total + lin((f0 - f1).square()).mean(dim=(-2, -1))
        return total[:, 0]


def read_state_dict(path: Path, label: str, expected: str) -> dict[str, Tensor]:
    """The tensors of a weights file: ``.safetensors``, or a torch file read with ``weights_only=True`` (a
    ``state_dict`` or ``model`` entry inside it is taken). label / expected: the input's name and the files it
    accepts, for the error a damaged, foreign or code-carrying file gets. Used by every metric's weights (LPIPS,
    I3D, Inception)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - refused unpickling, damaged or foreign file: many exception types
        raise Syn2SeqInputError(label, f"{expected} (weights only)", f"'{path}', a file that cannot be read "
                                f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise Syn2SeqInputError(label, "a state dict (name -> tensor)", f"'{path}' holding a {type(obj).__name__}")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    return read_state_dict(path, "LPIPS weights", "a .safetensors file or a torch state dict")


def _canonical_key(key: str) -> str | None:
    """torchvision / lpips-package / our key -> our key (``features.N.*`` or ``lins.K.weight``), else None."""
    for prefix in ("module.", "_orig_mod."):
        key = key.removeprefix(prefix)
    parts = key.split(".")
    if parts[0] == "features" and len(parts) == 3:
        return key
    if parts[0] == "net" and len(parts) == 4 and parts[1].startswith("slice"):  # lpips: net.slice2.4.weight
        return f"features.{parts[2]}.{parts[3]}"
    if parts[0].startswith("lin") and parts[0][3:].isdigit() and parts[-1] == "weight":  # lin0.model.1.weight
        return f"lins.{parts[0][3:]}.weight"
    if parts[0] == "lins" and len(parts) == 3:
        return key
    return None


def _installed_heads(net: str) -> Path | None:
    """The linear-head file an installed lpips or torchmetrics package ships (neither is imported)."""
    candidates = (("lpips", ("weights", "v0.1", f"{net}.pth")),
                  ("torchmetrics", ("functional", "image", "lpips_models", f"{net}.pth")))
    for package, parts in candidates:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder, *parts)
            if path.is_file():
                return path
    return None


def _backbone_howto(net: str) -> str:
    url = LPIPS_BACKBONE_URLS[net]
    return (f"download {url} (torchvision's published {_NET_NAMES[net]} ImageNet weights, "
            f"{url.rsplit('/', 1)[1]}) on a machine with internet and pass --lpips-weights FILE "
            "(Python: weights=FILE); a .safetensors copy of it works too")


def _heads_howto(net: str) -> str:
    return (f"pip install --no-deps lpips (it ships lpips/weights/v0.1/{net}.pth, which is read, never "
            f"imported) or download {LPIPS_HEADS_URL.format(net=net)} and pass heads=FILE")


def detect_lpips_net(weights) -> str:
    """'alex' or 'vgg', from the shape of the first convolution in a weights file."""
    sd = {_canonical_key(k): v for k, v in _read_state_dict(_check_path(weights, "LPIPS weights")).items()}
    first = sd.get("features.0.weight")
    if first is None:
        raise Syn2SeqInputError("LPIPS weights", "AlexNet or VGG16 backbone weights (features.0.weight, ...)",
                                f"no backbone keys in '{weights}'",
                                f"Torchvision publishes them: {' or '.join(LPIPS_BACKBONE_URLS.values())}")
    return "alex" if first.shape[-1] == 11 else "vgg"


def _check_path(path, name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise Syn2SeqInputError(name, "a file path", type(path).__name__)
    p = Path(path)
    if not p.is_file():
        raise Syn2SeqInputError(name, "an existing file", f"no file at '{p}'")
    return p


def load_lpips(net: str = "alex", weights=None, heads=None) -> LPIPSNet:
    """Build LPIPS with backbone weights from ``weights`` (a path) and heads from ``heads``, else from the
    weights file, else from an installed package. Raises :class:`LPIPSUnavailable` (its reason says which
    file is needed and how to get it) when weights or heads are absent, and :class:`Syn2SeqInputError`
    when a given file is missing or does not fit the network."""
    check_choice(net, LPIPS_NETS, "net")
    if weights is None:
        raise LPIPSUnavailable(f"no {_NET_NAMES[net]} ImageNet backbone weights given (no package ships them): "
                               f"{_backbone_howto(net)}", net)
    w = _check_path(weights, "LPIPS weights")
    h = None if heads is None else _check_path(heads, "LPIPS heads")
    return _load_lpips_cached(net, str(w.resolve()), w.stat().st_mtime_ns,
                              None if h is None else str(h.resolve()), None if h is None else h.stat().st_mtime_ns)


def _head_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {ck: v for k, v in sd.items() if (ck := _canonical_key(k)) is not None and ck.startswith("lins.")}


@functools.lru_cache(maxsize=4)
def _load_lpips_cached(net, weights, _w_mtime, heads, _h_mtime) -> LPIPSNet:
    with torch.device("meta"):  # no random initialisation: every parameter comes from the files
        model = LPIPSNet(net)
    sd = {ck: v for k, v in _read_state_dict(Path(weights)).items() if (ck := _canonical_key(k)) is not None}
    if heads is not None:  # an explicit heads file wins over heads inside the weights file
        sd = {k: v for k, v in sd.items() if not k.startswith("lins.")} | _head_keys(_read_state_dict(Path(heads)))
    elif not any(k.startswith("lins.") for k in sd):
        head_file = _installed_heads(net)
        if head_file is None:
            raise LPIPSUnavailable(f"no LPIPS v0.1 linear heads for {_NET_NAMES[net]}: none in '{weights}', no "
                                   "heads= file given, and no installed lpips or torchmetrics package ships them: "
                                   f"{_heads_howto(net)}", net)
        sd.update(_head_keys(_read_state_dict(head_file)))
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    if missing:
        hint = None
        first = sd.get("features.0.weight")
        if first is not None and first.shape != expected["features.0.weight"].shape:
            hint = f"These look like {'VGG16' if first.shape[-1] == 3 else 'AlexNet'} weights: choose the other net"
        elif missing[0].startswith("features."):
            hint = f"To get the full backbone: {_backbone_howto(net)}"
        else:
            hint = f"To get the heads: {_heads_howto(net)}"
        raise Syn2SeqInputError("LPIPS weights", f"every {net} parameter", f"{len(missing)} missing in '{weights}' "
                                f"(first: {missing[0]})", hint)
    for k, v in expected.items():
        if sd[k].shape != v.shape:
            raise Syn2SeqInputError(f"LPIPS weights '{k}'", f"shape {tuple(v.shape)} for {net}",
                                    f"{tuple(sd[k].shape)} in '{weights}'",
                                    "AlexNet and VGG16 weights are not interchangeable")
    model.load_state_dict({k: sd[k].float().contiguous() for k in expected}, assign=True)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def lpips(pred: Tensor, target: Tensor, net: str = "alex", weights=None, *, heads=None, batch: int = 16) -> Tensor:
    """LPIPS distance per frame. pred, target: [..., 3, H, W] in [0, 1] -> [...] float64.

    Raises :class:`LPIPSUnavailable` when ``weights`` is None or no linear heads can be found, and
    :class:`MetricUnavailable` for frames under 31x31 pixels (AlexNet) or 16x16 (VGG16), where a tap
    would have no pixel left.
    """
    pred, target = _check_pair(pred, target, channels=3)
    check_choice(net, LPIPS_NETS, "net")
    if min(pred.shape[-2:]) < _MIN_SIZE[net]:
        raise MetricUnavailable(f"lpips_{net}", f"frames of {pred.shape[-2]}x{pred.shape[-1]} pixels are smaller "
                                f"than the {_MIN_SIZE[net]}x{_MIN_SIZE[net]} that {_NET_NAMES[net]} LPIPS needs")
    model = load_lpips(net, weights, heads).to(pred.device)
    lead = pred.shape[:-3]
    x0 = rearrange(pred.float(), "... c h w -> (...) c h w")
    x1 = rearrange(target.float(), "... c h w -> (...) c h w")
    out = torch.cat([model(x0[i:i + batch], x1[i:i + batch]) for i in range(0, len(x0), batch)])
    return out.double().view(lead)


# --- aggregation ----------------------------------------------------------------------------------
def _json_float(x: float):
    """Non-finite floats as strings, so that reports are strict JSON."""
    x = float(x)
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


@dataclass(frozen=True)
class MeanCI:
    """A mean with its two-sided Student-t confidence interval. low/high are NaN when n < 2."""

    mean: float
    low: float
    high: float
    n: int
    std: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return {"mean": _json_float(self.mean), "ci_low": _json_float(self.low), "ci_high": _json_float(self.high),
                "half_width": _json_float(self.half_width), "std": _json_float(self.std), "n": self.n,
                "confidence": self.confidence}

    def __str__(self) -> str:
        if math.isfinite(self.half_width):
            return f"{self.mean:.4f} ± {self.half_width:.4f} ({self.confidence:.0%} CI, n={self.n})"
        return f"{self.mean:.4f} (n={self.n}, no CI)"


def _as_values(values) -> Tensor:
    """[n] float64 from a tensor or a sequence of numbers (the report strings "inf"/"nan" included)."""
    if isinstance(values, Tensor):
        return values.detach().to(torch.float64).flatten()
    try:
        return torch.tensor([float(x) for x in values], dtype=torch.float64)
    except (TypeError, ValueError):
        raise Syn2SeqInputError("values", "numbers (per-clip means)", repr(list(values))[:80]) from None


def mean_ci(values, confidence: float = DEFAULT_CONFIDENCE) -> MeanCI:
    """Mean of ``values`` (e.g. one mean per clip) with a Student-t confidence interval."""
    from scipy import stats

    v = _as_values(values)
    require(v.numel() > 0, "values", "at least one value", "none")
    require(0 < confidence < 1, "confidence", "a level in (0, 1)", confidence)
    n = v.numel()
    mean = float(v.mean())
    if n < 2 or not math.isfinite(mean):
        return MeanCI(mean, math.nan, math.nan, n, math.nan if n < 2 else float(v.std()), confidence)
    std = float(v.std(correction=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(mean, mean - half, mean + half, n, std, confidence)


def paired_difference(a, b, confidence: float = DEFAULT_CONFIDENCE) -> MeanCI:
    """Mean of the per-clip differences ``a - b`` with its paired Student-t interval.

    a, b: [n] per-clip values of two methods on the same clips, in the same order.
    """
    a, b = _as_values(a), _as_values(b)
    require(a.shape == b.shape, "a/b", "per-clip values for the same clips", f"{a.numel()} vs {b.numel()} values")
    return mean_ci(a - b, confidence)


def _lpips_entry(pred, target, net, weights):
    try:
        return lpips(pred, target, net, weights)
    except MetricUnavailable as e:
        return Unavailable(e.reason)


def evaluate_frames(pred: Tensor, target: Tensor, lpips_weights=None) -> dict:
    """PSNR, SSIM and LPIPS (AlexNet and VGG) of one clip. pred, target: [T, 3, H, W] in [0, 1].

    lpips_weights: None, one weights file (its net is detected), or ``{"alex": path, "vgg": path}``.
    PSNR is capped per frame at :data:`PSNR_CAP_DB` (an identical frame scores 100 dB, not ``inf``).
    Returns a JSON-ready dict ``{"frames": T, "psnr": {"per_frame": [...], "mean": m}, "ssim": ...,
    "lpips_alex": ..., "lpips_vgg": ...}``; a metric that cannot be computed is the string
    ``"unavailable: <reason>"``.
    """
    _check_pair(pred, target, channels=3)
    require(pred.ndim == 4, "pred", "one clip [T, 3, H, W]", tuple(pred.shape))
    if lpips_weights is None or isinstance(lpips_weights, Mapping):
        paths = dict(lpips_weights or {})
        unknown = set(paths) - set(LPIPS_NETS)
        require(not unknown, "lpips_weights", f"keys among {list(LPIPS_NETS)}", sorted(unknown))
    else:
        paths = {detect_lpips_net(lpips_weights): lpips_weights}
    values = {"psnr": psnr(pred, target, cap=PSNR_CAP_DB), "ssim": ssim(pred, target)}
    for net in LPIPS_NETS:
        values[f"lpips_{net}"] = _lpips_entry(pred, target, net, paths.get(net))
    report: dict = {"frames": int(pred.shape[0])}
    for name, v in values.items():
        if isinstance(v, Unavailable):
            report[name] = str(v)
        else:
            report[name] = {"per_frame": [_json_float(x) for x in v.tolist()], "mean": _json_float(v.mean())}
    return report


class FrameScores:
    """:func:`evaluate_frames` of one clip that arrives in chunks: ``add(pred, target)`` per chunk, ``report()``
    the same dict as one call on the whole clip would give (per-frame values in order, their mean), so a long
    clip is scored without holding it in memory."""

    def __init__(self, lpips_weights=None):
        self.lpips_weights = lpips_weights
        self._parts: list[dict] = []
        self.frames = 0

    def add(self, pred: Tensor, target: Tensor) -> None:
        self._parts.append(evaluate_frames(pred, target, self.lpips_weights))
        self.frames += self._parts[-1]["frames"]

    def report(self) -> dict:
        require(self.frames > 0, "FrameScores", "at least one scored frame", "none")
        out: dict = {"frames": self.frames}
        for name in (k for k in self._parts[0] if k != "frames"):
            entries = [p[name] for p in self._parts]
            bad = next((e for e in entries if isinstance(e, str)), None)
            if bad is not None:
                out[name] = bad
                continue
            values = [v for e in entries for v in e["per_frame"]]
            mean = torch.tensor([float(v) for v in values], dtype=torch.float64).mean()
            out[name] = {"per_frame": values, "mean": _json_float(mean)}
        return out


def summarize_clips(reports: Sequence[Mapping], confidence: float = DEFAULT_CONFIDENCE) -> dict:
    """Mean over clips with a CI per metric, from :func:`evaluate_frames` reports (one per clip).

    A metric unavailable in any clip is reported as that clip's ``"unavailable: <reason>"``.
    """
    require(len(reports) > 0, "reports", "at least one clip report", "none")
    out: dict = {"clips": len(reports)}
    names = [k for k in reports[0] if k != "frames"]
    for name in names:
        entries = [r.get(name, "unavailable: missing from a clip report") for r in reports]
        bad = next((e for e in entries if isinstance(e, str)), None)
        if bad is not None:
            out[name] = bad
            continue
        means = [float(e["mean"]) for e in entries]
        out[name] = mean_ci(means, confidence).to_dict()
    return out
