"""``egoexo4d_aria``: the Aria device track of an Ego-Exo4D take, from ``trajectory/closed_loop_trajectory.csv``.

``T_world_device`` is in the same world as the GoPro calibration (:mod:`.egoexo4d_exo`). The track is resampled at
``timestamps_us`` (required; tracking-clock microseconds): rotation by SLERP between the two samples around each
time, translation by linear interpolation; times outside the track are an error. The pose is the *device* frame
unless ``T_device_camera`` (4x4) is given (``c2w = T_world_device @ T_device_camera``); Exo2Ego-V used the device
pose directly. Intrinsics are not in this file: options ``K`` (normalised, [4] or [N, 4]), ``width``, ``height``,
``fisheye`` (k1..k4, or the twelve FISHEYE624 coefficients of the Aria RGB camera), ``T_device_camera`` ([4, 4] or
per frame [N, 4, 4]); the defaults :data:`ARIA_RGB_DEFAULT_K` at :data:`ARIA_RGB_DEFAULT_SIZE` are an
*approximate* pinhole stand-in for the Aria RGB camera (f ~ 610 px at 1408x1408; the real lens is a FISHEYE624
model). Read the device calibration for exact values. ``width`` and ``height`` set the size (the file has none);
timestamps are the requested ``timestamps_us / 1e6``.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ...base.errors import Syn2SeqInputError, require
from ...geometry.cameras import check_rotations
from ..safe_paths import Folder
from .common import (CameraTrack, _err, _find_file, _finish, _float64, _floats, _Parsed, _poses_from_quaternions,
                     _read_csv_header, _read_text, _size_option)
from .registry import Head, PoseFormat, holds_file, register

# Approximate Aria RGB camera (full resolution 1408x1408, focal ~610 px, centred principal point).
ARIA_RGB_DEFAULT_SIZE = (1408, 1408)
ARIA_RGB_DEFAULT_K = (610.0 / 1408.0, 610.0 / 1408.0, 0.5, 0.5)

_ARIA_COLUMNS = (
    "tracking_timestamp_us", "tx_world_device", "ty_world_device", "tz_world_device",
    "qx_world_device", "qy_world_device", "qz_world_device", "qw_world_device",
)


def _read_trajectory(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """closed_loop_trajectory.csv -> (t_us [M], q_xyzw [M, 4], translation [M, 3]), sorted, validated."""
    text = _read_text(src)
    header = _read_csv_header(src, text, _ARIA_COLUMNS)
    usecols = [header.index(c) for c in _ARIA_COLUMNS]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported below
            data = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=usecols, ndmin=2,
                              comments=None, dtype=np.float64)
    except ValueError:
        data = None
    if data is None:  # find the bad line (slow path, only on error)
        reader = csv.reader(io.StringIO(text))
        next(reader)
        for cells in reader:
            at = f"line {reader.line_num}"
            if not cells:
                continue
            if len(cells) != len(header):
                raise _err(src, at, f"{len(header)} comma-separated fields", len(cells))
            _floats([cells[i] for i in usecols], src, at, ", ".join(_ARIA_COLUMNS))
        raise _err(src, None, "a numeric trajectory table", "unparseable content")
    if len(data) == 0:
        raise _err(src, None, "at least one trajectory sample", "none")
    t_us, trans, q = data[:, 0], data[:, 1:4], data[:, 4:8]
    bad = ~np.isfinite(t_us)
    if bad.any():
        raise _err(src, f"line {int(np.argmax(bad)) + 2}", "a finite tracking_timestamp_us", "NaN or inf")
    step = np.diff(t_us)
    if (step <= 0).any():
        i = int(np.argmax(step <= 0)) + 1
        raise _err(src, f"line {i + 2}", "strictly increasing tracking_timestamp_us",
                   f"{t_us[i]:.0f} after {t_us[i - 1]:.0f}")
    return t_us, q, trans


def read(path: Path, within: Folder, *, timestamps_us=None, K=None, width: int | None = None,
         height: int | None = None, fisheye=None, T_device_camera=None) -> CameraTrack:
    """The Aria track of a take resampled at ``timestamps_us``: [N] tracking-clock microseconds."""
    from scipy.spatial.transform import Rotation

    w, h = _size_option(width, height, "egoexo4d_aria") or ARIA_RGB_DEFAULT_SIZE
    if timestamps_us is None:
        raise Syn2SeqInputError("timestamps_us", "the frame times to resample the Aria track at (1-D, tracking-"
                                "clock microseconds)", "none")
    t = _float64(timestamps_us, "timestamps_us")
    require(t.ndim == 1 and t.size > 0, "timestamps_us", "a non-empty 1-D array", tuple(t.shape))
    require(bool(np.isfinite(t).all()), "timestamps_us", "finite values", "NaN/inf")
    src = _find_file(path, "closed_loop_trajectory.csv", within)
    t_s, q_s, x_s = _read_trajectory(src)
    outside = (t < t_s[0]) | (t > t_s[-1])
    if outside.any():
        i = int(np.argmax(outside))
        raise Syn2SeqInputError("timestamps_us", f"times inside the trajectory of {src}: "
                                f"[{t_s[0]:.0f}, {t_s[-1]:.0f}] us", f"{t[i]:.0f} us (entry {i})",
                                "Times are on the Aria tracking clock (tracking_timestamp_us)")
    where_s = [f"line {i + 2}" for i in range(len(t_s))]
    j = np.clip(np.searchsorted(t_s, t, side="right") - 1, 0, max(len(t_s) - 2, 0))
    k = np.minimum(j + 1, len(t_s) - 1)
    used = np.unique(np.concatenate([j, k]))
    T_used = _poses_from_quaternions(q_s[used], x_s[used], src, [where_s[i] for i in used])
    pos = {int(i): r for r, i in enumerate(used)}
    T0 = T_used[[pos[int(i)] for i in j]]
    T1 = T_used[[pos[int(i)] for i in k]]
    span = t_s[k] - t_s[j]
    alpha = np.where(span > 0, (t - t_s[j]) / np.where(span > 0, span, 1.0), 0.0)
    R0, R1 = Rotation.from_matrix(T0[:, :3, :3]), Rotation.from_matrix(T1[:, :3, :3])
    R = R0 * Rotation.from_rotvec((R0.inv() * R1).as_rotvec() * alpha[:, None])  # SLERP on the short arc
    c2w = np.zeros((len(t), 4, 4))
    c2w[:, :3, :3] = np.where((alpha == 0)[:, None, None], T0[:, :3, :3], R.as_matrix())
    c2w[:, :3, 3] = T0[:, :3, 3] + alpha[:, None] * (T1[:, :3, 3] - T0[:, :3, 3])
    c2w[:, 3, 3] = 1.0
    if T_device_camera is not None:  # [4, 4] or one per frame [N, 4, 4]
        Tdc = torch.from_numpy(_float64(T_device_camera, "T_device_camera"))
        require(tuple(Tdc.shape) in ((4, 4), (len(t), 4, 4)), "T_device_camera",
                f"a 4x4 rigid transform or one per frame [{len(t)}, 4, 4]", tuple(Tdc.shape))
        check_rotations(Tdc.reshape(-1, 4, 4), "T_device_camera")
        c2w = c2w @ Tdc.numpy()
    n = len(t)
    K_arr = _float64(ARIA_RGB_DEFAULT_K if K is None else K, "K")
    require(K_arr.shape in ((4,), (n, 4)), "K", f"normalised intrinsics of shape [4] or [{n}, 4]", K_arr.shape)
    fish = None
    if fisheye is not None:
        fish = _float64(fisheye, "fisheye")
        m = fish.shape[-1] if fish.ndim else 0
        require(fish.shape in ((4,), (n, 4), (12,), (n, 12)), "fisheye", f"Kannala-Brandt k1..k4 or FISHEYE624 "
                f"k0..k5 p0 p1 s0..s3: shape [4], [{n}, 4], [12] or [{n}, 12]", fish.shape)
        fish = np.broadcast_to(fish, (n, m)).copy()
    where = [f"timestamps_us[{i}]" for i in range(n)]
    parsed = _Parsed(c2w, np.broadcast_to(K_arr, (n, 4)).copy(), w, h, where, fisheye=fish,
                     timestamps=t / 1e6, resizable=False)
    return _finish(src, "egoexo4d_aria", parsed, None)


def _sniff(head: Head) -> bool:
    """A CSV header with ``tracking_timestamp_us`` and ``qw_world_device`` (asked after egoexo4d_exo's sniffer)."""
    return head.csv_header is not None and {"tracking_timestamp_us", "qw_world_device"} <= head.csv_header


register(PoseFormat("egoexo4d_aria", read, sniff=_sniff,
                    in_folder=holds_file("egoexo4d_aria", "trajectory/closed_loop_trajectory.csv",
                                         "closed_loop_trajectory.csv"),
                    folder_label="trajectory/closed_loop_trajectory.csv", folder_rank=50))
