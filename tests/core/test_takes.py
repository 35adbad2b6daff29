"""Take folders (write, load, read, find, refuse) and the Ego-Exo4D take reader on a small folder in the
real layout."""

import json
import math
from pathlib import Path

import pytest
import torch

from syn2seq_core.data.egoexo4d import find_egoexo4d_takes, list_exo_cameras, load_egoexo4d_take, rotate90
from syn2seq_core.data.takes import find_takes, load_take, write_take
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.io.poses import save_cameras
from syn2seq_core.io.video import write_video

FAST = {"preset": "ultrafast"}


def frames(T, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, 1, 1, generator=g) * 0.5 + 0.25
    ramp = torch.linspace(0, 0.2, W)[None, None, None, :] + torch.arange(T)[:, None, None, None] * 0.01
    return (base + ramp).expand(T, 3, H, W).clamp(0, 1).contiguous()


def exo_static(W=64, H=48):
    c2w = look_at(torch.tensor([[4.0, 0.0, 1.5]], dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64))
    return Cameras(c2w, torch.tensor([[0.8, 1.0667, 0.5, 0.5]]), W, H)


def ego_track(n, W=32, H=32):
    eye = torch.stack([torch.tensor([0.5 + 0.02 * i, 0.1 * math.sin(i), 1.6], dtype=torch.float64) for i in range(n)])
    target = eye + torch.tensor([1.0, 0.2, -0.3], dtype=torch.float64)
    return Cameras(look_at(eye, target), torch.tensor([[0.45, 0.45, 0.5, 0.5]]), W, H)


def hidden(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- write / load / read --------------------------------------------------------------------------
def test_write_then_load_take_round_trip(tmp_path):
    ego = ego_track(12)
    stamps = torch.arange(12, dtype=torch.float64) / 30 + 100.0
    take = write_take(tmp_path / "kitchen", frames(12, 48, 64), exo_static(), frames(12, 32, 32, 1), ego, fps=30,
                      meta={"source": "unit test", "notes": "static exo", "seed": 3}, timestamps={"ego": stamps},
                      **FAST)
    again = load_take(tmp_path / "kitchen")
    for t in (take, again):
        assert t.name == "kitchen" and t.fps == 30.0 and t.views == ("exo", "ego")
        assert t.exo_info.frames == 12 and t.ego_info.size == (32, 32)
        assert len(t.exo_cameras) == 12  # the single static pose, repeated for every frame
        assert torch.equal(t.exo_cameras.c2w, exo_static().c2w.expand(12, 4, 4))
        assert torch.equal(t.ego_cameras.c2w, ego.c2w) and torch.equal(t.ego_cameras.K, ego.K)
        assert torch.equal(t.frame_times("ego"), stamps)
        assert torch.allclose(t.frame_times("exo"), torch.arange(12, dtype=torch.float64) / 30)
        assert t.meta == {"source": "unit test", "notes": "static exo", "meta": {"seed": 3}}
    exo_frames, exo_cams = again.read_view("exo", size=32)
    assert exo_frames.shape == (12, 3, 32, 32) and len(exo_cams) == 12
    assert torch.allclose(exo_cams.K, exo_static().resize_and_center_crop(32).K.expand(12, 4))
    ego_frames, ego_cams = again.read_view("ego", start=2, stop=10, stride=2)
    assert ego_frames.shape == (4, 3, 32, 32) and torch.equal(ego_cams.c2w, ego.c2w[2:10:2])
    chunks, cams = again.iter_view("ego", 3, size=16, start=1)
    assert [len(c) for c in chunks] == [3, 3, 3, 2] and len(cams) == 11 and cams.size == (16, 16)
    assert hidden(tmp_path) == []


def test_generated_view_needs_only_its_cameras(tmp_path):
    ego = ego_track(8)  # the ego clip may be shorter than the exo clip
    take = write_take(tmp_path / "infer", frames(12, 48, 64), exo_static(), None, ego, fps=30, **FAST)
    assert not (tmp_path / "infer" / "ego.mp4").exists() and take.ego_video is None
    assert take.num_frames("ego") == 8 and take.num_frames("exo") == 12
    cams = take.view_cameras("ego", size=(24, 16), start=2)
    assert len(cams) == 6 and cams.size == (24, 16)
    assert torch.allclose(cams.K, ego[2:].resize_and_center_crop((24, 16)).K)
    with pytest.raises(Syn2SeqInputError, match="view to generate"):
        take.read_view("ego")
    # ego2exo inference: the ego video is given, the exo view has only cameras.
    take = write_take(tmp_path / "reverse", None, exo_static(), frames(8, 32, 32), ego, fps=30, **FAST)
    assert take.exo_video is None and take.num_frames("exo") == 1 and take.has_video("ego")


def test_mismatched_frame_and_pose_counts_are_refused_with_both_counts(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    write_video(folder / "exo.mp4", frames(12, 48, 64), fps=30, **FAST)
    track = ego_track(5, 64, 48)
    save_cameras(track, folder / "exo_cameras.json")
    with pytest.raises(Syn2SeqInputError, match=r"12 frames.*5 poses"):
        load_take(folder)
    with pytest.raises(Syn2SeqInputError, match=r"12 frames.*5 poses"):
        write_take(tmp_path / "bad2", frames(12, 48, 64), track, fps=30, **FAST)
    assert not (tmp_path / "bad2").exists()
    # Chunked frames are counted while encoding; the half-written take is removed.
    chunks = (frames(4, 48, 64) for _ in range(3))
    with pytest.raises(Syn2SeqInputError, match=r"12 frames.*5 poses"):
        write_take(tmp_path / "bad3", chunks, track, fps=30, **FAST)
    assert not (tmp_path / "bad3").exists() and hidden(tmp_path) == []


def test_missing_or_ambiguous_camera_files_and_corrupt_videos_are_clear(tmp_path):
    folder = tmp_path / "nocams"
    folder.mkdir()
    write_video(folder / "exo.mp4", frames(4, 48, 64), fps=30, **FAST)
    with pytest.raises(Syn2SeqInputError, match="exo cameras.*exo_cameras.<ext>.*none in"):
        load_take(folder)
    save_cameras(exo_static(), folder / "exo_cameras.json")
    (folder / "exo_cameras.txt").write_text("not used\n")
    with pytest.raises(Syn2SeqInputError, match="several.*exo_cameras.json.*exo_cameras.txt"):
        load_take(folder)
    (folder / "exo_cameras.txt").unlink()
    assert load_take(folder).num_frames("exo") == 4
    (folder / "exo.mp4").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(Syn2SeqInputError, match="exo.mp4"):
        load_take(folder)
    with pytest.raises(Syn2SeqInputError, match="nothing at"):
        load_take(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Syn2SeqInputError, match="exo.mp4 or ego.mp4"):
        load_take(empty)


def test_interrupted_take_write_leaves_nothing_and_keeps_the_old_take(tmp_path):
    def ego_frames():
        yield frames(4, 32, 32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_take(tmp_path / "t", frames(8, 48, 64), exo_static(), ego_frames(), ego_track(8), fps=30, **FAST)
    assert not (tmp_path / "t").exists() and hidden(tmp_path) == []

    old = write_take(tmp_path / "t", frames(8, 48, 64), exo_static(), None, ego_track(8), fps=30, **FAST)
    before = (tmp_path / "t" / "exo.mp4").read_bytes()
    with pytest.raises(Syn2SeqInputError, match="exists.*overwrite=True"):
        write_take(tmp_path / "t", frames(8, 48, 64), exo_static(), fps=30, **FAST)
    with pytest.raises(KeyboardInterrupt):
        write_take(tmp_path / "t", frames(8, 48, 64, 5), exo_static(), ego_frames(), ego_track(8), fps=30,
                   overwrite=True, **FAST)
    assert (tmp_path / "t" / "exo.mp4").read_bytes() == before and hidden(tmp_path) == []
    assert load_take(tmp_path / "t").num_frames("ego") == old.num_frames("ego")
    new = write_take(tmp_path / "t", frames(6, 48, 64, 5), exo_static(), fps=25, overwrite=True, **FAST)
    assert new.num_frames("exo") == 6 and new.fps == 25.0 and new.ego_cameras is None and hidden(tmp_path) == []


def test_take_json_names_files_and_is_validated(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    write_video(folder / "third_person.mp4", frames(6, 48, 64), fps=24, **FAST)
    save_cameras(ego_track(6, 64, 48), folder / "poses.json")
    doc = {"fps": 12.5, "source": "phone", "exo": {"video": "third_person.mp4", "cameras": "poses.json",
                                                     "cameras_format": "syn2seq",
                                                     "timestamps": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}}
    (folder / "take.json").write_text(json.dumps(doc))
    take = load_take(folder / "take.json")
    assert take.fps == 12.5 and take.exo_video.name == "third_person.mp4" and take.meta == {"source": "phone"}
    assert take.frame_times("exo").tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    doc["exo"]["timestamps"] = [0.0, 0.1]
    (folder / "take.json").write_text(json.dumps(doc))
    with pytest.raises(Syn2SeqInputError, match="exo timestamps.*6 values.*2"):
        load_take(folder)
    doc["exo"]["timestamps"] = [0.0] * 6
    doc["exo_video"] = "typo.mp4"
    (folder / "take.json").write_text(json.dumps(doc))
    with pytest.raises(Syn2SeqInputError, match="unknown.*exo_video"):
        load_take(folder)
    del doc["exo_video"]
    doc["exo"]["cameras"] = "missing.json"
    (folder / "take.json").write_text(json.dumps(doc))
    with pytest.raises(Syn2SeqInputError, match="missing.json"):
        load_take(folder)


def test_colmap_folder_as_a_camera_file(tmp_path):
    folder = tmp_path / "colmap_take"
    (folder / "exo_cameras").mkdir(parents=True)
    write_video(folder / "exo.mp4", frames(3, 48, 64), fps=30, **FAST)
    (folder / "exo_cameras" / "cameras.txt").write_text("# camera list\n1 PINHOLE 640 480 500 500 320 240\n")
    lines = ["# image list"]
    for i in range(3):  # identity rotation (qw = 1), camera centres at x = i (w2c t = -C)
        lines += [f"{i + 1} 1 0 0 0 {-float(i)} 0 0 1 frame{i:03d}.png", ""]
    (folder / "exo_cameras" / "images.txt").write_text("\n".join(lines) + "\n")
    take = load_take(folder)
    assert take.exo_cameras.size == (64, 48)  # resized from the model's 640x480 to the video
    assert take.exo_cameras.centers[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert torch.allclose(take.exo_cameras.K[0], torch.tensor([500 / 640, 500 / 480, 0.5, 0.5], dtype=torch.float64))


def test_find_takes_lists_take_folders(tmp_path):
    for rel in ("a", "b/c", ".hidden/d"):
        write_take(tmp_path / rel, frames(2, 16, 16), exo_static(16, 16), fps=30, **FAST)
    (tmp_path / "b" / "notes").mkdir()
    assert find_takes(tmp_path) == [tmp_path / "a", tmp_path / "b" / "c"]
    assert find_takes(tmp_path / "a") == [tmp_path / "a"]
    with pytest.raises(Syn2SeqInputError, match="existing folder"):
        find_takes(tmp_path / "nope")


# --- Ego-Exo4D -------------------------------------------------------------------------------------
GOPRO_HEADER = ("cam_uid,graph_uid,tx_world_cam,ty_world_cam,tz_world_cam,qx_world_cam,qy_world_cam,qz_world_cam,"
                "qw_world_cam,image_width,image_height,intrinsics_type,intrinsics_0,intrinsics_1,intrinsics_2,"
                "intrinsics_3,intrinsics_4,intrinsics_5,intrinsics_6,intrinsics_7,start_frame_idx,end_frame_idx,"
                "quality")
GRAPH = "40084458-f219-16ca-0c3c-8bd94ee06e6c"
CAM01 = (1.691723, 0.545741, -0.116511, -0.437056, -0.661141, 0.501553, 0.346871)
GOPRO_ROWS = [  # the first row has the leading space of real files
    f" cam01,{GRAPH},{','.join(map(str, CAM01))},3840,2160,KANNALABRANDTK3,1761.275757,1761.275757,"
    "1920.000000,1080.000000,0.036902,0.057131,-0.057154,0.018458,-1,-1,1",
    f"gp02,{GRAPH},0.2,3.1,1.5,0,0,0,1,3840,2160,KANNALABRANDTK3,1700,1700,1910,1075,0.03,0.05,-0.05,0.01,-1,-1,1",
]
TRAJ_HEADER = ("graph_uid,tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
               "qx_world_device,qy_world_device,qz_world_device,qw_world_device,device_linear_velocity_x_device,"
               "device_linear_velocity_y_device,device_linear_velocity_z_device,angular_velocity_x_device,"
               "angular_velocity_y_device,angular_velocity_z_device,gravity_x_world,gravity_y_world,gravity_z_world,"
               "quality_score")
T0 = 149202610  # us, device clock
SPEED, YAW_RATE = 1.0, 0.3  # m/s along x, rad/s about z


def device_pose(t_us):
    """The fixture's Aria device track: constant velocity along x and constant yaw rate."""
    s = (t_us - T0) / 1e6
    a = YAW_RATE * s
    return (0.5 + SPEED * s, 0.2, 1.6), (0.0, 0.0, math.sin(a / 2), math.cos(a / 2))


@pytest.fixture(scope="module")
def egoexo_take(tmp_path_factory):
    """A take folder in the Ego-Exo4D layout with tiny videos (10 frames at 30 fps) and real CSV columns."""
    take = tmp_path_factory.mktemp("egoexo4d") / "takes" / "synthetic_bike01_1"
    small = take / "frame_aligned_videos" / "downscaled" / "448"
    small.mkdir(parents=True)
    for name, (w, h) in {"cam01": (64, 36), "cam02": (64, 36), "aria01_214-1": (32, 32)}.items():
        write_video(small / f"{name}.mp4", frames(10, h, w, seed=len(name)), fps=30, **FAST)
    for name, (w, h) in {"cam01": (128, 72), "aria01_214-1": (64, 64)}.items():
        write_video(take / "frame_aligned_videos" / f"{name}.mp4", frames(10, h, w), fps=30, **FAST)
    (take / "trajectory").mkdir()
    (take / "trajectory" / "gopro_calibs.csv").write_text("\n".join([GOPRO_HEADER, *GOPRO_ROWS]) + "\n")
    lines = [TRAJ_HEADER]
    for k in range(101):  # 1 s at 100 Hz
        t = T0 + 10_000 * k
        (x, y, z), (qx, qy, qz, qw) = device_pose(t)
        lines.append(f"{GRAPH},{t},{1686767222002923694 + 1000 * t},{x:.9f},{y},{z},{qx},{qy},{qz:.12f},{qw:.12f},"
                     f"{SPEED},0,0,0,0,{YAW_RATE},0,0,-9.81,1.0")
    (take / "trajectory" / "closed_loop_trajectory.csv").write_text("\n".join(lines) + "\n")
    return take


def yaw_of(c2w):
    return torch.atan2(c2w[:, 1, 0], c2w[:, 0, 0])


def test_egoexo4d_reader_builds_a_take(egoexo_take):
    start = T0 + 100_000
    take = load_egoexo4d_take(egoexo_take, "cam01", start_timestamp_us=start)
    assert take.name == "synthetic_bike01_1" and take.fps == pytest.approx(30.0)
    assert take.exo_video.parent.name == "448" and take.ego_video.name == "aria01_214-1.mp4"
    exo = take.exo_cameras
    assert len(exo) == 10 and exo.size == (64, 36)  # calibration 3840x2160 rescaled to the video
    # gopro_calibs.csv puts the top-left pixel centre at (0, 0) (projectaria_tools): cx_ours = cx + 0.5
    assert torch.allclose(exo.K[0], torch.tensor([1761.275757 / 3840, 1761.275757 / 2160, 1920.5 / 3840,
                                                  1080.5 / 2160], dtype=torch.float64))
    assert torch.allclose(exo.fisheye[0], torch.tensor([0.036902, 0.057131, -0.057154, 0.018458], dtype=torch.float64))
    assert torch.allclose(exo.centers, torch.tensor(CAM01[:3], dtype=torch.float64).expand(10, 3))
    ego = take.ego_cameras
    i = torch.arange(10, dtype=torch.float64)
    times = start + i * 1e6 / 30
    assert len(ego) == 10 and ego.size == (32, 32)
    assert torch.allclose(ego.centers[:, 0], 0.5 + SPEED * (times - T0) / 1e6, atol=1e-6)
    assert torch.allclose(yaw_of(ego.c2w), YAW_RATE * (times - T0) / 1e6, atol=1e-6)
    assert torch.allclose(take.timestamps["ego"], times / 1e6)
    assert "start_timestamp_us" in take.meta["meta"]["time_alignment"]
    ego_frames, ego_cams = take.read_view("ego", size=16)
    assert ego_frames.shape == (10, 3, 16, 16) and len(ego_cams) == 10
    exo_frames, exo_cams = take.read_view("exo", size=(32, 32))
    assert exo_frames.shape == (10, 3, 32, 32) and exo_cams.size == (32, 32)


def test_egoexo4d_camera_names_resolution_and_alignment_options(egoexo_take, tmp_path):
    assert list_exo_cameras(egoexo_take) == ["cam01", "cam02"]
    take = load_egoexo4d_take(egoexo_take, "cam02", align="trajectory_start")
    assert take.meta["meta"]["exo_calibration_uid"] == "gp02"  # the calibration calls cam02 gp02
    assert torch.allclose(take.exo_cameras.centers[0], torch.tensor([0.2, 3.1, 1.5], dtype=torch.float64))
    assert torch.allclose(take.ego_cameras.centers[:, 0], 0.5 + torch.arange(10, dtype=torch.float64) / 30)
    full = load_egoexo4d_take(egoexo_take, "cam01", resolution="full", align="trajectory_start")
    assert full.exo_cameras.size == (128, 72) and full.ego_cameras.size == (64, 64)
    small = load_egoexo4d_take(egoexo_take, "cam01", align="trajectory_start")
    assert torch.allclose(full.exo_cameras.K, small.exo_cameras.K)  # normalised: the same at both sizes
    # Per-frame times from a capture's timesync.csv (nanoseconds): frame i is row timesync_start_idx + 1 + i.
    rows = ["aria01_214-1_capture_timestamp_ns,cam01_capture_timestamp_ns"]
    rows += [f"{(T0 + 50_000 + k * 1e6 / 30) * 1000:.0f},0" for k in range(15)]
    (tmp_path / "timesync.csv").write_text("\n".join(rows) + "\n")
    synced = load_egoexo4d_take(egoexo_take, "cam01", ego_timestamps_us=tmp_path / "timesync.csv",
                                timesync_start_idx=3)
    assert torch.allclose(synced.ego_cameras.centers[:, 0],
                          0.5 + 0.05 + (4 + torch.arange(10, dtype=torch.float64)) / 30, atol=1e-6)
    exo_only = load_egoexo4d_take(egoexo_take, "cam01", ego=False)
    assert exo_only.ego_cameras is None and exo_only.views == ("exo",)


def test_egoexo4d_reader_refuses_what_it_cannot_align(egoexo_take):
    with pytest.raises(Syn2SeqInputError, match="exactly one of ego_timestamps_us.*start_timestamp_us.*align"):
        load_egoexo4d_take(egoexo_take, "cam01")
    with pytest.raises(Syn2SeqInputError, match="timestamps_us"):  # frames run past the end of the track
        load_egoexo4d_take(egoexo_take, "cam01", start_timestamp_us=T0 + 900_000)
    with pytest.raises(Syn2SeqInputError, match=r"cam01.*cam02.*'cam07'"):
        load_egoexo4d_take(egoexo_take, "cam07", align="trajectory_start")
    with pytest.raises(Syn2SeqInputError, match="load_egoexo4d_take"):
        load_take(egoexo_take)
    assert find_egoexo4d_takes(egoexo_take.parent.parent) == [egoexo_take]


def project(cams: Cameras, points):
    """Pinhole projection of world points [P, 3] by camera 0 -> pixel coordinates [P, 2]."""
    p = (cams.w2c[0, :3, :3] @ points.T + cams.w2c[0, :3, 3:]).T
    k = cams.K[0]
    return torch.stack([k[0] * cams.width * p[:, 0] / p[:, 2] + k[2] * cams.width,
                        k[1] * cams.height * p[:, 1] / p[:, 2] + k[3] * cams.height], -1)


@pytest.mark.parametrize("clockwise", [True, False])
def test_rotate90_turns_frames_and_cameras_together(clockwise):
    W, H = 40, 24
    cams = Cameras(look_at(torch.tensor([[1.0, -2.0, 1.0]], dtype=torch.float64),
                           torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64)),
                   torch.tensor([[0.7, 1.1, 0.45, 0.55]], dtype=torch.float64), W, H)
    points = torch.tensor([[0.1, 0.2, 0.4], [-0.3, 0.1, 0.7], [0.2, -0.2, 0.3]], dtype=torch.float64)
    uv = project(cams, points)
    img = torch.zeros(1, 3, H, W)
    img[0, :, 5, 31] = 1.0  # pixel centre (31.5, 5.5)
    rot_img, rot_cams = rotate90(img, cams, clockwise=clockwise)
    assert rot_img.shape == (1, 3, W, H) and rot_cams.size == (H, W)
    new_uv = project(rot_cams, points)
    expected = torch.stack([H - uv[:, 1], uv[:, 0]], -1) if clockwise else torch.stack([uv[:, 1], W - uv[:, 0]], -1)
    assert torch.allclose(new_uv, expected, atol=1e-9)
    row, col = (rot_img[0, 0] == 1).nonzero()[0].tolist()
    u, v = 31.5, 5.5
    want = (H - v, u) if clockwise else (v, W - u)
    assert (col + 0.5, row + 0.5) == want
    _, back = rotate90(None, rot_cams, clockwise=not clockwise)
    assert torch.allclose(back.c2w, cams.c2w) and torch.allclose(back.K, cams.K) and back.size == cams.size
