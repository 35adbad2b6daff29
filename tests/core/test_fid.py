"""Frame-level FID (syn2seq_core/metrics/fid.py) against its references, with random weights only (nothing downloaded).

The references, read from their sources (``fetch`` of github:mseitzer/pytorch-fid at b9c1811, and torchvision's
``torchvision/models/inception.py`` at 02a0a90):

* pytorch-fid ``src/pytorch_fid/inception.py``: lines 85-125 (the four blocks of ``InceptionV3``: stem,
  max-pools, Mixed_5b..6e, Mixed_7a..7c, adaptive average pool), 147-151 (bilinear resize to 299x299 with
  ``align_corners=False``, then ``2x - 1``), 204-213 (``fid_inception_v3``: torchvision's Inception3 with 1008
  classes, no aux head, and the FID blocks), 236-241 / 266-271 / 301-306 (``count_include_pad=False`` average
  pools in FIDInceptionA / C / E_1), 336-341 (the 3x3 max-pool of FIDInceptionE_2);
* pytorch-fid ``src/pytorch_fid/fid_score.py``: lines 214-236 (``calculate_frechet_distance``: scipy's ``sqrtm`` of
  ``sigma1 @ sigma2``, real part, traces) and 260-261 (``np.mean`` and ``np.cov(rowvar=False)``);
* torchvision ``Inception3.__init__`` (lines 63-86: the stem convolutions and the channel counts of every Mixed
  block), ``InceptionB`` / ``InceptionD`` (used unpatched for Mixed_6a / Mixed_7a) and ``BasicConv2d`` (Conv2d
  without bias, BatchNorm2d with eps 0.001, ReLU).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.metrics.fid import (MINIMUM_FRAMES, FIDInception, FIDUnavailable, InceptionConfig,
                                      convert_inception_weights, fid, fid_entry, inception_features, load_inception)


def random_state_dict(config=None, seed=0) -> dict:
    """Random weights in the reference layout, with batch-norm statistics away from their defaults (so that a
    mix-up of mean, variance, weight and bias shows)."""
    g = torch.Generator().manual_seed(seed)
    sd = FIDInception(config or InceptionConfig()).state_dict()
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith(("running_mean", "bn.bias")):
            out[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("bn.weight"):
            out[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        else:
            fan_in = v[0].numel() if v.ndim > 1 else 1
            out[k] = torch.randn(v.shape, generator=g) * (2 / fan_in) ** 0.5
    return out


def test_the_layout_is_that_of_pytorch_fids_weights_file():
    """Key names and shapes of pt_inception-2015-12-05-6726825d.pth: torchvision's Inception3 with 1008 classes and
    no aux head (pytorch-fid inception.py:204). Its size follows from torchvision's well-known 27,161,264 numbers
    (1000 classes, with the aux head of 3,326,696): 23,834,568 + 8 x 2049 for the 1008-class fc = 23,850,960."""
    with torch.device("meta"):
        sd = FIDInception().state_dict()
    weights = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith(("num_batches_tracked", "running_mean",
                                                                             "running_var"))}
    assert sum(int(np.prod(s)) for s in weights.values()) == 23_850_960
    assert sum(k.endswith(".conv.weight") for k in sd) == 94  # every BasicConv2d, none with a bias
    assert not any(k.endswith(".conv.bias") or k.startswith("AuxLogits") for k in sd)
    for key, shape in {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_4a_3x3.bn.running_var": (192,),
                       "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
                       "Mixed_5d.branch3x3dbl_3.conv.weight": (96, 96, 3, 3),
                       "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
                       "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
                       "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
                       "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
                       "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
                       "fc.weight": (1008, 2048), "fc.bias": (1008,)}.items():
        assert tuple(sd[key].shape) == shape, key
    assert FIDInception().out_channels == 2048


# --- an oracle written from the reference's forward passes ------------------------------------------------------
def _conv(m, x):
    """torchvision BasicConv2d: conv (no bias) -> batch norm (eval, eps 0.001) -> ReLU."""
    y = F.conv2d(x, m.conv.weight, stride=m.conv.stride, padding=m.conv.padding)
    return F.relu(F.batch_norm(y, m.bn.running_mean, m.bn.running_var, m.bn.weight, m.bn.bias, False, 0.0, 1e-3))


def _avg(x):  # pytorch-fid inception.py:238-240 (and 268-270, 303-305)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _block_a(b, x):  # FIDInceptionA.forward, pytorch-fid inception.py:226-244
    return torch.cat([_conv(b.branch1x1, x), _conv(b.branch5x5_2, _conv(b.branch5x5_1, x)),
                      _conv(b.branch3x3dbl_3, _conv(b.branch3x3dbl_2, _conv(b.branch3x3dbl_1, x))),
                      _conv(b.branch_pool, _avg(x))], 1)


def _block_b(b, x):  # torchvision InceptionB (Mixed_6a)
    return torch.cat([_conv(b.branch3x3, x),
                      _conv(b.branch3x3dbl_3, _conv(b.branch3x3dbl_2, _conv(b.branch3x3dbl_1, x))),
                      F.max_pool2d(x, kernel_size=3, stride=2)], 1)


def _block_c(b, x):  # FIDInceptionC.forward, pytorch-fid inception.py:253-274
    b7 = _conv(b.branch7x7_3, _conv(b.branch7x7_2, _conv(b.branch7x7_1, x)))
    d = x
    for name in ("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"):
        d = _conv(getattr(b, name), d)
    return torch.cat([_conv(b.branch1x1, x), b7, d, _conv(b.branch_pool, _avg(x))], 1)


def _block_d(b, x):  # torchvision InceptionD (Mixed_7a)
    b3 = _conv(b.branch3x3_2, _conv(b.branch3x3_1, x))
    b7 = x
    for name in ("branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"):
        b7 = _conv(getattr(b, name), b7)
    return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


def _block_e(b, x, pool):  # FIDInceptionE_1 / E_2.forward, pytorch-fid inception.py:283-309 / 318-344
    b3 = _conv(b.branch3x3_1, x)
    d = _conv(b.branch3x3dbl_2, _conv(b.branch3x3dbl_1, x))
    return torch.cat([_conv(b.branch1x1, x),
                      torch.cat([_conv(b.branch3x3_2a, b3), _conv(b.branch3x3_2b, b3)], 1),
                      torch.cat([_conv(b.branch3x3dbl_3a, d), _conv(b.branch3x3dbl_3b, d)], 1),
                      _conv(b.branch_pool, pool(x))], 1)


def reference_features(net, frames):
    """pytorch-fid's InceptionV3(output_blocks=[3]) forward (inception.py:85-125, 147-161), step by step."""
    x = F.interpolate(frames, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = _conv(net.Conv2d_2b_3x3, _conv(net.Conv2d_2a_3x3, _conv(net.Conv2d_1a_3x3, x)))
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    x = F.max_pool2d(_conv(net.Conv2d_4a_3x3, _conv(net.Conv2d_3b_1x1, x)), kernel_size=3, stride=2)
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = _block_a(getattr(net, name), x)
    x = _block_b(net.Mixed_6a, x)
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = _block_c(getattr(net, name), x)
    x = _block_d(net.Mixed_7a, x)
    x = _block_e(net.Mixed_7b, x, _avg)
    x = _block_e(net.Mixed_7c, x, lambda y: F.max_pool2d(y, kernel_size=3, stride=1, padding=1))
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def test_features_match_the_reference_forward_pass():
    """Random weights (a quarter of the channels, same modules) through our network and through the reference's
    forward written out step by step: the same features. Frames with bright borders make the padded average
    pools (count_include_pad=False) and the padded max-pool of Mixed_7c visible."""
    config = InceptionConfig(width=0.25)
    net = FIDInception(config).eval()
    net.load_state_dict(random_state_dict(config))
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(2, 3, 40, 56, generator=g)
    frames[:, :, :4] = 1.0
    with torch.no_grad():
        expected = reference_features(net, frames).double()
    got = inception_features(frames, net)
    assert got.shape == (2, net.out_channels) and got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the FID patches matter: torchvision's own pooling (padding counted) gives other features
    with torch.no_grad():
        plain = F.avg_pool2d(frames, 3, 1, 1)
    assert not torch.allclose(plain, _avg(frames))


def test_weights_load_from_the_reference_layouts(tmp_path):
    """A user's copy of pytorch-fid's weights: the .pth as published (a plain state dict, read with
    weights_only=True), a .safetensors copy, and a state dict of pytorch-fid's InceptionV3 wrapper (blocks.N.M
    keys); all give the same network. fc may be left out (it is never run)."""
    from safetensors.torch import save_file

    sd = random_state_dict()
    pth, st, wrapper = tmp_path / "pt_inception.pth", tmp_path / "inception.safetensors", tmp_path / "wrapper.pth"
    torch.save(sd, pth)
    save_file({k: v.contiguous() for k, v in sd.items() if not k.startswith("fc.")}, str(st))
    names = {"Conv2d_1a_3x3": "blocks.0.0", "Conv2d_2a_3x3": "blocks.0.1", "Conv2d_2b_3x3": "blocks.0.2",
             "Conv2d_3b_1x1": "blocks.1.0", "Conv2d_4a_3x3": "blocks.1.1", "Mixed_6e": "blocks.2.7",
             "Mixed_7c": "blocks.3.2"}
    names.update({f"Mixed_{b}": f"blocks.2.{i}" for i, b in enumerate(("5b", "5c", "5d", "6a", "6b", "6c", "6d"))})
    names.update({"Mixed_7a": "blocks.3.0", "Mixed_7b": "blocks.3.1"})
    torch.save({names[k.split(".")[0]] + k[len(k.split(".")[0]):]: v for k, v in sd.items()
                if not k.startswith("fc.")}, wrapper)
    converted = convert_inception_weights(pth, tmp_path / "converted.safetensors")
    for path in (pth, st, wrapper, converted):
        loaded = load_inception(path).state_dict()
        for k in ("Conv2d_1a_3x3.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.running_var",
                  "Mixed_7c.branch_pool.conv.weight"):
            assert torch.equal(loaded[k], sd[k]), (path, k)


def test_bad_weight_files_are_refused_and_nothing_in_them_runs(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FIDUnavailable, match="pt_inception-2015-12-05-6726825d.pth"):
        load_inception(None)
    with pytest.raises(FIDUnavailable, match="no Inception weights file"):
        load_inception(tmp_path / "missing.pth")
    sd = {k: v for k, v in random_state_dict(InceptionConfig(width=0.125)).items()}
    small = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(small))
    with pytest.raises(Syn2SeqInputError, match=r"key 'Conv2d_1a_3x3.conv.weight': expected shape \(32, 3, 3, 3\)"):
        load_inception(small)
    full = random_state_dict()
    del full["Mixed_6b.branch7x7_2.conv.weight"]
    missing = tmp_path / "missing_key.safetensors"
    save_file({k: v.contiguous() for k, v in full.items()}, str(missing))
    with pytest.raises(Syn2SeqInputError, match="key 'Mixed_6b.branch7x7_2.conv.weight'.*1 missing"):
        load_inception(missing)
    aux = tmp_path / "torchvision.safetensors"  # torchvision's own Inception (with its aux head) is another network
    save_file({**{k: v.contiguous() for k, v in random_state_dict().items()},
               "AuxLogits.fc.weight": torch.zeros(1000, 768)}, str(aux))
    with pytest.raises(Syn2SeqInputError, match="not the FID network"):
        load_inception(aux)

    class Boom:
        def __reduce__(self):
            return (print, ("code in a weights file ran",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"Conv2d_1a_3x3.conv.weight": Boom()}))
    with pytest.raises(Syn2SeqInputError, match="weights only"):
        load_inception(evil)


def pytorch_fid_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance (fid_score.py:214-236), the reference formula with scipy's sqrtm."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("n", [200, 40])  # full-rank covariances, and rank-deficient ones (N < D)
def test_frechet_distance_equals_pytorch_fids_on_the_same_features(n):
    g = np.random.default_rng(n)
    d = 64
    mix = g.normal(size=(d, d)) / np.sqrt(d)
    a = g.normal(size=(n, d)) @ mix
    b = 0.3 + 1.2 * g.normal(size=(n + 7, d)) @ mix
    stats = [(x.mean(axis=0), np.cov(x, rowvar=False)) for x in (a, b)]  # fid_score.py:260-261
    expected = pytorch_fid_frechet(*stats[0], *stats[1])
    assert fid(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-7 if n > d else 1e-5)


def test_fid_entry_marks_sets_below_the_measured_size_unstable():
    g = torch.Generator().manual_seed(0)
    big = torch.randn(MINIMUM_FRAMES, 3, generator=g, dtype=torch.float64)
    assert fid_entry(big, big + 1)["stable"] is True and fid_entry(big, big + 1)["frames"] == [MINIMUM_FRAMES] * 2
    small = fid_entry(big[:-1], big[:-1] + 1)
    assert small["stable"] is False and small["fid"] == pytest.approx(3.0)


def test_eval_reports_fid_per_method_and_category_marked_unstable(tmp_path):
    """syn2seq eval --inception FILE (full-size random weights in the reference layout): FID per method overall and
    per category (no CI), n = frames per set, marked unstable in the JSON and with * in the tables."""
    from safetensors.torch import save_file

    from syn2seq_core.cli import main
    from syn2seq_core.data.synthetic import SyntheticConfig, render_take
    from syn2seq_core.data.takes import write_take
    from syn2seq_core.io.video import read_video, write_video

    takes, other = tmp_path / "takes", tmp_path / "other"
    cfg = SyntheticConfig(size=32, supersample=1, exo_frames=2, ego_frames=3)
    for i in range(2):
        t = render_take(4000 + i, cfg)
        write_take(takes / f"t{i}", t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras, fps=8,
                   meta={"category": "A"})
        write_video(other / f"t{i}.mp4", (read_video(takes / f"t{i}" / "ego.mp4") * 0.8).clamp(0, 1), fps=8)
    weights = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in random_state_dict().items()}, str(weights))
    out = tmp_path / "fid.json"
    assert main(["eval", "--takes", str(takes), "--no-model", "--eval-size", "32", "--no-baselines",
                 "--videos", f"other={other}", "--inception", str(weights), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    for part in (data["summary"], data["categories"]["A"]):
        entry = part["methods"]["other"]["fid"]
        assert entry["mean"] > 0 and entry["n"] == 6 and entry["stable"] is False
        assert entry["stable_from"] == MINIMUM_FRAMES
    md = out.with_suffix(".md").read_text()
    assert "| FID |" in md and "* unstable" in md and f"{MINIMUM_FRAMES} frames" in md
    assert "FID" in out.with_name("fid_by_category.tex").read_text()
    assert main(["eval", "--takes", str(takes), "--no-model", "--inception", str(tmp_path / "none.pth")]) == 2
