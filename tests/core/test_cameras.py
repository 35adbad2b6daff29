"""geometry/cameras.py: the conversions users rely on, checked by projecting world points."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import (Cameras, denormalize_intrinsics, invert_pose, look_at, normalize_intrinsics,
                                   opengl_to_opencv)

F64 = torch.float64


def random_c2w(n, seed):
    rng = np.random.default_rng(seed)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = rng.uniform(-3, 3, (n, 3))
    return torch.from_numpy(T)


def random_cameras(n=5, seed=0, width=640, height=360):
    rng = np.random.default_rng(seed + 100)
    K = torch.from_numpy(np.column_stack([rng.uniform(0.5, 1.0, n), rng.uniform(0.8, 1.6, n),
                                          rng.uniform(0.45, 0.55, n), rng.uniform(0.45, 0.55, n)]))
    return Cameras(random_c2w(n, seed), K, width, height)


def project(cams: Cameras, X: torch.Tensor) -> torch.Tensor:
    """Slow reference pinhole projection of one world point X [3] into every camera -> pixels [N, 2]."""
    out = []
    for i in range(len(cams)):
        R, t = cams.c2w[i, :3, :3], cams.c2w[i, :3, 3]
        x = R.T @ (X - t)  # camera coordinates (OpenCV: z forward)
        assert x[2] > 0, "test point must be in front of the camera"
        fx, fy, cx, cy = (cams.K[i] * torch.tensor([cams.width, cams.height] * 2, dtype=F64)).tolist()
        out.append(torch.stack([fx * x[0] / x[2] + cx, fy * x[1] / x[2] + cy]))
    return torch.stack(out)


def point_in_front(cams: Cameras, depth=4.0) -> torch.Tensor:
    """A world point on the first camera's optical axis, slightly off-centre so every coordinate matters."""
    local = torch.tensor([0.3, -0.2, depth], dtype=F64)
    return cams.c2w[0, :3, :3] @ local + cams.c2w[0, :3, 3]


# --- pose conversions -------------------------------------------------------------------------------
def test_w2c_c2w_round_trip():
    c2w = random_c2w(6, 1)
    w2c = invert_pose(c2w)
    torch.testing.assert_close(w2c @ c2w, torch.eye(4, dtype=F64).expand(6, 4, 4))
    torch.testing.assert_close(invert_pose(w2c), c2w)
    cams = Cameras.from_w2c(w2c, [0.8, 0.9, 0.5, 0.5], 64, 48)
    torch.testing.assert_close(cams.c2w, c2w)
    torch.testing.assert_close(cams.w2c, w2c)
    torch.testing.assert_close(cams.centers, c2w[:, :3, 3])


def test_opengl_opencv_round_trip_and_viewing_direction():
    c2w = random_c2w(4, 2)
    torch.testing.assert_close(opengl_to_opencv(opengl_to_opencv(c2w)), c2w)
    cams = Cameras(c2w, [0.8, 0.9, 0.5, 0.5], 64, 48)
    again = Cameras.from_opengl(cams.to_opengl(), cams.K, 64, 48)
    torch.testing.assert_close(again.c2w, cams.c2w)
    # An OpenGL camera with identity pose looks down -z with y up; in OpenCV axes z is forward, y down.
    cv = Cameras.from_opengl(torch.eye(4, dtype=F64), [0.8, 0.9, 0.5, 0.5], 64, 48)
    torch.testing.assert_close(cv.c2w[0, :3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=F64))
    torch.testing.assert_close(cv.c2w[0, :3, 1], torch.tensor([0.0, -1.0, 0.0], dtype=F64))
    torch.testing.assert_close(cv.c2w[0, :3, 0], torch.tensor([1.0, 0.0, 0.0], dtype=F64))


def test_pixel_and_normalised_intrinsics():
    K = torch.tensor([[0.9, 1.6, 0.5, 0.45], [1.1, 1.9, 0.52, 0.5]], dtype=F64)
    Kp = denormalize_intrinsics(K, 640, 360)
    torch.testing.assert_close(Kp[0], torch.tensor([[576.0, 0, 320], [0, 576, 162], [0, 0, 1]], dtype=F64))
    torch.testing.assert_close(normalize_intrinsics(Kp, 640, 360), K)
    torch.testing.assert_close(normalize_intrinsics(Kp[:, [0, 1, 0, 1], [0, 1, 2, 2]], 640, 360), K)
    cams = Cameras.from_pixel_intrinsics(random_c2w(2, 3), Kp, 640, 360)
    torch.testing.assert_close(cams.K, K)
    torch.testing.assert_close(cams.K_pixels(), Kp)


# --- image-size changes keep projections consistent ---------------------------------------------------
@pytest.mark.parametrize("size", [(640, 360), (641, 361)])
def test_center_crop_shifts_projection_by_the_crop_offset(size):
    cams = random_cameras(4, 4, *size)
    X = point_in_front(cams)
    before = project(cams[:1], X)
    crop = cams.center_crop(300, 200)
    assert crop.size == (300, 200)
    left, top = (size[0] - 300) // 2, (size[1] - 200) // 2
    after = project(crop[:1], X)
    torch.testing.assert_close(after, before - torch.tensor([left, top], dtype=F64))
    torch.testing.assert_close(crop.c2w, cams.c2w)  # cropping never moves the camera
    torch.testing.assert_close(project(cams.crop(10, 20, 300, 200)[:1], X), before - torch.tensor([10.0, 20.0], dtype=F64))
    with pytest.raises(Syn2SeqInputError, match="crop size"):
        cams.center_crop(size[0] + 1, 10)


def test_resize_keeps_normalised_projection():
    cams = random_cameras(3, 5, 640, 360)
    X = point_in_front(cams)
    small = cams.resize(320, 240)  # even a squash: normalised coordinates are per axis
    assert small.size == (320, 240)
    torch.testing.assert_close(project(small[:1], X) / torch.tensor([320, 240], dtype=F64),
                               project(cams[:1], X) / torch.tensor([640, 360], dtype=F64))
    torch.testing.assert_close(small.K, cams.K)


def test_resize_and_center_crop_to_square_matches_resize_then_crop():
    cams = random_cameras(2, 6, 640, 360)
    X = point_in_front(cams)
    out = cams.resize_and_center_crop(256)
    assert out.size == (256, 256)
    # short side 360 -> 256, long side 640 -> round(455.1) = 455, then (455 - 256) // 2 = 99 columns cut on the left
    scaled = project(cams[:1], X) / torch.tensor([640, 360], dtype=F64) * torch.tensor([455, 256], dtype=F64)
    torch.testing.assert_close(project(out[:1], X), scaled - torch.tensor([99.0, 0.0], dtype=F64))


# --- relative poses and look_at -----------------------------------------------------------------------
def test_relative_to_makes_reference_identity_and_keeps_relative_poses():
    cams = random_cameras(5, 7)
    rel = cams.relative_to()
    torch.testing.assert_close(rel.c2w[0], torch.eye(4, dtype=F64))
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(invert_pose(rel.c2w[i]) @ rel.c2w[j], invert_pose(cams.c2w[i]) @ cams.c2w[j])
    rel3 = cams.relative_to(cams.c2w[3])
    torch.testing.assert_close(rel3.c2w[3], torch.eye(4, dtype=F64))
    # a point keeps its pixel when it moves with the world
    X = point_in_front(cams)
    X_rel = invert_pose(cams.c2w[0])[:3, :3] @ X + invert_pose(cams.c2w[0])[:3, 3]
    torch.testing.assert_close(project(rel[:1], X_rel), project(cams[:1], X))


def test_look_at_puts_target_on_axis_with_image_y_down():
    eyes = torch.tensor([[3.0, -4.0, 1.5], [0.0, 5.0, 0.2], [-2.0, -2.0, 3.0]], dtype=F64)
    target = torch.tensor([0.5, 0.5, 1.0], dtype=F64)
    c2w = look_at(eyes, target.expand(3, 3))
    cams = Cameras(c2w, [0.8, 1.2, 0.5, 0.5], 640, 360)  # also checks the rotations are proper
    for i in range(3):
        forward = (target - eyes[i]) / (target - eyes[i]).norm()
        torch.testing.assert_close(c2w[i, :3, 2], forward)
        assert float(c2w[i, :3, 1] @ torch.tensor([0.0, 0.0, 1.0], dtype=F64)) < 0  # image y points down
        assert abs(float(c2w[i, 2, 0])) < 1e-12  # image x is horizontal: no roll
    torch.testing.assert_close(project(cams, target), torch.tensor([[320.0, 180.0]] * 3, dtype=F64))
    above = project(cams, target + torch.tensor([0.0, 0.0, 0.3], dtype=F64))
    assert (above[:, 1] < 180.0).all()  # a point above the target is higher in the image


# --- validation ---------------------------------------------------------------------------------------
def test_cameras_refuses_bad_inputs():
    good_K = [0.8, 1.2, 0.5, 0.5]
    c2w = random_c2w(3, 8)
    bad = c2w.clone()
    bad[1, 0, 3] = math.nan
    with pytest.raises(Syn2SeqInputError, match=r"c2w: expected finite values"):
        Cameras(bad, good_K, 64, 48)
    bad = c2w.clone()
    bad[2, :3, :3] *= 1.1
    with pytest.raises(Syn2SeqInputError, match=r"c2w: expected orthonormal rotations.*at pose 2"):
        Cameras(bad, good_K, 64, 48)
    bad = c2w.clone()
    bad[0, :3, 0] *= -1
    with pytest.raises(Syn2SeqInputError, match=r"proper rotations.*pose 0"):
        Cameras(bad, good_K, 64, 48)
    bad = c2w.clone()
    bad[1, 3, 0] = 0.5
    with pytest.raises(Syn2SeqInputError, match=r"last row"):
        Cameras(bad, good_K, 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"K: expected normalised focal.*Pixel intrinsics must be divided"):
        Cameras(c2w, [500.0, 500.0, 32.0, 24.0], 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"K: expected normalised principal point.*Pixel intrinsics"):
        Cameras(c2w, [0.8, 0.8, 32.0, 24.0], 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"K: expected finite"):
        Cameras(c2w, [0.8, math.inf, 0.5, 0.5], 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"c2w: expected shape \[N, 4, 4\]"):
        Cameras(c2w[:, :3], good_K, 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"K: expected shape \[N, 4\]"):
        Cameras(c2w, [0.8, 1.2, 0.5], 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"K: expected 3 rows"):
        Cameras(c2w, torch.tensor([good_K, good_K], dtype=F64), 64, 48)
    with pytest.raises(Syn2SeqInputError, match=r"fisheye: expected shape \[N, 4\]"):
        Cameras(c2w, good_K, 64, 48, fisheye=torch.zeros(3, 5))
    with pytest.raises(Syn2SeqInputError, match=r"image size: expected positive"):
        Cameras(c2w, good_K, 0, 48)


def test_indexing_and_cat():
    cams = random_cameras(4, 9)
    assert len(cams[1]) == 1 and len(cams[-1]) == 1 and len(cams[1:3]) == 2
    torch.testing.assert_close(cams[-1].c2w[0], cams.c2w[3])
    both = Cameras.cat([cams[:2], cams[2:]])
    torch.testing.assert_close(both.c2w, cams.c2w)
    with pytest.raises(Syn2SeqInputError, match="image size"):
        Cameras.cat([cams, cams.resize(32, 32)])
