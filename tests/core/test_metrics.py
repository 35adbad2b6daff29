"""Metrics: PSNR/SSIM against scikit-image on real frames, and the aggregation over clips (t intervals,
paired differences, unavailable metrics in reports). LPIPS is tested in test_lpips.py."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.metrics.frames import evaluate_frames, mean_ci, paired_difference, psnr, ssim, summarize_clips
from syn2seq_core.io.video import read_video

BIKES = Path(__file__).resolve().parents[1] / "fixtures" / "bikes_40f_320x136.mp4"


@pytest.fixture(scope="module")
def real_pairs():
    """Pairs of real frames: neighbours (small motion), far apart (large change), and a blurred copy."""
    import cv2

    frames = read_video(BIKES)
    blurred = torch.from_numpy(np.stack([cv2.GaussianBlur(f.permute(1, 2, 0).numpy(), (5, 5), 1.2)
                                         for f in frames[:3]])).permute(0, 3, 1, 2)
    pred = torch.cat([frames[0:3], frames[0:3], blurred])
    target = torch.cat([frames[1:4], frames[30:33], frames[:3]])
    return pred, target


# --- PSNR / SSIM --------------------------------------------------------------------------------------
def test_psnr_and_ssim_match_scikit_image_on_real_frames(real_pairs):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    pred, target = real_pairs
    ours_ssim, ours_psnr = ssim(pred, target), psnr(pred, target)
    assert ours_ssim.shape == ours_psnr.shape == (len(pred),)
    for i in range(len(pred)):
        x = pred[i].permute(1, 2, 0).double().numpy()
        y = target[i].permute(1, 2, 0).double().numpy()
        ref_ssim = structural_similarity(x, y, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        ref_psnr = peak_signal_noise_ratio(y, x, data_range=1.0)
        assert abs(float(ours_ssim[i]) - ref_ssim) < 1e-4
        assert abs(float(ours_psnr[i]) - ref_psnr) < 1e-4
    # The pairs span a real range of quality, so agreement is not a coincidence of saturated values.
    assert float(ours_ssim.min()) < 0.6 < 0.9 < float(ours_ssim.max())


def test_metrics_keep_leading_dimensions_and_handle_identical_frames(real_pairs):
    pred = real_pairs[0][:6, :, :48, :64]
    batch = pred.reshape(2, 3, 3, 48, 64)
    assert psnr(batch, batch).shape == (2, 3) and bool(torch.isinf(psnr(batch, batch)).all())
    assert torch.allclose(ssim(batch, batch), torch.ones(2, 3, dtype=torch.float64))
    other = batch.flip(0)
    assert torch.allclose(ssim(batch, other).flatten(), ssim(batch.flatten(0, 1), other.flatten(0, 1)))
    assert torch.allclose(psnr(batch, other).flatten(), psnr(batch.flatten(0, 1), other.flatten(0, 1)))


def test_bad_metric_inputs_are_refused():
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(Syn2SeqInputError, match="same shape"):
        psnr(x, x[:1])
    with pytest.raises(Syn2SeqInputError, match=r"values in \[0, 1\]"):
        ssim(x * 255, x * 255)
    with pytest.raises(Syn2SeqInputError, match="at least 11x11"):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(Syn2SeqInputError, match="finite"):
        psnr(x.clone().fill_(float("nan")), x)


# --- aggregation ----------------------------------------------------------------------------------------
def test_mean_ci_is_the_student_t_interval():
    from scipy import stats

    values = [27.1, 25.3, 26.8, 28.0, 24.9, 26.1]
    ci = mean_ci(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert ci.mean == pytest.approx(np.mean(values))
    assert (ci.low, ci.high) == (pytest.approx(lo), pytest.approx(hi))
    assert ci.n == 6 and "95% CI" in str(ci)
    assert mean_ci(values, 0.5).half_width < ci.half_width
    single = mean_ci([3.0])
    assert single.mean == 3.0 and math.isnan(single.low) and "no CI" in str(single)
    with pytest.raises(Syn2SeqInputError):
        mean_ci([])
    # Report values go straight in, "inf" (PSNR of identical frames) included.
    assert mean_ci([30.0, "inf"]).mean == math.inf and math.isnan(mean_ci([30.0, "inf"]).low)
    with pytest.raises(Syn2SeqInputError, match="numbers"):
        mean_ci(["unavailable: no weights"])


def test_paired_difference_uses_per_clip_differences():
    rng = np.random.default_rng(0)
    base = rng.normal(25, 3, 12)  # clips differ a lot ...
    a, b = base + 0.5 + rng.normal(0, 0.1, 12), base  # ... but method a is consistently 0.5 dB better
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.5, abs=0.1) and d.low > 0  # significant when paired
    assert mean_ci(a).low < mean_ci(b).high  # while the unpaired intervals overlap
    with pytest.raises(Syn2SeqInputError, match="same clips"):
        paired_difference(a, b[:5])


def test_summarize_clips_keeps_unavailable_metrics_as_text():
    clips = [evaluate_frames(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)) for _ in range(3)]
    summary = summarize_clips(clips)
    assert summary["clips"] == 3
    psnr_summary = summary["psnr"]
    assert psnr_summary["n"] == 3 and psnr_summary["ci_low"] < psnr_summary["mean"] < psnr_summary["ci_high"]
    assert summary["psnr"]["mean"] == pytest.approx(np.mean([c["psnr"]["mean"] for c in clips]))
    assert summary["lpips_alex"].startswith("unavailable: ")
    json.dumps(summary, allow_nan=False)


def test_psnr_cap_applies_per_frame():
    """Reports cap per-frame PSNR at 100 dB (an identical frame scores 100, not inf); the cap is min(PSNR, cap), so
    frames below it keep their value, and the uncapped function still says inf."""
    from syn2seq_core.metrics.frames import PSNR_CAP_DB

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 16, 16, generator=g)
    pred = target.clone()
    pred[1] = (pred[1] + 0.1).clamp(0, 1)
    capped, raw = psnr(pred, target, cap=PSNR_CAP_DB), psnr(pred, target)
    assert capped[0] == PSNR_CAP_DB == capped[2] and bool(torch.isinf(raw[0]))
    assert capped[1] == raw[1] < PSNR_CAP_DB
    with pytest.raises(Syn2SeqInputError, match="cap"):
        psnr(pred, target, cap=float("inf"))
