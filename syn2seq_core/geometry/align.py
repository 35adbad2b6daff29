"""Aligning camera tracks and scoring how well one follows another.

- :func:`umeyama`: the least-squares similarity (scale, rotation, translation: Sim(3)) that maps one track of
  camera centres onto another (Umeyama 1991), e.g. a structure-from-motion track, whose scale and world frame
  are arbitrary, onto a known one.
- :func:`camera_accuracy`: RotErr and TransErr of an estimated camera track against a requested one, as the
  camera-control literature reports them (CameraCtrl; the reference implementation is CamI2V's
  ``evaluation/glomap_evaluation.py``). Both tracks are first taken relative to their own first camera
  (``c2w_0^-1 c2w_i``), which removes the estimate's arbitrary world frame; translations are then divided
  by the largest relative translation of their own track, which removes its arbitrary scale.

  RotErr = sum over frames of the angle (radians) of ``R_ref_i^T R_est_i`` (relative rotations);
  TransErr = sum over frames of ``|t_ref_i / s_ref - t_est_i / s_est|`` (relative translations, s the
  largest relative translation norm of the track).

  A static estimate (every camera the same: what a frozen video gives, and what a video whose cameras
  cannot be recovered is scored as) has RotErr = the requested track's own total rotation and TransErr = the
  sum of its normalised translations: a large, finite error, never NaN. A track that does not move has
  nothing to normalise by: its translations stay zero (what the reference's ``eps`` achieves).

Conventions: c2w [N, 4, 4] camera-to-world, OpenCV axes (any consistent axes give the same errors); maths
in float64. Imports nothing of ComfyUI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require

# Tracks whose camera centres spread less than this (metres, RMS about their mean; any unit for an SfM
# track) count as static for alignment: the scale is then 0 and every aligned point the target's mean.
STATIC_SPREAD = 1e-9


@dataclass(frozen=True, eq=False)
class Sim3:
    """``dst ≈ scale * R @ src + t``. scale: float; R: [3, 3]; t: [3]; aligned: [N, 3] the mapped ``src``;
    rmse: root mean square distance between ``aligned`` and ``dst``. All float64."""

    scale: float
    R: Tensor
    t: Tensor
    aligned: Tensor
    rmse: float

    def apply(self, points: Tensor) -> Tensor:
        """Map points [..., 3] by the similarity."""
        return self.scale * points.to(torch.float64) @ self.R.T + self.t

    def apply_c2w(self, c2w: Tensor) -> Tensor:
        """Map camera poses [N, 4, 4] by the similarity (centres scaled, rotations turned; stays a rigid pose)."""
        out = c2w.to(torch.float64).clone()
        out[:, :3, :3] = self.R @ out[:, :3, :3]
        out[:, :3, 3] = self.apply(out[:, :3, 3])
        return out


def _points(x, name: str) -> Tensor:
    x = torch.as_tensor(x)
    require(x.ndim == 2 and x.shape[-1] == 3, name, "camera centres of shape [N, 3]", tuple(x.shape))
    require(x.shape[0] >= 1, name, "at least one point", 0)
    x = x.to(torch.float64)
    require(bool(torch.isfinite(x).all()), name, "finite coordinates", "NaN or inf")
    return x


def umeyama(src, dst, *, with_scale: bool = True) -> Sim3:
    """The similarity minimising ``sum_i |dst_i - (scale R src_i + t)|^2``. src, dst: [N, 3] -> :class:`Sim3`.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point patterns",
    IEEE TPAMI 13(4), eqs. (34)-(42): SVD of the cross-covariance, a reflection turned into the nearest
    rotation (``det R = +1``). with_scale=False gives the rigid fit (scale 1). Points that do not spread
    (a static track, fewer than 2 distinct points) give ``R = I``, ``scale = 0`` (with_scale) and every aligned
    point at the mean of ``dst``: the best a static track can do, never NaN. Collinear points leave the
    rotation about their line undetermined; the one returned is then one of the minimisers.
    """
    src, dst = _points(src, "src"), _points(dst, "dst")
    require(src.shape == dst.shape, "dst", f"as many points as src ({src.shape[0]})", dst.shape[0])
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = float((xs * xs).sum() / n)
    if var_s <= STATIC_SPREAD ** 2:
        R = torch.eye(3, dtype=torch.float64)
        scale = 0.0 if with_scale else 1.0
    else:
        cov = xd.T @ xs / n  # [3, 3] Sigma_xy of the paper (dst x src^T)
        U, D, Vh = torch.linalg.svd(cov)
        S = torch.ones(3, dtype=torch.float64)
        if torch.det(U) * torch.det(Vh) < 0:
            S[2] = -1.0
        R = U @ torch.diag(S) @ Vh
        scale = float((D * S).sum() / var_s) if with_scale else 1.0
    t = mu_d - scale * R @ mu_s
    aligned = scale * src @ R.T + t
    rmse = float(((aligned - dst) ** 2).sum(-1).mean().sqrt())
    return Sim3(scale, R, t, aligned, rmse)


def _c2w(x, name: str) -> Tensor:
    x = torch.as_tensor(x)
    require(x.ndim == 3 and x.shape[-2:] in ((4, 4), (3, 4)), name, "camera poses c2w of shape [N, 4, 4]",
            tuple(x.shape))
    require(x.shape[0] >= 1, name, "at least one camera", 0)
    x = x.to(torch.float64)
    require(bool(torch.isfinite(x).all()), name, "finite poses", "NaN or inf")
    if x.shape[-2] == 3:
        x = torch.cat([x, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(x.shape[0], 1, 4)], 1)
    return x


def relative_poses(c2w) -> Tensor:
    """Every camera relative to the first: ``c2w_0^-1 @ c2w_i``. c2w: [N, 4, 4] -> [N, 4, 4] (the first is I).

    Invariant to any rigid change of world frame; a change of world scale scales the translations only.
    """
    c2w = _c2w(c2w, "c2w")
    R0, t0 = c2w[0, :3, :3], c2w[0, :3, 3]
    out = torch.zeros_like(c2w)
    out[:, :3, :3] = R0.T @ c2w[:, :3, :3]
    out[:, :3, 3] = (c2w[:, :3, 3] - t0) @ R0  # R0^T (c_i - c_0)
    out[:, 3, 3] = 1.0
    return out


def rotation_angle(R) -> Tensor:
    """Angle (radians, in [0, pi]) of rotations R [..., 3, 3]: ``arccos((tr R - 1) / 2)``, computed as
    ``atan2(sin, cos)`` with sin half the norm of the axial vector of ``R - R^T``, which stays exact near 0
    where arccos loses half the digits."""
    R = torch.as_tensor(R).to(torch.float64)
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    w = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = w.norm(dim=-1) / 2.0
    return torch.atan2(sin, cos.clamp(-1.0, 1.0))


def _pair(est, ref) -> tuple[Tensor, Tensor]:
    est, ref = _c2w(est, "estimated c2w"), _c2w(ref, "requested c2w")
    if est.shape[0] != ref.shape[0]:
        raise Syn2SeqInputError("estimated c2w", f"one camera per requested camera ({ref.shape[0]})",
                                 est.shape[0])
    return relative_poses(est), relative_poses(ref)


def rotation_errors(est, ref) -> Tensor:
    """Per-frame angle (radians) between the relative rotations of two tracks. est, ref: c2w [N, 4, 4] -> [N]
    (the first is 0). Their sum is RotErr."""
    e, r = _pair(est, ref)
    return rotation_angle(r[:, :3, :3].transpose(-1, -2) @ e[:, :3, :3])


def normalized_translations(c2w) -> Tensor:
    """Relative translations [N, 3] (camera i's centre in camera 0's frame) divided by their largest norm."""
    t = relative_poses(c2w)[:, :3, 3]
    biggest = t.norm(dim=-1).amax()
    # the reference adds eps = 1e-9 to the divisor against a track that does not move; dividing only by a
    # non-zero largest norm does the same without depending on the track's (arbitrary) scale
    return t / biggest if biggest > 0 else t


def translation_errors(est, ref) -> Tensor:
    """Per-frame distance between the scale-normalised relative translations of two tracks. est, ref:
    c2w [N, 4, 4] -> [N] (the first is 0). Their sum is TransErr."""
    _pair(est, ref)  # checks
    return (normalized_translations(ref) - normalized_translations(est)).norm(dim=-1)


@dataclass(frozen=True)
class CameraAccuracy:
    """How well an estimated camera track follows a requested one (see the module docstring).

    rot_err: RotErr, radians summed over the frames; trans_err: TransErr, summed over the frames (unitless:
    each track's translations divided by its largest); frames: N; rot_err_deg_mean: RotErr per moving frame
    in degrees (``N - 1`` frames after the reference one; 0 for one frame), for reading."""

    rot_err: float
    trans_err: float
    frames: int
    rot_err_deg_mean: float

    def as_dict(self) -> dict:
        return {"rot_err": self.rot_err, "trans_err": self.trans_err, "frames": self.frames,
                "rot_err_deg_mean": self.rot_err_deg_mean}


def camera_accuracy(est, ref) -> CameraAccuracy:
    """RotErr and TransErr of the estimated track ``est`` against the requested track ``ref``: c2w [N, 4, 4]
    each, frame i of one matching frame i of the other."""
    rot = rotation_errors(est, ref)
    trans = translation_errors(est, ref)
    n = rot.shape[0]
    rot_sum = float(rot.sum())
    return CameraAccuracy(rot_sum, float(trans.sum()), n, math.degrees(rot_sum) / max(n - 1, 1))


def static_track(n: int) -> Tensor:
    """[n, 4, 4] identity poses: the camera track of a video whose camera does not move (or cannot be
    recovered), as camera accuracy scores it."""
    require(int(n) == n and n >= 1, "n", "a positive number of frames", n)
    return torch.eye(4, dtype=torch.float64).expand(int(n), 4, 4).clone()
