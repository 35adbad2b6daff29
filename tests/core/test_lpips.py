"""LPIPS: our network against a slow reference formulation written from the published definitions (random
weights, both backbones), its behaviour (identical frames score exactly 0, more blur scores more), weight
files in every accepted form, and the messages that say which file is missing and how to get it."""

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from syn2seq_core.metrics import frames as metrics
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.metrics.frames import LPIPSUnavailable, MetricUnavailable, evaluate_frames, lpips
from syn2seq_core.io.video import read_video

BIKES = Path(__file__).resolve().parents[1] / "fixtures" / "bikes_40f_320x136.mp4"

# --- the reference ------------------------------------------------------------------------------------
# torchvision's ``alexnet().features`` and ``vgg16().features``, one row per index of those Sequentials:
# (name, in, out, kernel, stride, padding) for a convolution, (name,) for a ReLU, (name, kernel, stride)
# for a max-pool. Written out from the published definitions, not from our layer table.
ALEXNET_FEATURES = [
    ("conv1", 3, 64, 11, 4, 2), ("relu1",), ("pool1", 3, 2),
    ("conv2", 64, 192, 5, 1, 2), ("relu2",), ("pool2", 3, 2),
    ("conv3", 192, 384, 3, 1, 1), ("relu3",),
    ("conv4", 384, 256, 3, 1, 1), ("relu4",),
    ("conv5", 256, 256, 3, 1, 1), ("relu5",), ("pool5", 3, 2),
]
VGG16_FEATURES = [
    ("conv1_1", 3, 64, 3, 1, 1), ("relu1_1",), ("conv1_2", 64, 64, 3, 1, 1), ("relu1_2",), ("pool1", 2, 2),
    ("conv2_1", 64, 128, 3, 1, 1), ("relu2_1",), ("conv2_2", 128, 128, 3, 1, 1), ("relu2_2",), ("pool2", 2, 2),
    ("conv3_1", 128, 256, 3, 1, 1), ("relu3_1",), ("conv3_2", 256, 256, 3, 1, 1), ("relu3_2",),
    ("conv3_3", 256, 256, 3, 1, 1), ("relu3_3",), ("pool3", 2, 2),
    ("conv4_1", 256, 512, 3, 1, 1), ("relu4_1",), ("conv4_2", 512, 512, 3, 1, 1), ("relu4_2",),
    ("conv4_3", 512, 512, 3, 1, 1), ("relu4_3",), ("pool4", 2, 2),
    ("conv5_1", 512, 512, 3, 1, 1), ("relu5_1",), ("conv5_2", 512, 512, 3, 1, 1), ("relu5_2",),
    ("conv5_3", 512, 512, 3, 1, 1), ("relu5_3",), ("pool5", 2, 2),
]
FEATURES = {"alex": ALEXNET_FEATURES, "vgg": VGG16_FEATURES}
# The ReLU outputs LPIPS compares, in the order of its heads lin0 .. lin4.
TAPS = {"alex": ["relu1", "relu2", "relu3", "relu4", "relu5"],
        "vgg": ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]}
SHIFT = [-0.030, -0.088, -0.188]  # LPIPS ScalingLayer
SCALE = [0.458, 0.448, 0.450]
EPS = 1e-10  # LPIPS normalize_tensor


def tap_channels(net: str) -> list[int]:
    out, channels = [], 3
    for row in FEATURES[net]:
        if row[0].startswith("conv"):
            channels = row[2]
        if row[0] in TAPS[net]:
            out.append(channels)
    return out


def random_weights(net: str, seed: int = 0, *, heads: bool = True) -> dict:
    """Random backbone weights under torchvision's key names (features.N.weight/bias, N the Sequential index)
    and, with ``heads``, non-negative random heads under the lpips package's names (lin{K}.model.1.weight)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, row in enumerate(FEATURES[net]):
        if row[0].startswith("conv"):
            _, c_in, c_out, k, _, _ = row
            sd[f"features.{i}.weight"] = torch.randn(c_out, c_in, k, k, generator=g) * math.sqrt(2 / (c_in * k * k))
            sd[f"features.{i}.bias"] = torch.randn(c_out, generator=g) * 0.05
    sd["classifier.6.bias"] = torch.zeros(1000)  # a torchvision file holds the classifier too: ignored
    if heads:
        for k, c in enumerate(tap_channels(net)):
            sd[f"lin{k}.model.1.weight"] = torch.rand(1, c, 1, 1, generator=g) * 0.2
    return sd


def reference_lpips(x0: torch.Tensor, x1: torch.Tensor, net: str, sd: dict) -> torch.Tensor:
    """LPIPS step by step in float64, one image pair at a time. x0, x1: [N, 3, H, W] in [0, 1] -> [N]."""
    sd = {k: v.double() for k, v in sd.items()}
    shift = torch.tensor(SHIFT, dtype=torch.float64).view(3, 1, 1)
    scale = torch.tensor(SCALE, dtype=torch.float64).view(3, 1, 1)

    def taps(image):  # [3, H, W] -> the tapped ReLU outputs, each [C, h, w]
        h = ((image.double() * 2 - 1) - shift) / scale  # [0, 1] -> [-1, 1] -> ScalingLayer
        h = h.unsqueeze(0)
        out = {}
        for i, row in enumerate(FEATURES[net]):
            name = row[0]
            if name.startswith("conv"):
                h = F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], stride=row[4], padding=row[5])
            elif name.startswith("relu"):
                h = F.relu(h)
            else:
                h = F.max_pool2d(h, kernel_size=row[1], stride=row[2])
            if name in TAPS[net]:
                out[name] = h[0]
        return [out[name] for name in TAPS[net]]

    values = []
    for a, b in zip(x0, x1, strict=True):
        total = torch.zeros((), dtype=torch.float64)
        for k, (fa, fb) in enumerate(zip(taps(a), taps(b), strict=True)):
            na = fa / (fa.square().sum(dim=0, keepdim=True).sqrt() + EPS)  # unit length over channels
            nb = fb / (fb.square().sum(dim=0, keepdim=True).sqrt() + EPS)
            w = sd[f"lin{k}.model.1.weight"].view(-1, 1, 1)  # 1x1 conv to one channel, no bias
            total = total + (w * (na - nb).square()).sum(dim=0).mean()  # head, then mean over space
        values.append(total)
    return torch.stack(values)


@pytest.fixture(scope="module")
def frames():
    return read_video(BIKES)  # [40, 3, 136, 320] real footage in [0, 1]


def save_weights(tmp_path, net: str, **kw) -> Path:
    path = tmp_path / f"{net}-random.pth"
    torch.save(random_weights(net, **kw), path)
    return path


# --- against the reference ----------------------------------------------------------------------------
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_slow_reference_on_random_weights(tmp_path, frames, net):
    path = save_weights(tmp_path, net)
    sd = random_weights(net)
    for h, w in ((64, 64), (70, 90)):
        # [2, 2] pairs: frames 8 apart, far-apart frames, a frame vs itself with noise.
        pred = torch.stack([frames[0:2, :, 10:10 + h, 20:20 + w], frames[2:4, :, 30:30 + h, 100:100 + w]])
        target = torch.stack([frames[8:10, :, 10:10 + h, 20:20 + w], frames[30:32, :, 30:30 + h, 100:100 + w]])
        target[1, 1] = (pred[1, 1] + 0.02 * torch.randn(pred[1, 1].shape, generator=torch.Generator().manual_seed(1))
                        ).clamp(0, 1)
        ours = lpips(pred, target, net, path, batch=3)  # batches of 3 cross the leading dimensions
        ref = reference_lpips(pred.flatten(0, 1), target.flatten(0, 1), net, sd).view(2, 2)
        assert ours.shape == (2, 2) and ours.dtype == torch.float64
        assert bool((ref > 1e-3).all())  # real distances, not a comparison of zeros
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)  # measured: <= 5e-8 (float32 vs float64)


def test_the_reference_tables_are_the_published_shapes():
    """The tables above give the published tap channels and the parameter count of torchvision's trunks."""
    assert tap_channels("alex") == [64, 192, 384, 256, 256]
    assert tap_channels("vgg") == [64, 128, 256, 512, 512]
    n_params = {net: sum(v.numel() for k, v in random_weights(net, heads=False).items() if k.startswith("features"))
                for net in ("alex", "vgg")}
    assert n_params == {"alex": 2_469_696, "vgg": 14_714_688}  # torchvision: alexnet / vgg16 .features


# --- behaviour ----------------------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x: [N, 3, H, W] blurred with a separable Gaussian (radius 3 sigma, reflected borders)."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).to(x.dtype)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identical_frames_score_zero_and_more_blur_scores_more(tmp_path, frames, net):
    path = save_weights(tmp_path, net)
    clip = frames[::8, :, :, 60:220].contiguous()  # [5, 3, 136, 160] real frames
    assert torch.equal(lpips(clip, clip.clone(), net, path), torch.zeros(5, dtype=torch.float64))
    scores = torch.stack([lpips(clip, gaussian_blur(clip, s), net, path) for s in (0.7, 1.5, 3.0)])  # [3, 5]
    assert bool((scores[0] > 1e-4).all())
    assert bool((scores[1:] > scores[:-1]).all()), scores  # strictly increasing for every frame


# --- weight files -------------------------------------------------------------------------------------
def lpips_package_names(sd: dict, net: str) -> dict:
    """The same weights under the lpips package's names: net.slice{K}.{N}.* (slice K ends at tap K)."""
    taps = metrics._TAPS[net]
    return {(f"net.slice{1 + sum(int(k.split('.')[1]) > t for t in taps)}.{k.split('.', 1)[1]}"
             if k.startswith("features.") else k): v for k, v in sd.items()}


class _Payload:
    """Stands for an arbitrary pickled object."""


def test_weight_files_in_every_accepted_form_give_the_same_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "_installed_heads", lambda net: None)  # pretend no lpips/torchmetrics
    x, y = torch.rand(2, 3, 40, 40), torch.rand(2, 3, 40, 40)
    sd = random_weights("alex")
    base = lpips(x, y, "alex", save_weights(tmp_path, "alex"))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "alex.safetensors"))
    torch.save(lpips_package_names(sd, "alex"), tmp_path / "alex_lpips_names.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "alex_wrapped.pth")
    for name in ("alex.safetensors", "alex_lpips_names.pth", "alex_wrapped.pth"):
        torch.testing.assert_close(lpips(x, y, "alex", tmp_path / name), base, rtol=0, atol=0)
    # Backbone and heads in separate files (torchvision's file + the lpips package's head file), fp16 storage.
    backbone = {k: v.half() for k, v in sd.items() if not k.startswith("lin")}
    torch.save(backbone, tmp_path / "alexnet-owt.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, tmp_path / "alex_heads.pth")
    with pytest.raises(LPIPSUnavailable, match="linear heads"):
        lpips(x, y, "alex", tmp_path / "alexnet-owt.pth")
    split = lpips(x, y, "alex", tmp_path / "alexnet-owt.pth", heads=tmp_path / "alex_heads.pth")
    torch.testing.assert_close(split, base, rtol=1e-2, atol=1e-3)  # fp16 backbone
    # An explicit heads file wins over heads inside the weights file.
    torch.save({k: v * 2 for k, v in sd.items() if k.startswith("lin")}, tmp_path / "double_heads.pth")
    torch.testing.assert_close(lpips(x, y, "alex", tmp_path / "alex.safetensors", heads=tmp_path / "double_heads.pth"),
                               2 * base)


def test_heads_of_an_installed_lpips_package_are_found_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('lpips must not be imported')\n")
    sd = random_weights("vgg")
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, package / "weights" / "v0.1" / "vgg.pth")
    torch.save({k: v for k, v in sd.items() if not k.startswith("lin")}, tmp_path / "vgg16-397923af.pth")
    torch.save(sd, tmp_path / "vgg_all.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert metrics._installed_heads("vgg") == package / "weights" / "v0.1" / "vgg.pth"
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(lpips(x, y, "vgg", tmp_path / "vgg16-397923af.pth"),
                               lpips(x, y, "vgg", tmp_path / "vgg_all.pth"))
    assert "lpips" not in sys.modules


def test_lpips_weight_errors_are_clear(tmp_path):
    path = save_weights(tmp_path, "alex")
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(Syn2SeqInputError, match="AlexNet weights"):
        lpips(x, x, "vgg", path)
    with pytest.raises(Syn2SeqInputError, match="no file"):
        lpips(x, x, "alex", tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(Syn2SeqInputError, match="junk.pth"):
        lpips(x, x, "alex", tmp_path / "junk.pth")
    # A pickle that needs arbitrary classes is refused (weights_only=True), not executed.
    torch.save({"features.0.weight": torch.zeros(1), "payload": _Payload()}, tmp_path / "pickled.pth")
    with pytest.raises(Syn2SeqInputError, match="pickled.pth"):
        lpips(x, x, "alex", tmp_path / "pickled.pth")
    with pytest.raises(Syn2SeqInputError, match="net"):
        lpips(x, x, "resnet", path)
    # A trunk cut short names what is missing and where the whole file is published.
    torch.save({k: v for k, v in random_weights("alex").items() if not k.startswith("features.10")},
               tmp_path / "short.pth")
    with pytest.raises(Syn2SeqInputError, match=r"features\.10\.weight.*alexnet-owt-7be5be79\.pth"):
        lpips(x, x, "alex", tmp_path / "short.pth")
    # Frames too small for the trunk: unavailable with the reason, not a crash inside a convolution.
    with pytest.raises(MetricUnavailable, match="30x40 pixels are smaller than the 31x31"):
        lpips(torch.rand(1, 3, 30, 40), torch.rand(1, 3, 30, 40), "alex", path)
    assert lpips(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), "vgg", save_weights(tmp_path, "vgg")).shape == (1,)


# --- offline messages: which file, and how to get it ------------------------------------------------
@pytest.mark.parametrize(("net", "url"), [("alex", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
                                          ("vgg", "https://download.pytorch.org/models/vgg16-397923af.pth")])
def test_without_backbone_weights_the_reason_says_which_file_and_how_to_get_it(net, url):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(LPIPSUnavailable) as info:
        lpips(x, x, net)
    reason = info.value.reason
    assert info.value.net == net and info.value.metric == f"lpips_{net}"
    assert url in reason and "on a machine with internet" in reason and "--lpips-weights FILE" in reason
    assert ("AlexNet" if net == "alex" else "VGG16") in reason
    assert metrics.LPIPS_BACKBONE_URLS[net] == url


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_without_heads_the_reason_says_which_file_and_how_to_get_it(tmp_path, monkeypatch, net):
    monkeypatch.setattr(metrics, "_installed_heads", lambda net: None)
    path = save_weights(tmp_path, net, heads=False)
    with pytest.raises(LPIPSUnavailable) as info:
        lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), net, path)
    reason = info.value.reason
    assert "pip install --no-deps lpips" in reason and f"weights/v0.1/{net}.pth" in reason and "heads=FILE" in reason
    assert f"https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{net}.pth" in reason
    assert str(path.resolve()) in reason


def test_reports_carry_the_reason_never_a_number(tmp_path):
    x = torch.rand(2, 3, 32, 32)
    report = evaluate_frames(x, x.flip(0))
    for net in ("alex", "vgg"):
        assert isinstance(report[f"lpips_{net}"], str) and report[f"lpips_{net}"].startswith("unavailable: ")
        assert metrics.LPIPS_BACKBONE_URLS[net] in report[f"lpips_{net}"]
    assert report["frames"] == 2 and len(report["psnr"]["per_frame"]) == 2
    json.dumps(report, allow_nan=False)  # strict JSON
    # One weights file: its net is detected and scored, the other stays unavailable with its how-to.
    report = evaluate_frames(x, x.flip(0), lpips_weights=save_weights(tmp_path, "alex"))
    assert report["lpips_alex"]["mean"] == pytest.approx(sum(report["lpips_alex"]["per_frame"]) / 2)
    assert report["lpips_vgg"].startswith("unavailable: ") and "vgg16-397923af.pth" in report["lpips_vgg"]
    assert report["psnr"]["mean"] == pytest.approx(float(metrics.psnr(x, x.flip(0)).mean()))
    same = evaluate_frames(x, x, lpips_weights=save_weights(tmp_path, "alex"))
    # identical frames: PSNR capped at 100 dB in reports (metrics.PSNR_CAP_DB), never inf
    assert same["psnr"]["per_frame"] == [100.0, 100.0] and same["psnr"]["mean"] == 100.0
    assert same["ssim"]["mean"] == pytest.approx(1.0)
    assert same["lpips_alex"]["per_frame"] == [0.0, 0.0]
    json.dumps(same, allow_nan=False)
    # Frames too small for AlexNet: unavailable in the report, VGG still scored.
    small = torch.rand(2, 3, 24, 24)
    report = evaluate_frames(small, small.flip(0), lpips_weights={"alex": save_weights(tmp_path, "alex"),
                                                                    "vgg": save_weights(tmp_path, "vgg")})
    assert report["lpips_alex"].startswith("unavailable: frames of 24x24")
    assert len(report["lpips_vgg"]["per_frame"]) == 2
