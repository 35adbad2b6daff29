"""Camera pose files: every format is written here from known cameras (in the format's real layout, with an
independent writer), loaded back, and compared; every bad input names the file and, where there is one, the line.
"""

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.io.poses import FORMATS, KNOWN_FORMATS, load_cameras, save_cameras
from syn2seq_core.geometry import Cameras
from syn2seq_core.io.poses import (ARIA_RGB_DEFAULT_K, ARIA_RGB_DEFAULT_SIZE, RE10K_DEFAULT_SIZE, detect_format,
                                   load_camera_track)

TOL = dict(atol=1e-6, rtol=0.0)


def random_cameras(n, seed, width=640, height=360, fisheye=False):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.uniform(-5, 5, (n, 3))
    K = np.column_stack([rng.uniform(0.4, 1.2, n), rng.uniform(0.6, 2.0, n),
                         rng.uniform(0.4, 0.6, n), rng.uniform(0.4, 0.6, n)])
    fish = torch.from_numpy(rng.uniform(-0.05, 0.05, (n, 4))) if fisheye else None
    return Cameras(torch.from_numpy(c2w), torch.from_numpy(K), width, height, fish)


def assert_same(loaded: Cameras, cams: Cameras):
    assert loaded.size == cams.size
    torch.testing.assert_close(loaded.c2w, cams.c2w.to(torch.float64), **TOL)
    torch.testing.assert_close(loaded.K, cams.K.to(torch.float64), **TOL)
    if cams.fisheye is None:
        assert loaded.fisheye is None
    else:
        torch.testing.assert_close(loaded.fisheye, cams.fisheye.to(torch.float64), **TOL)


def load_both(path, fmt, **options):
    """Load with format='auto' and with the explicit format; both must agree; returns the explicit one."""
    auto = load_camera_track(path, **options)
    explicit = load_camera_track(path, fmt, **options)
    assert auto.format == fmt and explicit.format == fmt
    torch.testing.assert_close(auto.cameras.c2w, explicit.cameras.c2w, atol=0, rtol=0)
    return explicit


def np_pose(c2w_row):
    return np.asarray(c2w_row, dtype=np.float64)


# --- syn2seq cameras.json --------------------------------------------------------------------------
def test_syn2seq_round_trip_is_exact(tmp_path):
    cams = random_cameras(7, 0, 512, 288, fisheye=True)
    ts = [1 / 3 + i / 30 for i in range(7)]  # a plain list: must not pass through float32
    names = [f"frame_{i:03d}.png" for i in range(7)]
    written = save_cameras(cams, tmp_path / "cameras.json", timestamps=ts, names=names)
    track = load_both(written, "syn2seq")
    for a, b in ((track.cameras.c2w, cams.c2w), (track.cameras.K, cams.K), (track.cameras.fisheye, cams.fisheye),
                 (track.timestamps, torch.tensor(ts, dtype=torch.float64))):
        assert torch.equal(a, b)  # bit-exact
    assert track.names == tuple(names) and track.cameras.size == (512, 288)
    # the folder works too, and no temporary file is left behind
    assert torch.equal(load_cameras(tmp_path).c2w, cams.c2w)
    assert os.listdir(tmp_path) == ["cameras.json"]


def test_syn2seq_float32_values_survive_and_file_is_versioned(tmp_path):
    cams = random_cameras(3, 1).to(torch.float32)
    path = save_cameras(cams, tmp_path / "sub" / "cams.json")
    data = json.loads(path.read_text())
    assert data["format"] == "syn2seq.cameras" and data["version"] == 1 and data["convention"] == "opencv_c2w"
    assert "timestamp" not in data["frames"][0] and "fisheye" not in data["frames"][0]
    loaded = load_camera_track(path)
    assert loaded.timestamps is None and loaded.names is None
    assert torch.equal(loaded.cameras.c2w, cams.c2w.to(torch.float64))


def test_syn2seq_save_overwrites_atomically_and_validates(tmp_path):
    path = tmp_path / "cameras.json"
    save_cameras(random_cameras(2, 2), path)
    save_cameras(random_cameras(3, 3), path)
    assert len(load_cameras(path)) == 3 and sorted(os.listdir(tmp_path)) == ["cameras.json"]
    with pytest.raises(Syn2SeqInputError, match="timestamps"):
        save_cameras(random_cameras(3, 3), path, timestamps=[0.0, 1.0])
    with pytest.raises(Syn2SeqInputError, match="timestamps"):
        save_cameras(random_cameras(2, 3), path, timestamps=[0.0, math.nan])
    with pytest.raises(Syn2SeqInputError, match="names"):
        save_cameras(random_cameras(2, 3), path, names=["a"])
    with pytest.raises(Syn2SeqInputError, match="cams"):
        save_cameras(torch.eye(4), path)
    assert len(load_cameras(path)) == 3  # failed saves left the file alone


def test_syn2seq_resize_option(tmp_path):
    cams = random_cameras(2, 4, 640, 360)
    save_cameras(cams, tmp_path / "c.json")
    small = load_cameras(tmp_path / "c.json", width=320, height=180)
    assert small.size == (320, 180) and torch.equal(small.K, cams.K)
    with pytest.raises(Syn2SeqInputError, match="aspect ratio"):
        load_cameras(tmp_path / "c.json", width=256, height=256)
    with pytest.raises(Syn2SeqInputError, match="both width and height"):
        load_cameras(tmp_path / "c.json", width=256)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(version=2), "newer Syn2Seq"),
    (lambda d: d.update(convention="opengl_c2w"), "convention"),
    (lambda d: d.update(frames=[]), "at least one camera"),
    (lambda d: d["frames"][1].pop("c2w"), r"frames\[1\].*c2w"),
    (lambda d: d["frames"][1].update(K=[0.5, 0.5, 0.5]), r"frames\[1\].*shape \(4,\)"),
    (lambda d: d["frames"][0].update(timestamp=1.0), r"frames\[1\].*timestamp"),
    (lambda d: d["frames"][1]["c2w"][0].__setitem__(0, 3.0), r"frames\[1\].*orthonormal"),
    (lambda d: d["frames"][1]["K"].__setitem__(0, float("nan")), r"frames\[1\].*finite"),
    (lambda d: d["frames"][0].update(K=[500.0, 500.0, 320.0, 180.0]), "Pixel intrinsics"),
])
def test_syn2seq_bad_files_name_file_and_frame(tmp_path, edit, message):
    path = save_cameras(random_cameras(2, 5), tmp_path / "cameras.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(Syn2SeqInputError, match=message) as info:
        load_cameras(path, "syn2seq")
    assert "cameras.json" in str(info.value)


def test_syn2seq_invalid_json_names_line(tmp_path):
    path = save_cameras(random_cameras(3, 6), tmp_path / "cameras.json")
    lines = path.read_text().splitlines()
    lines[7] = lines[7].replace('"K":', '"K" oops:')  # break the second frame
    path.write_text("\n".join(lines))
    with pytest.raises(Syn2SeqInputError, match=r"cameras.json line 8.*valid JSON"):
        load_cameras(path, "syn2seq")


# --- RealEstate10K ------------------------------------------------------------------------------------
def write_re10k(path, cams: Cameras, timestamps_us, url=True):
    lines = ["https://www.youtube.com/watch?v=abcdefghijk"] if url else []
    for T, k, ts in zip(cams.w2c.numpy(), cams.K.numpy(), timestamps_us):
        numbers = [*k, 0, 0, *T[:3, :4].reshape(-1)]
        lines.append(" ".join([str(int(ts))] + [repr(float(v)) for v in numbers]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("url", [True, False])
def test_re10k_round_trip(tmp_path, url):
    cams = random_cameras(6, 10, *RE10K_DEFAULT_SIZE)
    ts_us = np.arange(6) * 33366 + 52_019_000
    write_re10k(tmp_path / "0a1b2c.txt", cams, ts_us, url=url)
    track = load_both(tmp_path / "0a1b2c.txt", "re10k")
    assert_same(track.cameras, cams)
    torch.testing.assert_close(track.timestamps, torch.from_numpy(ts_us / 1e6), atol=1e-12, rtol=0)


def test_re10k_size_option_keeps_normalised_intrinsics(tmp_path):
    cams = random_cameras(2, 11, 1280, 720)
    write_re10k(tmp_path / "a.txt", cams, [0, 1])
    loaded = load_cameras(tmp_path / "a.txt", width=1280, height=720)
    assert_same(loaded, cams)
    assert load_cameras(tmp_path / "a.txt").size == RE10K_DEFAULT_SIZE


@pytest.mark.parametrize("bad_line, message", [
    ("123 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0", r"line 3: expected 19 numbers.*got 15 values"),
    ("123 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 x 0", r"line 3: expected numbers.*'x'"),
    ("123 0.5 0.9 0.5 0.5 0 0 1 0 0 nan 0 1 0 0 0 0 1 0", r"line 3: expected finite"),
    ("123 0.5 0.9 0.5 0.5 0 0 2 0 0 0 0 1 0 0 0 0 1 0", r"line 3: expected an orthonormal rotation"),
    ("123 0.5 0.9 0.5 0.5 0 0 -1 0 0 0 0 1 0 0 0 0 1 0", r"line 3: expected a proper rotation"),
])
def test_re10k_bad_line_names_file_and_line(tmp_path, bad_line, message):
    good = "100 0.5 0.9 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0"
    path = tmp_path / "clip.txt"
    path.write_text(f"https://youtu.be/x\n{good}\n{bad_line}\n{good}\n")
    with pytest.raises(Syn2SeqInputError, match=message) as info:
        load_cameras(path, "re10k")
    assert "clip.txt" in str(info.value)


def test_re10k_pixel_intrinsics_and_empty_files(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("https://youtu.be/x\n100 500 500 320 180 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(Syn2SeqInputError, match=r"clip.txt: K.*Pixel intrinsics"):
        load_cameras(path)
    path.write_text("https://youtu.be/x\n")
    for fmt in ("auto", "re10k"):
        with pytest.raises(Syn2SeqInputError, match=r"clip.txt.*at least one camera"):
            load_cameras(path, fmt)
    path.write_text("")
    with pytest.raises(Syn2SeqInputError, match=r"clip.txt.*an empty file"):
        load_cameras(path)


# --- COLMAP -------------------------------------------------------------------------------------------
def write_colmap(folder, cams: Cameras, names, model="PINHOLE", shared_camera=False, order=None,
                 distortion=(0.0, 0.0, 0.0, 0.0), points_lines=True):
    folder.mkdir(parents=True, exist_ok=True)
    W, H = cams.size
    K = cams.K.numpy() * [W, H, W, H]
    rows = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
            f"# Number of cameras: {1 if shared_camera else len(cams)}"]
    for i in range(1 if shared_camera else len(cams)):
        fx, fy, cx, cy = K[i]
        if model == "SIMPLE_PINHOLE":
            params = [fx, cx, cy]
        elif model == "PINHOLE":
            params = [fx, fy, cx, cy]
        elif model == "OPENCV":
            params = [fx, fy, cx, cy, *distortion]
        elif model == "OPENCV_FISHEYE":
            params = [fx, fy, cx, cy, *cams.fisheye[i].tolist()]
        elif model == "SIMPLE_RADIAL_FISHEYE":
            params = [fx, cx, cy, float(cams.fisheye[i, 0])]
        rows.append(" ".join([str(i + 1), model, str(W), str(H)] + [repr(float(v)) for v in params]))
    (folder / "cameras.txt").write_text("\n".join(rows) + "\n")
    rows = ["# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)",
            f"# Number of images: {len(cams)}, mean observations per image: 1"]
    for i in order if order is not None else range(len(cams)):
        T = cams.w2c[i].numpy()
        x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
        values = [w, x, y, z, *T[:3, 3]]
        rows.append(" ".join([str(100 + i)] + [repr(float(v)) for v in values]
                             + [str(1 if shared_camera else i + 1), names[i]]))
        if points_lines:
            rows.append("" if i % 2 else "12.5 30.25 7 40.0 50.0 -1")
    (folder / "images.txt").write_text("\n".join(rows) + "\n")


def test_colmap_round_trip_sorted_by_name_with_per_image_intrinsics(tmp_path):
    n = 12
    cams = random_cameras(n, 20, 800, 450)
    names = [f"frame_{i}.jpg" for i in range(n)]  # unpadded: natural order puts frame_2 before frame_10
    order = list(np.random.default_rng(0).permutation(n))
    write_colmap(tmp_path / "sparse" / "0", cams, names, order=order)
    for path in (tmp_path, tmp_path / "sparse" / "0", tmp_path / "sparse" / "0" / "images.txt",
                 tmp_path / "sparse" / "0" / "cameras.txt"):
        track = load_both(path, "colmap")
        assert_same(track.cameras, cams)
        assert track.names == tuple(names) and track.timestamps is None


@pytest.mark.parametrize("model", ["SIMPLE_PINHOLE", "OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE"])
def test_colmap_shared_camera_models(tmp_path, model):
    cams = random_cameras(4, 21, 720, 1280, fisheye=model != "SIMPLE_PINHOLE")
    # one shared camera: the track has the first camera's intrinsics everywhere
    K = cams.K[:1].expand(4, 4).clone()
    if model == "SIMPLE_PINHOLE":
        K[:, 1] = K[:, 0] * 720 / 1280  # one focal length in pixels
    fish = None if cams.fisheye is None else cams.fisheye[:1].expand(4, 4).clone()
    if model == "SIMPLE_RADIAL_FISHEYE":
        K[:, 1] = K[:, 0] * 720 / 1280
        fish[:, 1:] = 0.0
    cams = Cameras(cams.c2w, K, 720, 1280, fish)
    write_colmap(tmp_path, cams, [f"{i:04d}.png" for i in range(4)], model=model, shared_camera=True,
                 points_lines=False)
    assert_same(load_both(tmp_path, "colmap").cameras, cams)


def test_colmap_opencv_distortion_policy(tmp_path):
    cams = random_cameras(3, 22, 640, 480)
    write_colmap(tmp_path, cams, ["a.png", "b.png", "c.png"], model="OPENCV", distortion=(0.1, -0.02, 0.001, 0.0))
    with pytest.warns(UserWarning, match=r"cameras.txt: dropping lens distortion of OPENCV"):
        assert_same(load_cameras(tmp_path), cams)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cameras(tmp_path, on_distortion="ignore")
    with pytest.raises(Syn2SeqInputError, match=r"cameras.txt: expected cameras without .*distortion.*OPENCV"):
        load_cameras(tmp_path, on_distortion="error")
    with pytest.raises(Syn2SeqInputError, match="on_distortion"):
        load_cameras(tmp_path, on_distortion="sometimes")
    write_colmap(tmp_path, cams, ["a.png", "b.png", "c.png"], model="OPENCV")  # all-zero distortion: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(load_cameras(tmp_path), cams)


def test_colmap_refuses_mixed_sizes_unknown_cameras_and_bad_lines(tmp_path):
    cams = random_cameras(3, 23, 640, 480)
    write_colmap(tmp_path, cams, ["a.png", "b.png", "c.png"])
    cam_txt = tmp_path / "cameras.txt"
    lines = cam_txt.read_text().splitlines()
    lines[4] = lines[4].replace(" 640 480 ", " 320 240 ")
    cam_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"images.txt: expected all images with one image size.*320, 240"):
        load_cameras(tmp_path)
    lines[4] = "2 FOV 640 480 500 500 320 240 0.9"
    cam_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"cameras.txt line 5: expected a camera model in .*'FOV'"):
        load_cameras(tmp_path)
    lines[4] = "2 PINHOLE 640 480 500 500 320"
    cam_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"cameras.txt line 5: expected 4 parameters for PINHOLE, got 3"):
        load_cameras(tmp_path)
    lines.pop(4)  # camera 2 gone: image b refers to it
    cam_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"images.txt line 7: expected a CAMERA_ID defined"):
        load_cameras(tmp_path)
    write_colmap(tmp_path, cams, ["a.png", "b.png", "c.png"])
    img_txt = tmp_path / "images.txt"
    lines = img_txt.read_text().splitlines()
    lines[6] = lines[6].replace(" ", " x ", 1)  # IMAGE_ID x QW ...
    img_txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"images.txt line 7: expected numbers .*'x'"):
        load_cameras(tmp_path)
    parts = img_txt.read_text().splitlines()
    write_colmap(tmp_path, cams, ["a.png", "b.png", "c.png"])
    parts = img_txt.read_text().splitlines()
    tok = parts[6].split()
    tok[1:5] = ["0.5", "0.5", "0.5", "0.9"]  # |q| = 1.2
    parts[6] = " ".join(tok)
    img_txt.write_text("\n".join(parts) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"images.txt line 7: expected a unit quaternion"):
        load_cameras(tmp_path)


def test_colmap_binary_model_and_empty_model(tmp_path):
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    (tmp_path / "sparse" / "0" / "cameras.bin").write_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(Syn2SeqInputError, match="model_converter"):
        load_cameras(tmp_path)
    with pytest.raises(Syn2SeqInputError, match="model_converter"):
        load_cameras(tmp_path, "colmap")
    with pytest.raises(Syn2SeqInputError, match="model_converter"):
        load_cameras(tmp_path / "sparse" / "0" / "cameras.bin")
    (tmp_path / "cameras.txt").write_text("# Camera list with one line of data per camera:\n")
    (tmp_path / "images.txt").write_text("# Image list with two lines of data per image:\n")
    with pytest.raises(Syn2SeqInputError, match=r"images.txt: expected at least one image"):
        load_cameras(tmp_path)


# --- NeRF / nerfstudio -----------------------------------------------------------------------------
def gl_matrix(c2w_cv):
    T = np.array(c2w_cv, dtype=np.float64)
    T[:3, 1:3] *= -1  # OpenCV -> OpenGL camera axes
    return T.tolist()


def test_nerf_nerfstudio_top_level_intrinsics_keep_file_order(tmp_path):
    cams = random_cameras(5, 30, 960, 540)
    K = cams.K[:1].expand(5, 4).clone()
    cams = Cameras(cams.c2w, K, 960, 540)
    fx, fy, cx, cy = (K[0] * torch.tensor([960, 540, 960, 540], dtype=torch.float64)).tolist()
    frames = [{"file_path": f"images/frame_{9 - i:05d}.png", "transform_matrix": gl_matrix(T)}
              for i, T in enumerate(cams.c2w.numpy())]  # names deliberately not in file order
    data = {"camera_model": "OPENCV", "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": 960, "h": 540,
            "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames,
            "applied_transform": [[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0]]}
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    for path in (tmp_path, tmp_path / "transforms.json"):
        track = load_both(path, "nerf")
        assert_same(track.cameras, cams)
        assert track.names == tuple(f["file_path"] for f in frames)


def test_nerf_per_frame_intrinsics_and_fisheye(tmp_path):
    cams = random_cameras(4, 31, 1280, 720, fisheye=True)
    frames = []
    for T, k, f in zip(cams.c2w.numpy(), cams.K.numpy(), cams.fisheye.numpy()):
        frames.append({"file_path": "x.png", "transform_matrix": gl_matrix(T), "fl_x": k[0] * 1280,
                       "fl_y": k[1] * 720, "cx": k[2] * 1280, "cy": k[3] * 720,
                       "k1": f[0], "k2": f[1], "k3": f[2], "k4": f[3]})
    data = {"camera_model": "OPENCV_FISHEYE", "w": 1280, "h": 720, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    assert_same(load_both(tmp_path / "transforms.json", "nerf").cameras, cams)


def test_nerf_camera_angle_forms_and_image_size_sources(tmp_path):
    from PIL import Image

    cams = random_cameras(3, 32, 400, 300)
    fx_n = 0.8
    angle_x = 2 * math.atan(0.5 / fx_n)
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": gl_matrix(T)} for i, T in enumerate(cams.c2w.numpy())]
    path = tmp_path / "transforms_train.json"
    # Blender synthetic: only camera_angle_x, no size; square pixels -> fy/H = fx/W * W/H.
    path.write_text(json.dumps({"camera_angle_x": angle_x, "frames": frames}))
    expected = Cameras(cams.c2w, torch.tensor([fx_n, fx_n * 400 / 300, 0.5, 0.5], dtype=torch.float64), 400, 300)
    assert_same(load_cameras(path, width=400, height=300), expected)
    with pytest.raises(Syn2SeqInputError, match=r"transforms_train.json: expected the image size.*width="):
        load_cameras(path)
    (tmp_path / "train").mkdir()
    Image.new("RGB", (400, 300)).save(tmp_path / "train" / "r_0.png")
    assert_same(load_both(path, "nerf").cameras, expected)  # size from the first image's header
    # camera_angle_y and w/h in the file
    angle_y = 2 * math.atan(0.5 / 1.3)
    path.write_text(json.dumps({"camera_angle_x": angle_x, "camera_angle_y": angle_y, "w": 400, "h": 300,
                                "frames": frames}))
    expected = Cameras(cams.c2w, torch.tensor([fx_n, 1.3, 0.5, 0.5], dtype=torch.float64), 400, 300)
    assert_same(load_cameras(path), expected)
    assert load_cameras(path, width=200, height=150).size == (200, 150)


def test_nerf_opengl_axes_are_converted():
    """A NeRF camera at the origin with identity transform looks down world -z (OpenGL); ours must too."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "transforms.json"
        path.write_text(json.dumps({"fl_x": 100, "w": 200, "h": 100,
                                    "frames": [{"transform_matrix": np.eye(4).tolist()}]}))
        cams = load_cameras(path)
    forward = cams.c2w[0, :3, 2]  # OpenCV z = viewing direction
    down = cams.c2w[0, :3, 1]
    torch.testing.assert_close(forward, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(down, torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["frames"][1].pop("transform_matrix"), r"frames\[1\] \(b.png\): expected a \"transform_matrix\""),
    (lambda d: d["frames"][1].update(transform_matrix=[[1, 0], [0, 1]]), r"frames\[1\].*shape"),
    (lambda d: d["frames"][1].update(w=320, h=240), r"one image size.*320, 240"),
    (lambda d: d.pop("fl_x"), r"frames\[0\].*fl_x.*camera_angle_x"),
    (lambda d: d.update(fl_x="500"), r"frames\[0\].*a number for 'fl_x'"),
    (lambda d: d.update(camera_model="EQUIRECTANGULAR"), r"frames\[0\].*camera_model"),
    (lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(3, float("nan")), r"frames\[1\].*finite"),
    (lambda d: d["frames"][1]["transform_matrix"][0].__setitem__(0, 2.0), r"frames\[1\].*orthonormal"),
    (lambda d: d["frames"].clear(), r"at least one camera"),
])
def test_nerf_bad_files_name_file_and_frame(tmp_path, edit, message):
    data = {"fl_x": 500.0, "w": 640, "h": 480,
            "frames": [{"file_path": n, "transform_matrix": np.eye(4).tolist()} for n in ("a.png", "b.png")]}
    edit(data)
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Syn2SeqInputError, match=message) as info:
        load_cameras(path, "nerf")
    assert "transforms.json" in str(info.value)


# --- Ego-Exo4D --------------------------------------------------------------------------------------
GOPRO_HEADER = ("cam_uid,graph_uid,tx_world_cam,ty_world_cam,tz_world_cam,qx_world_cam,qy_world_cam,qz_world_cam,"
                "qw_world_cam,image_width,image_height,intrinsics_type,intrinsics_0,intrinsics_1,intrinsics_2,"
                "intrinsics_3,intrinsics_4,intrinsics_5,intrinsics_6,intrinsics_7,start_frame_idx,end_frame_idx,"
                "quality")
TRAJ_HEADER = ("graph_uid,tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
               "qx_world_device,qy_world_device,qz_world_device,qw_world_device,device_linear_velocity_x_device,"
               "device_linear_velocity_y_device,device_linear_velocity_z_device,angular_velocity_x_device,"
               "angular_velocity_y_device,angular_velocity_z_device,gravity_x_world,gravity_y_world,"
               "gravity_z_world,quality_score")
GRAPH = "40084458-f219-16ca-0c3c-8bd94ee06e6c"


def write_gopro_calibs(take, cams: Cameras, uids):
    (take / "trajectory").mkdir(parents=True, exist_ok=True)
    W, H = cams.size
    rows = [GOPRO_HEADER]
    for uid, T, k, f in zip(uids, cams.c2w.numpy(), cams.K.numpy(), cams.fisheye.numpy()):
        q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x y z w
        values = [*T[:3, 3], *q]
        intr = [k[0] * W, k[1] * H, k[2] * W - 0.5, k[3] * H - 0.5, *f]  # the file's pixel centres at (0, 0)
        rows.append(",".join([uid, GRAPH] + [repr(float(v)) for v in values] + [str(W), str(H), "KANNALABRANDTK3"]
                             + [repr(float(v)) for v in intr] + ["-1", "-1", "1"]))
    (take / "trajectory" / "gopro_calibs.csv").write_text("\n".join(rows) + "\n")


def test_egoexo4d_exo_round_trip_choose_camera_and_repeat(tmp_path):
    cams = random_cameras(4, 40, 3840, 2160, fisheye=True)
    uids = [" cam01", "cam02", "cam03", "cam04"]  # a leading space as in projectaria's sample file
    write_gopro_calibs(tmp_path, cams, uids)
    csv_path = tmp_path / "trajectory" / "gopro_calibs.csv"
    for i in range(4):
        for path in (tmp_path, csv_path):
            track = load_both(path, "egoexo4d_exo", camera=f"cam0{i + 1}")
            assert_same(track.cameras, cams[i])
    five = load_cameras(tmp_path, camera="cam02", num_frames=5)
    assert len(five) == 5 and torch.equal(five.c2w[4], five.c2w[0])
    assert_same(five[3], cams[1])
    down = load_cameras(tmp_path, "egoexo4d_exo", camera="cam03", width=796, height=448)  # the 448p videos
    assert down.size == (796, 448) and torch.equal(down.K, load_cameras(csv_path, camera="cam03").K)


def test_egoexo4d_exo_errors(tmp_path):
    cams = random_cameras(2, 41, 3840, 2160, fisheye=True)
    write_gopro_calibs(tmp_path, cams, ["cam01", "cam02"])
    with pytest.raises(Syn2SeqInputError, match=r"camera: expected one of the cameras .*\['cam01', 'cam02'\].*none"):
        load_cameras(tmp_path, "egoexo4d_exo")
    with pytest.raises(Syn2SeqInputError, match=r"camera: .*\['cam01', 'cam02'\], got 'cam07'"):
        load_cameras(tmp_path, camera="cam07")
    with pytest.raises(Syn2SeqInputError, match="num_frames"):
        load_cameras(tmp_path, camera="cam01", num_frames=0)
    path = tmp_path / "trajectory" / "gopro_calibs.csv"
    text = path.read_text()
    path.write_text(text.replace("qw_world_cam,", "").replace("intrinsics_7,", "intrinsics7,"))
    with pytest.raises(Syn2SeqInputError, match=r"gopro_calibs.csv line 1: .*missing \['qw_world_cam', 'intrinsics_7'\]"):
        load_cameras(path, "egoexo4d_exo", camera="cam01")
    lines = text.splitlines()
    lines[2] = lines[2].replace("KANNALABRANDTK3", "FISHEYE624")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"gopro_calibs.csv line 3: expected intrinsics_type"):
        load_cameras(path, camera="cam02")
    cells = text.splitlines()[2].split(",")
    cells[3] = "abc"
    path.write_text("\n".join([*text.splitlines()[:2], ",".join(cells)]) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"gopro_calibs.csv line 3 column ty_world_cam: expected numbers.*'abc'"):
        load_cameras(path, camera="cam02")
    path.write_text(GOPRO_HEADER + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"gopro_calibs.csv: expected at least one camera row"):
        load_cameras(path, camera="cam02")


def write_trajectory(take, t_us, c2w):
    (take / "trajectory").mkdir(parents=True, exist_ok=True)
    rows = [TRAJ_HEADER]
    for t, T in zip(t_us, c2w):
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        rows.append(",".join([GRAPH, str(int(t)), str(int(t) * 1000 + 1686767222002923694)]
                             + [repr(float(v)) for v in (*T[:3, 3], *q)]
                             + ["0.038913", "-0.322935", "0.242351", "-0.054750", "0.052271", "-0.064212",
                                "0.000000", "0.000000", "-9.810000", "0.5"]))
    (take / "trajectory" / "closed_loop_trajectory.csv").write_text("\n".join(rows) + "\n")


def aria_samples(m=20, seed=50):
    t_us = 149202610 + np.arange(m) * 1000
    c2w = random_cameras(m, seed).c2w.numpy()
    return t_us, c2w


def test_egoexo4d_aria_on_samples_and_midpoints(tmp_path):
    t_us, c2w = aria_samples()
    write_trajectory(tmp_path, t_us, c2w)
    # On a sample: exactly that sample.
    track = load_both(tmp_path / "trajectory" / "closed_loop_trajectory.csv", "egoexo4d_aria",
                      timestamps_us=t_us[[3, 0, 19]])
    torch.testing.assert_close(track.cameras.c2w, torch.from_numpy(c2w[[3, 0, 19]]), atol=1e-12, rtol=0)
    torch.testing.assert_close(track.timestamps, torch.from_numpy(t_us[[3, 0, 19]] / 1e6), atol=1e-12, rtol=0)
    # Midway between two samples: the SLERP midpoint and the mean of the centres; a quarter of the way too.
    for a, s in ((7, 0.5), (12, 0.25)):
        t = np.array([t_us[a] + s * 1000.0])
        got = load_cameras(tmp_path, timestamps_us=t).c2w[0].numpy()
        ref = Slerp([0.0, 1.0], Rotation.from_matrix(c2w[[a, a + 1], :3, :3]))([s]).as_matrix()[0]
        np.testing.assert_allclose(got[:3, :3], ref, atol=1e-9)
        np.testing.assert_allclose(got[:3, 3], (1 - s) * c2w[a, :3, 3] + s * c2w[a + 1, :3, 3], atol=1e-9)


def test_egoexo4d_aria_intrinsics_and_device_to_camera(tmp_path):
    t_us, c2w = aria_samples()
    write_trajectory(tmp_path, t_us, c2w)
    default = load_cameras(tmp_path, timestamps_us=t_us[:2])
    assert default.size == ARIA_RGB_DEFAULT_SIZE and default.fisheye is None
    torch.testing.assert_close(default.K[0], torch.tensor(ARIA_RGB_DEFAULT_K, dtype=torch.float64))
    T_dc = random_cameras(1, 51).c2w[0]
    K = torch.tensor([0.3, 0.3, 0.5, 0.5], dtype=torch.float64)
    fish = torch.tensor([0.01, -0.002, 0.0003, 0.0], dtype=torch.float64)
    cams = load_cameras(tmp_path, "egoexo4d_aria", timestamps_us=torch.tensor(t_us[4:6]), K=K, width=448,
                        height=448, fisheye=fish, T_device_camera=T_dc)
    expected = Cameras(torch.from_numpy(c2w[4:6]) @ T_dc, K, 448, 448, fish)
    assert_same(cams, expected)
    # plain Python lists of microseconds are not rounded through float32 (which is ~8 us off at 1.5e8 us)
    on_sample = load_camera_track(tmp_path, timestamps_us=[int(t_us[7]), float(t_us[8])])
    torch.testing.assert_close(on_sample.cameras.c2w, torch.from_numpy(c2w[7:9]), atol=1e-12, rtol=0)
    assert on_sample.timestamps.tolist() == [t_us[7] / 1e6, t_us[8] / 1e6]


def test_egoexo4d_aria_errors(tmp_path):
    t_us, c2w = aria_samples()
    write_trajectory(tmp_path, t_us, c2w)
    with pytest.raises(Syn2SeqInputError, match=r"timestamps_us: expected times inside .*\[149202610, 149221610\] us"):
        load_cameras(tmp_path, timestamps_us=[t_us[0] - 1.0])
    with pytest.raises(Syn2SeqInputError, match=r"timestamps_us: expected times inside"):
        load_cameras(tmp_path, timestamps_us=[t_us[5], t_us[-1] + 500])
    with pytest.raises(Syn2SeqInputError, match="timestamps_us"):
        load_cameras(tmp_path, "egoexo4d_aria")
    with pytest.raises(Syn2SeqInputError, match="T_device_camera"):
        load_cameras(tmp_path, timestamps_us=t_us[:1], T_device_camera=2 * torch.eye(4))
    path = tmp_path / "trajectory" / "closed_loop_trajectory.csv"
    lines = path.read_text().splitlines()
    cells = lines[6].split(",")
    cells[5] = "oops"
    path.write_text("\n".join([*lines[:6], ",".join(cells), *lines[7:]]) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"closed_loop_trajectory.csv line 7: expected numbers.*'oops'"):
        load_cameras(path, timestamps_us=t_us[:1])
    path.write_text("\n".join([lines[0], lines[1], lines[3], lines[2], *lines[4:]]) + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"line 4: expected strictly increasing tracking_timestamp_us"):
        load_cameras(path, timestamps_us=t_us[:1])
    path.write_text(lines[0].replace("qw_world_device,", "") + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"line 1: .*missing \['qw_world_device'\]"):
        load_cameras(path, "egoexo4d_aria", timestamps_us=t_us[:1])
    path.write_text(lines[0] + "\n")
    with pytest.raises(Syn2SeqInputError, match=r"closed_loop_trajectory.csv: expected at least one trajectory"):
        load_cameras(path, timestamps_us=t_us[:1])


def test_take_folder_needs_options_to_choose_exo_or_aria(tmp_path):
    t_us, c2w = aria_samples()
    write_trajectory(tmp_path, t_us, c2w)
    write_gopro_calibs(tmp_path, random_cameras(1, 52, 3840, 2160, fisheye=True), ["cam01"])
    with pytest.raises(Syn2SeqInputError, match=r"several: \['egoexo4d_exo', 'egoexo4d_aria'\].*format="):
        load_cameras(tmp_path)
    assert load_camera_track(tmp_path, camera="cam01").format == "egoexo4d_exo"
    assert load_camera_track(tmp_path, timestamps_us=t_us[:3]).format == "egoexo4d_aria"
    assert load_camera_track(tmp_path, "egoexo4d_exo").format == "egoexo4d_exo"  # single camera: no option needed


# --- detection and options --------------------------------------------------------------------------
def test_detection_is_by_content_not_extension(tmp_path):
    cams = random_cameras(2, 60)
    save_cameras(cams, tmp_path / "poses.txt")  # our JSON under a .txt name
    assert detect_format(tmp_path / "poses.txt") == "syn2seq"
    write_re10k(tmp_path / "clip.json", cams, [0, 1])  # RE10K text under a .json name
    assert detect_format(tmp_path / "clip.json") == "re10k"
    assert_same(load_cameras(tmp_path / "clip.json"), cams)


def test_unknown_formats_and_options_are_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\nthis is not a camera file\n")
    with pytest.raises(Syn2SeqInputError, match=r"notes.txt: expected .*known formats \['syn2seq', 're10k'.*'hello"):
        load_cameras(path)
    (tmp_path / "other.json").write_text(json.dumps({"cameras": []}))
    with pytest.raises(Syn2SeqInputError, match="known formats"):
        load_cameras(tmp_path / "other.json")
    (tmp_path / "blob.dat").write_bytes(b"\x00\x01\x02")
    with pytest.raises(Syn2SeqInputError, match="binary content"):
        load_cameras(tmp_path / "blob.dat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Syn2SeqInputError, match="a folder with none of"):
        load_cameras(tmp_path / "empty")
    with pytest.raises(Syn2SeqInputError, match=r"format: expected one of .*'colmap'.*got 'ply'"):
        load_cameras(path, "ply")
    with pytest.raises(Syn2SeqInputError, match="nothing at that path"):
        load_cameras(tmp_path / "missing.json")
    save_cameras(random_cameras(1, 61), tmp_path / "c.json")
    with pytest.raises(Syn2SeqInputError, match=r"options for format 'syn2seq': expected only \['width', 'height'\]"):
        load_cameras(tmp_path / "c.json", camera="cam01")
    assert set(KNOWN_FORMATS) == {"syn2seq", "re10k", "colmap", "nerf", "egoexo4d_exo", "egoexo4d_aria"}


def test_every_known_format_is_registered_and_what_we_write_is_detected_back(tmp_path):
    assert tuple(FORMATS) == KNOWN_FORMATS
    for name in KNOWN_FORMATS:
        fmt = FORMATS[name]
        assert fmt.name == name and callable(fmt.read)
        assert fmt.claims is not None or fmt.sniff is not None  # format="auto" can find it
    writers = [fmt for fmt in FORMATS.values() if fmt.write is not None]
    assert [fmt.name for fmt in writers] == ["syn2seq"] and FORMATS["syn2seq"].write is save_cameras
    for fmt in writers:
        written = fmt.write(random_cameras(3, 62, fisheye=True), tmp_path / f"{fmt.name}.out")
        assert detect_format(written) == fmt.name


def test_documented_example_loads(tmp_path):
    """The example in docs/cameras_json.md is a valid file and means what the text says."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cameras_json.md").read_text()
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    (tmp_path / "cameras.json").write_text(example)
    track = load_camera_track(tmp_path / "cameras.json")
    cams = track.cameras
    assert cams.size == (640, 360) and track.names == ("frame_00000.png", "frame_00001.png")
    assert track.timestamps.tolist() == [0.0, 0.0333]
    torch.testing.assert_close(cams.c2w[:, :3, 2], torch.tensor([[0.0, 1.0, 0.0]] * 2, dtype=torch.float64))  # +y
    torch.testing.assert_close(cams.K_pixels()[0, 0, 0], torch.tensor(320.0, dtype=torch.float64))  # 90 deg HFOV
    torch.testing.assert_close(cams.w2c[1, :3, 3] - cams.w2c[0, :3, 3], torch.tensor([-0.1, 0.0, 0.0], dtype=torch.float64))
