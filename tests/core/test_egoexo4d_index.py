"""Ego-Exo4D release -> index -> Take, end to end on a release rendered from the procedural world.

The fixture (``syn2seq render-synthetic --layout egoexo4d``) writes the renderer's exact cameras in the release's
files; the indexer and ``load_indexed_take`` must give them back: exo c2w / K / KB3, ego c2w =
T_world_device @ T_device_camera and the FISHEYE624 intrinsics, through projectaria_tools and through the JSON
fallback, and the decoded videos must be what those cameras see.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from syn2seq_core.data import egoexo4d
from syn2seq_core.data.egoexo4d_fixture import DAMAGE_KINDS, sensor_turn, write_egoexo4d_fixture
from syn2seq_core.data.egoexo4d_index import (SKIP_REASONS, _Skip, build_egoexo4d_index, index_take, load_indexed_take,
                                              read_egoexo4d_index, read_egoexo4d_index_header, read_release)
from syn2seq_core.data.synthetic import SyntheticConfig
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.io.safe_paths import OutsideFolderError

CFG = SyntheticConfig(size=32, exo_frames=4, ego_frames=4, fps=8.0, supersample=1, threads=1)
EXPECTED_SKIPS = {"missing_folder": "missing folder", "missing_video": "missing video",
                  "missing_trajectory": "missing trajectory", "missing_calibration": "missing calibration",
                  "damaged_calibration": "damaged JSON", "damaged_csv": "damaged CSV", "dropped": "dropped",
                  "short_trajectory": "frames outside trajectory", "short_video": "wrong frame count",
                  "missing_timesync": "missing timesync", "outside_video": "outside take"}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("egoexo4d")
    written = write_egoexo4d_fixture(root, [11, 12], CFG, exo_cameras=3, damaged=DAMAGE_KINDS)
    return root, written


@pytest.fixture()
def no_projectaria(monkeypatch):
    """projectaria_tools made unimportable (the optional dependency absent)."""
    for name in [m for m in sys.modules if m == "projectaria_tools" or m.startswith("projectaria_tools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "projectaria_tools", None)
    assert not egoexo4d.projectaria_available()


def _good(written):
    return [w for w in written if w.damage is None]


def test_the_fixture_has_the_release_layout(release):
    root, written = release
    takes, splits, note = read_release(root)
    assert note is None and len(takes) == len(written) == 2 + len(DAMAGE_KINDS)
    t = takes[0]
    assert t["root_dir"] == f"takes/{t['take_name']}" and set(t["frame_aligned_videos"]) == {"cam01", "cam02",
                                                                                          "cam03", "aria01"}
    assert t["frame_aligned_videos"]["aria01"]["rgb"]["relative_path"] == "frame_aligned_videos/aria01_214-1.mp4"
    assert t["timesync_end_idx"] - t["timesync_start_idx"] - 1 == CFG.ego_frames  # the Ego4d tools' frame count
    assert splits[t["take_uid"]] == "train"
    for rel in ("captures.json", f"captures/{t['capture']['capture_name']}/timesync.csv",
                f"{t['root_dir']}/trajectory/gopro_calibs.csv",
                f"{t['root_dir']}/trajectory/closed_loop_trajectory.csv",
                f"{t['root_dir']}/trajectory/online_calibration.jsonl"):
        assert (root / rel).is_file(), rel


def test_projectaria_tools_reads_the_fixture_files(release):
    """The fixture's CSVs are in the format projectaria_tools' own MPS readers accept."""
    mps = pytest.importorskip("projectaria_tools.core.mps")
    root, written = release
    w = _good(written)[0]
    traj = root / "takes" / w.take_name / "trajectory"
    static = mps.read_static_camera_calibrations(str(traj / "gopro_calibs.csv"))
    assert [s.camera_uid for s in static] == ["cam01", "cam02", "cam03"]
    np.testing.assert_allclose(static[1].transform_world_cam.to_matrix(), w.exo["cam02"].c2w[0].numpy(), rtol=0,
                               atol=1e-6)
    closed = mps.read_closed_loop_trajectory(str(traj / "closed_loop_trajectory.csv"))
    assert len(closed) == 4 * (CFG.ego_frames - 1) + 1
    np.testing.assert_allclose(closed[4].transform_world_device.to_matrix(), w.T_world_device[1].numpy(), rtol=0,
                               atol=1e-12)


def test_index_counts_every_skip_and_never_crashes(release, tmp_path, capsys):
    from syn2seq_core.cli import main

    root, written = release
    out = tmp_path / "index.jsonl"
    assert main(["index-egoexo4d", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"indexed 2 of {2 + len(DAMAGE_KINDS)} takes" in printed
    header = read_egoexo4d_index_header(out)
    assert header["counts"] == {"indexed": 2, **{r: 1 for r in SKIP_REASONS if r in EXPECTED_SKIPS.values()}}
    by_take = {s["take_name"]: s["reason"] for s in header["skipped"]}
    for w in written:
        if w.damage:
            assert by_take[w.take_name] == EXPECTED_SKIPS[w.damage], w.damage
            assert EXPECTED_SKIPS[w.damage] in printed
    entries = read_egoexo4d_index(out)
    assert [e.take_name for e in entries] == [w.take_name for w in _good(written)]
    assert main(["index-egoexo4d", str(root), "--out", str(out)]) == 2  # no silent overwrite
    # without the calibration requirement the take without online_calibration.jsonl is indexed (stand-in camera)
    loose = build_egoexo4d_index(root, require_ego_calibration=False)
    assert loose.counts["indexed"] == 3
    approx = [e for e in loose.entries if e.ego_camera == "approximate"]
    assert len(approx) == 1 and approx[0].calibration_records == 0


def test_index_entry_fields_and_the_exo_camera_rule(release):
    root, written = release
    w0, w1 = _good(written)
    best = build_egoexo4d_index(root).entries
    e = best[0]
    assert (e.take_name, e.take_uid, e.root_dir) == (w0.take_name, w0.take_uid, f"takes/{w0.take_name}")
    assert (e.split, best[1].split) == ("train", "val")
    assert e.category == "Synthetic Tabletop" and e.task_name == "Move Objects"
    assert e.exo_cameras == ["cam01", "cam02", "cam03"] and e.best_exo == "cam03"
    assert (e.exo_camera, e.exo_camera_reason) == ("cam03", "takes.json best_exo")
    assert (e.frames, e.fps, e.duration_sec) == (CFG.ego_frames, 8.0, CFG.ego_frames / 8.0)
    assert e.ego_video == "frame_aligned_videos/aria01_214-1.mp4" and e.resolution == "full"
    assert e.ego_camera == "calibration" and e.calibration_records == 2
    # frame i = timesync row start_idx + 1 + i: rows 3..6 of the fixture's table (3 rows of padding before)
    assert e.timesync == {"path": f"captures/{w0.capture_name}/timesync.csv", "start_idx": 2, "end_idx": 7}
    first = build_egoexo4d_index(root, exo_camera="first").entries[0]
    assert (first.exo_camera, first.exo_camera_reason) == ("cam01", "first usable exo camera")
    named = build_egoexo4d_index(root, exo_camera="gp02").entries[0]  # gpNN and camNN name one camera
    assert (named.exo_camera, named.exo_camera_reason) == ("cam02", "requested")
    missing = build_egoexo4d_index(root, exo_camera="cam07")
    assert missing.counts["indexed"] == 0 and missing.counts["exo camera unavailable"] == 2
    # best_exo not usable -> the first usable camera, said so
    takes, splits, _ = read_release(root)
    t = dict(takes[0], best_exo="cam09")
    e2 = index_take(root, t, splits)
    assert (e2.exo_camera, e2.exo_camera_reason) == ("cam01", "best_exo 'cam09' not usable, first usable exo camera")


@pytest.mark.parametrize("reader", ["projectaria", "json", "auto-without-projectaria"])
def test_indexed_takes_recover_every_camera_of_the_renderer(release, reader, request):
    if reader == "projectaria":
        pytest.importorskip("projectaria_tools.core.mps")
        options = {"calibration_reader": "projectaria"}
    elif reader == "json":
        options = {"calibration_reader": "json"}
    else:
        request.getfixturevalue("no_projectaria")
        options = {}
    root, written = release
    for w, entry in zip(_good(written), build_egoexo4d_index(root, exo_camera="first", **options).entries):
        for cam in ("cam01", "cam02", "cam03"):
            take = load_indexed_take(root, entry, camera=cam, **options)
            exo, want = take.exo_cameras, w.exo[cam]
            # KB3 given as its exact FISHEYE624 equivalent, so both views share one lens family
            assert len(exo) == CFG.ego_frames and exo.lens_model == "fisheye624"
            torch.testing.assert_close(exo.c2w, want.c2w.expand(len(exo), 4, 4), rtol=0, atol=1e-6)
            torch.testing.assert_close(exo.K, want.K.expand(len(exo), 4), rtol=0, atol=1e-12)
            torch.testing.assert_close(exo.fisheye, want.as_fisheye624().fisheye.expand(len(exo), 12), rtol=0,
                                       atol=1e-15)
            exo_kb = load_indexed_take(root, entry, camera=cam, ego=False, **options).exo_cameras
            assert exo_kb.lens_model == "kannala_brandt"  # the exo view alone keeps the file's model
            torch.testing.assert_close(exo_kb.fisheye, want.fisheye.expand(len(exo), 4), rtol=0, atol=1e-15)
        ego = take.ego_cameras
        assert ego.lens_model == "fisheye624" and len(ego) == CFG.ego_frames
        torch.testing.assert_close(ego.c2w, w.ego.c2w, rtol=0, atol=1e-6)  # T_world_device @ T_device_camera
        # T_world_device @ T_device_camera is the raw camera; the stored frames' camera is it turned clockwise
        torch.testing.assert_close(ego.c2w, w.T_world_device @ w.T_device_camera @ sensor_turn().inverse(), rtol=0,
                                   atol=1e-12)
        torch.testing.assert_close(ego.K, w.ego.K.expand(len(ego), 4), rtol=0, atol=1e-12)
        torch.testing.assert_close(ego.fisheye, w.ego.fisheye.expand(len(ego), 12), rtol=0, atol=1e-15)
        from syn2seq_core.geometry.slerp import interpolate_cameras

        transition = interpolate_cameras(take.exo_cameras, take.ego_cameras, 3)  # one lens family: works
        assert transition.lens_model == "fisheye624" and len(transition) == 3
        source = "projectaria_tools" if reader == "projectaria" else "json"
        assert f"read by {source}" in take.meta["meta"]["ego_intrinsics"]
        assert take.meta["category"] == "Synthetic Tabletop" and take.meta["meta"]["split"] == w.split
        torch.testing.assert_close(take.timestamps["ego"] * 1e6, w.frame_times_us.to(torch.float64), rtol=0,
                                   atol=1e-3)


@pytest.mark.parametrize("image_sizes", [True, False])
def test_both_calibration_readers_give_the_same_camera(tmp_path, image_sizes):
    """The fallback differs from projectaria_tools only where documented (default image sizes of cameras other
    than a Gen1 camera-rgb); on Aria RGB records, with or without ImageSizes, they agree to float64 rounding."""
    pytest.importorskip("projectaria_tools.core.mps")
    cfg = SyntheticConfig(size=16, exo_frames=2, ego_frames=2, fps=8.0, supersample=1, threads=1)
    write_egoexo4d_fixture(tmp_path, [5], cfg, exo_cameras=1, image_sizes=image_sizes)
    path = next(tmp_path.glob("takes/*/trajectory/online_calibration.jsonl"))
    a = egoexo4d.read_aria_online_calibration(path, reader="projectaria")
    b = egoexo4d.read_aria_online_calibration(path, reader="json")
    assert len(a) == len(b) == 2 and a[0].source == "projectaria_tools" and b[0].source == "json"
    for x, y in zip(a, b):
        assert x.image_size == y.image_size == (2880, 2880) and x.tracking_timestamp_us == y.tracking_timestamp_us
        np.testing.assert_allclose(x.params, y.params, rtol=0, atol=1e-12)
        np.testing.assert_allclose(x.T_device_camera, y.T_device_camera, rtol=0, atol=1e-12)
        np.testing.assert_allclose(x.K, y.K, rtol=0, atol=1e-15)


def test_load_indexed_take_frames_decode_and_are_what_the_cameras_see(release):
    """Re-rendering the scene through the cameras the reader returns reproduces the decoded videos (up to
    H.264), while the old pinhole stand-in for the ego camera does not."""
    from syn2seq_core.data.synthetic import render
    from syn2seq_core.data.synthetic_scene import sample_scene
    from syn2seq_core.io.video import read_video

    root, written = release
    w = _good(written)[0]
    entry = read_egoexo4d_index_entries(root)[0]
    take = load_indexed_take(root, entry)
    ego_frames = read_video(take.ego_video)
    exo_frames = read_video(take.exo_video)
    assert ego_frames.shape == exo_frames.shape == (CFG.ego_frames, 3, CFG.size, CFG.size)
    seed = json.loads((root / "takes.json").read_text())[0]["syn2seq_seed"]
    scene = sample_scene(seed, CFG)
    times = torch.arange(CFG.ego_frames, dtype=torch.float32) / CFG.fps
    ego = render(scene, take.ego_cameras, times, supersample=1)
    exo = render(scene, take.exo_cameras, times, supersample=1)
    # the cameras read back render the renderer's pixels (float32 ray casting: ~1e-5)
    assert float((ego - render(scene, w.ego, times, supersample=1)).abs().max()) < 1e-4
    # the decoded videos differ from them by the H.264 / yuv420 loss only (measured 0.041 / 0.031 at 32x32)
    err_ego, err_exo = (float((a - b).abs().mean()) for a, b in ((ego, ego_frames), (exo, exo_frames)))
    assert err_ego < 0.06 and err_exo < 0.06, (err_ego, err_exo)
    approx = load_indexed_take(root, entry, ego_camera="approximate").ego_cameras
    assert approx.lens_model == "pinhole"
    err_approx = float((render(scene, approx, times, supersample=1) - ego_frames).abs().mean())
    assert err_approx > 3 * err_ego, (err_approx, err_ego)  # measured 0.168 vs 0.041


def read_egoexo4d_index_entries(root):
    return build_egoexo4d_index(root).entries


def test_paths_from_the_index_stay_inside_the_root(release, tmp_path):
    root, written = release
    entry = read_egoexo4d_index_entries(root)[0]
    bad = json.loads(entry.to_json())
    bad["root_dir"] = "../" + root.name + "_elsewhere"
    with pytest.raises(OutsideFolderError):
        load_indexed_take(root, bad)
    bad = json.loads(entry.to_json())
    bad["timesync"] = dict(bad["timesync"], path="/etc/passwd")
    with pytest.raises(OutsideFolderError):
        load_indexed_take(root, bad)
    # a take folder that is a link out of the root is skipped, not followed
    outside = tmp_path / "outside_take"
    shutil.copytree(root / entry.root_dir, outside)
    linked = tmp_path / "root"
    linked.mkdir()
    (linked / "takes").mkdir()
    (linked / "takes" / entry.take_name).symlink_to(outside, target_is_directory=True)
    takes, splits, _ = read_release(root)
    with pytest.raises(_Skip) as e:
        index_take(linked, takes[0], splits)
    assert e.value.reason == "outside root"


def test_index_file_reading_errors(release, tmp_path):
    root, _ = release
    out = tmp_path / "i.jsonl"
    from syn2seq_core.data.egoexo4d_index import write_egoexo4d_index

    write_egoexo4d_index(out, build_egoexo4d_index(root), root, {})
    assert [e.split for e in read_egoexo4d_index(out, split="val")] == ["val"]
    with pytest.raises(Syn2SeqInputError, match="splits"):
        read_egoexo4d_index(out, split="test")
    lines = out.read_text().splitlines()
    (tmp_path / "noheader.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(Syn2SeqInputError, match="format"):
        read_egoexo4d_index(tmp_path / "noheader.jsonl")
    broken = json.loads(lines[1])
    del broken["frames"]
    (tmp_path / "broken.jsonl").write_text(lines[0] + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(Syn2SeqInputError, match="frames"):
        read_egoexo4d_index(tmp_path / "broken.jsonl")
    with pytest.raises(Syn2SeqInputError, match="takes.json"):
        build_egoexo4d_index(tmp_path)


def test_ego_camera_modes_of_the_take_reader(release):
    """auto: the true camera when online_calibration.jsonl is there, else the documented stand-in;
    calibration: required; approximate: the stand-in even when the calibration exists."""
    root, written = release
    takes, _, _ = read_release(root)
    by_name = {t["take_name"]: t for t in takes}
    no_calib = next(w for w in written if w.damage == "missing_calibration")
    t = by_name[no_calib.take_name]
    folder = root / t["root_dir"]
    timing = dict(ego_timestamps_us=root / "captures" / t["capture"]["capture_name"] / "timesync.csv",
                  timesync_start_idx=t["timesync_start_idx"])
    auto = egoexo4d.load_egoexo4d_take(folder, **timing)
    assert auto.ego_cameras.lens_model == "pinhole" and "approximate" in auto.meta["meta"]["ego_intrinsics"]
    assert auto.exo_cameras.lens_model == "kannala_brandt"
    with pytest.raises(Syn2SeqInputError, match="online_calibration.jsonl"):
        egoexo4d.load_egoexo4d_take(folder, ego_camera="calibration", **timing)
    good = _good(written)[0]
    t = by_name[good.take_name]
    timing = dict(ego_timestamps_us=root / "captures" / t["capture"]["capture_name"] / "timesync.csv",
                  timesync_start_idx=t["timesync_start_idx"])
    approx = egoexo4d.load_egoexo4d_take(root / t["root_dir"], ego_camera="approximate", **timing)
    assert approx.ego_cameras.lens_model == "pinhole" and "device frame" in approx.meta["meta"]["ego_pose"]
    with pytest.raises(Syn2SeqInputError, match="ego_camera"):
        egoexo4d.load_egoexo4d_take(root / t["root_dir"], ego_camera="calibration", ego_K=[0.5, 0.5, 0.5, 0.5],
                                    **timing)


def test_load_indexed_take_reads_the_video_of_the_camera_asked_for(release):
    """The entry keeps every usable exo camera's video (from takes.json relative_path): asking another camera reads
    that camera's video, not the index's chosen one."""
    root, _ = release
    entry = read_egoexo4d_index_entries(root)[0]
    assert entry.exo_camera == "cam03" and sorted(entry.exo_videos) == ["cam01", "cam02", "cam03"]
    for cam in ("cam01", "gp02", "cam03"):
        take = load_indexed_take(root, entry, camera=cam)
        assert take.exo_video.name == f"cam0{cam[-1]}.mp4"


def test_cheap_checks_catch_a_damaged_calibration_row_and_a_cropped_aria_video(release, tmp_path):
    """Without --verify, a take whose chosen exo camera's gopro_calibs.csv row does not parse, or whose Aria video
    is not of its calibration's aspect ratio, is skipped (the load would stop on either)."""
    root, written = release
    copy = tmp_path / "release"
    shutil.copytree(root, copy, symlinks=True)
    w0, w1 = _good(written)
    calibs = copy / "takes" / w0.take_name / "trajectory" / "gopro_calibs.csv"
    lines = calibs.read_text().splitlines()
    cells = lines[3].split(",")  # cam03, the best_exo
    cells[12] = "abc"  # intrinsics_0
    calibs.write_text("\n".join([*lines[:3], ",".join(cells)]) + "\n")
    from syn2seq_core.io.video import read_video, write_video

    aria = copy / "takes" / w1.take_name / "frame_aligned_videos" / "aria01_214-1.mp4"
    frames = read_video(aria)
    aria.unlink()
    write_video(aria, frames[..., :, : CFG.size // 2], fps=CFG.fps)
    result = build_egoexo4d_index(copy)
    reasons = {s["take_name"]: (s["reason"], s["detail"]) for s in result.skipped}
    assert reasons[w0.take_name][0] == "damaged CSV" and "cam03" in reasons[w0.take_name][1]
    assert reasons[w1.take_name][0] == "damaged video" and "aspect ratio" in reasons[w1.take_name][1]
