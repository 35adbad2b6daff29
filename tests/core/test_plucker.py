import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import Cameras, look_at, plucker_rays, plucker_rays_latent
from syn2seq_core.geometry.plucker import camera_directions, kannala_brandt_theta

from .reference import plucker_rays_loop


def random_c2w(n, seed=0):
    rot = Rotation.random(n, random_state=seed).as_matrix()
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, :3, :3] = torch.from_numpy(rot)
    c2w[:, :3, 3] = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return c2w


@pytest.mark.parametrize("order", ["dm", "md"])
def test_fast_rays_equal_loop_reference_non_square(order):
    c2w = random_c2w(3)
    K = torch.tensor([[0.9, 1.4, 0.52, 0.47], [0.6, 0.8, 0.5, 0.5], [1.2, 2.0, 0.4, 0.6]], dtype=torch.float64)
    fast = plucker_rays(K, c2w, 5, 7, order=order)
    assert fast.shape == (3, 5, 7, 6)
    for i in range(3):
        torch.testing.assert_close(fast[i], plucker_rays_loop(K[i], c2w[i], 5, 7, order))


def test_principal_point_ray_is_camera_z_axis():
    c2w = random_c2w(1, seed=3)[0]
    # Principal point exactly on the centre of pixel (2, 1) of a 5x3 image.
    K = torch.tensor([0.8, 0.9, 2.5 / 5, 1.5 / 3], dtype=torch.float64)
    rays = plucker_rays(K, c2w, 3, 5)
    torch.testing.assert_close(rays[1, 2, :3], c2w[:3, 2])


def test_moments_vanish_for_camera_at_origin():
    c2w = random_c2w(2)
    c2w[:, :3, 3] = 0
    rays = plucker_rays(torch.tensor([0.7, 0.7, 0.5, 0.5]), c2w, 4, 6)
    assert rays[..., 3:].abs().max() < 1e-12
    torch.testing.assert_close(rays[..., :3].norm(dim=-1), torch.ones(2, 4, 6, dtype=torch.float64))


def test_moment_is_invariant_along_the_ray():
    c2w = random_c2w(1, seed=5)
    rays = plucker_rays(torch.tensor([0.7, 0.7, 0.5, 0.5]), c2w, 4, 4)
    d, m = rays[0, ..., :3], rays[0, ..., 3:]
    moved = c2w[0, :3, 3] + 2.5 * d  # a different point on each ray
    torch.testing.assert_close(torch.linalg.cross(moved, d, dim=-1), m)


def test_any_batch_shape_and_broadcast():
    c2w = random_c2w(6).reshape(2, 3, 4, 4)
    K = torch.tensor([0.7, 0.8, 0.5, 0.5])
    rays = plucker_rays(K, c2w, 4, 5)
    assert rays.shape == (2, 3, 4, 5, 6)
    torch.testing.assert_close(rays[1, 2], plucker_rays(K, c2w[1, 2], 4, 5))


def test_float32_under_bf16_autocast():
    c2w = random_c2w(2).float()
    K = torch.tensor([0.7, 0.8, 0.5, 0.5])
    ref = plucker_rays(K, c2w, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rays = plucker_rays(K, c2w, 8, 8)
    assert rays.dtype == torch.float32
    torch.testing.assert_close(rays, ref)


def test_latent_rays_pass_through_patch_centres():
    c2w = random_c2w(1)
    K = torch.tensor([0.7, 0.8, 0.45, 0.55], dtype=torch.float64)
    coarse = plucker_rays_latent(K, c2w, 32, 48, 4)
    assert coarse.shape == (1, 8, 12, 6)
    # The centre of patch (0, 0) of a 4x4 patch grid is pixel coordinate (2, 2) of the full image,
    # which is the midpoint of full-res pixel centres 1.5 and 2.5: directions average to it (pinhole).
    full = plucker_rays(K, c2w, 32, 48)
    d = full[0, 1:3, 1:3, :3].mean(dim=(0, 1))
    torch.testing.assert_close(coarse[0, 0, 0, :3], d / d.norm(), atol=1e-3, rtol=0)
    with pytest.raises(Syn2SeqInputError, match="multiples of the patch size"):
        plucker_rays_latent(K, c2w, 30, 48, 4)


def test_fisheye_rays_match_kannala_brandt_projection():
    k = torch.tensor([0.05, -0.01, 0.002, -0.0005], dtype=torch.float64)
    K = torch.tensor([0.3, 0.3, 0.5, 0.5], dtype=torch.float64)
    d = camera_directions(K, 9, 11, fisheye=k)
    # Re-project each unit direction with the forward model and land on the pixel centre.
    theta = torch.atan2(torch.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2), d[..., 2])
    r = theta * (1 + k[0] * theta**2 + k[1] * theta**4 + k[2] * theta**6 + k[3] * theta**8)
    rho = torch.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2).clamp(min=1e-12)
    u = K[0] * r * d[..., 0] / rho + K[2]
    v = K[1] * r * d[..., 1] / rho + K[3]
    uu, vv = torch.meshgrid((torch.arange(11.0, dtype=torch.float64) + 0.5) / 11,
                          (torch.arange(9.0, dtype=torch.float64) + 0.5) / 9, indexing="xy")
    torch.testing.assert_close(u, uu.double(), atol=1e-9, rtol=0)
    torch.testing.assert_close(v, vv.double(), atol=1e-9, rtol=0)
    # Wide field of view: the corner rays bend beyond what a pinhole would give.
    pin = camera_directions(K, 9, 11)
    assert torch.acos(d[0, 0, 2]) > torch.acos(pin[0, 0, 2])


def test_kannala_brandt_zero_coefficients_is_equidistant():
    r = torch.linspace(0, 1.5, 7, dtype=torch.float64)[None, None]
    theta = kannala_brandt_theta(r, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(theta, r)


def test_rays_of_look_at_camera_hit_target():
    c2w = look_at(torch.tensor([3.0, -2.0, 1.5]), torch.tensor([0.0, 0.0, 0.5]))
    cams = Cameras(c2w, [0.8, 0.8, 0.5, 0.5], 4, 4)
    rays = plucker_rays(cams.K, cams.c2w, 4, 4)[0]
    # The target lies on the optical axis = the ray through the principal point, between the 4 centre pixels.
    centre = rays[1:3, 1:3, :3].mean(dim=(0, 1))
    to_target = torch.tensor([-3.0, 2.0, -1.0]) / math.sqrt(14)
    torch.testing.assert_close(centre / centre.norm(), to_target, atol=1e-6, rtol=0)


def test_bad_inputs_named():
    with pytest.raises(Syn2SeqInputError, match="order"):
        plucker_rays(torch.ones(4) * 0.5, torch.eye(4), 2, 2, order="xy")
    with pytest.raises(Syn2SeqInputError, match="K"):
        plucker_rays(torch.ones(3), torch.eye(4), 2, 2)


def test_camera_maths_ignore_autocast():
    c2w = random_c2w(4).float()
    cams = Cameras(c2w, [0.7, 0.8, 0.5, 0.5], 8, 8)
    ref = cams.relative_to().c2w
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rel = cams.relative_to().c2w
    torch.testing.assert_close(rel, ref)
