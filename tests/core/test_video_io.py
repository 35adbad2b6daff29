"""Video and image I/O: round trips, frame selection, camera-consistent resizing, streaming memory,
atomic writes and the errors users see."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.cameras import Cameras
from syn2seq_core.metrics.frames import psnr
from syn2seq_core.io.video import (iter_video_chunks, probe_video, read_image, read_video, resize_plan, write_image,
                                   write_video)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BIKES = FIXTURES / "bikes_40f_320x136.mp4"
REPO = Path(__file__).resolve().parents[2]


def smooth_frames(T, H, W, offset=0, total=None):
    """Smooth moving colour gradients [T, 3, H, W] in [0.1, 0.9] (no hard edges)."""
    total = total or T
    y = torch.linspace(0, 1, H)[:, None]
    x = torch.linspace(0, 1, W)[None, :]
    t = (torch.arange(offset, offset + T).float() / total)[:, None, None]
    r = (0.5 + 0.4 * torch.sin(6.28 * (x + t))).expand(-1, H, W)
    g = (0.5 + 0.4 * torch.cos(6.28 * (y - 2 * t))).expand(-1, H, W)
    b = (0.3 + 0.4 * x * y).expand(T, H, W)
    return torch.stack([r, g, b], 1).contiguous()


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- round trips --------------------------------------------------------------------------------------
def test_h264_round_trip_keeps_count_size_and_quality(tmp_path):
    frames = smooth_frames(24, 64, 96)
    info = write_video(tmp_path / "clip.mp4", frames, fps=30, crf=18)
    assert (info.frames, info.width, info.height) == (24, 96, 64)
    probed = probe_video(tmp_path / "clip.mp4")
    assert (probed.frames, probed.width, probed.height, probed.codec) == (24, 96, 64, "h264")
    assert probed.fps == pytest.approx(30.0)
    back = read_video(tmp_path / "clip.mp4")
    assert back.shape == frames.shape and back.dtype == torch.float32
    # Threshold: even lossless x264 (crf 0) reaches only 39.5 dB on this colourful content, because
    # yuv420p halves the chroma resolution and rounds to 8 bits; crf 18 measured 37.5 dB (worst frame).
    # 35 dB leaves margin for other x264 builds, while a swapped channel order, a frame shift or a wrong
    # value range drops far below 25 dB.
    assert float(psnr(back, frames).min()) >= 35.0


def test_real_clip_reencode_round_trip(tmp_path):
    frames = read_video(BIKES, stop=12)
    assert frames.shape == (12, 3, 136, 320)
    write_video(tmp_path / "bikes.mp4", frames, fps=25, crf=18)
    back = read_video(tmp_path / "bikes.mp4")
    # Real footage, already 4:2:0: measured 41.7 dB at crf 18; 38 dB leaves margin for x264 builds.
    assert back.shape == frames.shape
    assert float(psnr(back, frames).min()) >= 38.0


def test_channel_order_is_rgb(tmp_path):
    red = torch.zeros(2, 3, 32, 32)
    red[:, 0] = 1.0
    write_video(tmp_path / "red.mp4", red, fps=10, crf=0)
    back = read_video(tmp_path / "red.mp4")
    mean = back.mean(dim=(0, 2, 3))
    assert mean[0] > 0.9 and mean[1] < 0.1 and mean[2] < 0.1


def test_chunked_write_equals_whole_write_and_mkv_frame_count(tmp_path):
    frames = smooth_frames(20, 32, 48)
    write_video(tmp_path / "whole.mkv", frames, fps=24, crf=10)
    write_video(tmp_path / "chunks.mkv", (frames[i:i + 6] for i in range(0, 20, 6)), fps=24, crf=10)
    # Matroska stores no frame count: the probe counts packets instead.
    assert probe_video(tmp_path / "chunks.mkv").frames == 20
    assert torch.equal(read_video(tmp_path / "whole.mkv"), read_video(tmp_path / "chunks.mkv"))


def test_uint8_frames_and_ntsc_rate(tmp_path):
    frames = (smooth_frames(5, 32, 32) * 255).round().to(torch.uint8)
    info = write_video(tmp_path / "u8.mp4", frames, fps=29.97, crf=0)
    assert info.fps == pytest.approx(30000 / 1001)
    assert probe_video(tmp_path / "u8.mp4").fps == pytest.approx(30000 / 1001, rel=1e-4)


# --- frame selection ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory):
    """60 frames with a keyframe every 8 frames, so that reads from the middle really seek."""
    path = tmp_path_factory.mktemp("gop") / "gop.mp4"
    write_video(path, smooth_frames(60, 48, 64), fps=30, crf=18, preset="ultrafast", options={"g": 8})
    return path


@pytest.mark.parametrize("start,stop,stride", [(0, None, 1), (1, None, 3), (8, 30, 1), (9, 40, 4), (23, None, 5),
                                               (59, None, 1), (40, 1000, 7)])
def test_range_and_stride_select_the_same_frames_as_slicing(gop_clip, start, stop, stride):
    everything = read_video(gop_clip, seek=False)
    expected = everything[start:stop:stride]
    for seek in (True, False):
        got = read_video(gop_clip, start=start, stop=stop, stride=stride, seek=seek)
        assert torch.equal(got, expected), f"seek={seek}"
        chunks = list(iter_video_chunks(gop_clip, 4, start=start, stop=stop, stride=stride, seek=seek))
        assert all(len(c) <= 4 for c in chunks)
        assert torch.equal(torch.cat(chunks), expected)


def test_seek_on_real_clip_matches_decoding_from_start():
    a = read_video(BIKES, start=30, stop=36, size=64)
    b = read_video(BIKES, start=30, stop=36, size=64, seek=False)
    assert torch.equal(a, b)


def test_empty_or_bad_ranges_are_refused(gop_clip):
    with pytest.raises(Syn2SeqInputError, match="non-empty range.*60 frames.*gop.mp4"):
        read_video(gop_clip, start=60)
    with pytest.raises(Syn2SeqInputError, match="non-empty range"):
        read_video(gop_clip, start=10, stop=10)
    with pytest.raises(Syn2SeqInputError, match="stride"):
        read_video(gop_clip, stride=0)
    with pytest.raises(Syn2SeqInputError, match="start"):
        read_video(gop_clip, start=-1)


# --- resizing with cameras -----------------------------------------------------------------------------
def test_resize_plans():
    assert resize_plan(320, 136, None) .width == 320
    p = resize_plan(320, 136, 64)  # short side 136 -> 64, centre square
    assert (p.resize_w, p.resize_h, p.left, p.top, p.width, p.height) == (151, 64, 43, 0, 64, 64)
    p = resize_plan(320, 136, 64, crop=None)  # short side to 64, aspect kept
    assert (p.width, p.height) == (151, 64)
    p = resize_plan(320, 136, (100, 30), crop=None)
    assert (p.width, p.height, p.left, p.top) == (100, 30, 0, 0)
    with pytest.raises(Syn2SeqInputError, match="crop"):
        resize_plan(10, 10, 5, crop="middle")
    with pytest.raises(Syn2SeqInputError, match="size"):
        resize_plan(10, 10, (5, 0))


@pytest.mark.parametrize("size,crop", [(32, "center"), ((40, 24), "center"), ((50, 20), None), (None, "center")])
def test_resized_frames_and_cameras_agree_on_where_a_point_is(tmp_path, size, crop):
    W, H = 128, 72
    # Pinhole camera at the origin looking down +z; a white 6x6 block centred on pixel (u, v) = (88, 30).
    K = torch.tensor([[0.9, 1.6, 0.5, 0.5]], dtype=torch.float64)
    cams = Cameras(torch.eye(4, dtype=torch.float64), K, W, H)
    u, v = 88.0, 30.0
    frames = torch.full((3, 3, H, W), 0.2)
    frames[:, :, int(v) - 3:int(v) + 3, int(u) - 3:int(u) + 3] = 1.0
    write_video(tmp_path / "dot.mp4", frames, fps=10, crf=0)
    fx, fy, cx, cy = K[0, 0] * W, K[0, 1] * H, K[0, 2] * W, K[0, 3] * H
    point = torch.tensor([(u - cx) / fx, (v - cy) / fy, 1.0], dtype=torch.float64) * 3.0  # depth 3 m

    out, out_cams = read_video(tmp_path / "dot.mp4", size=size, crop=crop, cameras=cams[0])
    assert len(out_cams) == 3 and out_cams.size == (out.shape[-1], out.shape[-2])
    # Project the point with the returned cameras ...
    k = out_cams.K[0]
    pu = float(k[0] * out_cams.width * point[0] / point[2] + k[2] * out_cams.width)
    pv = float(k[1] * out_cams.height * point[1] / point[2] + k[3] * out_cams.height)
    # ... and find the block's centre of mass in the returned frames.
    img = out[0].mean(0) - 0.2
    img = img.clamp(min=0)
    ys, xs = torch.meshgrid(torch.arange(img.shape[0]) + 0.5, torch.arange(img.shape[1]) + 0.5, indexing="ij")
    cu, cv = float((img * xs).sum() / img.sum()), float((img * ys).sum() / img.sum())
    scale = out_cams.width / W if crop is None else max(out_cams.width / W, out_cams.height / H)
    assert abs(cu - pu) < 0.5 + scale and abs(cv - pv) < 0.5 + scale


def test_cameras_are_selected_with_the_frames(gop_clip):
    n = 60
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, 0, 3] = torch.arange(n, dtype=torch.float64)  # camera i sits at x = i
    cams = Cameras(c2w, torch.tensor([[1.0, 1.3, 0.5, 0.5]]), 64, 48)
    frames, out = read_video(gop_clip, start=5, stop=30, stride=6, cameras=cams)
    assert len(frames) == len(out) == 5
    assert out.centers[:, 0].tolist() == [5.0, 11.0, 17.0, 23.0, 29.0]
    with pytest.raises(Syn2SeqInputError, match=r"one camera per video frame \(60\).*7 cameras"):
        read_video(gop_clip, cameras=cams[:7])
    wrong_aspect = Cameras(c2w, torch.tensor([[1.0, 1.3, 0.5, 0.5]]), 64, 64)
    with pytest.raises(Syn2SeqInputError, match="64x48"):
        read_video(gop_clip, cameras=wrong_aspect)


# --- streaming memory --------------------------------------------------------------------------------------
def test_streaming_a_long_clip_keeps_memory_bounded(tmp_path):
    """600 frames at 96x96 are 66 MB as float32. Streaming in chunks of 8 must not raise the peak
    resident memory by more than 12 MB over the memory after the first chunk (a chunk is 0.9 MB; the
    rest is decoder buffers and allocator slack; measured about 5 MB). Decoding everything at once in
    the same process raises it by more than 85% of the video's size, which shows that the measurement
    catches a reader that holds the whole video. Runs in a fresh process so that other tests'
    allocations do not blur the peak."""
    path = tmp_path / "long.mp4"
    chunks = (smooth_frames(50, 96, 96, offset=s, total=600) for s in range(0, 600, 50))
    write_video(path, chunks, fps=30, crf=23, preset="ultrafast")
    code = textwrap.dedent("""
        import sys
        from syn2seq_core.io.video import iter_video_chunks, read_video

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

        def reset_peak():  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return status("VmRSS")

        it = iter_video_chunks(sys.argv[1], 8)
        first = next(it)
        count, biggest = len(first), len(first)
        base = reset_peak()
        for chunk in it:
            count, biggest = count + len(chunk), max(biggest, len(chunk))
        streamed = status("VmHWM") - base
        base = reset_peak()
        full = read_video(sys.argv[1])
        print(count, biggest, streamed, status("VmHWM") - base, full.numel() * 4)
    """)
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to measure the peak memory of a phase")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    count, biggest, streamed, full_growth, full_bytes = map(int, result.stdout.split())
    assert count == 600 and biggest == 8
    assert streamed < 12e6, f"streaming grew the peak RSS by {streamed / 1e6:.1f} MB"
    assert full_bytes > 60e6 and full_growth > 0.85 * full_bytes  # the measurement is sensitive


# --- errors --------------------------------------------------------------------------------------------------
def test_missing_and_corrupt_files_raise_clear_errors(tmp_path):
    with pytest.raises(Syn2SeqInputError, match="no file at .*nope.mp4"):
        read_video(tmp_path / "nope.mp4")
    with pytest.raises(Syn2SeqInputError, match="folder"):
        probe_video(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(Syn2SeqInputError, match="junk.mp4"):
        read_video(junk)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(Syn2SeqInputError, match="notes.mp4"):
        probe_video(text)
    # A video cut in half (the index at the end is lost): refused with the name, not a crash.
    write_video(tmp_path / "whole.mp4", smooth_frames(10, 32, 32), fps=10, crf=18, options={"movflags": ""})
    data = (tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    try:
        frames = read_video(tmp_path / "half.mp4")
        assert len(frames) < 10  # if FFmpeg recovers some frames, it must not invent the rest
    except Syn2SeqInputError as e:
        assert "half.mp4" in str(e)


def test_unwritable_inputs_are_refused(tmp_path):
    with pytest.raises(Syn2SeqInputError, match="even width and height.*33x32"):
        write_video(tmp_path / "odd.mp4", torch.rand(2, 3, 32, 33), fps=10)
    assert not (tmp_path / "odd.mp4").exists() and leftovers(tmp_path) == []
    info = write_video(tmp_path / "odd.mp4", torch.rand(2, 3, 31, 33), fps=10, pad_to_even=True)
    assert (info.width, info.height) == (34, 32)
    with pytest.raises(Syn2SeqInputError, match=r"values in \[0, 1\]"):
        write_video(tmp_path / "range.mp4", torch.rand(2, 3, 32, 32) * 2 - 1, fps=10)
    with pytest.raises(Syn2SeqInputError, match="ending in one of"):
        write_video(tmp_path / "clip.avi", torch.rand(2, 3, 32, 32), fps=10)
    with pytest.raises(Syn2SeqInputError, match="at least one frame"):
        write_video(tmp_path / "empty.mp4", iter([]), fps=10)
    with pytest.raises(Syn2SeqInputError, match="chunk 1.*32x32"):
        write_video(tmp_path / "mixed.mp4", [torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16)], fps=10)
    assert not any((tmp_path / n).exists() for n in ("range.mp4", "empty.mp4", "mixed.mp4"))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_write_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, exc):
    dest = tmp_path / "out.mp4"
    write_video(dest, smooth_frames(4, 32, 32), fps=10)
    before = dest.read_bytes()

    def frames():
        yield smooth_frames(8, 32, 32)
        raise exc("stopped")

    with pytest.raises(exc):
        write_video(dest, frames(), fps=10)
    assert dest.read_bytes() == before
    assert leftovers(tmp_path) == []
    # And with no previous file, nothing appears.
    with pytest.raises(exc):
        write_video(tmp_path / "new.mp4", frames(), fps=10)
    assert not (tmp_path / "new.mp4").exists() and leftovers(tmp_path) == []


# --- images ----------------------------------------------------------------------------------------------
def test_png_round_trip_is_exact_and_rgb(tmp_path):
    from PIL import Image

    frame = torch.randint(0, 256, (3, 20, 30)).float() / 255
    frame[:, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    write_image(tmp_path / "f.png", frame)
    assert Image.open(tmp_path / "f.png").getpixel((0, 0))[:3] == (255, 0, 0)
    assert torch.equal(read_image(tmp_path / "f.png"), frame)
    with pytest.raises(Syn2SeqInputError, match="no file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(Syn2SeqInputError, match="bad.png"):
        read_image(tmp_path / "bad.png")
    assert leftovers(tmp_path) == []


def _rendered_ego_frames():
    """The ego frames of procedural take seed 4242 at 32x32: frames on which x264's macroblock tree gave
    different files for the same input (the render-synthetic report of the default-model issue)."""
    from syn2seq_core.data.synthetic import SyntheticConfig, render_takes

    return render_takes([4242], SyntheticConfig(size=32)).take(0).ego_frames


def test_the_same_frames_always_encode_to_the_same_video(tmp_path):
    """Same frames in, same file out, every time in one process (with x264's mbtree on, 12 encodes of these
    frames gave 2-4 different files, decoded frames up to 31 levels apart)."""
    frames = _rendered_ego_frames()
    for tile in (1, 2):  # 32x32 and 64x64, both sizes at which the lookahead was not reproducible
        clip = frames.repeat(1, 1, tile, tile)
        files = set()
        decoded = None
        for k in range(12):
            write_video(tmp_path / "v.mp4", clip, 30.0)
            files.add((tmp_path / "v.mp4").read_bytes())
            again = read_video(tmp_path / "v.mp4")
            if decoded is None:
                decoded = again
            assert torch.equal(again, decoded), f"encode {k} at {32 * tile}px decoded differently"
        assert len(files) == 1


def test_render_synthetic_writes_the_same_takes_in_fresh_processes(tmp_path):
    """The reported command, twice in fresh processes: every video decodes to the same frames, exactly."""
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        subprocess.run([sys.executable, "-m", "syn2seq_core", "render-synthetic", "--out", str(out), "--takes", "3",
                        "--seed", "4242", "--size", "32"], check=True, capture_output=True, cwd=REPO)
        outs.append(out)
    videos = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.mp4"))
    assert len(videos) == 6
    for rel in videos:
        assert torch.equal(read_video(outs[0] / rel), read_video(outs[1] / rel)), rel
        assert (outs[0] / rel).read_bytes() == (outs[1] / rel).read_bytes(), rel


def test_x264_params_keep_the_reproducible_settings_unless_the_caller_sets_them(tmp_path):
    from syn2seq_core.io.video import _x264_params

    assert _x264_params("") == "mbtree=0"
    assert _x264_params("keyint=12") == "mbtree=0:keyint=12"
    assert _x264_params("mbtree=1:keyint=12") == "mbtree=1:keyint=12"
    # an extra option still writes a valid file
    write_video(tmp_path / "g.mp4", smooth_frames(6, 16, 16), 30.0, options={"x264-params": "keyint=2"})
    assert probe_video(tmp_path / "g.mp4").frames == 6
