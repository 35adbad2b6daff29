"""Image(s) -> video along a camera track with a DFoT-family model (a small random-weight network written in
DFoT's checkpoint layout and converted), by sliding window and by keyframes first."""

from __future__ import annotations

import json

import pytest
import torch

from syn2seq_core.base import conventions as C
from syn2seq_core.cli import main
from syn2seq_core.dfot.convert import convert_dfot_checkpoint
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.io.poses import save_cameras
from syn2seq_core.generation.image2video import (fit_image, image_sequence, image_to_video, iter_image_to_video,
                                                 keyframe_indices)
from syn2seq_core.generation.pipeline import load_model
from syn2seq_core.io.video import probe_video, read_video, write_image

from .test_convert_dfot import make_dfot_ckpt
from .test_dfot_reference import cameras


@pytest.fixture(scope="module")
def dfot(tmp_path_factory):
    root = tmp_path_factory.mktemp("i2v")
    make_dfot_ckpt(root / "dfot.ckpt", seed=1)
    convert_dfot_checkpoint(root / "dfot.ckpt", root / "dfot.safetensors", height=16, width=16, max_frames=4)
    return root / "dfot.safetensors"


def test_image_sequence_puts_the_images_at_their_frames_and_checks_them():
    images = torch.rand(2, 3, 16, 16)
    seq = image_sequence(images, cameras(6), [0, -1])
    assert seq.context_mask.tolist() == [C.MASK_CONTEXT, 0, 0, 0, 0, C.MASK_CONTEXT]
    assert torch.equal(seq.frames[5], images[1]) and bool(seq.pose_known.all())
    with pytest.raises(Syn2SeqInputError, match="image_frames"):
        image_sequence(images, cameras(6), [0, 6])
    with pytest.raises(Syn2SeqInputError, match="distinct"):
        image_sequence(images, cameras(6), [0, -6])
    with pytest.raises(Syn2SeqInputError, match="frames to generate"):
        image_sequence(torch.rand(2, 3, 16, 16), cameras(2))
    with pytest.raises(Syn2SeqInputError, match="the cameras' size"):
        image_sequence(torch.rand(1, 3, 8, 16), cameras(4))
    assert fit_image(torch.rand(3, 36, 64), 16, 16).shape == (3, 16, 16)


def test_sliding_window_fills_every_frame_and_keeps_the_images(dfot):
    model = load_model(dfot)
    images = torch.rand(1, 3, 16, 16)
    seq = image_sequence(images, cameras(10))  # 10 frames, window 4: a rollout
    out = image_to_video(model, seq, steps=2, seed=0)
    assert out.shape == (10, 3, 16, 16) and torch.equal(out[0], images[0])
    assert all(float(out[i].std()) > 0 for i in range(1, 10))


def test_keyframe_mode_generates_the_keyframes_first_then_fills_between_them(dfot):
    model = load_model(dfot)
    seq = image_sequence(torch.rand(1, 3, 16, 16), cameras(17))
    keys = [k for k in keyframe_indices(17, 0.25, [0]) if k != 0]
    assert keys == [5, 10, 16]  # round(0.25 * 17) = 4 keyframes at long(linspace(0, 16, 4)) = 0, 5, 10, 16
    order = list(iter_image_to_video(model, seq, mode="keyframes", keyframe_density=0.25, steps=2, seed=0))
    names = [name for name, _, _ in order]
    assert names == sorted(names, key=["keyframes", "in-between"].index)  # every keyframe before any other
    first = [i for name, index, _ in order if name == "keyframes" for i in index]
    rest = [i for name, index, _ in order if name == "in-between" for i in index]
    assert first == keys and sorted(first + rest) == list(range(1, 17))


def test_cli_image2video_writes_the_video_cameras_and_what_it_did(dfot, tmp_path):
    write_image(tmp_path / "a.png", torch.rand(3, 36, 64))  # 16:9, cropped to the model's square
    write_image(tmp_path / "b.png", torch.rand(3, 36, 64))
    save_cameras(cameras(9, width=64, height=36), tmp_path / "cams.json")
    out = tmp_path / "out"
    assert main(["image2video", "--image", str(tmp_path / "a.png"), "--image", str(tmp_path / "b.png"),
                 "--image-frames", "0,-1", "--cameras", str(tmp_path / "cams.json"), "--model", str(dfot),
                 "--mode", "keyframes", "--keyframe-density", "0.5", "--steps", "2", "--out", str(out)]) == 0
    assert probe_video(out / "video.mp4").frames == 9 and read_video(out / "video.mp4").shape[-2:] == (16, 16)
    meta = json.loads((out / "image2video.json").read_text())
    assert meta["image_frames"] == [0, -1] and meta["camera_convention"] == "re10k" and meta["steps"] == 2
    assert [p["pass"] for p in meta["generation_order"]][0] == "keyframes"
    assert (out / "cameras.json").is_file()
    # Bad input: exit 2, nothing written.
    assert main(["image2video", "--image", str(tmp_path / "a.png"), "--cameras", str(tmp_path / "cams.json"),
                 "--image-frames", "x", "--model", str(dfot), "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_cli_image2video_along_a_built_path(dfot, tmp_path):
    write_image(tmp_path / "a.png", torch.rand(3, 16, 16))
    out = tmp_path / "orbit"
    assert main(["image2video", "--image", str(tmp_path / "a.png"), "--path", "orbit", "--path-frames", "6",
                 "--angle", "45", "--model", str(dfot), "--steps", "2", "--out", str(out)]) == 0
    assert probe_video(out / "video.mp4").frames == 6
    assert json.loads((out / "image2video.json").read_text())["cameras"] == "path orbit"
    assert main(["image2video", "--image", str(tmp_path / "a.png"), "--path", "keyframes", "--model", str(dfot),
                 "--out", str(tmp_path / "kf")]) == 2  # keyframes need --keyframes
