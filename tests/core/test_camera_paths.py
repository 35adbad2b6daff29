"""geometry/camera_paths.py: each preset against its analytic poses, keyframe paths, and refused inputs."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import (CAMERA_PATH_PRESETS, Cameras, camera_path, fov_to_intrinsics, frame_times,
                                   keyframe_path, look_at)
from syn2seq_core.io.poses import load_camera_track, save_cameras

F64 = torch.float64
W, H = 320, 240
POSITION = (1.0, -3.0, 2.0)
TARGET = (0.5, 0.2, 0.7)


def project(cams: Cameras, X) -> torch.Tensor:
    """Slow reference pinhole projection of the world point X [3] (or one per camera [N, 3]) -> pixels [N, 2]."""
    X = torch.as_tensor(X, dtype=F64).expand(len(cams), 3)
    out = []
    for i in range(len(cams)):
        R, t = cams.c2w[i, :3, :3], cams.c2w[i, :3, 3]
        x = R.T @ (X[i] - t)
        assert x[2] > 0, "the point must be in front of the camera"
        fx, fy, cx, cy = (cams.K[i] * torch.tensor([cams.width, cams.height] * 2, dtype=F64)).tolist()
        out.append(torch.stack([fx * x[0] / x[2] + cx, fy * x[1] / x[2] + cy]))
    return torch.stack(out)


def s_of(n):
    return torch.linspace(0, 1, n, dtype=F64)


def rotvec(R) -> np.ndarray:
    return Rotation.from_matrix(np.asarray(R)).as_rotvec()


def first_camera(position=POSITION, target=TARGET) -> torch.Tensor:
    return look_at(torch.tensor(position, dtype=F64), torch.tensor(target, dtype=F64))


def assert_upright(cams: Cameras):
    """No roll: the image x axis is horizontal and the image y axis (down) points down in the world (z up)."""
    torch.testing.assert_close(cams.c2w[:, 2, 0], torch.zeros(len(cams), dtype=F64), atol=1e-12, rtol=0)
    assert bool((cams.c2w[:, 2, 1] < 0).all())


# --- presets ---------------------------------------------------------------------------------------------
def test_presets_are_listed_and_unknown_ones_name_them():
    assert CAMERA_PATH_PRESETS == ("orbit", "dolly", "pan", "tilt", "walk", "look_at", "keyframes")
    with pytest.raises(Syn2SeqInputError, match=r"preset: expected one of \[.*'orbit'.*\], got 'spin'"):
        camera_path("spin", 10, W, H)


@pytest.mark.parametrize("angle", [90.0, 300.0, -45.0, 720.0])
def test_orbit_keeps_the_target_at_the_principal_point_on_a_circle(angle):
    n = 37
    cams = camera_path("orbit", n, W, H, fov_deg=70.0, position=POSITION, target=TARGET, angle_deg=angle)
    assert len(cams) == n and cams.c2w.dtype == F64 and cams.size == (W, H)
    uv = project(cams, TARGET)
    principal = torch.tensor([cams.K[0, 2] * W, cams.K[0, 3] * H], dtype=F64)
    assert float((uv - principal).abs().max()) < 1e-6  # pixels
    # Analytic centres: constant horizontal radius and height, azimuth a0 + angle * s (counter-clockwise).
    rel0 = torch.tensor(POSITION, dtype=F64) - torch.tensor(TARGET, dtype=F64)
    radius = float(rel0[:2].norm())
    a = math.atan2(float(rel0[1]), float(rel0[0])) + torch.deg2rad(torch.tensor(angle, dtype=F64)) * s_of(n)
    expected = torch.stack([TARGET[0] + radius * torch.cos(a), TARGET[1] + radius * torch.sin(a),
                            torch.full_like(a, POSITION[2])], -1)
    torch.testing.assert_close(cams.centers, expected, atol=1e-12, rtol=0)
    rel = cams.centers - torch.tensor(TARGET, dtype=F64)
    torch.testing.assert_close(rel[:, :2].norm(dim=-1), torch.full((n,), radius, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.c2w[0], first_camera(), atol=1e-12, rtol=0)
    assert_upright(cams)


def test_orbit_positive_angle_moves_the_camera_to_its_right():
    cams = camera_path("orbit", 3, W, H, position=POSITION, target=TARGET, angle_deg=10.0)
    assert float((cams.centers[1] - cams.centers[0]) @ cams.c2w[0, :3, 0]) > 0


def test_dolly_moves_along_the_view_axis_with_a_fixed_orientation():
    n, distance = 11, -2.5
    cams = camera_path("dolly", n, W, H, position=POSITION, target=TARGET, distance=distance)
    first = first_camera()
    expected = torch.tensor(POSITION, dtype=F64) + distance * s_of(n)[:, None] * first[:3, 2]
    torch.testing.assert_close(cams.centers, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.rotations, first[:3, :3].expand(n, 3, 3), atol=0, rtol=0)
    # A straight line: every centre lies on the first camera's optical axis.
    off_axis = torch.linalg.cross(cams.centers - cams.centers[0], first[:3, 2].expand(n, 3))
    assert float(off_axis.norm(dim=-1).max()) < 1e-12
    # The target stays on the optical axis (positive distance approaches it).
    uv = project(camera_path("dolly", n, W, H, position=POSITION, target=TARGET, distance=1.0), TARGET)
    assert float((uv - torch.tensor([W / 2, H / 2], dtype=F64)).abs().max()) < 1e-6


def test_walk_moves_horizontally_at_speed_over_the_fps_times():
    n, fps, speed = 25, 12.5, 1.4
    cams = camera_path("walk", n, W, H, fps=fps, position=POSITION, target=TARGET, speed=speed)
    first = first_camera()
    ahead = first[:3, 2].clone()
    ahead[2] = 0
    ahead = ahead / ahead.norm()
    expected = torch.tensor(POSITION, dtype=F64) + speed * frame_times(n, fps)[:, None] * ahead
    torch.testing.assert_close(cams.centers, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.centers[:, 2], torch.full((n,), POSITION[2], dtype=F64), atol=1e-12, rtol=0)
    steps = (cams.centers[1:] - cams.centers[:-1]).norm(dim=-1)
    torch.testing.assert_close(steps, torch.full((n - 1,), speed / fps, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.rotations, first[:3, :3].expand(n, 3, 3), atol=0, rtol=0)  # still looks down


@pytest.mark.parametrize("angle", [60.0, -120.0])
def test_pan_turns_about_world_up_through_a_fixed_centre(angle):
    n = 13
    cams = camera_path("pan", n, W, H, position=POSITION, target=TARGET, angle_deg=angle)
    torch.testing.assert_close(cams.centers, torch.tensor(POSITION, dtype=F64).expand(n, 3), atol=0, rtol=0)
    R0 = cams.rotations[0]
    for i in range(n):
        turn = rotvec(cams.rotations[i] @ R0.T)  # world-frame rotation from the first camera
        np.testing.assert_allclose(turn, [0, 0, -math.radians(angle) * i / (n - 1)], atol=1e-12)
    assert_upright(cams)
    # Positive = to the right: the view direction swings towards the first camera's right axis.
    assert math.copysign(1, float(cams.c2w[1, :3, 2] @ cams.c2w[0, :3, 0])) == math.copysign(1, angle)


@pytest.mark.parametrize("angle", [30.0, -50.0])
def test_tilt_turns_about_the_camera_right_axis(angle):
    n = 9
    cams = camera_path("tilt", n, W, H, position=POSITION, target=TARGET, angle_deg=angle)
    torch.testing.assert_close(cams.centers, torch.tensor(POSITION, dtype=F64).expand(n, 3), atol=0, rtol=0)
    R0 = cams.rotations[0]
    for i in range(n):
        turn = rotvec(R0.T @ cams.rotations[i])  # camera-frame rotation: about camera x only
        np.testing.assert_allclose(turn, [math.radians(angle) * i / (n - 1), 0, 0], atol=1e-12)
    torch.testing.assert_close(cams.c2w[:, :3, 0], R0[:, 0].expand(n, 3), atol=1e-12, rtol=0)  # right axis fixed
    # Positive = up: the view direction rises.
    assert math.copysign(1, float(cams.c2w[-1, 2, 2] - cams.c2w[0, 2, 2])) == math.copysign(1, angle)


def test_look_at_slides_sideways_and_keeps_the_target_centred():
    n, distance = 15, 3.0
    cams = camera_path("look_at", n, W, H, position=POSITION, target=TARGET, distance=distance)
    first = first_camera()
    expected = torch.tensor(POSITION, dtype=F64) + distance * s_of(n)[:, None] * first[:3, 0]
    torch.testing.assert_close(cams.centers, expected, atol=1e-12, rtol=0)
    uv = project(cams, TARGET)
    assert float((uv - torch.tensor([W / 2, H / 2], dtype=F64)).abs().max()) < 1e-6
    assert_upright(cams)
    static = camera_path("look_at", 4, W, H, position=POSITION, target=TARGET, distance=0.0)
    torch.testing.assert_close(static.c2w, first.expand(4, 4, 4), atol=1e-12, rtol=0)


@pytest.mark.parametrize("preset", [p for p in CAMERA_PATH_PRESETS if p != "keyframes"])
def test_one_frame_is_the_first_camera(preset):
    cams = camera_path(preset, 1, W, H, position=POSITION, target=TARGET)
    assert len(cams) == 1
    torch.testing.assert_close(cams.c2w[0], first_camera(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("fov", [2.0, 45.0, 90.0, 170.0])
def test_fov_is_horizontal_with_square_pixels_and_a_centred_principal_point(fov):
    cams = camera_path("dolly", 2, W, H, fov_deg=fov, position=(0, 0, 0), target=(0, 1, 0))
    Kp = cams.K_pixels()[0]
    assert float(Kp[0, 0] - Kp[1, 1]).__abs__() < 1e-9 and float(Kp[0, 2]) == W / 2 and float(Kp[1, 2]) == H / 2
    # A point at fov / 2 to the right of the optical axis lands on the right image border.
    half = math.radians(fov) / 2
    right, forward = cams.c2w[0, :3, 0], cams.c2w[0, :3, 2]
    uv = project(cams[0], math.sin(half) * right + math.cos(half) * forward)
    assert abs(float(uv[0, 0]) - W) < 1e-6 and abs(float(uv[0, 1]) - H / 2) < 1e-6
    torch.testing.assert_close(fov_to_intrinsics(fov, W, H), cams.K[0])


def test_frame_times_and_saving_the_path_with_them(tmp_path):
    torch.testing.assert_close(frame_times(4, 8.0), torch.tensor([0, 0.125, 0.25, 0.375], dtype=F64))
    cams = camera_path("orbit", 6, W, H, fps=30.0)
    track = load_camera_track(save_cameras(cams, tmp_path, timestamps=frame_times(len(cams), 30.0)))
    torch.testing.assert_close(track.cameras.c2w, cams.c2w, atol=0, rtol=0)
    torch.testing.assert_close(track.timestamps, torch.arange(6, dtype=F64) / 30.0)


# --- keyframes -------------------------------------------------------------------------------------------
KEYS = [
    {"frame": 0, "position": [0.0, -4.0, 1.6], "look_at": [0.0, 0.0, 1.0], "fov_deg": 60.0},
    {"frame": 10, "position": [3.0, -2.0, 1.8], "look_at": [0.0, 0.5, 1.0], "fov_deg": 40.0},
    {"frame": 16, "position": [3.5, 1.0, 2.2], "look_at": [-0.5, 0.0, 0.8]},
    {"frame": 30, "position": [0.0, 3.0, 1.5], "look_at": [0.0, 0.0, 1.2], "fov_deg": 90.0},
]


def key_rotation(key) -> np.ndarray:
    return look_at(torch.tensor(key["position"], dtype=F64), torch.tensor(key["look_at"], dtype=F64))[:3, :3].numpy()


def test_keyframe_path_passes_exactly_through_its_keyframes():
    cams = keyframe_path(KEYS, 31, W, H, fov_deg=50.0)
    for key in KEYS:
        f = key["frame"]
        assert cams.centers[f].tolist() == key["position"]
        np.testing.assert_array_equal(cams.rotations[f].numpy(), key_rotation(key))
        torch.testing.assert_close(cams.K[f], fov_to_intrinsics(key.get("fov_deg", 50.0), W, H), atol=1e-15, rtol=0)


def test_keyframe_rotations_are_slerped_between_keyframes():
    cams = keyframe_path(KEYS, 31, W, H)
    for a, b in itertools.pairwise(KEYS):
        slerp = Slerp([a["frame"], b["frame"]], Rotation.from_matrix([key_rotation(a), key_rotation(b)]))
        for f in range(a["frame"], b["frame"] + 1):
            np.testing.assert_allclose(cams.rotations[f].numpy(), slerp([f]).as_matrix()[0], atol=1e-7)


def test_keyframe_fov_is_linear_between_keyframes_and_defaults_to_the_argument():
    cams = keyframe_path(KEYS, 31, W, H, fov_deg=50.0)
    fovs = [k.get("fov_deg", 50.0) for k in KEYS]
    frames = [k["frame"] for k in KEYS]
    expected = fov_to_intrinsics(torch.from_numpy(np.interp(np.arange(31), frames, fovs)), W, H)
    torch.testing.assert_close(cams.K, expected)


def test_two_keyframes_ease_in_and_out_along_a_cubic():
    """A clamped cubic through two points is p0 + (p1 - p0)(3s^2 - 2s^3): zero velocity at both ends."""
    a, b = [0.0, -4.0, 1.0], [2.0, 0.0, 3.0]
    keys = [{"position": a, "quaternion": [1, 0, 0, 0]}, {"position": b, "quaternion": [0, 1, 0, 0]}]
    n = 21
    cams = keyframe_path(keys, n, W, H)
    s = s_of(n)[:, None]
    expected = torch.tensor(a, dtype=F64) + (torch.tensor(b, dtype=F64) - torch.tensor(a, dtype=F64)) * (3 * s**2 - 2 * s**3)
    torch.testing.assert_close(cams.centers, expected, atol=1e-12, rtol=0)
    # Quaternion (w, x, y, z) = (0, 1, 0, 0) is a half turn about x; the middle frame is a quarter turn.
    np.testing.assert_allclose(rotvec(cams.rotations[10]), [math.pi / 2, 0, 0], atol=1e-7)


def test_keyframe_path_is_smooth_and_holds_outside_the_keyframes():
    keys = [{**k, "frame": k["frame"] + 5} for k in KEYS]
    cams = keyframe_path(keys, 45, W, H)
    torch.testing.assert_close(cams.c2w[:5], cams.c2w[5].expand(5, 4, 4), atol=0, rtol=0)
    torch.testing.assert_close(cams.c2w[35:], cams.c2w[35].expand(10, 4, 4), atol=0, rtol=0)
    # C2 spline: the second difference of the centres changes little from frame to frame.
    acc = cams.centers[7:34] - 2 * cams.centers[6:33] + cams.centers[5:32]
    assert float((acc[1:] - acc[:-1]).norm(dim=-1).max()) < 0.05


def test_keyframes_without_frames_are_spread_evenly_and_times_use_fps():
    plain = [{k: v for k, v in key.items() if k != "frame"} for key in KEYS]
    cams = keyframe_path(plain, 31, W, H)
    for i, key in enumerate(plain):
        assert cams.centers[i * 10].tolist() == key["position"]
    timed = [{**{k: v for k, v in key.items() if k != "frame"}, "time": key["frame"] / 10.0} for key in KEYS]
    torch.testing.assert_close(keyframe_path(timed, 31, W, H, fps=10.0).c2w, keyframe_path(KEYS, 31, W, H).c2w)


def test_the_orientation_forms_agree():
    key = KEYS[1]
    R = key_rotation(key)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, key["position"]
    q = Rotation.from_matrix(R).as_quat()  # scipy: x, y, z, w
    forms = [
        {"look_at": key["look_at"], "position": key["position"]},
        {"rotation": R.tolist(), "position": key["position"]},
        {"quaternion": [q[3], q[0], q[1], q[2]], "position": key["position"]},
        {"c2w": T.tolist()},
        {"c2w": T[:3].tolist()},
    ]
    ref = keyframe_path([forms[0]], 3, W, H).c2w
    for form in forms[1:]:
        torch.testing.assert_close(keyframe_path([form], 3, W, H).c2w, ref, atol=1e-12, rtol=0)


def test_keyframes_as_json_text_and_through_camera_path():
    text = json.dumps(KEYS)
    via_preset = camera_path("keyframes", 31, W, H, fov_deg=55.0, keyframes=text)
    torch.testing.assert_close(via_preset.c2w, keyframe_path(KEYS, 31, W, H).c2w)
    torch.testing.assert_close(via_preset.K, keyframe_path(KEYS, 31, W, H, fov_deg=55.0).K)


# --- refused inputs --------------------------------------------------------------------------------------
def refused(fn, *args, name, match, **kwargs):
    with pytest.raises(Syn2SeqInputError, match=match) as info:
        fn(*args, **kwargs)
    assert info.value.name == name, str(info.value)
    return str(info.value)


@pytest.mark.parametrize(("kwargs", "name", "match"), [
    ({"frames": 0}, "frames", r"frames: expected an integer in \[1, 10000\], got 0"),
    ({"frames": 2.5}, "frames", r"expected an integer .* got 2.5"),
    ({"width": 0}, "width", r"width: expected an integer in \[1, 8192\], got 0"),
    ({"fov_deg": 0.0}, "fov_deg", r"fov_deg: expected a number in \[2.0, 170.0\], got 0.0"),
    ({"fov_deg": 2.0, "width": 1000, "height": 100}, "fov_deg",
     r"fov_deg: expected at least 11.4 degrees for a 1000x100 image \(normalised focal lengths up to 50\), got 2"),
    ({"fov_deg": float("nan")}, "fov_deg", r"fov_deg: expected a finite number, got nan"),
    ({"fps": 0}, "fps", r"fps: expected a number in \(0, 1000\], got 0"),
    ({"position": (0, 0)}, "position", r"position: expected 3 numbers \[x, y, z\] \(metres\), got 2 values"),
    ({"position": (0, 0, "a")}, "position[2]", r"position\[2\]: expected a finite number, got 'a'"),
    ({"target": (0, -4, 1.6)}, "target", r"target: expected a point other than the camera position"),
    ({"target": (0, -4, 0)}, "target", r"target: expected a point not straight above or below the camera"),
    ({"keyframes": []}, "keyframes", r"keyframes: expected None for preset 'dolly'"),
])
def test_bad_preset_inputs_are_refused_naming_the_field(kwargs, name, match):
    args = {"frames": 10, "width": W, "height": H, **kwargs}
    refused(camera_path, "dolly", args.pop("frames"), args.pop("width"), args.pop("height"), name=name, match=match,
            **args)


def test_orbit_straight_above_the_target_and_other_preset_refusals():
    refused(camera_path, "orbit", 5, W, H, position=(0.5, 0.2, 5.0), target=TARGET, name="position",
            match="not straight above or below")
    refused(camera_path, "pan", 5, W, H, angle_deg=1e6, name="angle_deg",
            match=r"angle_deg: expected a number in \[-3600.0, 3600.0\], got 1000000.0")
    refused(camera_path, "walk", 5, W, H, speed=-1.0, name="speed", match=r"speed: expected a number in \[0.0, 100.0\]")
    refused(camera_path, "keyframes", 5, W, H, name="keyframes", match="a list of keyframes")


@pytest.mark.parametrize(("keys", "name", "match"), [
    ("[{", "keyframes", r"keyframes: expected a JSON list of keyframe objects, got invalid JSON at line 1 column 3"),
    ('{"position": [0, 0, 0]}', "keyframes", r"expected a list of keyframe objects, got dict"),
    ([], "keyframes", r"keyframes: expected 1 to 10000 keyframes, got 0"),
    ([3], "keyframes[0]", r"keyframes\[0\]: expected an object"),
    ([{"position": [0, 0, 0], "lookat": [0, 1, 0]}], "keyframes[0]", r"expected only the keys .*, got \['lookat'\]"),
    ([{"position": [0, 0, 0]}], "keyframes[0]", r"exactly one orientation key of .*, got none"),
    ([{"position": [0, 0, 0], "look_at": [0, 1, 0], "quaternion": [1, 0, 0, 0]}], "keyframes[0]",
     r"exactly one orientation key .* got \['look_at', 'quaternion'\]"),
    ([{"look_at": [0, 1, 0]}], "keyframes[0]", r"expected a 'position' \[x, y, z\], got none"),
    ([{"position": [0, 0], "look_at": [0, 1, 0]}], "keyframes[0].position", r"expected 3 numbers"),
    ([{"position": [0, 0, float("nan")], "look_at": [0, 1, 0]}], "keyframes[0].position[2]", r"a finite number"),
    ([{"position": [0, 0, 0], "look_at": [0, 0, 0]}], "keyframes[0].look_at", r"a point other than"),
    ([{"position": [0, 0, 0], "look_at": [0, 0, 2]}], "keyframes[0].look_at", r"not straight above or below"),
    ([{"position": [0, 0, 0], "quaternion": [0, 0, 0, 0]}], "keyframes[0].quaternion", r"a non-zero quaternion"),
    ([{"position": [0, 0, 0], "rotation": [[1, 0, 0], [0, 2, 0], [0, 0, 1]]}], "keyframes[0].rotation",
     r"orthonormal rotations"),
    ([{"position": [0, 0, 0], "rotation": [[1, 0, 0], [0, 1, 0]]}], "keyframes[0].rotation",
     r"expected 3x3 numbers .*, got shape \(2, 3\)"),
    ([{"position": [0, 0, 0], "c2w": np.eye(4).tolist()}], "keyframes[0]", r"'position' or 'c2w', not both"),
    ([{"frame": 0, "position": [0, 0, 0], "look_at": [0, 1, 0]}, {"position": [1, 0, 0], "look_at": [0, 1, 0]}],
     "keyframes[1]", r"expected a 'frame' or 'time' .*, got neither"),
    ([{"frame": 5, "position": [0, 0, 0], "look_at": [0, 1, 0]}, {"frame": 5, "position": [1, 0, 0], "look_at": [0, 1, 0]}],
     "keyframes[1]", r"expected a frame after keyframe 0's \(5\), got frame 5. List keyframes in time order"),
    ([{"frame": 12, "position": [0, 0, 0], "look_at": [0, 1, 0]}], "keyframes[0].frame",
     r"expected a frame in \[0, 9\] \(the path has 10 frames at 24 fps\), got 12"),
    ([{"time": 1.0, "position": [0, 0, 0], "look_at": [0, 1, 0]}], "keyframes[0].time", r"expected a frame in \[0, 9\]"),
    ([{"frame": 1, "time": 0.1, "position": [0, 0, 0], "look_at": [0, 1, 0]}], "keyframes[0]",
     r"one of 'frame' or 'time', got both"),
    ([{"position": [0, 0, 0], "look_at": [0, 1, 0], "fov_deg": 200}], "keyframes[0].fov_deg",
     r"expected a number in \[2.0, 170.0\], got 200"),
])
def test_bad_keyframes_are_refused_naming_the_keyframe_and_field(keys, name, match):
    refused(keyframe_path, keys, 10, W, H, name=name, match=match)
