"""The procedural ego–exo world: exact geometry, determinism, cameras, transitions, camera-path clips, CLI."""

from __future__ import annotations

import math

import pytest
import torch

from syn2seq_core.data.synthetic import (CAMERA_PATH_KINDS, ID, SyntheticConfig, ego_c2w, frame_times, render,
                                         render_camera_path_clip, render_camera_path_clips, render_take, render_takes,
                                         render_transition, sample_scene, scene_state)
from syn2seq_core.data.synthetic_scene import (BOX_IDS, CAPSULE_IDS, CYLINDER_IDS, OBJECT_ID0, OBJECT_SLOTS, ROOM_HI,
                                               ROOM_LO, SLOT_KIND, SPHERE_IDS, exo_c2w, primitive_tables)
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.geometry import Cameras

SMALL = SyntheticConfig(size=32, supersample=1, exo_frames=4, ego_frames=4)


def _views(seed: int, cfg: SyntheticConfig, hide_head_in_ego: bool = False):
    """The scene of ``seed`` and, per view, (cameras, times, frames, aux) from one render with aux maps."""
    scene = sample_scene(seed, cfg)
    out = {}
    for view, n in (("exo", cfg.exo_frames), ("ego", cfg.ego_frames)):
        times = frame_times(n, cfg.fps)
        c2w = (exo_c2w if view == "exo" else ego_c2w)(scene, times)[0]
        K = (scene.exo_K if view == "exo" else scene.ego_K).expand(n, 4)
        cams = Cameras(c2w, K, cfg.size, cfg.size)
        hidden = ("head",) if view == "ego" and hide_head_in_ego else ()
        frames, aux = render(scene, cams, times, supersample=cfg.supersample, hidden=hidden, return_aux=True)
        out[view] = (cams, times, frames, aux)
    return scene, out


def _project(cams: Cameras, X: torch.Tensor):
    """pixel = K (w2c X): X [N, 3] world points (one per camera) -> (u, v) pixels [N, 2], camera z [N]."""
    w2c = cams.w2c.to(torch.float64)
    Xc = (w2c[:, :3, :3] @ X.to(torch.float64)[:, :, None])[..., 0] + w2c[:, :3, 3]
    Kp = cams.K_pixels().to(torch.float64)
    uvw = (Kp @ Xc[:, :, None])[..., 0]
    return uvw[:, :2] / uvw[:, 2:3], Xc[:, 2]


def _unproject(cams: Cameras, depth: torch.Tensor) -> torch.Tensor:
    """World points [N, h, w, 3] of a z-depth map [N, h, w] at pixel centres, with the cameras' K and c2w
    (K is normalised, so it holds at the depth map's own resolution)."""
    _, h, w = depth.shape
    K = cams.K.to(torch.float64)
    v, u = torch.meshgrid((torch.arange(h, dtype=torch.float64) + 0.5) / h,
                          (torch.arange(w, dtype=torch.float64) + 0.5) / w, indexing="ij")
    x = (u - K[:, 2, None, None]) / K[:, 0, None, None]
    y = (v - K[:, 3, None, None]) / K[:, 1, None, None]
    Xc = torch.stack([x, y, torch.ones_like(x)], -1) * depth.to(torch.float64)[..., None]
    c2w = cams.c2w.to(torch.float64)
    return torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], Xc) + c2w[:, None, None, :3, 3]


# --- slow, obviously-correct reference: sphere tracing of signed distance functions ------------------------
def _sdf_primitives(tab: dict, f: int):
    """Per-primitive SDFs of frame f (float64), as (id, function p [R, 3] -> [R])."""
    out = []
    lo, hi = torch.tensor(ROOM_LO, dtype=torch.float64), torch.tensor(ROOM_HI, dtype=torch.float64)
    faces = [(2, lo[2], 1), (2, hi[2], -1), (0, lo[0], 1), (0, hi[0], -1), (1, lo[1], 1), (1, hi[1], -1)]
    for pid, (k, plane, sign) in enumerate(faces):
        out.append((pid, lambda p, k=k, plane=plane, sign=sign: sign * (p[:, k] - plane)))
    for g, pid in enumerate(SPHERE_IDS):
        s = tab["spheres"][f, g].to(torch.float64)
        out.append((pid, lambda p, s=s: (p - s[:3]).norm(dim=-1) - s[3]))
    for g, pid in enumerate(BOX_IDS):
        b = tab["boxes"][f, g].to(torch.float64)
        c, h = 0.5 * (b[:3] + b[3:]), 0.5 * (b[3:] - b[:3])

        def box(p, c=c, h=h):
            q = (p - c).abs() - h
            return q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0)
        out.append((pid, box))
    for g, pid in enumerate(CYLINDER_IDS):
        cy = tab["cylinders"][f, g].to(torch.float64)

        def cyl(p, cy=cy):
            dr = (p[:, :2] - cy[:2]).norm(dim=-1) - cy[2]
            dz = (p[:, 2] - 0.5 * (cy[3] + cy[4])).abs() - 0.5 * (cy[4] - cy[3])
            d = torch.stack([dr, dz], -1)
            return d.amax(-1).clamp(max=0) + d.clamp(min=0).norm(dim=-1)
        out.append((pid, cyl))
    for g, pid in enumerate(CAPSULE_IDS):
        c = tab["capsules"][f, g].to(torch.float64)

        def capsule(p, a=c[:3], b=c[3:6], r=c[6]):
            pa, ba = p - a, b - a
            h = ((pa * ba).sum(-1) / (ba * ba).sum()).clamp(0, 1)
            return (pa - h[:, None] * ba).norm(dim=-1) - r
        out.append((pid, capsule))
    return out


def _sphere_trace(prims, origin: torch.Tensor, dirs: torch.Tensor, steps: int = 600):
    """Distances t and ids along unit rays dirs [R, 3] from origin [3]; NaN where it did not converge."""
    t = torch.zeros(dirs.shape[0], dtype=torch.float64)
    for _ in range(steps):
        p = origin + t[:, None] * dirs
        d = torch.stack([fn(p) for _, fn in prims]).amin(0)
        t = t + d
        if float(d.abs().max()) < 1e-9:
            break
    p = origin + t[:, None] * dirs
    dist = torch.stack([fn(p) for _, fn in prims])
    ids = torch.tensor([pid for pid, _ in prims])[dist.abs().argmin(0)]
    ok = dist.abs().amin(0) < 1e-7
    return torch.where(ok, t, torch.nan), ids


def test_ray_caster_matches_sphere_traced_signed_distances():
    """Nearest hit and its id at every pixel agree with sphere tracing of the primitives' SDFs."""
    cfg = SyntheticConfig(size=16, supersample=1, exo_frames=1, ego_frames=1)
    checked = agreed = 0
    for seed in (0, 1, 2):
        scene, views = _views(seed, cfg, hide_head_in_ego=True)
        for view, (cams, times, _, aux) in views.items():
            hidden = ("head",) if view == "ego" else ()
            tab = primitive_tables(scene, times, hidden)
            tab = {k: v[0] for k, v in tab.items()}
            pts = _unproject(cams, aux["depth"])
            for f in range(len(cams)):
                origin = cams.c2w[f, :3, 3].to(torch.float64)
                rays = pts[f].reshape(-1, 3) - origin
                dist = rays.norm(dim=-1)
                t_ref, id_ref = _sphere_trace(_sdf_primitives(tab, f), origin, rays / dist[:, None])
                ok = ~torch.isnan(t_ref)
                ids = aux["id"][f].reshape(-1)
                same = ok & (ids == id_ref)
                checked += int(ok.sum())
                agreed += int(same.sum())
                torch.testing.assert_close(dist[same], t_ref[same], atol=2e-4, rtol=1e-4)
    assert checked > 0.9 * 3 * 2 * 16 * 16
    assert agreed / checked > 0.995


def test_unprojected_depth_lies_on_the_named_surfaces():
    """A world point X recovered from the depth map with the take's own K and c2w lies on the surface of
    the primitive the id map names: the room's planes, the table top, and the spheres at their moving centres."""
    cfg = SyntheticConfig(size=24, supersample=2, exo_frames=2, ego_frames=2)
    for seed in (3, 4):
        scene, views = _views(seed, cfg)
        # and a non-square image of the same cameras (normalised K is unchanged by a resize)
        cams, times = views["exo"][0].resize(36, 20), views["exo"][1]
        frames, aux = render(scene, cams, times, supersample=2, return_aux=True)
        assert frames.shape == (2, 3, 20, 36) and aux["id"].shape == (2, 40, 72)
        views["exo_wide"] = (cams, times, frames, aux)
        for cams, times, _, aux in views.values():
            X = _unproject(cams, aux["depth"])
            ids = aux["id"]
            assert (ids[..., None] == torch.tensor([ID["floor"], ID["table"]])).any(-1).any()
            on = {"floor": (2, ROOM_LO[2]), "ceiling": (2, ROOM_HI[2]), "wall_x-": (0, ROOM_LO[0]),
                  "wall_x+": (0, ROOM_HI[0]), "wall_y-": (1, ROOM_LO[1]), "wall_y+": (1, ROOM_HI[1])}
            for name, (k, value) in on.items():
                sel = ids == ID[name]
                if sel.any():
                    torch.testing.assert_close(X[sel][:, k], torch.full_like(X[sel][:, k], value), atol=1e-4, rtol=0)
            tab = primitive_tables(scene, times)
            for g, pid in enumerate(SPHERE_IDS):
                for f in range(len(cams)):
                    sel = ids[f] == pid
                    if sel.any():
                        s = tab["spheres"][0, f, g].to(torch.float64)
                        r = (X[f][sel] - s[:3]).norm(dim=-1)
                        torch.testing.assert_close(r, torch.full_like(r, float(s[3])), atol=2e-4, rtol=0)
            top = float(scene.table_hi[0, 2])
            up = ids == ID["table"]
            on_top = (X[..., 2] - top).abs() < 1e-4
            assert (up & on_top).sum() > 0  # the table top is seen, at its exact height


def test_projected_points_land_on_the_object_drawn_there_in_exo_and_ego():
    """pixel = K (w2c X) of an object's top-face centre (or a sphere's centre) shows that object, or
    something nearer; where both views see it, the top face has the same colour in exo and ego."""
    cfg = SyntheticConfig(size=40, supersample=1, exo_frames=3, ego_frames=3)
    hits = shown = both = 0
    for seed in range(8):
        scene, views = _views(seed, cfg)
        st = scene_state(scene, views["exo"][1])
        per_view = {view: (cams, frames, aux) for view, (cams, _, frames, aux) in views.items()}
        for j in range(OBJECT_SLOTS):
            if not bool(scene.obj_enabled[0, j]):
                continue
            c = st["objects"][0, :, j]  # [T, 3]
            X = c.clone()
            if SLOT_KIND[j] != "sphere":
                X[:, 2] += scene.obj_size[0, j, 2]  # top-face centre
            seen = {}
            for view, (cams, frames, aux) in per_view.items():
                uv, z = _project(cams, X)
                for f in range(len(cams)):
                    i, jj = math.floor(uv[f, 0]), math.floor(uv[f, 1])
                    if z[f] <= 0 or not (0 <= i < cfg.size and 0 <= jj < cfg.size):
                        continue
                    # stay off pixel borders, where the point's own pixel is ambiguous
                    if min(uv[f, 0] % 1, uv[f, 1] % 1) < 0.05 or max(uv[f, 0] % 1, uv[f, 1] % 1) > 0.95:
                        continue
                    hits += 1
                    pid = int(aux["id"][f, jj, i])
                    if pid == OBJECT_ID0 + j:
                        shown += 1
                        seen.setdefault(f, {})[view] = frames[f, :, jj, i]
                    else:  # hidden behind something nearer (a hand, an arm, another object)
                        assert float(aux["depth"][f, jj, i]) < float(z[f]) + 1e-3, (seed, j, view, f, pid)
            if SLOT_KIND[j] != "sphere":
                for f, views in seen.items():
                    if len(views) == 2:
                        both += 1
                        torch.testing.assert_close(views["exo"], views["ego"], atol=1e-4, rtol=0)
    assert hits > 100 and shown > 0.6 * hits
    assert both >= 5


# --- determinism, shapes, cameras ---------------------------------------------------------------------------
def test_takes_are_deterministic_per_seed_and_independent_of_the_batch():
    a = render_take(11, SMALL)
    b = render_take(11, SMALL)
    assert torch.equal(a.exo_frames, b.exo_frames) and torch.equal(a.ego_frames, b.ego_frames)
    assert torch.equal(a.exo_cameras.c2w, b.exo_cameras.c2w) and torch.equal(a.ego_cameras.c2w, b.ego_cameras.c2w)
    batch = render_takes([5, 11, 12], SMALL)
    torch.testing.assert_close(batch.exo_frames[1], a.exo_frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.ego_frames[1], a.ego_frames, atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.ego_c2w[1], a.ego_cameras.c2w, atol=1e-6, rtol=0)
    # the thread count used for rendering changes nothing in the pixels and is restored afterwards
    before = torch.get_num_threads()
    two = render_takes([11], SyntheticConfig(size=32, supersample=1, exo_frames=4, ego_frames=4, threads=2))
    assert torch.get_num_threads() == before
    torch.testing.assert_close(two.exo_frames[0], a.exo_frames, atol=1e-6, rtol=0)
    c = render_take(12, SMALL)
    assert (a.exo_frames - c.exo_frames).abs().mean() > 0.02
    assert (a.ego_frames - c.ego_frames).abs().mean() > 0.02


def test_output_shapes_ranges_and_cameras():
    cfg = SyntheticConfig(size=24, supersample=2, exo_frames=5, ego_frames=3, fps=10.0)
    take = render_take(2, cfg)
    assert take.exo_frames.shape == (5, 3, 24, 24) and take.ego_frames.shape == (3, 3, 24, 24)
    for x in (take.exo_frames, take.ego_frames):
        assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert bool(torch.isfinite(x).all()) and float(x.std()) > 0.05  # not a flat image
    assert isinstance(take.exo_cameras, Cameras) and len(take.exo_cameras) == 5 and len(take.ego_cameras) == 3
    assert take.exo_cameras.size == (24, 24)
    torch.testing.assert_close(take.ego_times, torch.arange(3) / 10.0)
    # the exo camera is static, the ego camera moves smoothly (a few cm per frame)
    assert torch.equal(take.exo_cameras.c2w[0], take.exo_cameras.c2w[-1])
    step = take.ego_cameras.centers.diff(dim=0).norm(dim=-1)
    assert float(step.max()) < 0.05 and float(step.max()) > 0
    batch = render_takes([2, 3], cfg, transition=2)
    assert batch.exo_c2w.shape == (2, 5, 4, 4) and batch.exo_K.shape == (2, 5, 4)
    assert batch.ego_frames.shape == (2, 3, 3, 24, 24) and batch.transition_frames.shape == (2, 2, 3, 24, 24)
    assert batch.transition_c2w.shape == (2, 2, 4, 4) and batch.transition_times.shape == (2, 2)


def test_ego_camera_is_at_head_height_looking_down_at_the_table():
    for seed in range(16):
        scene = sample_scene(seed, SMALL)
        times = frame_times(SMALL.ego_frames, SMALL.fps)
        c2w = ego_c2w(scene, times)[0]
        centre, axis = c2w[:, :3, 3], c2w[:, :3, 2]
        assert bool(((centre[:, 2] > 1.4) & (centre[:, 2] < 1.9)).all())
        pitch = torch.rad2deg(torch.asin(-axis[:, 2]))
        assert bool(((pitch > 30) & (pitch < 80)).all()), pitch
        # the optical axis meets the table top inside the table
        top = scene.table_hi[0, 2]
        hit = centre + ((top - centre[:, 2]) / axis[:, 2])[:, None] * axis
        assert bool(((hit[:, :2] > scene.table_lo[0, :2]) & (hit[:, :2] < scene.table_hi[0, :2])).all())
        # the camera is inside the actor's head, so the head is not drawn in the ego view
        st = scene_state(scene, times)
        assert bool(((centre - st["head"][0]).norm(dim=-1) < scene.head_r[0]).all())


def test_table_actor_and_objects_visible_in_both_views_in_most_takes():
    cfg = SyntheticConfig(size=24, supersample=1, exo_frames=1, ego_frames=1)
    good = {"exo": 0, "ego": 0}
    for seed in range(100, 132):
        _, views = _views(seed, cfg)
        for view, (_, _, _, aux) in views.items():
            ids = aux["id"][0]
            table = float((ids == ID["table"]).float().mean())
            objects = bool((ids >= OBJECT_ID0).any())
            hands = bool(((ids == ID["left_hand"]) | (ids == ID["right_hand"])).any())
            actor = bool(((ids == ID["torso"]) | (ids == ID["head"])).any())
            if table > 0.05 and objects and hands and (actor or view == "ego"):
                good[view] += 1
            if view == "ego":
                assert not bool((ids == ID["head"]).any())
    assert good["exo"] >= 28 and good["ego"] >= 28, good


def test_bad_inputs_are_refused_with_expected_and_found():
    with pytest.raises(Syn2SeqInputError, match="expected"):
        SyntheticConfig(size=2)
    with pytest.raises(Syn2SeqInputError, match="objects"):
        SyntheticConfig(objects=(1, 3))
    with pytest.raises(Syn2SeqInputError, match="seeds"):
        render_takes([-1], SMALL)
    take = render_take(0, SMALL)
    with pytest.raises(Syn2SeqInputError, match="times"):
        render(take.scene, take.exo_cameras, torch.zeros(3))
    with pytest.raises(Syn2SeqInputError, match="kind"):
        render_camera_path_clip(0, 4, SMALL, kind="spiral")
    outside = take.exo_cameras.c2w.clone()
    outside[:, 0, 3] = 10.0
    with pytest.raises(Syn2SeqInputError, match="inside the room"):
        render(take.scene, Cameras(outside, take.exo_cameras.K, 32, 32), take.exo_times)


# --- transitions ---------------------------------------------------------------------------------------------
def test_render_transition_follows_the_slerp_path_between_last_exo_and_first_ego():
    cfg = SyntheticConfig(size=24, supersample=2, exo_frames=4, ego_frames=4, fps=8.0)
    take = render_take(7, cfg)
    n = 5
    tr = render_transition(take.scene, take.exo_cameras, take.ego_cameras, n, fps=cfg.fps)
    assert tr.frames.shape == (n, 3, 24, 24) and len(tr.cameras) == n
    a, b = take.exo_cameras.centers[-1], take.ego_cameras.centers[0]
    s = ((tr.cameras.centers - a) @ (b - a)) / (b - a).dot(b - a)
    torch.testing.assert_close(s, torch.arange(1, n + 1, dtype=s.dtype) / (n + 1), atol=1e-5, rtol=0)
    off_line = (tr.cameras.centers - a - s[:, None] * (b - a)).norm(dim=-1)
    assert float(off_line.max()) < 1e-5
    assert bool(((s > 0) & (s < 1)).all())
    # the first is close to the last exo camera, the last close to the first ego camera (rotation too)
    ra, rb = take.exo_cameras.rotations[-1], take.ego_cameras.rotations[0]

    def angle(R1, R2):
        return float(torch.rad2deg(torch.acos(((torch.trace(R1.T @ R2) - 1) / 2).clamp(-1, 1))))
    full = angle(ra, rb)
    assert angle(tr.cameras.rotations[0], ra) == pytest.approx(full / (n + 1), abs=0.05)
    assert angle(tr.cameras.rotations[-1], rb) == pytest.approx(full / (n + 1), abs=0.05)
    # scene time runs from the last exo frame's time back to the first ego frame's
    torch.testing.assert_close(tr.times, 3 / 8 * (1 - torch.arange(1, n + 1) / (n + 1)), atol=1e-6, rtol=0)
    # the batched path renders the same frames
    batch = render_takes([7], cfg, transition=n)
    torch.testing.assert_close(batch.transition_frames[0], tr.frames, atol=1e-4, rtol=0)
    torch.testing.assert_close(batch.transition_c2w[0], tr.cameras.c2w.float(), atol=1e-5, rtol=0)
    # frames near an end look more like that end (continuity)
    d_first = [float((tr.frames[0] - x).abs().mean()) for x in (take.exo_frames[-1], take.ego_frames[0])]
    assert d_first[0] < d_first[1]


# --- single-view camera-path clips -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CAMERA_PATH_KINDS)
def test_camera_path_clips_are_continuous(kind):
    clip = render_camera_path_clip(21, 6, SMALL, kind=kind)
    assert clip.kind == kind and clip.frames.shape == (6, 3, 32, 32) and len(clip.cameras) == 6
    step = clip.cameras.centers.diff(dim=0).norm(dim=-1)
    if kind in ("exo_to_ego", "ego_to_exo"):  # eased: no step longer than 1.5x the mean one
        assert float(step.max()) <= 1.5 * float(step.mean()) + 1e-6
    else:
        assert float(step.max()) < 0.3
    assert float(clip.frames.std()) > 0.05
    lo, hi = torch.tensor(ROOM_LO), torch.tensor(ROOM_HI)
    assert bool(((clip.cameras.centers > lo) & (clip.cameras.centers < hi)).all())
    ego = ego_c2w(clip.scene, clip.times)[0]
    exo = clip.scene.exo_c2w[0]
    if kind == "head":
        torch.testing.assert_close(clip.cameras.c2w, ego, atol=1e-6, rtol=0)
    if kind == "exo_to_ego":
        torch.testing.assert_close(clip.cameras.c2w[0], exo, atol=1e-5, rtol=0)
        torch.testing.assert_close(clip.cameras.c2w[-1], ego[-1], atol=1e-5, rtol=0)
    if kind == "ego_to_exo":
        torch.testing.assert_close(clip.cameras.c2w[0], ego[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(clip.cameras.c2w[-1], exo, atol=1e-5, rtol=0)


def test_camera_path_batch_matches_single_clips_and_mixes_kinds():
    b = render_camera_path_clips(list(range(30, 36)), 3, SMALL)
    assert b.frames.shape == (6, 3, 3, 32, 32) and b.c2w.shape == (6, 3, 4, 4) and b.K.shape == (6, 3, 4)
    assert len(set(b.kinds)) >= 2
    one = render_camera_path_clip(32, 3, SMALL)
    assert one.kind == b.kinds[2]
    torch.testing.assert_close(one.frames, b.frames[2], atol=1e-5, rtol=0)


# --- the command ---------------------------------------------------------------------------------------------------
def test_render_synthetic_command_writes_loadable_takes(tmp_path, capsys):
    from syn2seq_core.cli import main
    from syn2seq_core.data.takes import load_take
    from syn2seq_core.io.video import read_video

    out = tmp_path / "takes"
    rc = main(["render-synthetic", "--out", str(out), "--takes", "2", "--seed", "40", "--size", "32",
               "--exo-frames", "3", "--ego-frames", "4"])
    assert rc == 0
    assert "frames/s" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["take_00000", "take_00001"]
    take = load_take(out / "take_00001")
    ref = render_take(41, SyntheticConfig(size=32, exo_frames=3, ego_frames=4))
    assert take.meta["meta"]["seed"] == 41 and take.fps == 8.0
    torch.testing.assert_close(take.exo_cameras.c2w.float(), ref.exo_cameras.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(take.ego_cameras.c2w.float(), ref.ego_cameras.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(take.ego_cameras.K.float(), ref.ego_cameras.K, atol=1e-6, rtol=0)
    ego = read_video(take.ego_video)
    assert ego.shape == (4, 3, 32, 32)
    err = float((ego - ref.ego_frames).abs().mean())  # H.264 (4:2:0 chroma) at 32x32
    assert err < 0.06 and err < 0.5 * float((ego - render_take(40, ref.config).ego_frames).abs().mean())
    # an existing take is not silently replaced
    assert main(["render-synthetic", "--out", str(out), "--takes", "1", "--seed", "40", "--size", "32"]) == 2
