"""Sim(3) alignment and the camera-accuracy metrics (geometry.align), against their outside definitions.

Sources (read, not copied):
- Umeyama, "Least-squares estimation of transformation parameters between two point patterns", IEEE TPAMI 13(4),
  1991, eqs. (34)-(42); the rotation part is also checked against scipy's Kabsch solver
  (``scipy.spatial.transform.Rotation.align_vectors``).
- RotErr / TransErr: CameraCtrl (He et al. 2024) defines them in its paper; its official repository
  (github.com/hehao13/CameraCtrl, main af45a7a0 and svd 1f9d8bae) ships no evaluation code, so the reference
  implementation is CamI2V's (github.com/ZGCTroy/CamI2V at c5d7b2fc), which reports both under those names:
  ``evaluation/glomap_evaluation.py`` L125-126 ``calc_roterr`` (angle ``acos((tr(R1^T R2) - 1) / 2)``), L129-130
  ``calc_transerr`` (Euclidean norm of the translation difference), L137-144 ``metric`` (RotErr = sum over frames;
  TransErr_rel = sum over frames after ``normalize_t`` of each track by itself), L105 and L180 (both tracks made
  relative with ``relative_pose(..., mode="left")``); ``evaluation/utils/common.py`` L46-51 ``relative_pose``
  ``left``: ``[I, c2w_0^-1 @ c2w_1, ...]``, L54-58 ``normalize_t``: translations divided by the largest translation
  norm of the reference track plus eps 1e-9 (here: divided only when that norm is non-zero, which is
  the same guard without a dependence on the arbitrary scale of an SfM track).
The fixtures are asymmetric (a different perturbation per frame, the largest translation not at the end), so a
reading that drops or shifts a frame, composes on the wrong side, or normalises by the wrong track gives another
number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry.align import (camera_accuracy, relative_poses, rotation_angle, rotation_errors, static_track,
                                         translation_errors, umeyama)


def _pose(rotvec, centre) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())
    T[:3, 3] = torch.tensor(centre, dtype=torch.float64)
    return T


def _track() -> torch.Tensor:
    """Five cameras turning and moving unevenly; the largest move from camera 0 is camera 2's."""
    rv = [(0.1, -0.2, 0.05), (0.3, 0.1, -0.2), (-0.2, 0.5, 0.1), (0.0, 0.2, 0.6), (0.4, -0.3, 0.2)]
    c = [(0.0, 0.0, 1.0), (0.5, 0.1, 1.2), (1.6, -0.7, 0.9), (0.9, 0.3, 1.1), (0.2, 0.4, 1.3)]
    return torch.stack([_pose(r, x) for r, x in zip(rv, c)])


def _similarity(c2w: torch.Tensor, s: float, rotvec, t) -> torch.Tensor:
    """The same cameras in another world frame: X' = s R X + t."""
    R = torch.from_numpy(Rotation.from_rotvec(rotvec).as_matrix())
    out = c2w.clone()
    out[:, :3, :3] = R @ c2w[:, :3, :3]
    out[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + torch.tensor(t, dtype=torch.float64)
    return out


# --- Umeyama -------------------------------------------------------------------------------------------
def test_umeyama_recovers_a_known_similarity_exactly():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(12, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 0.7, 0.3], dtype=torch.float64)
    R = torch.from_numpy(Rotation.from_rotvec([0.3, -0.5, 0.8]).as_matrix())
    s, t = 2.5, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    dst = s * src @ R.T + t
    fit = umeyama(src, dst)
    assert fit.scale == pytest.approx(s, abs=1e-12)
    torch.testing.assert_close(fit.R, R, atol=1e-12, rtol=0)
    torch.testing.assert_close(fit.t, t, atol=1e-12, rtol=0)
    torch.testing.assert_close(fit.aligned, dst, atol=1e-12, rtol=0)
    assert fit.rmse < 1e-12 and torch.det(fit.R) == pytest.approx(1.0)
    # the inverse direction is the inverse similarity
    back = umeyama(dst, src)
    assert back.scale == pytest.approx(1 / s, abs=1e-12)
    torch.testing.assert_close(back.R, R.T, atol=1e-12, rtol=0)
    # rigid fit (no scale): scale 1, the same rotation
    rigid = umeyama(src, dst, with_scale=False)
    assert rigid.scale == 1.0
    torch.testing.assert_close(rigid.R, R, atol=1e-12, rtol=0)


def test_umeyama_least_squares_matches_scipy_kabsch_and_the_paper_scale_under_noise():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(40, 3, generator=g, dtype=torch.float64)
    R = torch.from_numpy(Rotation.from_rotvec([-1.1, 0.4, 0.2]).as_matrix())
    dst = 0.37 * src @ R.T + torch.tensor([3.0, 0.0, -1.0], dtype=torch.float64)
    dst = dst + 0.01 * torch.randn(40, 3, generator=g, dtype=torch.float64)
    fit = umeyama(src, dst)
    xs, xd = (src - src.mean(0)).numpy(), (dst - dst.mean(0)).numpy()
    kabsch, _ = Rotation.align_vectors(xd, xs)  # rotation a -> b minimising |b - R a| (scale-free)
    np.testing.assert_allclose(fit.R.numpy(), kabsch.as_matrix(), atol=1e-10)
    # eq. (42): c = tr(D S) / sigma_x^2, i.e. sum_i <xd_i, R xs_i> / sum_i |xs_i|^2 at the optimum
    c = float((xd * (xs @ kabsch.as_matrix().T)).sum() / (xs * xs).sum())
    assert fit.scale == pytest.approx(c, rel=1e-10)
    # it is a minimum: a small change of scale or rotation does not lower the error
    for ds, dr in ((1.01, None), (0.99, None), (1.0, [0.01, 0, 0]), (1.0, [0, 0, -0.01])):
        Rp = fit.R if dr is None else torch.from_numpy(Rotation.from_rotvec(dr).as_matrix()) @ fit.R
        mu_s, mu_d = src.mean(0), dst.mean(0)
        alt = fit.scale * ds * (src - mu_s) @ Rp.T + mu_d
        assert float(((alt - dst) ** 2).sum(-1).mean().sqrt()) >= fit.rmse - 1e-15


def test_umeyama_returns_a_rotation_for_mirrored_points_and_a_finite_fit_for_a_static_track():
    g = torch.Generator().manual_seed(2)
    src = torch.randn(10, 3, generator=g, dtype=torch.float64)
    mirrored = src * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    fit = umeyama(src, mirrored)
    assert torch.det(fit.R) == pytest.approx(1.0) and math.isfinite(fit.rmse) and fit.rmse > 0.1
    # a frozen video: every estimated centre the same -> scale 0, aligned = target mean, a large rmse, no NaN
    dst = torch.randn(8, 3, generator=g, dtype=torch.float64)
    still = umeyama(torch.zeros(8, 3) + 0.3, dst)
    assert still.scale == 0.0 and torch.equal(still.R, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(still.aligned, dst.mean(0).expand(8, 3))
    assert still.rmse == pytest.approx(float(((dst - dst.mean(0)) ** 2).sum(-1).mean().sqrt()))
    assert umeyama(torch.zeros(1, 3), torch.ones(1, 3)).rmse == 0.0


def test_umeyama_refuses_bad_inputs_naming_them():
    with pytest.raises(Syn2SeqInputError, match="src.*\\[N, 3\\]"):
        umeyama(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(Syn2SeqInputError, match="dst.*as many points"):
        umeyama(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(Syn2SeqInputError, match="finite"):
        umeyama(torch.full((4, 3), float("nan")), torch.zeros(4, 3))


# --- RotErr -------------------------------------------------------------------------------------------
def _reference_rot_err(est: torch.Tensor, ref: torch.Tensor) -> float:
    """Slow reading of the cited definition: relative to camera 0 (left), angle of R_ref^T R_est per frame, summed."""
    total = 0.0
    for i in range(len(ref)):
        r = torch.linalg.inv(ref[0]) @ ref[i]
        e = torch.linalg.inv(est[0]) @ est[i]
        cos = (float(torch.trace(r[:3, :3].T @ e[:3, :3])) - 1) / 2
        total += math.acos(max(-1.0, min(1.0, cos)))
    return total


def test_rot_err_of_a_known_perturbation_in_any_world_frame():
    """Camera i of the estimate is turned by theta_i about its own (camera-frame) axis a_i, camera 0 not at all:
    each relative rotation is then off by exactly theta_i, so RotErr = sum theta_i; putting the estimate in
    another world frame and scale (as SfM does) changes nothing."""
    ref = _track()
    thetas = [0.0, 0.05, 0.2, 0.11, 0.31]
    axes = [(1, 0, 0), (0, 1, 0), (0.6, 0.0, 0.8), (0, 0, 1), (0.0, -0.6, 0.8)]
    est = ref.clone()
    for i, (th, a) in enumerate(zip(thetas, axes)):
        P = torch.from_numpy(Rotation.from_rotvec(th * np.array(a, dtype=float)).as_matrix())
        est[i, :3, :3] = ref[i, :3, :3] @ P
    est = _similarity(est, 0.13, [0.7, -0.2, 1.9], [5.0, -3.0, 2.0])
    per_frame = rotation_errors(est, ref)
    torch.testing.assert_close(per_frame, torch.tensor(thetas, dtype=torch.float64), atol=1e-12, rtol=0)
    acc = camera_accuracy(est, ref)
    assert acc.rot_err == pytest.approx(sum(thetas), abs=1e-12)
    assert acc.rot_err == pytest.approx(_reference_rot_err(est, ref), abs=1e-7)
    assert acc.rot_err_deg_mean == pytest.approx(math.degrees(sum(thetas)) / 4)
    assert acc.frames == 5


def test_rotation_angle_is_exact_near_zero_and_at_pi():
    for th in (0.0, 1e-7, 1e-3, 1.0, math.pi - 1e-6, math.pi):
        R = torch.from_numpy(Rotation.from_rotvec([0.0, th, 0.0]).as_matrix())
        assert float(rotation_angle(R)) == pytest.approx(th, abs=1e-12)


# --- TransErr ----------------------------------------------------------------------------------------
def test_trans_err_is_zero_after_any_similarity_and_known_for_a_moved_camera():
    ref = _track()
    same = _similarity(ref, 3.7, [0.2, 0.9, -0.4], [1.0, 2.0, 3.0])
    assert camera_accuracy(same, ref).trans_err == pytest.approx(0.0, abs=1e-12)
    assert camera_accuracy(same, ref).rot_err == pytest.approx(0.0, abs=1e-12)
    # move camera 3 by delta in camera 0's frame (it stays smaller than camera 2's move, which sets the scale)
    rel = relative_poses(ref)
    scale = float(rel[:, :3, 3].norm(dim=-1).amax())
    assert int(rel[:, :3, 3].norm(dim=-1).argmax()) == 2
    delta = torch.tensor([0.1, -0.05, 0.2], dtype=torch.float64)
    moved = ref.clone()
    moved[3, :3, 3] = ref[3, :3, 3] + ref[0, :3, :3] @ delta  # world displacement whose camera-0 coordinates are delta
    moved = _similarity(moved, 0.02, [-0.3, 0.1, 0.5], [0.0, 7.0, 0.0])
    per_frame = translation_errors(moved, ref)
    expect = torch.zeros(5, dtype=torch.float64)
    expect[3] = float(delta.norm()) / scale
    torch.testing.assert_close(per_frame, expect, atol=1e-9, rtol=0)
    assert camera_accuracy(moved, ref).trans_err == pytest.approx(float(delta.norm()) / scale, abs=1e-9)


def test_a_static_estimate_scores_the_whole_requested_motion_never_nan():
    """A frozen video (or one whose cameras cannot be recovered) is a static track: RotErr is the requested
    track's total relative rotation, TransErr the sum of its normalised translations."""
    ref = _track()
    acc = camera_accuracy(static_track(5), ref)
    rel = relative_poses(ref)
    angles = [float(np.linalg.norm(Rotation.from_matrix(rel[i, :3, :3].numpy()).as_rotvec())) for i in range(5)]
    norms = rel[:, :3, 3].norm(dim=-1)
    assert acc.rot_err == pytest.approx(sum(angles), abs=1e-9)
    assert acc.trans_err == pytest.approx(float((norms / norms.max()).sum()), abs=1e-9)
    assert acc.rot_err > 1.0 and acc.trans_err > 2.0 and all(map(math.isfinite, (acc.rot_err, acc.trans_err)))
    # a requested track that does not move: a static estimate is right, one that moves is not
    assert camera_accuracy(static_track(5), static_track(5)).as_dict()["trans_err"] == 0.0
    moving = camera_accuracy(ref, static_track(5))
    assert math.isfinite(moving.trans_err) and moving.trans_err > 2.0 and moving.rot_err > 1.0
    # one frame: nothing to compare, zero error
    assert camera_accuracy(ref[:1], ref[:1]).rot_err == 0.0


def test_camera_accuracy_refuses_tracks_of_different_lengths_or_shapes():
    with pytest.raises(Syn2SeqInputError, match="one camera per requested camera \\(5\\)"):
        camera_accuracy(static_track(4), _track())
    with pytest.raises(Syn2SeqInputError, match="\\[N, 4, 4\\]"):
        camera_accuracy(torch.zeros(5, 3), _track())
    with pytest.raises(Syn2SeqInputError, match="finite"):
        camera_accuracy(torch.full((5, 4, 4), float("nan")), _track())
