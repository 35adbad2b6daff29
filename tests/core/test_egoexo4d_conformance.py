"""Ego-Exo4D conformance: each layout / timing / orientation / pixel fact the reader depends on, checked against the
outside source that states it (file and line, read at the commits below), on a fixture built the way that source
says.

Sources (fetched mirrors, read with ``git show HEAD:<path>``; nothing copied):

* facebookresearch/Ego4d at a44f40b39f32d006d9f2eaae4216d4e4c3cec26e
* facebookresearch/projectaria_tools at 90f70ffe42d92c2fd8e71d85f3c0a98c944cd79f

Each test says how it fails on the code before the fix (7beeb6c), run with this fixture
(``git archive 7beeb6c syn2seq_core`` plus this commit's ``egoexo4d_fixture.py``): all five fail. The orientation
and pixel-centre tests were also run on 7beeb6c with only the timing fixed (its rows read from
``timesync_start_idx + 1``), so that each fails for its own reason; the failures recorded are those.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from syn2seq_core.data.egoexo4d_fixture import write_egoexo4d_fixture
from syn2seq_core.data.egoexo4d_index import build_egoexo4d_index, load_indexed_take
from syn2seq_core.data.synthetic import SyntheticConfig
from syn2seq_core.geometry.cameras import invert_pose
from syn2seq_core.geometry.plucker import lens_project

CFG = SyntheticConfig(size=48, exo_frames=3, ego_frames=3, fps=8.0, supersample=1, threads=1)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("egoexo4d_conformance")
    written = write_egoexo4d_fixture(root, [21], CFG, exo_cameras=1, marker=True,
                                     damaged=("short_trajectory", "outside_video"))
    return root, written


def _take(root, written, **options):
    good = next(w for w in written if w.damage is None)
    entry = next(e for e in build_egoexo4d_index(root).entries if e.take_name == good.take_name)
    return good, entry, load_indexed_take(root, entry, **options)


def _project(cams, i: int, world) -> np.ndarray:
    """Our projection of a world point [3] by camera i -> pixel (our convention: top-left pixel centre 0.5)."""
    p = cams.w2c[i, :3, :3] @ world.to(torch.float64) + cams.w2c[i, :3, 3]
    xy = lens_project(p[None], cams.fisheye[i] if cams.fisheye is not None else None)[0]
    k = cams.K[i]
    return np.array([float(xy[0] * k[0] * cams.width + k[2] * cams.width),
                     float(xy[1] * k[1] * cams.height + k[3] * cams.height)])


def test_frame_i_is_timesync_row_start_plus_one_plus_i(release):
    """Frame ``i`` of the frame-aligned videos is timesync row ``timesync_start_idx + 1 + i``.

    Source: Ego4d ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb`` lines 359-363 (``start_idx =
    take["timesync_start_idx"]+1``, ``for idx in range(start_idx, end_idx)`` collecting
    ``aria0N_214-1_capture_timestamp_ns``), paired with mp4 frame ``i`` at lines 437-444 and 559-570
    (``ego_frames[i]`` drawn with ``gazes[i]`` of ``take_timestamps[i]``) and, for the exo videos, line 755
    (``frames[take_timestamps[i]] = frame``); ``ego4d/features/config.py`` lines 278-280 (``frame_count =
    timesync_end_idx - timesync_start_idx - 1``). Fixture: the trajectory covers exactly the take's frames (first
    sample at frame 0, last at the last frame), so a reader one row off falls outside it.
    Old code (rows from ``timesync_start_idx``): fails, "timestamps_us: expected times inside the trajectory ...
    [5000000, 5250000] us, got 4875000 us (entry 0)" (one 125 ms frame early).
    """
    root, written = release
    good, entry, take = _take(root, written)
    t = json.loads((root / "takes.json").read_text())[0]
    with open(root / entry.timesync["path"], newline="") as f:
        table = list(csv.DictReader(f))
    rows = [table[idx] for idx in range(t["timesync_start_idx"] + 1, t["timesync_end_idx"])]  # the tutorial's loop
    want_us = torch.tensor([float(r["aria01_214-1_capture_timestamp_ns"]) / 1e3 for r in rows], dtype=torch.float64)
    assert len(rows) == t["timesync_end_idx"] - t["timesync_start_idx"] - 1 == entry.frames == CFG.ego_frames
    torch.testing.assert_close(take.timestamps["ego"] * 1e6, want_us, rtol=0, atol=1e-3)
    torch.testing.assert_close(want_us, good.frame_times_us.to(torch.float64), rtol=0, atol=0)  # the render times
    # the trajectory is exactly the frames' span: one row early or late would be outside it
    with open(root / entry.root_dir / "trajectory" / "closed_loop_trajectory.csv", newline="") as f:
        track = [float(r["tracking_timestamp_us"]) for r in csv.DictReader(f)]
    assert (track[0], track[-1]) == (float(want_us[0]), float(want_us[-1]))
    torch.testing.assert_close(take.ego_cameras.c2w, good.ego.c2w, rtol=0, atol=1e-6)
    assert take.meta["meta"]["time_alignment"].endswith("(frame i = row timesync_start_idx + 1 + i)")


def _marker_centre(frame: torch.Tensor) -> tuple[int, int]:
    """(column, row) of the marker's white 3x3 square in a decoded frame [3, H, W]: the best match of a white 3x3
    square on a black 7x7 patch (a pattern that does not depend on the marker's orientation)."""
    luma = frame.mean(0)
    template = -torch.ones(7, 7)
    template[2:5, 2:5] = 1.0
    template -= template.mean()
    score = torch.nn.functional.conv2d(luma[None, None], template[None, None], padding=3)[0, 0]
    row, col = divmod(int(score.argmax()), score.shape[1])
    return col, row


def test_the_aria_video_is_the_raw_image_turned_clockwise_and_the_camera_turns_with_it(release):
    """The Aria stream of ``frame_aligned_videos`` is the raw VRS ``camera-rgb`` image turned 90 degrees clockwise;
    the reader turns the raw calibration with it, so a world point projects onto its marker in the stored frame.

    Sources: Ego4d ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb`` lines 566-568 (a point projected with the
    raw calibration is placed on the mp4 frame at ``x = width - 1 - y_raw``, ``y = x_raw``, "rotate ... 90 degree
    clockwise to align with the egocentric view"); ``ego4d/internal/human_pose/utils.py`` lines 204-213
    (``aria_original_to_extracted``: ``x = H - y``, ``y = x``); projectaria_tools
    ``core/calibration/CameraCalibration.cpp`` lines 278-283 (FISHEYE624 turned clockwise: ``f, H - 1 - cv, cu,
    k0..k5, -p1, p0, -s2, -s3, s0, s1``), 295-302 (``T_Device_Camera * rotZ(-pi/2)``, width and height swapped),
    and ``projectaria_tools/utils/calibration_utils.py`` lines 54-63 (``np.rot90(image, k=3)`` paired with
    ``rotate_camera_calib_cw90deg``). Fixture: the raw frames carry an asymmetric marker (a 3x3 square with a
    tail to its right, white on black) at the pixel whose ray holds ``marker_world``, and are stored turned clockwise.
    Old code (the raw calibration on the stored frames): fails, the point projects at (14.5, 9.5) px instead of
    the marker's (38.5, 14.5).
    """
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core import mps

    from syn2seq_core.io.video import read_video

    root, written = release
    good, entry, take = _take(root, written)
    frames = read_video(take.ego_video)
    W = H = CFG.size
    calib_file = root / entry.root_dir / "trajectory" / "online_calibration.jsonl"
    raw = mps.read_online_calibration(str(calib_file))[0].get_camera_calib("camera-rgb")
    raw_video = raw.rescale(np.array([W, H]), W / raw.get_image_size()[0])  # the video's size, raw orientation
    turned = calibration.rotate_camera_calib_cw90deg(raw_video)
    for i in range(CFG.ego_frames):
        world = good.marker_world[i].numpy()
        T_world_device = good.T_world_device[i].numpy()
        # the tutorial's way: project with the raw calibration, then x = W - 1 - y, y = x
        p_raw = np.linalg.inv(T_world_device @ raw_video.get_transform_device_camera().to_matrix()) @ [*world, 1]
        x_raw, y_raw = raw_video.project_no_checks(p_raw[:3])
        want = np.array([W - 1 - y_raw, x_raw])
        # the marker is there in the decoded frame, its tail pointing down (raw +x is stored +y)
        col, row = _marker_centre(frames[i])
        assert (col, row) == tuple(np.round(want).astype(int)), ((col, row), want)
        luma = frames[i].mean(0)
        assert luma[row + 2, col] > 0.7 and max(luma[row, col + 2], luma[row - 2, col], luma[row, col - 2]) < 0.3
        # projectaria_tools' turned calibration agrees with the tutorial's formula
        p_turned = np.linalg.inv(T_world_device @ turned.get_transform_device_camera().to_matrix()) @ [*world, 1]
        np.testing.assert_allclose(turned.project_no_checks(p_turned[:3]), want, rtol=0, atol=1e-6)
        # and the camera the reader returns puts the point there (+0.5: our top-left pixel centre)
        ours = _project(take.ego_cameras, i, good.marker_world[i])
        np.testing.assert_allclose(ours, want + 0.5, rtol=0, atol=1e-5)
    assert take.meta["meta"]["aria_orientation"] == entry.aria_orientation
    assert "turned 90 degrees clockwise" in entry.aria_orientation


def test_one_pixel_centre_for_kb3_exo_and_fisheye624_aria(release):
    """A known 3D point lands, through each reader, at the pixel projectaria_tools' own projection gives, shifted
    by the one documented +0.5 (ours: top-left pixel centre at (0.5, 0.5); theirs at (0, 0)).

    Sources: projectaria_tools ``core/calibration/CameraCalibration.cpp`` lines 101-106 (pixel ``(x, y)`` is the
    pixel's centre; the image spans ``[-0.5, W - 0.5]``); Ego4d ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``
    lines 650-661 (a ``KANNALA_BRANDT_K3`` ``CameraCalibration`` built from ``gopro_calibs.csv``'s intrinsics as
    they are) and 717-718 (``T_world_cam.inverse() @ p``, then ``project``), the pixel drawn on the exo frame at
    786; the Aria camera as in the test above (``rotate_camera_calib_cw90deg``). Both files are written at their
    calibration size (GoPro 4x the video, Aria the 2880 sensor), so the check also covers the rescale.
    Old code: fails for the exo camera (no shift: normalised 0.74115 vs 0.74376, i.e. 0.5 px of the 192 px
    calibration).
    """
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core import mps

    root, written = release
    good, entry, take = _take(root, written)
    traj = root / entry.root_dir / "trajectory"
    # exo: KB3 from gopro_calibs.csv, the tutorial's CameraCalibration
    static = mps.read_static_camera_calibrations(str(traj / "gopro_calibs.csv"))[0]
    cam = calibration.CameraCalibration(static.camera_uid, calibration.KANNALA_BRANDT_K3, static.intrinsics,
                                        static.transform_world_cam, static.width, static.height, None, np.pi, "")
    exo = take.exo_cameras
    T_world_cam = static.transform_world_cam.to_matrix()
    for world in (good.marker_world[0], exo.c2w[0, :3, 3] + 2.0 * exo.c2w[0, :3, 2] + 0.3 * exo.c2w[0, :3, 0]):
        p = np.linalg.inv(T_world_cam) @ [*world.numpy(), 1]
        theirs = np.asarray(cam.project_no_checks(p[:3]))  # pixels of the calibration size, centre at (0, 0)
        ours = _project(exo, 0, world)  # pixels of the video size, centre at (0.5, 0.5)
        # normalised, so sizes drop out; 1e-7 (projectaria_tools' reading of the csv agrees to ~1e-8), far below the
        # 0.5 px / 192 px = 2.6e-3 a missing shift makes
        np.testing.assert_allclose(ours / [exo.width, exo.height], (theirs + 0.5) / [static.width, static.height],
                                   rtol=0, atol=1e-7)
    # Aria: FISHEYE624 from online_calibration.jsonl at the sensor size, turned as the stored frames
    raw = mps.read_online_calibration(str(traj / "online_calibration.jsonl"))[0].get_camera_calib("camera-rgb")
    turned = calibration.rotate_camera_calib_cw90deg(raw)
    ego = take.ego_cameras
    for i in range(CFG.ego_frames):
        world = good.marker_world[i]
        T = good.T_world_device[i].numpy() @ turned.get_transform_device_camera().to_matrix()
        p = np.linalg.inv(T) @ [*world.numpy(), 1]
        theirs = np.asarray(turned.project_no_checks(p[:3]))
        size = np.asarray(turned.get_image_size(), dtype=np.float64)
        np.testing.assert_allclose(_project(ego, i, world) / [ego.width, ego.height], (theirs + 0.5) / size, rtol=0,
                                   atol=1e-7)


def test_videos_are_the_relative_paths_of_takes_json_inside_the_take(release, tmp_path):
    """The index reads ``frame_aligned_videos[cam][stream].relative_path`` (relative to the take folder) instead of
    guessing file names, and keeps it inside the take folder, links followed.

    Sources: Ego4d ``ego4d/features/config.py`` lines 262-266 (``os.path.join(data_dir, take["root_dir"],
    stream["relative_path"])``), ``ego4d/internal/downscale.py`` lines 74-79 (the same join; ``relative_path``
    may be None), ``ego4d/internal/download/manifest_gen.py`` line 182 (the 448 twin:
    ``takes/<take>/frame_aligned_videos/downscaled/448/<file name>``). Fixture: the Aria video renamed and its
    ``relative_path`` changed to match; another take whose ``relative_path`` climbs out of the take folder to a
    real video.
    Old code (names guessed from the camera ids): fails, the renamed take is skipped as "missing video" (no
    ``aria01_214-1.mp4``); the only entry is another take's guessed ``aria01_214-1.mp4``.
    """
    root, written = release
    copy = tmp_path / "release"
    shutil.copytree(root, copy, symlinks=True)
    takes = json.loads((copy / "takes.json").read_text())
    good = next(t for t in takes if t["take_name"] == next(w for w in written if w.damage is None).take_name)
    folder = copy / good["root_dir"]
    (folder / "frame_aligned_videos" / "aria01_214-1.mp4").rename(folder / "frame_aligned_videos" / "ego_rgb.mp4")
    good["frame_aligned_videos"]["aria01"]["rgb"]["relative_path"] = "frame_aligned_videos/ego_rgb.mp4"
    (copy / "takes.json").write_text(json.dumps(takes))
    result = build_egoexo4d_index(copy)
    assert [e.ego_video for e in result.entries] == ["frame_aligned_videos/ego_rgb.mp4"]
    assert load_indexed_take(copy, result.entries[0]).ego_video.name == "ego_rgb.mp4"
    outside = next(w for w in written if w.damage == "outside_video")
    skipped = {s["take_name"]: s for s in result.skipped}
    assert skipped[outside.take_name]["reason"] == "outside take"
    assert "relative_path" in skipped[outside.take_name]["detail"]
    # a link inside the take that leads out of it is refused the same way
    link = folder / "frame_aligned_videos" / "linked.mp4"
    link.symlink_to(copy / f"{outside.take_name}_aria01_214-1.mp4")
    good["frame_aligned_videos"]["aria01"]["rgb"]["relative_path"] = "frame_aligned_videos/linked.mp4"
    (copy / "takes.json").write_text(json.dumps(takes))
    assert build_egoexo4d_index(copy).counts == {"indexed": 0, "outside take": 2, "frames outside trajectory": 1}


def test_the_index_lists_only_takes_that_load(release):
    """Without ``--verify``, the cheap checks skip a take whose frames run past its trajectory (one frame of it),
    and every take the index lists loads.

    Sources: as :func:`test_frame_i_is_timesync_row_start_plus_one_plus_i` (the frames' device times).
    Old code: fails, the ``short_trajectory`` take is indexed (it is not among the skipped: KeyError), and its
    load stops on "timestamps_us ... got".
    """
    root, written = release
    result = build_egoexo4d_index(root)
    short = next(w for w in written if w.damage == "short_trajectory")
    reasons = {s["take_name"]: s["reason"] for s in result.skipped}
    assert reasons[short.take_name] == "frames outside trajectory"
    for entry in result.entries:
        take = load_indexed_take(root, entry)
        assert len(take.ego_cameras) == entry.frames
        inv = invert_pose(take.ego_cameras.c2w)
        assert torch.isfinite(inv).all()
