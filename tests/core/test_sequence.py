import pytest
import torch

from syn2seq_core.base import conventions as C
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import Cameras, look_at, slerp_poses
from syn2seq_core.generation.sequence import (DEFAULT_WINDOW_PROBS, WINDOW_KINDS, build_sequence, decompose,
                                              sample_window, window_kind)

H = W = 8


def track(n, start, seed):
    g = torch.Generator().manual_seed(seed)
    eyes = torch.tensor(start, dtype=torch.float64) + 0.1 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    return Cameras(look_at(eyes, torch.zeros(n, 3, dtype=torch.float64)), [0.8, 0.8, 0.5, 0.5], W, H)


def frames(n, value):
    return torch.full((n, 3, H, W), value)


@pytest.fixture
def views():
    return dict(exo_cameras=track(5, [3.0, 0.0, 2.0], 0), ego_cameras=track(6, [0.3, 0.2, 1.6], 1),
                exo_frames=frames(5, 0.2), ego_frames=frames(6, 0.8))


def test_exo2ego_layout(views):
    tr = frames(3, 0.5)
    seq = build_sequence(**views, transition_frames=tr, mode="exo2ego")
    assert len(seq) == 14
    assert seq.roles.tolist() == [0] * 5 + [1] * 3 + [2] * 6
    assert seq.context_mask.tolist() == [C.MASK_CONTEXT] * 5 + [C.MASK_GENERATE] * 9
    assert seq.known.all() and seq.pose_known.all()
    torch.testing.assert_close(seq.cameras.c2w[5:8], slerp_poses(views["exo_cameras"].c2w[-1],
                                                                 views["ego_cameras"].c2w[0], 3))
    torch.testing.assert_close(seq.target_frames(), views["ego_frames"])


def test_inference_without_ego_frames(views):
    views.pop("ego_frames")
    seq = build_sequence(**views, n_transition=2)
    assert len(seq) == 5 + 2 + 6
    assert seq.known.tolist() == [True] * 5 + [False] * 8
    assert (seq.frames[5:] == 0).all()


def test_ego2exo_is_reversed(views):
    seq = build_sequence(**views, n_transition=2, mode="ego2exo")
    assert seq.roles.tolist() == [2] * 6 + [1] * 2 + [0] * 5
    assert seq.context_mask[:6].eq(C.MASK_CONTEXT).all() and seq.context_mask[6:].eq(C.MASK_GENERATE).all()
    torch.testing.assert_close(seq.cameras.c2w[6:8], slerp_poses(views["ego_cameras"].c2w[-1],
                                                                 views["exo_cameras"].c2w[0], 2))
    with pytest.raises(Syn2SeqInputError, match="ego_frames"):
        build_sequence(views["exo_cameras"], views["ego_cameras"], exo_frames=views["exo_frames"], mode="ego2exo")


def test_direct_has_no_transition(views):
    seq = build_sequence(**views, mode="direct")
    assert seq.roles.tolist() == [0] * 5 + [2] * 6
    with pytest.raises(Syn2SeqInputError, match="direct"):
        build_sequence(**views, mode="direct", n_transition=2)


def test_video_only_has_frames_but_zero_rays_for_transition(views):
    seq = build_sequence(**views, transition_frames=frames(3, 0.5), mode="video_only")
    assert seq.pose_known.tolist() == [True] * 5 + [False] * 3 + [True] * 6
    rays = seq.rays()
    assert rays.shape == (14, H, W, 6)
    assert (rays[5:8] == 0).all()
    # Real cameras never give zero rays (unit directions).
    assert (rays[:5, ..., :3].norm(dim=-1) > 0.99).all() and (rays[8:, ..., :3].norm(dim=-1) > 0.99).all()


def test_rays_relative_to_first_frame_are_independent_of_world_frame(views):
    seq = build_sequence(**views, n_transition=2)
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = torch.tensor([10.0, -4.0, 2.0])
    moved = {k: Cameras(shift @ v.c2w, v.K, W, H) for k, v in views.items() if k.endswith("cameras")}
    seq2 = build_sequence(**moved, exo_frames=views["exo_frames"], n_transition=2)
    torch.testing.assert_close(seq.rays(), seq2.rays())
    # The first camera is the identity, so its central rays point along +z with zero moment.
    assert seq.rays()[0, ..., 3:].abs().max() < 1e-9


def test_static_exo_camera_broadcasts(views):
    seq = build_sequence(views["exo_cameras"][0], views["ego_cameras"], exo_frames=views["exo_frames"])
    assert len(seq.cameras) == len(seq)


def test_bad_inputs(views):
    with pytest.raises(Syn2SeqInputError, match=r"exo_cameras.*5 camera poses.*got 4 poses"):
        build_sequence(views["exo_cameras"][:4], views["ego_cameras"], exo_frames=views["exo_frames"])
    with pytest.raises(Syn2SeqInputError, match="exo_frames.*0, 1"):
        build_sequence(**{**views, "exo_frames": frames(5, 2.0)})
    with pytest.raises(Syn2SeqInputError, match="exo_frames.*finite"):
        build_sequence(**{**views, "exo_frames": frames(5, float("nan"))})
    with pytest.raises(Syn2SeqInputError, match="mode.*exo2ego"):
        build_sequence(**views, mode="sideways")
    with pytest.raises(Syn2SeqInputError, match="ego_frames.*size 8x8"):
        build_sequence(**{**views, "ego_frames": torch.zeros(6, 3, 4, 4)})
    with pytest.raises(Syn2SeqInputError, match="exo_frames.*at least one"):
        build_sequence(**{**views, "exo_frames": torch.zeros(0, 3, H, W)})


def test_window_kinds_cover_the_paper_cases(views):
    seq = build_sequence(**views, transition_frames=frames(3, 0.5))
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        win, w = decompose(seq, 5, g)
        assert len(win) == 5 and w.stop - w.start == 5
        assert window_kind(win.roles) == w.kind
        seen.add(w.kind)
    assert seen == set(WINDOW_KINDS)


def test_window_probabilities_are_respected(views):
    seq = build_sequence(**views, transition_frames=frames(3, 0.5))
    g = torch.Generator().manual_seed(1)
    n = 4000
    counts = {k: 0 for k in WINDOW_KINDS}
    for _ in range(n):
        counts[sample_window(seq.roles, 5, g).kind] += 1
    for k, p in DEFAULT_WINDOW_PROBS.items():
        assert abs(counts[k] / n - p) < 0.03, (k, counts[k] / n)


def test_windows_are_seeded(views):
    seq = build_sequence(**views, transition_frames=frames(3, 0.5))
    a = [sample_window(seq.roles, 5, torch.Generator().manual_seed(7)) for _ in range(3)]
    assert len(set(a)) == 1


def test_direct_sequences_drop_impossible_kinds(views):
    seq = build_sequence(**views, mode="direct")
    g = torch.Generator().manual_seed(0)
    kinds = {sample_window(seq.roles, 3, g).kind for _ in range(200)}
    assert kinds == {"exo_only", "ego_only", "exo_to_ego"}
