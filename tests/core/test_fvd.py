"""FVD: the Fréchet distance against scipy on known Gaussians, the I3D layout against the TF-Hub module's variables,
reading TorchScript archives without running them (and refusing ones that reference code), weight-file checks,
the reference preprocessing, FVD behaviour with a small random-weight I3D, and the same-distribution floor."""

import math
import os
import pickle
import warnings
import zipfile

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from syn2seq_core.metrics import fvd as fvd_mod
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.metrics.fvd import (I3D, FVDUnavailable, I3DConfig, convert_i3d_weights, feature_stats,
                                      frechet_distance, fvd, fvd_entry, fvd_unavailable_entry, fvd_unavailable_reason,
                                      gaussian_fvd_floor, i3d_features, load_i3d, read_torchscript_tensors,
                                      same_distribution_fvd)

SMALL = I3DConfig(width=0.125, num_classes=4)


# --- helpers --------------------------------------------------------------------------------------
def _spd(d: int, g: torch.Generator, jitter: float = 0.1) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + jitter * torch.eye(d, dtype=torch.float64)


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    """Slow reference: the textbook formula with scipy's general matrix square root."""
    import numpy as np
    from scipy import linalg

    mu1, s1, mu2, s2 = (np.asarray(x, dtype=np.float64) for x in (mu1, s1, mu2, s2))
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _videos(n: int, seed: int, frames: int = 9, size: int = 48) -> torch.Tensor:
    """Random synthetic videos [n, T, 3, size, size] in [0, 1]: a drifting grating, a moving blob and a translating
    noise texture, each with its own random frequency, colours and velocities."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        f, ang, v, ph = torch.rand(4, generator=g) * torch.tensor([6.0, math.pi, 0.3, 6.3]) + torch.tensor([2, 0, 0, 0])
        grating = 0.5 + 0.4 * torch.sin(2 * math.pi * f * (xx * torch.cos(ang) + yy * torch.sin(ang)) - v * 6 * t + ph)
        c0, vel = torch.rand(2, generator=g), (torch.rand(2, generator=g) - 0.5) * 0.05
        blob = torch.exp(-((xx - c0[0] - vel[0] * t) ** 2 + (yy - c0[1] - vel[1] * t) ** 2) / 0.01)
        color = torch.rand(3, generator=g).view(1, 3, 1, 1)
        scene = grating.unsqueeze(1) * color + blob.unsqueeze(1) * (1 - color)  # [T, 3, size, size]
        texture, step = torch.rand(3, 2 * size, 2 * size, generator=g), torch.rand(2, generator=g) * 4 - 2
        shifts = [(round(float(step[1]) * i) % size, round(float(step[0]) * i) % size) for i in range(frames)]
        moving = torch.stack([texture[:, dy:dy + size, dx:dx + size] for dy, dx in shifts])
        out.append((0.6 * scene + 0.4 * moving).clamp(0, 1))
    return torch.stack(out)


def _blur(videos: torch.Tensor, k: int = 7) -> torch.Tensor:
    n, t = videos.shape[:2]
    x = videos.flatten(0, 1)
    x = F.avg_pool2d(F.pad(x, [k // 2] * 4, mode="replicate"), k, stride=1)
    return x.view(n, t, *x.shape[1:])


def _random_i3d(config: I3DConfig, seed: int = 0) -> I3D:
    """An I3D with random weights and batch-norm statistics calibrated on synthetic videos (so that activations
    keep a sensible scale through the depth)."""
    torch.manual_seed(seed)
    net = I3D(config)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.momentum = None  # cumulative average over the calibration pass
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    net.train()
    with torch.no_grad():
        net(fvd_mod.preprocess_videos(_videos(4, seed=99, frames=9)))
    return net.eval().requires_grad_(False)


def _script_and_save(net: I3D, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent torch; still the format to read
        torch.jit.script(net).save(str(path))


@pytest.fixture(scope="module")
def small_net() -> I3D:
    return _random_i3d(SMALL)


@pytest.fixture(scope="module")
def small_archive(small_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("i3d") / "i3d_small_torchscript.pt"
    _script_and_save(small_net, path)
    return path


def _no_code_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the I3D loader must not call torch.jit.load / torch.load on a TorchScript archive")

    monkeypatch.setattr(torch.jit, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)


# --- the Fréchet distance -------------------------------------------------------------------------
def test_frechet_distance_matches_scipy_on_known_gaussians():
    g = torch.Generator().manual_seed(0)
    for d in (1, 5, 40):
        mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
        s1, s2 = _spd(d, g), _spd(d, g, jitter=0.5)
        ours, ref = frechet_distance(mu1, s1, mu2, s2), _scipy_frechet(mu1, s1, mu2, s2)
        assert ours == pytest.approx(ref, rel=1e-6)
        # arrays work too, and the distance is symmetric
        assert frechet_distance(mu2.numpy(), s2.numpy(), mu1.numpy(), s1.numpy()) == pytest.approx(ref, rel=1e-6)
    # Equal means, covariances differing in one direction only: the trace term alone, and not zero.
    s = _spd(8, g)
    s_b = s + 0.3 * torch.outer(torch.ones(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)) / 8
    zero = torch.zeros(8, dtype=torch.float64)
    assert frechet_distance(zero, s, zero, s_b) == pytest.approx(_scipy_frechet(zero, s, zero, s_b), rel=1e-6)
    assert frechet_distance(zero, s, zero, s_b) > 1e-3


def test_frechet_distance_closed_form_for_diagonal_covariances():
    g = torch.Generator().manual_seed(1)
    d = 50
    v1, v2 = torch.rand(d, generator=g, dtype=torch.float64) + 0.01, torch.rand(d, generator=g, dtype=torch.float64) * 3
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    closed = float((mu1 - mu2).square().sum() + (v1.sqrt() - v2.sqrt()).square().sum())
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(closed, rel=1e-9)
    assert frechet_distance(mu1, torch.diag(v1), mu1, torch.diag(v1)) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_refuses_bad_inputs():
    s = torch.eye(3, dtype=torch.float64)
    with pytest.raises(Syn2SeqInputError, match="same length"):
        frechet_distance(torch.zeros(3), s, torch.zeros(4), torch.eye(4))
    with pytest.raises(Syn2SeqInputError, match="symmetric"):
        frechet_distance(torch.zeros(3), torch.triu(torch.ones(3, 3)), torch.zeros(3), s)
    with pytest.raises(Syn2SeqInputError, match="finite"):
        frechet_distance(torch.full((3,), float("nan")), s, torch.zeros(3), s)
    with pytest.raises(Syn2SeqInputError, match="N >= 2"):
        feature_stats(torch.zeros(1, 3))


def test_fvd_of_a_set_against_itself_is_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 16, generator=g, dtype=torch.float64) * torch.linspace(0.1, 2.0, 16, dtype=torch.float64)
    assert fvd(x, x) == pytest.approx(0.0, abs=1e-9 * float(x.var(dim=0).sum()))
    mu, sigma = feature_stats(x)
    assert torch.allclose(mu, x.mean(0)) and torch.allclose(sigma, torch.cov(x.T))  # ddof 1, as TF-GAN
    shifted = x + 0.5
    assert fvd(x, shifted) == pytest.approx(16 * 0.25, rel=1e-9)  # equal covariances: |d mu|^2 only


# --- the network ----------------------------------------------------------------------------------
def test_i3d_layout_is_the_tf_hub_module():
    """The variables of TF-Hub deepmind/i3d-kinetics-400/1 (its variables.index, read for this port): 230 tensors,
    12,704,544 numbers, 58 convolution kernels. Ours has the same tensors plus a batch-norm scale of ones per unit
    (TF's batch norm has none)."""
    with torch.device("meta"):
        sd = I3D().state_dict()
    tensors = {k: v for k, v in sd.items() if not k.endswith(("num_batches_tracked", "batch3d.weight"))}
    assert len(tensors) == 230
    assert sum(v.numel() for v in tensors.values()) == 12_704_544
    assert sum(k.endswith("conv3d.weight") for k in tensors) == 58
    spot = {"conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7), "mixed_4f.branch_1.1.conv3d.weight": (320, 160, 3, 3, 3),
            "mixed_5b.branch_2.1.conv3d.weight": (128, 32, 3, 3, 3), "mixed_5c.branch_3.1.batch3d.running_var": (128,),
            "conv3d_0c_1x1.conv3d.weight": (400, 1024, 1, 1, 1), "conv3d_0c_1x1.conv3d.bias": (400,)}
    for k, shape in spot.items():
        assert tuple(sd[k].shape) == shape, k
    bn = [m for m in I3D(SMALL).modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bn) == 57 and all(m.eps == 1e-3 for m in bn)


def test_i3d_needs_nine_frames_and_tf_same_padding(small_net):
    net = small_net
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 9, 32, 32)).shape == (1, 4)
        with pytest.raises(RuntimeError):
            net(torch.zeros(1, 3, 8, 32, 32))
    # TF SAME: output ceil(n / s), the odd padding pixel at the end.
    x = torch.arange(5.0).view(1, 1, 1, 1, 5)
    padded = fvd_mod._pad_same(x, [1, 1, 2], [1, 1, 2], 0.0)  # k=2, s=2 on 5 -> 3 outputs, pad (0, 1)
    assert padded.shape[-1] == 6 and padded[..., -1].item() == 0 and padded[..., 0].item() == 0
    assert fvd_mod._pad_same(torch.zeros(1, 1, 1, 1, 224), [1, 1, 7], [1, 1, 2], 0.0).shape[-1] == 224 + 5


# --- reading weights -------------------------------------------------------------------------------
def test_torchscript_archive_is_read_without_running_it(small_net, small_archive, monkeypatch):
    _no_code_loading(monkeypatch)
    tensors = read_torchscript_tensors(small_archive)
    expected = small_net.state_dict()
    for k, v in expected.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(tensors[k], v), k
    net = load_i3d(small_archive, SMALL)
    assert net is not small_net
    x = torch.rand(2, 3, 9, 40, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), small_net(x))


def test_full_size_torchscript_archive_loads_with_the_default_layout(tmp_path, monkeypatch):
    torch.manual_seed(3)
    net = I3D().eval()
    path = tmp_path / "i3d_torchscript.pt"
    _script_and_save(net, path)
    _no_code_loading(monkeypatch)
    loaded = load_i3d(path)
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def _replace_pickle(src, dst, payload: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = payload if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info, data)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_archive_referencing_code_is_refused_and_nothing_runs(small_archive, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    _replace_pickle(small_archive, evil, pickle.dumps({"weight": _RunsCode(marker)}, protocol=2))
    with pytest.raises(Syn2SeqInputError, match=r"evil\.pt.*global '(posix|os|nt)\.system'"):
        read_torchscript_tensors(evil)
    with pytest.raises(Syn2SeqInputError, match="global"):
        load_i3d(evil, SMALL)
    assert not marker.exists()
    # a tensor whose layout reads past its storage is refused too: (16,) elements of a 1-element storage record
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(small_archive) as z:
        key = next(n for n in z.namelist() if "/data/" in n).rsplit("/", 1)[1]
    payload = (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX"
               + len(key).to_bytes(4, "little") + key.encode() + b"X\x03\x00\x00\x00cpuK\x01tQK\x00K\x10\x85K\x01\x85"
               + b"\x89ccollections\nOrderedDict\n)RtR.")
    _replace_pickle(small_archive, bad, payload)
    with pytest.raises(Syn2SeqInputError, match="past its storage"):
        read_torchscript_tensors(bad)


def test_missing_weights_are_unavailable_with_how_to(tmp_path):
    for path in (None, tmp_path / "nowhere" / "i3d_torchscript.pt"):
        with pytest.raises(FVDUnavailable) as info:
            load_i3d(path)
        assert "i3d_torchscript.pt" in info.value.reason and "dropbox.com" in info.value.reason
        assert "stylegan-v" in info.value.reason.lower()
        assert info.value.metric == "fvd"
    reason = fvd_unavailable_reason(None)
    assert reason is not None and fvd_unavailable_entry(reason).startswith("unavailable: no I3D weights given")
    with pytest.raises(FVDUnavailable):
        fvd_mod.fvd_videos(_videos(2, 0, frames=9), _videos(2, 1, frames=9), None)


def test_wrong_keys_and_shapes_are_named(small_net, tmp_path):
    sd = {k: v for k, v in small_net.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = dict(sd)
    del missing["mixed_4c.branch_2.1.batch3d.running_mean"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(Syn2SeqInputError, match=r"missing\.safetensors.*mixed_4c\.branch_2\.1\.batch3d\.running_mean"):
        load_i3d(tmp_path / "missing.safetensors", SMALL)
    wrong = dict(sd)
    wrong["mixed_3b.branch_0.conv3d.weight"] = torch.zeros(3, 3, 1, 1, 1)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(Syn2SeqInputError) as info:
        load_i3d(tmp_path / "wrong.safetensors", SMALL)
    message = str(info.value)
    assert "wrong.safetensors" in message and "mixed_3b.branch_0.conv3d.weight" in message
    assert str(tuple(sd["mixed_3b.branch_0.conv3d.weight"].shape)) in message and "(3, 3, 1, 1, 1)" in message
    extra = {**sd, "head.fc.weight": torch.zeros(2)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(Syn2SeqInputError, match="unknown.*head.fc.weight"):
        load_i3d(tmp_path / "extra.safetensors", SMALL)
    save_file(sd, str(tmp_path / "small.safetensors"))  # a narrow test network is not the FVD I3D
    with pytest.raises(Syn2SeqInputError, match=r"conv3d_1a_7x7\.conv3d\.weight.*\(64, 3, 7, 7, 7\) for the FVD I3D"):
        load_i3d(tmp_path / "small.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Syn2SeqInputError, match="cannot be read"):
        load_i3d(tmp_path / "junk.pt", SMALL)


def test_safetensors_state_dict_and_tf_names_give_the_same_network(small_net, small_archive, tmp_path):
    x = torch.rand(1, 3, 10, 36, 36) * 2 - 1
    with torch.no_grad():
        want = small_net(x)
    converted = convert_i3d_weights(small_archive, tmp_path / "i3d.safetensors", SMALL)
    torch.save(small_net.state_dict(), tmp_path / "i3d_state.pth")
    # TF-Hub names and layouts, written out by an explicit table (the inverse of the loader's mapping)
    branch = {"branch_0": "Branch_0/Conv3d_0a_1x1", "branch_1.0": "Branch_1/Conv3d_0a_1x1",
              "branch_1.1": "Branch_1/Conv3d_0b_3x3", "branch_2.0": "Branch_2/Conv3d_0a_1x1",
              "branch_2.1": "Branch_2/Conv3d_0b_3x3", "branch_3.1": "Branch_3/Conv3d_0b_1x1"}
    leaf = {"conv3d.weight": "conv_3d/w", "conv3d.bias": "conv_3d/b", "batch3d.bias": "batch_norm/beta",
            "batch3d.running_mean": "batch_norm/moving_mean", "batch3d.running_var": "batch_norm/moving_variance"}
    tf = {}
    for k, v in small_net.state_dict().items():
        if k.endswith(("num_batches_tracked", "batch3d.weight")):
            continue
        parts = k.split(".")
        if parts[0].startswith("mixed"):
            b = branch[".".join(parts[1:-2]) if parts[1] == "branch_0" else ".".join(parts[1:3])]
            if parts[0] == "mixed_5b" and b == "Branch_2/Conv3d_0b_3x3":
                b = "Branch_2/Conv3d_0a_3x3"  # the TF module's own spelling
            scope = f"Mixed_{parts[0][-2:]}/{b}"
        else:
            scope = "Logits/Conv3d_0c_1x1" if parts[0] == "conv3d_0c_1x1" else "C" + parts[0][1:]
        name = f"RGB/inception_i3d/{scope}/{leaf['.'.join(parts[-2:])]}"
        tf[name] = (v.permute(2, 3, 4, 1, 0) if v.ndim == 5 else v.view(1, 1, 1, 1, -1) if "batch3d" in k else v)
        tf[name] = tf[name].contiguous()
    save_file(tf, str(tmp_path / "tf_names.safetensors"))
    for path in (converted, tmp_path / "i3d_state.pth", tmp_path / "tf_names.safetensors"):
        with torch.no_grad():
            assert torch.allclose(load_i3d(path, SMALL)(x), want, rtol=1e-5, atol=1e-6), path


# --- preprocessing and features --------------------------------------------------------------------
def test_i3d_features_follow_the_reference_preprocessing(small_net):
    videos = _videos(3, seed=5, frames=9, size=40)
    feats = i3d_features(videos, small_net, batch=2)
    assert feats.shape == (3, 4) and feats.dtype == torch.float64
    # slow reference: frame by frame, bilinear to 224x224 (half-pixel centres), 2x - 1, [N, 3, T, 224, 224]
    frames = [[F.interpolate(f[None], size=(224, 224), mode="bilinear", align_corners=False)[0] for f in v]
              for v in videos]
    x = torch.stack([torch.stack(v, dim=1) for v in frames]) * 2 - 1
    with torch.no_grad():
        ref = small_net(x).double()
    assert torch.allclose(feats, ref, rtol=1e-5, atol=1e-7)
    # batching changes float32 summation order only
    assert torch.allclose(i3d_features(videos, small_net, batch=1), feats, rtol=1e-4, atol=1e-5)


def test_i3d_features_refuse_bad_videos(small_net):
    with pytest.raises(Syn2SeqInputError, match="at least 9 frames"):
        i3d_features(torch.rand(2, 8, 3, 16, 16), small_net)
    with pytest.raises(Syn2SeqInputError, match=r"values in \[0, 1\]"):
        i3d_features(torch.rand(2, 9, 3, 16, 16) * 255, small_net)
    with pytest.raises(Syn2SeqInputError, match="RGB"):
        i3d_features(torch.rand(2, 9, 1, 16, 16), small_net)


def test_fvd_grows_when_a_set_is_shifted_or_blurred(small_net):
    n = 32
    a, b = _videos(n, seed=10), _videos(n, seed=11)
    fa, fb = i3d_features(a, small_net), i3d_features(b, small_net)
    same = fvd(fa, fb)
    blurred = fvd(fa, i3d_features(_blur(b, 5), small_net))
    shifted = fvd(fa, i3d_features((b + 0.3).clamp(0, 1), small_net))
    assert fvd(fa, fa) == pytest.approx(0.0, abs=1e-9)
    assert blurred > 4 * same and shifted > 4 * same, (same, blurred, shifted)
    entry = fvd_entry(fa, fb)
    assert entry["videos"] == [n, n] and entry["feature_dim"] == 4 and entry["stable"] is False
    assert entry["fvd"] == pytest.approx(same)


# --- how many videos ---------------------------------------------------------------------------------
def test_same_distribution_floor_falls_as_one_over_n():
    small, large = gaussian_fvd_floor([256, 1024], dim=32, decay=0.0, trials=3)
    assert small.n == 256 and large.n == 1024
    assert 3.3 < small.mean / large.mean < 4.7  # bias ~ c / N once N >> D
    assert small.mean > 5 * small.std  # bias, not spread, dominates
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 32, generator=g, dtype=torch.float64)
    pts = same_distribution_fvd(x, [64, 1024], trials=2)
    assert pts[0].mean > 4 * pts[1].mean
    with pytest.raises(Syn2SeqInputError, match="N/2"):
        same_distribution_fvd(x, [1025])


@pytest.mark.skipif(not os.environ.get("SYN2SEQ_I3D_WEIGHTS"), reason="set SYN2SEQ_I3D_WEIGHTS to i3d_torchscript.pt")
def test_real_i3d_matches_published_value():
    """common_metrics_on_video_quality's README: 8 black vs 8 white videos of 30 frames (64x64) have FVD 151.26 with
    StyleGAN-V's i3d_torchscript.pt (151.39 with the TF original); constant videos make resizing irrelevant."""
    net = load_i3d(os.environ["SYN2SEQ_I3D_WEIGHTS"])
    zeros, ones = torch.zeros(8, 30, 3, 64, 64), torch.ones(8, 30, 3, 64, 64)
    assert fvd(i3d_features(zeros, net), i3d_features(ones, net)) == pytest.approx(151.26, abs=1.5)
