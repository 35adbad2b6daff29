"""FISHEYE624 (Project Aria) lens model: projection, Newton unprojection, rays, Cameras, rotation, rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from syn2seq_core.data.egoexo4d import rotate90
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.geometry.plucker import LENS_MODELS, lens_model, lens_project, lens_unproject, plucker_rays

# Aria-like RGB coefficients (k0..k5, p0, p1, s0..s3), valid for |x_distorted| < 1 focal unit.
ARIA_LIKE = torch.tensor([0.4, -0.45, 0.1, 0.9, -1.5, 0.6, 1e-4, -2e-4, 1e-3, -1e-4, 5e-4, 2e-5], dtype=torch.float64)
MILD = torch.tensor([0.05, -0.01, 0.004, -0.001, 0.0002, -0.00003, 1e-3, -5e-4, 8e-4, -1e-4, -6e-4, 5e-5],
                    dtype=torch.float64)


def _grid(radius: float, n: int = 33):
    g = torch.linspace(-radius, radius, n, dtype=torch.float64)
    x, y = torch.meshgrid(g, g, indexing="xy")
    keep = (x * x + y * y) < radius * radius
    return x[keep], y[keep]


@pytest.mark.parametrize("params", [ARIA_LIKE, MILD], ids=["aria_like", "mild"])
def test_unproject_then_project_is_the_identity(params):
    x, y = _grid(0.95)
    d = lens_unproject(x, y, params)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones_like(x), rtol=0, atol=1e-12)
    back = lens_project(d, params)
    assert float((back[..., 0] - x).abs().max()) < 1e-6 and float((back[..., 1] - y).abs().max()) < 1e-6
    assert float((back - torch.stack([x, y], -1)).abs().max()) < 1e-12  # measured: ~4e-16


def test_project_then_unproject_is_the_identity():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(500, 3, generator=g, dtype=torch.float64)
    d[:, 2] = d[:, 2].abs() + 1.0  # theta below ~60 degrees
    d = d / d.norm(dim=-1, keepdim=True)
    xy = lens_project(d, MILD)
    torch.testing.assert_close(lens_unproject(xy[:, 0], xy[:, 1], MILD), d, rtol=0, atol=1e-9)


def test_zero_fisheye624_is_the_equidistant_fisheye():
    x, y = _grid(1.4)
    zero624 = lens_unproject(x, y, torch.zeros(12, dtype=torch.float64))
    zero_kb = lens_unproject(x, y, torch.zeros(4, dtype=torch.float64))
    r = torch.sqrt(x * x + y * y)  # equidistant: theta = r (focal units)
    s = torch.where(r > 0, torch.sin(r) / r.clamp(min=1e-300), torch.ones_like(r))
    analytic = torch.stack([x * s, y * s, torch.cos(r)], -1)
    torch.testing.assert_close(zero624, analytic, rtol=0, atol=1e-12)
    torch.testing.assert_close(zero_kb, analytic, rtol=0, atol=1e-12)
    # and the ray maps
    K = torch.tensor([0.45, 0.45, 0.52, 0.47], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    torch.testing.assert_close(plucker_rays(K, c2w, 9, 13, fisheye=torch.zeros(12, dtype=torch.float64)),
                               plucker_rays(K, c2w, 9, 13, fisheye=torch.zeros(4, dtype=torch.float64)),
                               rtol=0, atol=1e-12)


def test_kannala_brandt_is_fisheye624_without_tangential_and_thin_prism_terms():
    kb = torch.tensor([0.021, -0.0047, 0.0011, -0.00019], dtype=torch.float64)
    as624 = torch.cat([kb, torch.zeros(8, dtype=torch.float64)])
    x, y = _grid(1.2)
    torch.testing.assert_close(lens_unproject(x, y, kb), lens_unproject(x, y, as624), rtol=0, atol=1e-12)
    cams = Cameras(torch.eye(4)[None], torch.tensor([[0.5, 0.5, 0.5, 0.5]]), 8, 8, kb[None])
    assert cams.lens_model == "kannala_brandt" and cams.as_fisheye624().lens_model == "fisheye624"
    torch.testing.assert_close(cams.as_fisheye624().fisheye[0], as624.to(cams.fisheye.dtype))


def test_against_projectaria_tools():
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core.sophus import SE3

    f, cx, cy = 610.0, 703.5, 704.25
    cam = calibration.CameraCalibration("camera-rgb", calibration.CameraModelType.FISHEYE624,
                                        np.array([f, cx, cy, *ARIA_LIKE.tolist()]), SE3(), 1408, 1408, None, 3.0, "x")
    pts = np.array([[0.1, 0.2, 1.0], [0.5, -0.4, 0.8], [-0.6, 0.3, 0.9], [0.0, 0.0, 1.0]])
    ours = lens_project(torch.from_numpy(pts), ARIA_LIKE).numpy() * f + np.array([cx, cy])
    theirs = np.stack([cam.project_no_checks(p) for p in pts])
    assert np.abs(ours - theirs).max() < 1e-9  # pixels; measured ~1e-13
    pix = np.array([[100.0, 200.0], [700.0, 700.0], [1300.0, 90.0], [703.5, 704.25]])
    un = lens_unproject(torch.from_numpy((pix[:, 0] - cx) / f), torch.from_numpy((pix[:, 1] - cy) / f),
                        ARIA_LIKE).numpy()
    ref = np.stack([cam.unproject_no_checks(p) for p in pix])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert np.abs(un - ref).max() < 1e-9


def test_plucker_rays_of_a_fisheye624_camera_project_back_to_the_pixel_centres():
    H, W = 7, 11
    K = torch.tensor([0.62 * 11 / 11, 0.62 * 11 / 7, 0.53, 0.46], dtype=torch.float64)  # one focal in pixels
    c2w = look_at(torch.tensor([0.3, -0.2, 1.5], dtype=torch.float64), torch.tensor([0.0, 0.5, 0.9],
                                                                                   dtype=torch.float64))
    cams = Cameras(c2w[None], K[None], W, H, MILD[None])
    assert cams.lens_model == "fisheye624" and cams.fisheye.shape == (1, 12)
    rays = plucker_rays(cams.K, cams.c2w, H, W, fisheye=cams.fisheye)[0]  # [H, W, 6]
    d_cam = rays[..., :3] @ c2w[:3, :3]  # world -> camera (R^T d)
    xy = lens_project(d_cam, MILD)
    for i in range(H):  # the slow reference: every pixel centre
        for j in range(W):
            u = (xy[i, j, 0] * K[0] * W + K[2] * W).item()
            v = (xy[i, j, 1] * K[1] * H + K[3] * H).item()
            assert abs(u - (j + 0.5)) < 1e-9 and abs(v - (i + 0.5)) < 1e-9
    torch.testing.assert_close(torch.linalg.cross(c2w[:3, 3].expand(H, W, 3), rays[..., :3], dim=-1), rays[..., 3:])


def test_cameras_fisheye_shapes_and_cat():
    assert LENS_MODELS == {"pinhole": 0, "kannala_brandt": 4, "fisheye624": 12}
    K = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    with pytest.raises(Syn2SeqInputError, match=r"\[N, 12\]"):
        Cameras(torch.eye(4)[None], K, 8, 8, torch.zeros(1, 6))
    with pytest.raises(Syn2SeqInputError, match="FISHEYE624"):
        lens_model(torch.zeros(5))
    a = Cameras(torch.eye(4)[None], K, 8, 8, torch.tensor([[0.01, 0.0, 0.0, 0.0]]))
    b = Cameras(torch.eye(4)[None], K, 8, 8, MILD[None])
    both = Cameras.cat([a, b])  # Kannala-Brandt is promoted to its exact FISHEYE624 equivalent
    assert both.lens_model == "fisheye624"
    torch.testing.assert_close(both.fisheye[0], torch.tensor([0.01] + [0.0] * 11, dtype=both.fisheye.dtype))
    assert b[0].fisheye.shape == (1, 12) and b.to(torch.float32).fisheye.dtype == torch.float32


@pytest.mark.parametrize("clockwise", [True, False])
def test_rotate90_turns_the_tangential_and_thin_prism_terms_with_the_image(clockwise):
    H, W = 6, 10
    c2w = look_at(torch.tensor([0.2, 0.1, 1.4]), torch.tensor([0.0, 1.0, 1.0])).to(torch.float64)
    strong = MILD.clone()
    strong[6:] = torch.tensor([0.02, -0.03, 0.015, -0.01, -0.02, 0.012], dtype=torch.float64)
    cams = Cameras(c2w[None], torch.tensor([[0.55, 0.9, 0.47, 0.53]], dtype=torch.float64), W, H, strong[None])
    _, rot = rotate90(None, cams, clockwise=clockwise)
    rays = plucker_rays(cams.K, cams.c2w, H, W, fisheye=cams.fisheye)[0]
    rays_rot = plucker_rays(rot.K, rot.c2w, rot.height, rot.width, fisheye=rot.fisheye)[0]
    expected = torch.rot90(rays, k=-1 if clockwise else 1, dims=(0, 1))
    torch.testing.assert_close(rays_rot, expected, rtol=0, atol=1e-9)
    # without turning p and s the rays would differ
    wrong = Cameras(rot.c2w, rot.K, rot.width, rot.height, cams.fisheye)
    assert float((plucker_rays(wrong.K, wrong.c2w, rot.height, rot.width, fisheye=wrong.fisheye)[0]
                  - expected).abs().max()) > 1e-3


def test_render_through_a_fisheye624_lens_follows_the_lens_rays():
    """The renderer's per-ray directions come from the lens: a KB lens with zero coefficients (equidistant)
    differs from the pinhole, and a FISHEYE624 lens with KB coefficients renders exactly like that KB lens."""
    from syn2seq_core.data.synthetic import SyntheticConfig, render, render_take

    cfg = SyntheticConfig(size=24, exo_frames=1, ego_frames=2, supersample=1, threads=1)
    take = render_take(3, cfg)
    ego = take.ego_cameras
    kb = torch.tensor([[0.03, -0.01, 0.002, 0.0]], dtype=torch.float64)
    kb_frames = render(take.scene, Cameras(ego.c2w, ego.K, 24, 24, kb), take.ego_times, supersample=1)
    as624 = render(take.scene, Cameras(ego.c2w, ego.K, 24, 24, torch.cat([kb, torch.zeros(1, 8)], -1)),
                   take.ego_times, supersample=1)
    torch.testing.assert_close(kb_frames, as624, rtol=0, atol=1e-6)
    pinhole = render(take.scene, ego, take.ego_times, supersample=1)
    torch.testing.assert_close(pinhole, take.ego_frames)  # the pinhole path is unchanged
    assert float((pinhole - kb_frames).abs().mean()) > 1e-3
    with pytest.raises(Syn2SeqInputError, match="180"):  # a lens looking behind itself cannot be ray-cast here
        wide = Cameras(ego.c2w, ego.K * torch.tensor([0.2, 0.2, 1, 1], dtype=ego.K.dtype), 24, 24,
                       torch.zeros(1, 12))
        render(take.scene, wide, take.ego_times, supersample=1)
    assert math.isfinite(float(kb_frames.sum()))


def test_fisheye624_cameras_round_trip_through_cameras_json(tmp_path):
    from syn2seq_core.io.poses import load_cameras, save_cameras

    c2w = look_at(torch.tensor([[0.1, 0.2, 1.5], [0.2, 0.2, 1.4]], dtype=torch.float64),
                  torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.1, 1.0]], dtype=torch.float64))
    cams = Cameras(c2w, torch.tensor([[0.43, 0.43, 0.501, 0.498]], dtype=torch.float64), 64, 64, MILD[None])
    save_cameras(cams, tmp_path / "cameras.json")
    back = load_cameras(tmp_path / "cameras.json")
    assert back.lens_model == "fisheye624"
    torch.testing.assert_close(back.fisheye, cams.fisheye, rtol=0, atol=0)
    torch.testing.assert_close(back.c2w, cams.c2w, rtol=0, atol=0)


def test_slerp_between_kannala_brandt_and_fisheye624_tracks():
    """An exo GoPro (Kannala-Brandt) and the Aria RGB camera (FISHEYE624) meet as FISHEYE624: the transition's
    first camera continues the exo lens exactly, its last reaches the ego lens."""
    from syn2seq_core.geometry.slerp import interpolate_cameras

    eye = torch.eye(4, dtype=torch.float64)[None]
    kb = Cameras(eye, torch.tensor([[0.5, 0.5, 0.5, 0.5]], dtype=torch.float64), 64, 64,
                 torch.tensor([[0.1, -0.02, 0.003, 0.0]], dtype=torch.float64))
    f624 = torch.tensor([[0.2, 0.01, 0.0, 0.0, 0.0, 0.0, 1e-3, -1e-3, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    aria = Cameras(eye, torch.tensor([[0.6, 0.6, 0.5, 0.5]], dtype=torch.float64), 64, 64, f624)
    mid = interpolate_cameras(kb, aria, 3)
    assert mid.lens_model == "fisheye624" and mid.fisheye.shape == (3, 12)
    s = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)[:, None]
    torch.testing.assert_close(mid.fisheye, kb.as_fisheye624().fisheye + s * (f624 - kb.as_fisheye624().fisheye))
    with pytest.raises(Syn2SeqInputError, match="same lens model"):
        interpolate_cameras(Cameras(eye, kb.K, 64, 64), aria, 2)


def test_turning_the_aria_calibration_matches_projectaria_tools():
    """``AriaCameraCalibration.rotated_cw90`` (the reader's turn of the raw camera-rgb calibration) and ``rotate90``
    (the same on a Cameras track) against projectaria_tools' ``rotate_camera_calib_cw90deg``
    (``core/calibration/CameraCalibration.cpp`` lines 278-283 and 295-302 at 90f70ffe): parameters, image size,
    T_Device_Camera, and the normalised camera in our pixel convention."""
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core.sophus import SE3

    from syn2seq_core.data.egoexo4d import AriaCameraCalibration

    params = np.array([1216.5, 1403.25, 1441.75, *ARIA_LIKE.tolist()])
    T = np.eye(4)
    T[:3, :3] = look_at(torch.zeros(3, dtype=torch.float64), torch.tensor([0.3, 1.0, 0.2], dtype=torch.float64)
                        )[:3, :3].numpy()
    T[:3, 3] = [0.004, -0.012, -0.005]
    raw = calibration.CameraCalibration("camera-rgb", calibration.CameraModelType.FISHEYE624, params,
                                        SE3.from_matrix(T), 2880, 2880, None, 3.0, "x")
    theirs = calibration.rotate_camera_calib_cw90deg(raw)
    ours = AriaCameraCalibration("camera-rgb", params, (2880, 2880), T).rotated_cw90()
    np.testing.assert_allclose(ours.params, theirs.get_projection_params(), rtol=0, atol=1e-12)
    assert ours.image_size == tuple(int(v) for v in theirs.get_image_size())
    np.testing.assert_allclose(ours.T_device_camera, theirs.get_transform_device_camera().to_matrix(), rtol=0,
                               atol=1e-12)
    raw_ours = AriaCameraCalibration("camera-rgb", params, (2880, 2880), T)
    cams = Cameras(torch.from_numpy(T)[None], torch.from_numpy(raw_ours.K)[None], 2880, 2880,
                   torch.from_numpy(raw_ours.fisheye)[None])
    _, turned = rotate90(None, cams, clockwise=True)
    torch.testing.assert_close(turned.K[0], torch.from_numpy(ours.K), rtol=0, atol=1e-15)
    torch.testing.assert_close(turned.fisheye[0], torch.from_numpy(ours.fisheye), rtol=0, atol=0)
    torch.testing.assert_close(turned.c2w[0], torch.from_numpy(ours.T_device_camera), rtol=0, atol=1e-15)
