"""The Wan-Fun Control-Camera embedding of a camera track (no ComfyUI here; the equality with ComfyUI's own
``WanCameraEmbedding`` is checked in tests/nodes/test_wan_camera.py)."""

import math

import pytest
import torch
from einops import rearrange
from scipy.spatial.transform import Rotation

from syn2seq_core.base import limits
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import Cameras, look_at, slerp_poses
from syn2seq_core.geometry.wan_camera import (check_wan_length, check_wan_side, check_wan_size, fit_cameras_to_frame,
                                              nearest_wan_lengths, resample_cameras, wan_camera_embedding,
                                              wan_camera_track, wan_embedding_bytes, wan_latent_frames)

from .reference import plucker_rays_loop


def translated(xs, K=(0.5, 0.5, 0.5, 0.5), size=(16, 16)) -> Cameras:
    """Cameras with identity rotation at centres (x, 0, 0)."""
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(xs), 1, 1)
    c2w[:, 0, 3] = torch.tensor(xs, dtype=torch.float64)
    return Cameras(c2w, torch.tensor(K, dtype=torch.float64), *size)


def random_track(n, seed=0, size=(32, 16)) -> Cameras:
    rot = Rotation.random(n, random_state=seed).as_matrix()
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, :3, :3] = torch.from_numpy(rot)
    c2w[:, :3, 3] = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    K = torch.tensor([0.9, 1.3, 0.52, 0.47], dtype=torch.float64)
    return Cameras(c2w, K, *size)


def folded_reference(rays):
    """The layout spelled out: frame 0 four times, then groups of 4 frames stacked into channels.
    rays: [L, H, W, 6] -> [1, 24, (L + 3) / 4, H, W]."""
    padded = torch.cat([rays[:1].expand(4, *rays.shape[1:]), rays[1:]])
    return rearrange(padded, "(t s) h w c -> 1 (c s) t h w", s=4)


# --- rules ---------------------------------------------------------------------------------------------

def test_frame_count_rule_and_latent_frames():
    assert [wan_latent_frames(n) for n in (1, 5, 9, 81)] == [1, 2, 3, 21]
    assert nearest_wan_lengths(81) == (81,)
    assert nearest_wan_lengths(80) == (77, 81)
    assert nearest_wan_lengths(0) == (1,)
    assert check_wan_length(33) == 33
    assert check_wan_length(torch.tensor(9).item()) == 9 and check_wan_length(5.0) == 5
    with pytest.raises(Syn2SeqInputError, match=r"^length: expected a frame count 4k \+ 1 .* e\.g\. 77 or 81, got 80"):
        check_wan_length(80)
    for bad in (0, -3, 2.5, True, "5"):
        with pytest.raises(Syn2SeqInputError):
            check_wan_length(bad)


def test_size_rule_names_the_nearest_multiple_of_16():
    assert check_wan_size(832, 480) == (832, 480)
    assert check_wan_side(480.0, "height") == 480
    with pytest.raises(Syn2SeqInputError, match=r"^width: expected a positive multiple of 16 .* e\.g\. 96, got 100"):
        check_wan_size(100, 480)
    with pytest.raises(Syn2SeqInputError, match="^height"):
        check_wan_size(832, 0)
    with pytest.raises(Syn2SeqInputError, match=r"^width: .*e\.g\. 16, got 'wide'"):
        check_wan_size("wide", 480)


# --- the embedding --------------------------------------------------------------------------------------

def test_hand_checked_translation_and_channel_layout():
    """Identity rotations, centres x = 0, 1, 2, 3, 4 on a 16x16 image with fx = fy = 8 px, cx = cy = 8 px."""
    emb = wan_camera_embedding(translated([0, 1, 2, 3, 4]))
    assert emb.shape == (1, 24, 2, 16, 16) and emb.dtype == torch.float32
    # Top-left pixel centre (0.5, 0.5): camera direction ((0.5 - 8) / 8, (0.5 - 8) / 8, 1), normalised.
    n = math.sqrt(2 * 0.9375**2 + 1)
    d = torch.tensor([-0.9375 / n, -0.9375 / n, 1 / n])
    px = emb[0, :, :, 0, 0]  # [24, 2]
    for s in range(4):
        # Latent frame 0: frame 0 (at the origin: zero moment) in all four slots.
        torch.testing.assert_close(px[[0 + s, 4 + s, 8 + s], 0], torch.zeros(3))
        torch.testing.assert_close(px[[12 + s, 16 + s, 20 + s], 0], d)
        # Latent frame 1: frame s + 1 at o = (s + 1, 0, 0): m = o x d = (0, -o_x d_z, o_x d_y).
        o = s + 1.0
        torch.testing.assert_close(px[[0 + s, 4 + s, 8 + s], 1], torch.tensor([0.0, -o * d[2], o * d[1]]))
        torch.testing.assert_close(px[[12 + s, 16 + s, 20 + s], 1], d)


def test_embedding_equals_slow_rays_folded_the_documented_way():
    track = random_track(9)
    emb = wan_camera_embedding(track)
    rel = track.relative_to()
    rays = torch.stack([plucker_rays_loop(rel.K[j], rel.c2w[j], 16, 32, "md") for j in range(9)])
    torch.testing.assert_close(emb, folded_reference(rays).float(), atol=1e-6, rtol=1e-6)


def test_poses_are_relative_to_the_first_camera():
    track = random_track(5, seed=1)
    world = torch.from_numpy(Rotation.random(random_state=7).as_matrix())
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3], T[:3, 3] = world, torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64)
    moved = Cameras(T @ track.c2w, track.K, track.width, track.height)
    torch.testing.assert_close(wan_camera_embedding(moved), wan_camera_embedding(track), atol=1e-5, rtol=1e-5)
    first = wan_camera_embedding(track)[0, :, 0]  # latent frame 0: the identity camera
    assert float(first[:12].abs().max()) < 1e-6  # zero moments


def test_embedding_ignores_autocast():
    track = random_track(5, seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = wan_camera_embedding(track)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, wan_camera_embedding(track))


def test_fisheye_tracks_use_their_lens():
    fish = Cameras(random_track(5).c2w, torch.tensor([0.4, 0.4, 0.5, 0.5]), 32, 16,
                   fisheye=torch.tensor([0.05, -0.01, 0.0, 0.0]))
    pin = Cameras(fish.c2w, fish.K, 32, 16)
    a, b = wan_camera_embedding(fish), wan_camera_embedding(pin)
    d = rearrange(a[0, 12:], "(c s) t h w -> s t h w c", s=4)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(d.shape[:-1]))
    assert float((a - b).abs().max()) > 1e-3


def test_embedding_refuses_bad_tracks_and_too_much_memory(monkeypatch):
    with pytest.raises(Syn2SeqInputError, match=r"^track: expected a frame count 4k \+ 1"):
        wan_camera_embedding(translated([0, 1, 2]))
    with pytest.raises(Syn2SeqInputError, match="^width"):
        wan_camera_embedding(translated([0], size=(20, 16)))
    with pytest.raises(Syn2SeqInputError, match="^track"):
        wan_camera_embedding(torch.eye(4))
    assert wan_embedding_bytes(81, 832, 480) == 24 * 21 * 832 * 480 * 4
    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: 1000)
    with pytest.raises(Syn2SeqInputError, match=r"^the Wan camera embedding: expected at most 1\.0 kB .*got an estimated 24\.6 kB"):
        wan_camera_embedding(translated([0]))


# --- the track of the Wan frames --------------------------------------------------------------------------

def test_fit_to_the_frame_scales_to_cover_and_centre_crops_exactly():
    cams = random_track(2, size=(64, 32))
    fitted = fit_cameras_to_frame(cams, 32, 32)  # scale 1, crop 16 px each side: whole pixels
    expected = cams.resize_and_center_crop((32, 32))
    assert fitted.size == (32, 32)
    torch.testing.assert_close(fitted.K, expected.K)
    assert fit_cameras_to_frame(cams, 64, 32) is cams
    # ComfyUI's presets: K = 0.5 on a 1280x720 source shown at 832x480 -> fx = 0.5 * 480 * 16/9 px, cx = 416 px.
    src = translated([0], size=(1280, 720))
    k = fit_cameras_to_frame(src, 832, 480).K[0] * torch.tensor([832, 480, 832, 480])
    torch.testing.assert_close(k, torch.tensor([0.5 * 480 * 16 / 9, 240.0, 416.0, 240.0], dtype=torch.float64))
    # Wider than 16:9: the height is cropped instead.
    k = fit_cameras_to_frame(src, 1024, 480).K[0] * torch.tensor([1024, 480, 1024, 480])
    torch.testing.assert_close(k, torch.tensor([512.0, 0.5 * 1024 * 9 / 16, 512.0, 240.0], dtype=torch.float64))


def test_resample_keeps_the_ends_and_slerps_between_neighbours():
    track = random_track(3, seed=4)
    assert resample_cameras(track, 3) is track
    five = resample_cameras(track, 5)  # times 0, 0.5, 1, 1.5, 2
    assert len(five) == 5 and five.size == track.size
    for j, i in ((0, 0), (2, 1), (4, 2)):
        torch.testing.assert_close(five.c2w[j], track.c2w[i], atol=0, rtol=0)
    for j, i in ((1, 0), (3, 1)):
        torch.testing.assert_close(five.c2w[j], slerp_poses(track.c2w[i], track.c2w[i + 1], 1)[0])
        torch.testing.assert_close(five.K[j], track.K[i])  # same K throughout this track
    one = resample_cameras(track, 1)
    torch.testing.assert_close(one.c2w, track.c2w[:1])
    static = resample_cameras(track[0], 4)
    torch.testing.assert_close(static.c2w, track.c2w[:1].expand(4, 4, 4))
    shorter = resample_cameras(track, 2)
    torch.testing.assert_close(shorter.c2w, track.c2w[[0, 2]])


def test_resample_interpolates_intrinsics_linearly():
    a = translated([0.0], K=(0.4, 0.4, 0.5, 0.5))
    b = translated([1.0], K=(0.8, 0.6, 0.5, 0.5))
    mid = resample_cameras(Cameras.cat([a, b]), 3)[1]
    torch.testing.assert_close(mid.K[0], torch.tensor([0.6, 0.5, 0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(mid.centers[0], torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))


def test_track_puts_the_start_camera_first_and_resamples_on_request():
    ego = random_track(4, seed=5, size=(64, 64))
    exo = random_track(6, seed=6, size=(96, 64))
    track = wan_camera_track(ego, 32, 32, 0, start_cameras=exo)
    assert len(track) == 5 and track.size == (32, 32)
    torch.testing.assert_close(track.c2w[0], exo.c2w[-1])
    torch.testing.assert_close(track.c2w[1:], ego.c2w)
    torch.testing.assert_close(track.K[0], fit_cameras_to_frame(exo[-1], 32, 32).K[0])
    nine = wan_camera_track(ego, 32, 32, 9, start_cameras=exo)
    assert len(nine) == 9
    torch.testing.assert_close(nine.c2w[[0, 8]], track.c2w[[0, 4]])
    emb = wan_camera_embedding(track)
    assert emb.shape == (1, 24, 2, 32, 32)
    assert float(emb[0, :12, 0].abs().max()) < 1e-6  # frame 0 is the start camera: the reference


def test_track_errors_name_the_input_and_the_fix():
    with pytest.raises(Syn2SeqInputError, match=r"^cameras: expected a frame count 4k \+ 1.*e\.g\. 5 or 9, got 8\. "
                                                r"The track has 1 start camera \+ 7 cameras .*set length"):
        wan_camera_track(random_track(7), 32, 16, 0, start_cameras=random_track(2))
    with pytest.raises(Syn2SeqInputError, match=r"^length: .*e\.g\. 9 or 13, got 10"):
        wan_camera_track(random_track(4), 32, 16, 10)
    with pytest.raises(Syn2SeqInputError, match="^height: expected a positive multiple of 16"):
        wan_camera_track(random_track(5), 32, 24)
    with pytest.raises(Syn2SeqInputError, match="^cameras: expected a camera track"):
        wan_camera_track(torch.eye(4)[None], 32, 16)
    fish = Cameras(random_track(4).c2w, random_track(4).K, 32, 16, fisheye=torch.zeros(4))
    with pytest.raises(Syn2SeqInputError, match="^start_cameras: expected the same lens model"):
        wan_camera_track(fish, 32, 16, 0, start_cameras=random_track(1))
    with pytest.raises(Syn2SeqInputError, match="^start_cameras: expected at least one camera"):
        wan_camera_track(random_track(5), 32, 16, 0, start_cameras=random_track(3)[:0])


def test_look_at_tracks_work_end_to_end():
    eye = torch.stack([torch.tensor([0.1 * i, -2.0, 1.5]) for i in range(13)]).double()
    cams = Cameras(look_at(eye, torch.zeros(13, 3).double()), torch.tensor([0.8, 0.8, 0.5, 0.5]), 64, 48)
    emb = wan_camera_embedding(wan_camera_track(cams, 48, 32))
    assert emb.shape == (1, 24, 4, 32, 48) and bool(torch.isfinite(emb).all())
