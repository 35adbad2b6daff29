"""A local Ego-Exo4D release rendered from the procedural world, with the renderer's exact cameras.

``syn2seq render-synthetic --layout egoexo4d --out ROOT`` calls :func:`write_egoexo4d_fixture`. What it writes
follows the release layout described (with its sources) in :mod:`syn2seq_core.data.egoexo4d_index`::

    ROOT/takes.json                  one entry per take (take_uid, take_name, root_dir, capture {...},
                                     parent_task_name, task_name, duration_sec, best_exo, is_dropped,
                                     timesync_start_idx / timesync_end_idx, frame_aligned_videos {...})
    ROOT/captures.json               one entry per capture (capture_uid, capture_name, root_dir, cameras)
    ROOT/annotations/splits.json     {"take_uid_to_split": {uid: "train" | "val" | "test"}, ...}
    ROOT/captures/<capture>/timesync.csv              per-row device times (aria01_214-1_capture_timestamp_ns)
    ROOT/takes/<take>/frame_aligned_videos/cam01.mp4 ... camNN.mp4, aria01_214-1.mp4
    ROOT/takes/<take>/trajectory/gopro_calibs.csv             every exo camera (KB3), all 23 columns
    ROOT/takes/<take>/trajectory/closed_loop_trajectory.csv   T_world_device, all 20 columns
    ROOT/takes/<take>/trajectory/online_calibration.jsonl     camera-rgb FISHEYE624 + T_Device_Camera

The cameras are the renderer's, exactly:

* exo ``cam01`` is the world's exo camera, ``cam02`` ... are more static cameras on the same circle around the
  exo target (``exo_cameras``); every exo view is rendered through a Kannala–Brandt (KB3) lens, the model
  ``gopro_calibs.csv`` stores; the calibration is written at 4x the video size (the reader rescales);
* the ego view is rendered *through* a FISHEYE624 lens (per-ray directions from the lens model, see
  :func:`~syn2seq_core.data.synthetic.render`) as the raw ``camera-rgb`` sensor sees it: the world's upright ego
  camera turned 90 degrees counter-clockwise (:func:`sensor_turn`), pose ``T_world_device @ T_device_camera``.
  The calibration file describes that raw camera, at the 2880x2880 RGB sensor size with ``ImageSizes`` (or
  without, ``image_sizes=False``: then readers take the sensor default). The video stores the raw frames turned
  90 degrees clockwise, as the release does (raw pixel ``(x, y)`` at ``(W - 1 - y, x)``; Ego4d
  ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``), so it is upright; ``marker=True`` paints an asymmetric
  marker into the raw frames first, so the turn is visible;
* frame ``i`` of every video is scene time ``i / fps`` and device time ``t0 + i * 1e6 / fps`` microseconds
  (whole microseconds: fps must divide 1e6), at ``timesync.csv`` row ``timesync_start_idx + 1 + i``, with
  ``timesync_end_idx - timesync_start_idx - 1`` frames (as the Ego4d tools read them); the trajectory covers
  exactly the frames (first sample at frame 0, last at the last frame, three in between each), so resampling
  it at the frame times is exact and a reader one row off falls outside it;
* ``gopro_calibs.csv`` and ``online_calibration.jsonl`` put the top-left pixel centre at (0, 0), as
  projectaria_tools does (``cx_file = cx_ours - 0.5``).

Damaged takes (``damaged``, appended after the good ones, each a take in ``takes.json``): ``missing_folder``,
``missing_video`` (no Aria video), ``missing_trajectory``, ``missing_calibration`` (no online calibration),
``damaged_calibration`` (a truncated JSON line), ``damaged_csv`` (a gopro_calibs.csv without its header),
``dropped`` (``is_dropped: true``), ``short_trajectory`` (the track ends before the last frame),
``short_video`` (the Aria video lacks its last frame), ``missing_timesync`` (no capture timesync.csv),
``outside_video`` (a ``relative_path`` climbing out of the take folder).

Not written: VRS files, eye gaze, point clouds, ``downscaled/448`` videos (the reader uses them when present),
capture-level trajectories.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from ..geometry.cameras import CENTRE0_TO_OURS_PX, Cameras, invert_pose, look_at
from ..io.atomic import write_text_atomic

DAMAGE_KINDS = ("missing_folder", "missing_video", "missing_trajectory", "missing_calibration",
                "damaged_calibration", "damaged_csv", "dropped", "short_trajectory", "short_video", "missing_timesync",
                "outside_video")
SPLITS = ("train", "val", "test")
SENSOR_SIZE = 2880  # Aria Gen1 RGB sensor, what an online calibration's camera-rgb refers to
CALIB_SCALE = 4  # the GoPro calibration is written at 4x the video size
# Distortion of the rendered lenses: mild, monotonic over the image, every coefficient non-zero.
EXO_KB3 = (0.021, -0.0047, 0.0011, -0.00019)
EGO_FISHEYE624 = (0.05, -0.01, 0.004, -0.001, 0.0002, -0.00003, 1.0e-3, -5.0e-4, 8.0e-4, -1.0e-4, -6.0e-4, 5.0e-5)
EGO_PRINCIPAL_OFFSET_PX = (3.25, -2.5)  # at the sensor size, so the principal point is not the centre
# T_Device_Camera of the fixture's RGB camera: quaternion (w, x, y, z) and translation (metres), Aria-like
# (the RGB camera sits a centimetre from the device frame origin and is turned by tens of degrees).
T_DEVICE_CAMERA_Q = (0.93, 0.35, -0.04, 0.02)
T_DEVICE_CAMERA_T = (0.0041, -0.0124, -0.0053)
ARIA = "aria01"
T0_US = 5_000_000  # device time of the first frame of take 0


@dataclass(frozen=True, eq=False)
class FixtureTake:
    """What was written for one take, with the renderer's exact cameras (for tests).

    exo: camera name -> Cameras (1 static camera, KB3); ego: Cameras [N] (FISHEYE624) of the *stored* Aria frames
    (the raw camera turned 90 degrees clockwise with them; its pose is the world's upright ego camera, float32
    poses of the world, orthonormal to ~1e-7); ego_raw: the raw camera-rgb camera the calibration file
    describes; T_device_camera: [4, 4] raw, as the file holds it; T_world_device: [N, 4, 4] at the frame times,
    as the trajectory file holds them (``T_world_device @ T_device_camera`` equals ``ego_raw.c2w`` to ~1e-7);
    frame_times_us: [N]; damage: the damage kind or None; marker_world: [N, 3] world points painted as the
    marker (``marker=True``), else None.
    """

    take_name: str
    take_uid: str
    capture_name: str
    split: str
    exo: dict[str, Cameras] = field(default_factory=dict)
    ego: Cameras | None = None
    T_device_camera: Tensor | None = None
    T_world_device: Tensor | None = None
    frame_times_us: Tensor | None = None
    damage: str | None = None
    ego_raw: Cameras | None = None
    marker_world: Tensor | None = None


def _quat_R(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _R_quat_xyzw(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_quat()  # x, y, z, w


def _orthonormal(R: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> the rotation its quaternion stands for (float32 poses are orthonormal only to ~1e-7)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(Rotation.from_matrix(R).as_quat()).as_matrix()


def sensor_turn() -> Tensor:
    """[4, 4] the raw camera-rgb axes in the stored (upright) camera's: turned 90 degrees counter-clockwise about
    the optical axis (the raw x axis is the stored y axis, the raw y axis the stored -x)."""
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return T


MARKER_RAW_PX = (0.3, 0.2)  # where the marker sits in the raw image, as fractions of its width and height


def _paint_marker(raw: Tensor, cams: Cameras) -> tuple[Tensor, Tensor]:
    """Paint an asymmetric marker into raw frames [N, 3, H, W] at :data:`MARKER_RAW_PX`: a white 3x3 square with a
    2-pixel white tail to its right, on a black 7x9 patch (luma only: H.264's half-resolution chroma would move a
    coloured mark). Returns (frames, the world point [N, 3] 1 m deep on the ray of the square's centre pixel)."""
    from ..geometry.plucker import camera_directions

    H, W = raw.shape[-2:]
    col, row = int(MARKER_RAW_PX[0] * W), int(MARKER_RAW_PX[1] * H)
    out = raw.clone()
    out[:, :, row - 3:row + 4, col - 3:col + 6] = 0.0
    out[:, :, row - 1:row + 2, col - 1:col + 2] = 1.0
    out[:, :, row, col + 2:col + 4] = 1.0
    d = camera_directions(cams.K, H, W, cams.fisheye)[:, row, col]  # [N, 3] the ray of that pixel's centre
    p_cam = d / d[:, 2:3]
    world = (cams.c2w[:, :3, :3] @ p_cam[..., None])[..., 0] + cams.c2w[:, :3, 3]
    return out, world


def t_device_camera() -> Tensor:
    """[4, 4] float64 camera -> device transform of the fixture's RGB camera (as its calibration file holds it)."""
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.from_numpy(_quat_R(T_DEVICE_CAMERA_Q))
    T[:3, 3] = torch.tensor(T_DEVICE_CAMERA_T, dtype=torch.float64)
    return T


def _extra_exo_c2w(scene, k: int) -> Tensor:
    """c2w [4, 4] of exo camera k >= 1: the exo eye turned about the vertical through the exo target."""
    from .synthetic_scene import ROOM_HI, ROOM_LO

    eye = scene.exo_c2w[0, :3, 3].to(torch.float64)
    target = scene.exo_target[0].to(torch.float64)
    lo, hi = torch.tensor(ROOM_LO, dtype=torch.float64) + 0.2, torch.tensor(ROOM_HI, dtype=torch.float64) - 0.2
    for angle in (35.0 * k, -35.0 * k, 20.0 * k, -20.0 * k, 10.0 * k):
        a = math.radians(angle)
        rel = eye - target
        turned = torch.tensor([math.cos(a) * rel[0] - math.sin(a) * rel[1],
                               math.sin(a) * rel[0] + math.cos(a) * rel[1], rel[2]], dtype=torch.float64)
        new = target + turned
        if bool(((new > lo) & (new < hi)).all()):
            return look_at(new, target).to(torch.float64)
    return scene.exo_c2w[0].to(torch.float64)


def _fmt(x: float) -> str:
    return repr(float(x))


def _gopro_csv(exo: dict[str, Cameras]) -> str:
    header = ["cam_uid", "graph_uid", "tx_world_cam", "ty_world_cam", "tz_world_cam", "qx_world_cam",
              "qy_world_cam", "qz_world_cam", "qw_world_cam", "image_width", "image_height", "intrinsics_type",
              *(f"intrinsics_{i}" for i in range(8)), "start_frame_idx", "end_frame_idx", "quality"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for name, cam in exo.items():
        c2w = cam.c2w[0].to(torch.float64).numpy()
        q = _R_quat_xyzw(c2w[:3, :3])
        W, H = cam.width * CALIB_SCALE, cam.height * CALIB_SCALE
        K = cam.K[0].to(torch.float64).numpy() * np.array([W, H, W, H])
        K[2:] -= CENTRE0_TO_OURS_PX  # the file's pixel centres are at (0, 0) (projectaria_tools' convention)
        w.writerow([name, "synthetic-world", *map(_fmt, c2w[:3, 3]), *map(_fmt, q), W, H, "KANNALABRANDTK3",
                    *map(_fmt, K), *map(_fmt, cam.fisheye[0].tolist()), -1, -1, 1])
    return out.getvalue()


def _trajectory_csv(times_us: np.ndarray, T_world_device: np.ndarray) -> str:
    header = ["graph_uid", "tracking_timestamp_us", "utc_timestamp_ns", "tx_world_device", "ty_world_device",
              "tz_world_device", "qx_world_device", "qy_world_device", "qz_world_device", "qw_world_device",
              "device_linear_velocity_x_device", "device_linear_velocity_y_device",
              "device_linear_velocity_z_device", "angular_velocity_x_device", "angular_velocity_y_device",
              "angular_velocity_z_device", "gravity_x_world", "gravity_y_world", "gravity_z_world", "quality_score"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for t, T in zip(times_us, T_world_device):
        q = _R_quat_xyzw(T[:3, :3])
        w.writerow(["synthetic-world", int(t), int(t) * 1000 + 1_700_000_000_000_000_000, *map(_fmt, T[:3, 3]),
                    *map(_fmt, q), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -9.81, 1.0])
    return out.getvalue()


def _online_calibration(params15: list[float], stamps_us: list[int], image_sizes: bool) -> str:
    w, x, y, z = np.asarray(T_DEVICE_CAMERA_Q, dtype=np.float64) / np.linalg.norm(T_DEVICE_CAMERA_Q)
    cam = {"Calibrated": True, "Label": "camera-rgb", "SerialNumber": "synthetic-rgb",
           "Projection": {"Description": "see FisheyeRadTanThinPrism", "Name": "FisheyeRadTanThinPrism",
                          "Params": [float(p) for p in params15]},
           "T_Device_Camera": {"Translation": [float(v) for v in T_DEVICE_CAMERA_T],
                               "UnitQuaternion": [float(w), [float(x), float(y), float(z)]]}}
    lines = []
    for t in stamps_us:
        doc = {"tracking_timestamp_us": int(t), "utc_timestamp_ns": int(t) * 1000 + 1_700_000_000_000_000_000,
               "CameraCalibrations": [cam], "ImuCalibrations": []}
        if image_sizes:
            doc["ImageSizes"] = [[SENSOR_SIZE, SENSOR_SIZE]]
        lines.append(json.dumps(doc))
    return "\n".join(lines) + "\n"


def _timesync_csv(exo_names: list[str], times_us: np.ndarray, pad: int, step_us: int) -> str:
    all_us = np.concatenate([times_us[0] - step_us * np.arange(pad, 0, -1), times_us,
                             times_us[-1] + step_us * np.arange(1, pad + 1)])
    header = [f"{ARIA}_214-1_capture_timestamp_ns", f"{ARIA}_214-1_frame_number"]
    for name in exo_names:
        header += [f"{name}_0_capture_timestamp_ns", f"{name}_0_frame_number"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for i, t in enumerate(all_us):
        row = [int(t) * 1000, i]
        for _ in exo_names:
            row += [int(t) * 1000 + 17, i]
        w.writerow(row)
    return out.getvalue()


def _take_entry(take_name: str, take_uid: str, capture_name: str, capture_uid: str, exo_names: list[str],
                n: int, fps: float, pad: int, dropped: bool, seed: int) -> dict:
    videos = {name: {"0": {"cam_id": name, "stream_id": "0", "stream_name": "0", "is_collage": False,
                           "relative_path": f"frame_aligned_videos/{name}.mp4", "_s3_path": None}}
              for name in exo_names}
    videos[ARIA] = {"rgb": {"cam_id": ARIA, "stream_id": "214-1", "stream_name": "rgb", "is_collage": False,
                            "relative_path": f"frame_aligned_videos/{ARIA}_214-1.mp4", "_s3_path": None}}
    cameras = [{"cam_id": name, "is_ego": False, "device_type": "gopro"} for name in exo_names]
    cameras.append({"cam_id": ARIA, "is_ego": True, "device_type": "aria"})
    return {
        "take_uid": take_uid, "take_name": take_name, "root_dir": f"takes/{take_name}",
        "capture_uid": capture_uid,
        "capture": {"capture_uid": capture_uid, "capture_name": capture_name, "cameras": cameras},
        "university_id": "syn2seq", "university_name": "syn2seq synthetic",
        "parent_task_id": 9000, "parent_task_name": "Synthetic Tabletop", "task_id": 9001,
        "task_name": "Move Objects", "take_idx": 1, "is_dropped": bool(dropped), "validated": True,
        "best_exo": exo_names[-1] if len(exo_names) > 1 else exo_names[0],
        "duration_sec": n / fps, "task_start_sec": 0.0, "task_end_sec": n / fps,
        # frame i of the videos is timesync row timesync_start_idx + 1 + i; end - start - 1 frames
        "timesync_start_idx": pad - 1, "timesync_end_idx": pad + n,
        "frame_aligned_videos": videos, "has_trimmed_vrs": False, "is_narrated": False,
        "syn2seq_seed": int(seed),
    }


def write_egoexo4d_fixture(root, seeds, config=None, *, exo_cameras: int = 2, damaged=(), splits=SPLITS,
                           image_sizes: bool = True, overwrite: bool = False, marker: bool = False,
                           progress=None) -> list[FixtureTake]:
    """Render one take per seed (plus one per ``damaged`` kind) into ``root`` in the Ego-Exo4D release layout.

    config: a :class:`~syn2seq_core.data.synthetic.SyntheticConfig` (``size`` both views, ``ego_frames`` frames
    per take, ``fps`` with ``1e6 / fps`` a whole number); exo_cameras: 1 .. 4 static exo cameras; splits: the
    official split of take i is ``splits[i % len(splits)]``; progress: called once per take. Returns what was
    written, with the exact cameras (see :class:`FixtureTake`). marker: paint an asymmetric marker into the Aria
    frames (before they are turned as the release turns them), for orientation checks by eye and by test.
    """
    from ..io.video import write_video
    from .egoexo4d import rotate90
    from .synthetic import SyntheticConfig, _threads, render
    from .synthetic_scene import ego_c2w, sample_scene

    config = config or SyntheticConfig()
    seeds = [int(s) for s in seeds]
    require(1 <= int(exo_cameras) <= 4, "exo_cameras", "1 to 4 static exo cameras", exo_cameras)
    bad = [d for d in damaged if d not in DAMAGE_KINDS]
    require(not bad, "damaged", f"kinds among {list(DAMAGE_KINDS)}", bad)
    step_us = 1e6 / config.fps
    require(abs(step_us - round(step_us)) < 1e-9, "fps", "a rate whose frame period is a whole number of "
            "microseconds (e.g. 8, 10, 16, 20, 25)", config.fps)
    step_us = int(round(step_us))
    require(step_us % 4 == 0, "fps", "a frame period divisible by 4 microseconds", config.fps)
    out = Path(root).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise Syn2SeqInputError("--out", "an empty or new folder for the Ego-Exo4D layout", f"'{out}' has files",
                                    "Pass --overwrite to replace it")
        for name in ("takes", "captures", "annotations"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    size = config.size
    n = config.ego_frames
    pad = 3
    jobs = [(s, None) for s in seeds] + [(max(seeds, default=0) + 1 + k, d) for k, d in enumerate(damaged)]
    takes, captures, split_map, results = [], [], {}, []
    Tdc = t_device_camera()
    f_px_offset = np.array(EGO_PRINCIPAL_OFFSET_PX)
    for i, (seed, damage) in enumerate(jobs):
        capture_name = f"syn2seq_synthetic_{i:05d}"
        take_name = f"{capture_name}_1"
        take_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"syn2seq-egoexo4d-take-{seed}-{i}"))
        capture_uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"syn2seq-egoexo4d-capture-{seed}-{i}"))
        split = splits[i % len(splits)]
        exo_names = [f"cam{k + 1:02d}" for k in range(int(exo_cameras))]
        take_dir = out / "takes" / take_name
        t0 = T0_US + i * 1_000_000_000
        times_us = t0 + step_us * np.arange(n, dtype=np.int64)
        scene = sample_scene(seed, config)
        scene_t = torch.arange(n, dtype=torch.float32) / float(config.fps)
        # exo cameras (static, KB3)
        exo = {}
        for k, name in enumerate(exo_names):
            c2w = scene.exo_c2w[0].to(torch.float64) if k == 0 else _extra_exo_c2w(scene, k)
            exo[name] = Cameras(c2w[None], scene.exo_K[0].to(torch.float64)[None], size, size,
                                torch.tensor(EXO_KB3, dtype=torch.float64)[None])
        # ego camera (FISHEYE624 through T_device_camera). The raw camera-rgb sensor is the world's upright ego
        # camera turned 90 degrees counter-clockwise about its optical axis (SENSOR_TURN), so that the stored
        # video -- the raw image turned 90 degrees clockwise, as the release stores it -- is upright again.
        f_norm = float(scene.ego_K[0, 0])
        f_px = f_norm * SENSOR_SIZE
        cx, cy = SENSOR_SIZE / 2 - 0.5 + f_px_offset[0], SENSOR_SIZE / 2 - 0.5 + f_px_offset[1]
        params15 = [f_px, cx, cy, *EGO_FISHEYE624]  # the raw image's, as online_calibration.jsonl holds them
        K_raw = torch.tensor([f_px / SENSOR_SIZE, f_px / SENSOR_SIZE, (cx + 0.5) / SENSOR_SIZE,
                              (cy + 0.5) / SENSOR_SIZE], dtype=torch.float64)
        turn = sensor_turn()
        raw_c2w = ego_c2w(scene, scene_t)[0].to(torch.float64) @ turn  # [N, 4, 4]
        ego_raw = Cameras(raw_c2w, K_raw[None], size, size, torch.tensor(EGO_FISHEYE624, dtype=torch.float64)[None])
        ego = rotate90(None, ego_raw, clockwise=True)[1]  # the camera of the stored (turned) frames
        sub = step_us // 4
        traj_us = t0 + sub * np.arange(4 * (n - 1) + 1, dtype=np.int64)
        traj_c2w = ego_c2w(scene, torch.from_numpy((traj_us - t0) / 1e6).to(torch.float32))[0].to(torch.float64)
        T_wd = (traj_c2w @ turn @ invert_pose(Tdc)[None]).numpy()
        T_wd[:, :3, :3] = _orthonormal(T_wd[:, :3, :3])  # exactly what the file's quaternions hold
        with _threads(config.threads):
            videos = {name: render(scene, Cameras(cam.c2w.expand(n, 4, 4), cam.K, size, size, cam.fisheye), scene_t,
                                   supersample=config.supersample, near=config.near)
                      for name, cam in exo.items()}
            raw = render(scene, ego_raw, scene_t, supersample=config.supersample, near=config.near)
        marker_world = None
        if marker:
            raw, marker_world = _paint_marker(raw, ego_raw)
        # the release's Aria stream: raw pixel (x, y) at (W - 1 - y, x), i.e. the raw image turned clockwise
        videos[f"{ARIA}_214-1"] = torch.rot90(raw, k=-1, dims=(-2, -1))
        # write the take
        (take_dir / "frame_aligned_videos").mkdir(parents=True, exist_ok=True)
        if damage == "short_video":
            videos[f"{ARIA}_214-1"] = videos[f"{ARIA}_214-1"][:-1]
        for name, frames in videos.items():
            write_video(take_dir / "frame_aligned_videos" / f"{name}.mp4", frames, fps=config.fps, crf=12)
        traj = take_dir / "trajectory"
        traj.mkdir(parents=True, exist_ok=True)
        write_text_atomic(traj / "gopro_calibs.csv", _gopro_csv(exo))
        write_text_atomic(traj / "closed_loop_trajectory.csv", _trajectory_csv(traj_us, T_wd))
        write_text_atomic(traj / "online_calibration.jsonl",
                          _online_calibration(params15, [int(times_us[0]), int(times_us[-1])], image_sizes))
        cap_dir = out / "captures" / capture_name
        write_text_atomic(cap_dir / "timesync.csv", _timesync_csv(exo_names, times_us, pad, step_us))
        if damage == "missing_folder":
            shutil.rmtree(take_dir)
        elif damage == "missing_video":
            (take_dir / "frame_aligned_videos" / f"{ARIA}_214-1.mp4").unlink()
        elif damage == "missing_trajectory":
            (traj / "closed_loop_trajectory.csv").unlink()
        elif damage == "missing_calibration":
            (traj / "online_calibration.jsonl").unlink()
        elif damage == "damaged_calibration":
            text = (traj / "online_calibration.jsonl").read_text()
            write_text_atomic(traj / "online_calibration.jsonl", text[: len(text) // 3])
        elif damage == "short_trajectory":
            lines = (traj / "closed_loop_trajectory.csv").read_text().splitlines()
            write_text_atomic(traj / "closed_loop_trajectory.csv", "\n".join(lines[:-2]) + "\n")
        elif damage == "missing_timesync":
            (cap_dir / "timesync.csv").unlink()
        elif damage == "damaged_csv":
            text = (traj / "gopro_calibs.csv").read_text()
            write_text_atomic(traj / "gopro_calibs.csv", text.split("\n", 1)[1])
        takes.append(_take_entry(take_name, take_uid, capture_name, capture_uid, exo_names, n, config.fps, pad,
                                 damage == "dropped", seed))
        if damage == "outside_video":  # the video exists, but outside the take folder
            moved = out / f"{take_name}_{ARIA}_214-1.mp4"
            (take_dir / "frame_aligned_videos" / f"{ARIA}_214-1.mp4").replace(moved)
            takes[-1]["frame_aligned_videos"][ARIA]["rgb"]["relative_path"] = f"../../{moved.name}"
        captures.append({"capture_uid": capture_uid, "capture_name": capture_name,
                         "root_dir": f"captures/{capture_name}", "university_id": "syn2seq",
                         "cameras": takes[-1]["capture"]["cameras"]})
        split_map[take_uid] = split
        results.append(FixtureTake(take_name, take_uid, capture_name, split, exo, ego, Tdc,
                                   torch.from_numpy(T_wd[::4].copy()), torch.from_numpy(times_us), damage, ego_raw,
                                   marker_world))
        if progress is not None:
            progress(take_name)
    write_text_atomic(out / "takes.json", json.dumps(takes, indent=1))
    write_text_atomic(out / "captures.json", json.dumps(captures, indent=1))
    write_text_atomic(out / "annotations" / "splits.json",
                      json.dumps({"take_uid_to_split": split_map, "take_uid_to_benchmark": {}}, indent=1))
    return results
