"""The procedural ego–exo world: paired exo/ego takes with exact cameras, rendered on the fly in torch.

This world is the training data of the bundled model, so it is built to be fast in batches and to make
the exo -> ego task learnable at low resolution: a fixed room with large two-colour textures, a table, an
actor whose hands move a few big coloured objects, an exo camera with a moderate field of view on the
actor and the table, and an ego camera inside the actor's head looking down at the work.
See :mod:`syn2seq_core.data.synthetic_scene` for the world and its cameras, and
:mod:`syn2seq_core.data.synthetic_render` for the ray caster.

Time: take frame ``i`` of both views is at ``t = i / fps`` seconds (exo and ego are synchronous).

Entry points
    - :func:`render_take` / :func:`render_takes`: one take as a :class:`SyntheticTake` (frames + ``Cameras``)
      or a batch as a :class:`SyntheticBatch` of stacked tensors for training, optionally with *ideal*
      transition frames rendered along the SLERP path between the last exo and the first ego camera;
    - :func:`render`: any camera track of a scene at any times; :func:`render_transition`: the ideal
      transition of a take;
    - :func:`render_camera_path_clip` / :func:`render_camera_path_clips`: single-view clips along continuous
      camera paths (orbits, dollies, head motion, exo -> ego and ego -> exo moves) for pretraining.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..base.errors import check_choice, require
from ..geometry.cameras import Cameras, look_at
from ..geometry.slerp import interpolate_cameras, quaternion_slerp, slerp_poses, transition_times
from .synthetic_render import cast
from .synthetic_scene import (ID, PRIMITIVE_NAMES, ROOM_HI, ROOM_LO, Scene, SyntheticConfig, _check_seeds, _Draw,
                              ego_c2w, primitive_tables, sample_scene, sample_scenes, scene_state)

__all__ = [
    "CAMERA_PATH_KINDS", "CameraPathBatch", "CameraPathClip", "ID", "PRIMITIVE_NAMES", "Scene", "SyntheticBatch",
    "SyntheticConfig", "SyntheticTake", "TransitionFrames", "ego_c2w", "frame_times", "render", "render_batch",
    "render_camera_path_clip", "render_camera_path_clips", "render_take", "render_takes", "render_transition",
    "sample_scene", "sample_scenes", "scene_state", "take_scene",
]

SOURCE = "syn2seq render-synthetic"  # take.json "source" of the takes this world renders

CAMERA_PATH_KINDS = ("orbit", "dolly", "head", "exo_to_ego", "ego_to_exo")


# --- rendering ---------------------------------------------------------------------------------------
@contextmanager
def _threads(n: int):
    """Use n torch threads inside the block (0: unchanged)."""
    before = torch.get_num_threads()
    if n and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != before:
            torch.set_num_threads(before)


def render_batch(scene: Scene, c2w: Tensor, K: Tensor, times: Tensor, size: int | tuple[int, int], *,
                 supersample: int = 2, near: float = 0.05, hidden=(), return_aux: bool = False,
                 chunk_rays: int = 32768, fisheye: Tensor | None = None):
    """Render B scenes, N cameras each.

    c2w: [B, N, 4, 4] (OpenCV axes); K: [B, N, 4] normalised; times: [B, N] seconds; size: output
    ``(width, height)`` or one int. Returns frames [B, N, 3, H, W] float32 in [0, 1]; with
    ``return_aux`` also a dict of ``depth`` (z-depth, metres) and ``id`` (primitive id, see
    ``PRIMITIVE_NAMES``), each [B, N, s*H, s*W] at the *supersampled* resolution (the normalised K holds
    there too; a pixel (i, j) of it has its centre at ``((i + 0.5) / (s*W), (j + 0.5) / (s*H))``).
    hidden: names of primitives (table, actor parts, object slots) not to draw. fisheye: None (pinhole), or
    [B, N, 4] Kannala–Brandt / [B, N, 12] FISHEYE624 coefficients: every sub-pixel ray then comes from the
    lens model (:func:`~syn2seq_core.geometry.plucker.lens_unproject`), so the frames are what that camera
    sees (the field of view must stay below 180 degrees).
    """
    width, height = (size, size) if isinstance(size, int) else size
    B = scene.batch_size
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    K_lens = torch.as_tensor(K)  # the lens rays are computed in float64 from the intrinsics as given
    K = torch.as_tensor(K, dtype=torch.float32)
    times = torch.as_tensor(times, dtype=torch.float32)
    require(c2w.ndim == 4 and c2w.shape[0] == B and c2w.shape[-2:] == (4, 4), "c2w",
            f"shape [B, N, 4, 4] with B = {B}", tuple(c2w.shape))
    N = c2w.shape[1]
    require(K.shape == (B, N, 4), "K", f"shape {(B, N, 4)}", tuple(K.shape))
    require(times.shape == (B, N), "times", f"shape {(B, N)}", tuple(times.shape))
    require(int(supersample) == supersample and supersample >= 1, "supersample", "a positive integer", supersample)
    require(width >= 1 and height >= 1, "size", "positive width and height", (width, height))
    centres = c2w[..., :3, 3]
    inside = (centres > torch.tensor(ROOM_LO)) & (centres < torch.tensor(ROOM_HI))
    require(bool(inside.all()), "c2w", f"camera centres inside the room {ROOM_LO} .. {ROOM_HI} (metres)",
            f"{int((~inside.all(-1)).sum())} outside")
    s = int(supersample)
    rays = None if fisheye is None else _lens_rays(K_lens.reshape(B * N, 4), torch.as_tensor(fisheye), B * N,
                                                   height, width, s)
    with torch.inference_mode():
        tab = primitive_tables(scene, times, hidden)
        flat = {k: (v.reshape(B * N, *v.shape[2:]) if k != "material" else
                    v[:, None].expand(B, N, *v.shape[1:]).reshape(B * N, *v.shape[1:])) for k, v in tab.items()}
        light = scene.light_dir[:, None].expand(B, N, 3).reshape(B * N, 3)
        ambient = scene.ambient[:, None].expand(B, N).reshape(B * N)
        texture = scene.texture[:, None].expand(B, N).reshape(B * N)
        out = cast(flat, c2w.reshape(B * N, 4, 4), K.reshape(B * N, 4), light, ambient, height, width, s, near,
                   chunk_rays, aux=return_aux, rays=rays, texture=texture if bool((texture >= 0).any()) else None)
        rgb = out[0] if return_aux else out
        frames = rgb.clamp_(0.0, 1.0).reshape(B, N, 3, height, width)
    if not return_aux:
        return frames
    return frames, {"depth": out[1].reshape(B, N, s * height, s * width),
                    "id": out[2].reshape(B, N, s * height, s * width)}


def _lens_rays(K: Tensor, fisheye: Tensor, F: int, height: int, width: int, s: int) -> tuple[Tensor, Tensor]:
    """Sub-pixel ray directions (X / Z, Y / Z) [F, s*s*H*W] through a fisheye lens (float64 maths, float32 out)."""
    from ..geometry.plucker import lens_unproject
    from .synthetic_render import subpixel_centers

    fish = fisheye.to(torch.float64).reshape(F, fisheye.shape[-1])
    Kd = K.to(torch.float64)
    u, v = (c.to(torch.float64) for c in subpixel_centers(height, width, s))
    x = (u[None] - Kd[:, 2:3]) / Kd[:, 0:1]
    y = (v[None] - Kd[:, 3:4]) / Kd[:, 1:2]
    d = lens_unproject(x, y, fish)  # [F, P, 3]
    z = d[..., 2]
    require(bool((z > 1e-3).all()), "fisheye", "a lens whose rays all point forward (field of view < 180 deg)",
            f"{int((z <= 1e-3).sum())} rays at or beyond 90 degrees")
    return (d[..., 0] / z).to(torch.float32).contiguous(), (d[..., 1] / z).to(torch.float32).contiguous()


def _single(scene: Scene) -> Scene:
    require(scene.batch_size == 1, "scene", "a single scene (batch of one; use scene[i])", scene.batch_size)
    return scene


def render(scene: Scene, cameras: Cameras, times, *, supersample: int = 2, near: float = 0.05, hidden=(),
           return_aux: bool = False, chunk_rays: int = 32768):
    """Render one scene along any camera track at any times.

    scene: a batch of one; cameras: N cameras (frames are ``cameras.height x cameras.width``; pinhole, or a
    fisheye lens whose rays are then taken from its model); times: [N] seconds (or a scalar for all). Returns
    frames [N, 3, H, W] in [0, 1]; with ``return_aux`` also ``{"depth", "id"}`` [N, s*H, s*W] (see
    :func:`render_batch`).
    """
    _single(scene)
    require(isinstance(cameras, Cameras), "cameras", "a Cameras track", type(cameras).__name__)
    n = len(cameras)
    times = torch.as_tensor(times, dtype=torch.float32)
    if times.ndim == 0:
        times = times.expand(n)
    require(times.shape == (n,), "times", f"shape [{n}] (one per camera)", tuple(times.shape))
    fish = None if cameras.fisheye is None else cameras.fisheye[None]
    K = cameras.K[None] if fish is not None else cameras.K.to(torch.float32)[None]  # the lens rays use float64
    out = render_batch(scene, cameras.c2w.to(torch.float32)[None], K, times[None],
                       (cameras.width, cameras.height), supersample=supersample, near=near, hidden=hidden,
                       return_aux=return_aux, chunk_rays=chunk_rays, fisheye=fish)
    if not return_aux:
        return out[0]
    frames, aux = out
    return frames[0], {k: v[0] for k, v in aux.items()}


# --- takes ---------------------------------------------------------------------------------------------
def frame_times(n: int, fps: float) -> Tensor:
    """[n] times ``i / fps`` (seconds) of frames i = 0..n-1, float32."""
    return torch.arange(n, dtype=torch.float32) / float(fps)


@dataclass(frozen=True, eq=False)
class SyntheticTake:
    """One rendered take. exo_frames: [Te, 3, H, W]; ego_frames: [Tg, 3, H, W] (float32, [0, 1]);
    exo_times: [Te], ego_times: [Tg] seconds (frame i at i / fps in both views); scene: batch of one."""

    seed: int
    config: SyntheticConfig
    scene: Scene
    exo_frames: Tensor
    exo_cameras: Cameras
    exo_times: Tensor
    ego_frames: Tensor
    ego_cameras: Cameras
    ego_times: Tensor


@dataclass(frozen=True, eq=False)
class SyntheticBatch:
    """B rendered takes as stacked tensors (float32).

    exo_frames [B, Te, 3, H, W], exo_c2w [B, Te, 4, 4], exo_K [B, Te, 4], exo_times [B, Te]; the same for
    ego (Tg frames) and for the ideal transition (n frames along the SLERP path from the last exo to the
    first ego camera, at times linear from the last exo frame's time to the first ego frame's time; n = 0
    gives empty tensors).
    """

    seeds: list[int]
    config: SyntheticConfig
    scene: Scene
    exo_frames: Tensor
    exo_c2w: Tensor
    exo_K: Tensor
    exo_times: Tensor
    ego_frames: Tensor
    ego_c2w: Tensor
    ego_K: Tensor
    ego_times: Tensor
    transition_frames: Tensor
    transition_c2w: Tensor
    transition_K: Tensor
    transition_times: Tensor
    exo_depth: Tensor | None = None
    ego_depth: Tensor | None = None

    def take(self, i: int) -> SyntheticTake:
        """Take ``i`` as a :class:`SyntheticTake`."""
        size = self.config.size
        return SyntheticTake(self.seeds[i], self.config, self.scene[i], self.exo_frames[i],
                             Cameras(self.exo_c2w[i], self.exo_K[i], size, size), self.exo_times[i],
                             self.ego_frames[i], Cameras(self.ego_c2w[i], self.ego_K[i], size, size),
                             self.ego_times[i])


def _transition_times(t_from: Tensor, t_to: Tensor, n: int) -> Tensor:
    """[..., n] scene times of n transition frames: linear from t_from to t_to at s_k = k / (n + 1)."""
    s = transition_times(n, torch.float32)
    return t_from[..., None] + s * (t_to - t_from)[..., None]


def render_takes(seeds, config: SyntheticConfig = SyntheticConfig(), transition: int = 0, *,
                 depth: bool = False) -> SyntheticBatch:
    """Render one take per seed in one batched pass (the fast path for on-the-fly training data).

    seeds: B non-negative ints; take i is the same whatever the other seeds are. transition: number of ideal
    transition frames to render too (see :class:`SyntheticBatch`). depth: also keep the exo and ego z-depth
    maps [B, T, s*H, s*W] (metres, at the supersampled resolution; the frames are the same either way).
    """
    require(int(transition) == transition and transition >= 0, "transition", "a non-negative integer", transition)
    seeds = _check_seeds(seeds)
    scene = sample_scenes(seeds, config)
    B, Te, Tg, n = len(seeds), config.exo_frames, config.ego_frames, int(transition)
    te = frame_times(Te, config.fps)[None].expand(B, Te)
    tg = frame_times(Tg, config.fps)[None].expand(B, Tg)
    exo = scene.exo_c2w[:, None].expand(B, Te, 4, 4)
    ego = ego_c2w(scene, tg)
    exo_K = scene.exo_K[:, None].expand(B, Te, 4)
    ego_K = scene.ego_K[:, None].expand(B, Tg, 4)
    tr = slerp_poses(exo[:, -1], ego[:, 0], n).to(torch.float32)  # [B, n, 4, 4]
    s = transition_times(n, torch.float32)[None, :, None]
    tr_K = exo_K[:, -1:] + s * (ego_K[:, :1] - exo_K[:, -1:])
    tr_t = _transition_times(te[:, -1], tg[:, 0], n)
    with _threads(config.threads):
        frames = render_batch(scene, torch.cat([exo, ego, tr], 1), torch.cat([exo_K, ego_K, tr_K], 1),
                              torch.cat([te, tg, tr_t], 1), config.size, supersample=config.supersample,
                              near=config.near, chunk_rays=config.chunk_rays, return_aux=depth)
    z = None
    if depth:
        frames, z = frames[0], frames[1]["depth"]
    return SyntheticBatch(
        seeds=seeds, config=config, scene=scene,
        exo_frames=frames[:, :Te], exo_c2w=exo.contiguous(), exo_K=exo_K.contiguous(), exo_times=te.contiguous(),
        ego_frames=frames[:, Te:Te + Tg], ego_c2w=ego, ego_K=ego_K.contiguous(), ego_times=tg.contiguous(),
        transition_frames=frames[:, Te + Tg:], transition_c2w=tr, transition_K=tr_K.contiguous(),
        transition_times=tr_t,
        exo_depth=None if z is None else z[:, :Te], ego_depth=None if z is None else z[:, Te:Te + Tg],
    )


def render_take(seed: int, config: SyntheticConfig = SyntheticConfig()) -> SyntheticTake:
    """Render the take of ``seed``: exo and ego frames with their exact cameras."""
    return render_takes([seed], config).take(0)


class TransitionFrames(NamedTuple):
    """frames [n, 3, H, W]; cameras: n cameras strictly between the last exo and the first ego camera;
    times [n] seconds."""

    frames: Tensor
    cameras: Cameras
    times: Tensor


def render_transition(scene: Scene, exo_cameras: Cameras, ego_cameras: Cameras, n: int, times=None, *,
                      fps: float = 8.0, supersample: int = 2, near: float = 0.05) -> TransitionFrames:
    """Ideal transition frames: the scene rendered along the SLERP camera path from ``exo_cameras[-1]`` to
    ``ego_cameras[0]`` (:func:`~syn2seq_core.geometry.interpolate_cameras`, endpoints excluded).

    times: [n] scene times of the frames; by default linear from the last exo frame's time
    ``(len(exo_cameras) - 1) / fps`` to the first ego frame's time ``0`` at ``s_k = k / (n + 1)``, so the
    activity plays back to where the ego clip starts, as an interpolator between those two frames would
    show it.
    """
    _single(scene)
    cams = interpolate_cameras(exo_cameras, ego_cameras, n)
    if times is None:
        times = _transition_times(torch.tensor((len(exo_cameras) - 1) / float(fps)), torch.tensor(0.0), n)
    times = torch.as_tensor(times, dtype=torch.float32)
    frames = render(scene, cams, times, supersample=supersample, near=near) if n else torch.zeros(
        0, 3, exo_cameras.height, exo_cameras.width)
    return TransitionFrames(frames, cams, times)


def take_scene(take) -> tuple[Scene, SyntheticConfig] | None:
    """The scene and world settings of a take written by ``syn2seq render-synthetic`` (the seed and settings its
    take.json records, ``textured`` included), so any camera of it can be rendered again; None for a take that
    records no world (not procedural). A take whose exo cameras do not match its recorded scene (edited after
    rendering) is refused."""
    import dataclasses

    meta = take.meta.get("meta") or {}
    seed, world = meta.get("seed"), meta.get("synthetic")
    if take.meta.get("source") != SOURCE or not isinstance(seed, int) or not isinstance(world, dict):
        return None
    known = {f.name for f in dataclasses.fields(SyntheticConfig)}
    config = SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in world.items() if k in known})
    scene = sample_scene(seed, config)
    exo = take.cameras("exo")
    require(exo is not None and torch.allclose(exo.c2w[0].double(), scene.exo_c2w[0].double(), atol=1e-4),
            f"take '{take.name}'", "exo cameras matching the scene of its recorded seed",
            "other cameras (edited after rendering?)")
    return scene, config


# --- single-view clips along continuous camera paths (pretraining) -------------------------------------------
class CameraPathClip(NamedTuple):
    """frames [N, 3, H, W]; cameras (N); times [N] seconds; kind: the path kind; scene: batch of one."""

    frames: Tensor
    cameras: Cameras
    times: Tensor
    kind: str
    scene: Scene


@dataclass(frozen=True, eq=False)
class CameraPathBatch:
    """frames [B, N, 3, H, W], c2w [B, N, 4, 4], K [B, N, 4], times [B, N]; kinds: B path kinds."""

    seeds: list[int]
    scene: Scene
    frames: Tensor
    c2w: Tensor
    K: Tensor
    times: Tensor
    kinds: list[str]


def _clamp_room(eye: Tensor, margin: float = 0.25) -> Tensor:
    lo = torch.tensor(ROOM_LO, dtype=eye.dtype) + margin
    hi = torch.tensor(ROOM_HI, dtype=eye.dtype) - margin
    return torch.maximum(torch.minimum(eye, hi), lo)


def _blend_poses(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """Poses from a to b at fractions s (rotation SLERP, centre lerp). a, b: [4, 4]; s: [N] -> [N, 4, 4]."""
    from kornia.geometry.conversions import quaternion_to_rotation_matrix, rotation_matrix_to_quaternion

    a, b = a.to(torch.float64), b.to(torch.float64)
    qa = rotation_matrix_to_quaternion(a[:3, :3].contiguous())
    qb = rotation_matrix_to_quaternion(b[:3, :3].contiguous())
    R = quaternion_to_rotation_matrix(quaternion_slerp(qa, qb, s.to(torch.float64)))
    out = torch.zeros(len(s), 4, 4, dtype=torch.float64)
    out[:, :3, :3] = R
    out[:, :3, 3] = a[:3, 3] + s.to(torch.float64)[:, None] * (b[:3, 3] - a[:3, 3])
    out[:, 3, 3] = 1.0
    return out.to(torch.float32)


def _camera_path(scene: Scene, seed: int, kind: str, times: Tensor) -> tuple[Tensor, Tensor, str]:
    """c2w [N, 4, 4], K [N, 4] of a continuous camera path through scene (a batch of one) at times [N]."""
    d = _Draw(seed + (1 << 40))  # independent of the scene's own draws
    if kind == "random":
        kind = CAMERA_PATH_KINDS[d.i(0, len(CAMERA_PATH_KINDS) - 1)]
    N = times.shape[0]
    t = times.to(torch.float64)
    target = scene.exo_target[0].to(torch.float64)
    fwd, rgt = scene.facing[0].to(torch.float64), scene.right[0].to(torch.float64)
    exo_K, ego_K = scene.exo_K[0], scene.ego_K[0]
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    if kind in ("orbit", "dolly"):
        phi0 = math.radians(d.u(-120, 120))
        dist, height = d.u(1.9, 2.8), d.u(1.3, 2.4)
        if kind == "orbit":
            w = math.radians(d.u(10, 30)) * (1 if d.u() < 0.5 else -1)
            phi = phi0 + w * t
            r = dist + d.u(-0.2, 0.2) * t
            z = height + d.u(-0.1, 0.1) * t
            eye = (target[:2] + r[:, None] * (torch.sin(phi)[:, None] * rgt[:2] + torch.cos(phi)[:, None] * fwd[:2]))
            eye = torch.cat([eye, z[:, None]], -1)
            look = target[None] + d.u(-0.05, 0.05) * t[:, None] * rgt
        else:
            start = target[:2] + dist * (math.sin(phi0) * rgt[:2] + math.cos(phi0) * fwd[:2])
            start = torch.cat([start, torch.tensor([height], dtype=torch.float64)])
            to_target = target - start
            to_target = to_target / to_target.norm()
            side = torch.linalg.cross(to_target, ez)
            side = side / side.norm()
            a = d.u(0, 2 * math.pi)
            v = d.u(0.15, 0.35) * (math.cos(a) * to_target + math.sin(a) * side) + d.u(-0.05, 0.05) * ez
            eye = start[None] + t[:, None] * v[None]
            look = target[None] + d.u(-0.1, 0.1) * t[:, None] * side
        eye = _clamp_room(eye)
        return look_at(eye, look).to(torch.float32), exo_K[None].expand(N, 4).clone(), kind
    ego = ego_c2w(scene, times[None])[0]
    if kind == "head":
        return ego, ego_K[None].expand(N, 4).clone(), kind
    # smooth moves between the exo pose and the ego pose (at the clip end / start)
    u = torch.linspace(0.0, 1.0, N, dtype=torch.float64) if N > 1 else torch.ones(1, dtype=torch.float64)
    s = u * u * (3 - 2 * u)
    exo = scene.exo_c2w[0]
    if kind == "exo_to_ego":
        c2w = _blend_poses(exo, ego[-1], s)
    else:
        c2w = _blend_poses(ego[0], exo, s)
        s = 1 - s
    K = exo_K[None] + s.to(torch.float32)[:, None] * (ego_K - exo_K)[None]
    return c2w, K, kind


def render_camera_path_clips(seeds, n_frames: int, config: SyntheticConfig = SyntheticConfig(),
                             kind: str = "random") -> CameraPathBatch:
    """Single-view clips along continuous camera paths, one per seed, frame i at ``i / fps``.

    kind: one of ``CAMERA_PATH_KINDS`` (``orbit``: a slow orbit around the table at exo-like distance;
    ``dolly``: a straight move at exo-like distance; ``head``: the ego camera's own head motion;
    ``exo_to_ego`` / ``ego_to_exo``: a smooth SLERP move between the exo pose and the ego pose) or
    ``random`` (chosen per seed). Returns frames [B, N, 3, H, W] with exact cameras.
    """
    check_choice(kind, CAMERA_PATH_KINDS + ("random",), "kind")
    require(int(n_frames) == n_frames and n_frames >= 1, "n_frames", "an integer >= 1", n_frames)
    seeds = _check_seeds(seeds)
    scene = sample_scenes(seeds, config)
    times = frame_times(int(n_frames), config.fps)
    paths = [_camera_path(scene[i], seed, kind, times) for i, seed in enumerate(seeds)]
    c2w = torch.stack([p[0] for p in paths])
    K = torch.stack([p[1] for p in paths])
    tt = times[None].expand(len(seeds), -1).contiguous()
    with _threads(config.threads):
        frames = render_batch(scene, c2w, K, tt, config.size, supersample=config.supersample, near=config.near,
                              chunk_rays=config.chunk_rays)
    return CameraPathBatch(seeds, scene, frames, c2w, K, tt, [p[2] for p in paths])


def render_camera_path_clip(seed: int, n_frames: int, config: SyntheticConfig = SyntheticConfig(),
                            kind: str = "random") -> CameraPathClip:
    """One single-view clip along a continuous camera path (see :func:`render_camera_path_clips`)."""
    b = render_camera_path_clips([seed], n_frames, config, kind)
    cams = Cameras(b.c2w[0], b.K[0], config.size, config.size)
    return CameraPathClip(b.frames[0], cams, b.times[0], b.kinds[0], b.scene)
