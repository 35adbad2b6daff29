import math

import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import Cameras, interpolate_cameras, quaternion_slerp, slerp_poses, transition_times


def pose(rotvec, centre):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())
    T[:3, 3] = torch.tensor(centre, dtype=torch.float64)
    return T


def slerp_loop(a, b, n):
    """Reference: scipy's Slerp per time, centre by plain lerp, one pose at a time."""
    rots = Rotation.from_matrix([a[:3, :3].numpy(), b[:3, :3].numpy()])
    s = Slerp([0.0, 1.0], rots)
    out = []
    for k in range(1, n + 1):
        t = k / (n + 1)
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = torch.from_numpy(s([t]).as_matrix()[0])
        T[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
        out.append(T)
    return torch.stack(out)


def test_matches_scipy_reference():
    a = pose([0.3, -1.2, 0.5], [1.0, 2.0, 3.0])
    b = pose([-2.0, 0.4, 1.1], [-1.0, 0.5, 2.0])
    torch.testing.assert_close(slerp_poses(a, b, 7), slerp_loop(a, b, 7))


def test_endpoints_excluded_and_times():
    torch.testing.assert_close(transition_times(3), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert slerp_poses(torch.eye(4), torch.eye(4), 0).shape == (0, 4, 4)


def test_midpoint_of_90_degree_turn_is_45():
    a = pose([0, 0, 0], [0, 0, 0])
    b = pose([0, 0, math.pi / 2], [2, 0, 0])
    mid = slerp_poses(a, b, 1)[0]
    angle = Rotation.from_matrix(mid[:3, :3].numpy()).magnitude()
    assert abs(angle - math.pi / 4) < 1e-9
    torch.testing.assert_close(mid[:3, 3], torch.tensor([1.0, 0, 0], dtype=torch.float64))


def test_q_and_minus_q_take_the_short_way():
    q0 = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)  # wxyz identity
    half = math.radians(170) / 2
    q1 = torch.tensor([math.cos(half), 0, 0, math.sin(half)], dtype=torch.float64)
    a = quaternion_slerp(q0, q1, torch.tensor([0.5]))
    b = quaternion_slerp(q0, -q1, torch.tensor([0.5]))
    # Same rotation either way (up to sign), and it is the 85-degree midpoint, not 95 the long way.
    assert torch.allclose(a, b) or torch.allclose(a, -b)
    assert abs(2 * math.degrees(math.acos(abs(float(a[0, 0])))) - 85) < 1e-6


def test_batched():
    a = torch.stack([pose([0.1, 0.2, 0.3], [0, 0, 0]), pose([1, 0, 0], [1, 1, 1])])
    b = torch.stack([pose([-0.5, 0.2, 1.3], [1, 0, 0]), pose([0, 2, 0], [0, 0, 3])])
    out = slerp_poses(a, b, 4)
    assert out.shape == (2, 4, 4, 4)
    for i in range(2):
        torch.testing.assert_close(out[i], slerp_loop(a[i], b[i], 4))


def test_interpolate_cameras_lerps_intrinsics_and_uses_last_and_first():
    a = Cameras(torch.stack([pose([0, 0, 0], [9, 9, 9]), pose([0, 0, 0], [0, 0, 0])]),
                [0.5, 0.6, 0.5, 0.5], 64, 64)
    b = Cameras(torch.stack([pose([0, 0.5, 0], [1, 0, 0]), pose([0, 0, 0], [7, 7, 7])]),
                [1.0, 1.2, 0.5, 0.4], 64, 64)
    tr = interpolate_cameras(a, b, 3)
    assert len(tr) == 3
    torch.testing.assert_close(tr.K[1], torch.tensor([0.75, 0.9, 0.5, 0.45], dtype=torch.float64))
    torch.testing.assert_close(tr.centers[:, 0], torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))


def test_refuses_bad_rotation():
    bad = torch.eye(4)
    bad[0, 0] = 2
    with pytest.raises(Syn2SeqInputError, match="c2w_a.*orthonormal"):
        slerp_poses(bad, torch.eye(4), 2)


def test_refuses_mixing_pinhole_and_fisheye():
    a = Cameras(pose([0, 0, 0], [0, 0, 0]), [0.5, 0.5, 0.5, 0.5], 8, 8)
    b = Cameras(pose([0, 0, 0], [1, 0, 0]), [0.5, 0.5, 0.5, 0.5], 8, 8, fisheye=[0.01, 0, 0, 0])
    with pytest.raises(Syn2SeqInputError, match="pinhole"):
        interpolate_cameras(a, b, 2)
    with pytest.raises(Syn2SeqInputError, match="pinhole"):
        Cameras.cat([a, b])
    with pytest.raises(IndexError):
        a[3]
