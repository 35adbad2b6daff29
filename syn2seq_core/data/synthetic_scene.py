"""The procedural ego–exo world: scene parameters, the activity over time, and the cameras.

A scene is a fixed-size room (``ROOM_HALF``: 7 x 7 m floor, 3 m high, world z up, floor at z = 0) with
textured floor, walls and ceiling; a table (a solid box) near the middle; an *actor* standing at one side
of the table (legs and torso: vertical cylinders; head and hands: spheres; arms: capsules from the
shoulders to the hands); and 2–4 coloured objects on the table top (spheres, boxes, vertical cylinders).
Each hand repeatedly reaches for "its" object, carries it along a lifted arc to another place on the table
(and back on the next cycle), and returns to rest; the other objects stay put.

Everything is a pure function of the scene parameters and the time ``t`` in seconds, so any camera can be
rendered at any time. Take frame ``i`` is at ``t = i / fps`` in both views (exo and ego are synchronous).

Cameras (OpenCV axes, metres, normalised ``K``; built with :func:`syn2seq_core.geometry.look_at`):

- exo: static, third person, fov in ``SyntheticConfig.exo_fov_deg``, from a random direction on the far
  half of the table (never behind the actor) and a random height, aimed between the actor's chest and the
  objects so both fill the frame;
- ego: inside the actor's head (which is therefore not drawn: a sphere that contains the camera is
  invisible to it), looking down at the work area between the hands and the objects, with smooth head
  sway, lean and bob; fov in ``SyntheticConfig.ego_fov_deg``.

``SyntheticConfig.textured`` adds fine procedural noise fixed to every surface (off by default), so that
feature matchers and structure from motion have something to match; the flat-shaded world gives SIFT little.

Scenes are batched: every tensor field has a leading batch dimension ``B``; ``scene[i]`` is scene ``i``
as a batch of one. Scene ``i`` of :func:`sample_scenes` depends only on its own seed.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ..base.errors import Syn2SeqInputError, require
from ..geometry.cameras import look_at

# --- the world's fixed layout ------------------------------------------------------------------------
ROOM_HALF = (3.5, 3.5, 3.0)  # room spans [-3.5, 3.5] x [-3.5, 3.5] x [0, 3] metres
ROOM_LO = (-ROOM_HALF[0], -ROOM_HALF[1], 0.0)
ROOM_HI = (ROOM_HALF[0], ROOM_HALF[1], ROOM_HALF[2])

# Primitive ids, as written in the id maps of :func:`~syn2seq_core.data.synthetic.render`.
PRIMITIVE_NAMES = (
    "floor", "ceiling", "wall_x-", "wall_x+", "wall_y-", "wall_y+",  # 0..5: the room's faces
    "table",  # 6
    "legs", "torso", "head",  # 7, 8, 9
    "left_arm", "right_arm", "left_hand", "right_hand",  # 10..13
    "sphere_0", "sphere_1", "box_0", "box_1", "cylinder_0", "cylinder_1",  # 14..19: object slots
)
ID = {name: i for i, name in enumerate(PRIMITIVE_NAMES)}
NUM_PRIMITIVES = len(PRIMITIVE_NAMES)
OBJECT_SLOTS = 6  # slot j is primitive id 14 + j; slots 0-1 spheres, 2-3 boxes, 4-5 cylinders
OBJECT_ID0 = ID["sphere_0"]
SLOT_KIND = ("sphere", "sphere", "box", "box", "cylinder", "cylinder")
ACTOR_IDS = tuple(ID[n] for n in ("legs", "torso", "head", "left_arm", "right_arm", "left_hand", "right_hand"))

# Primitive groups of the ray caster: which ids each group holds, in order.
SPHERE_IDS = (ID["head"], ID["left_hand"], ID["right_hand"], ID["sphere_0"], ID["sphere_1"])
BOX_IDS = (ID["table"], ID["box_0"], ID["box_1"])
CYLINDER_IDS = (ID["legs"], ID["torso"], ID["cylinder_0"], ID["cylinder_1"])
CAPSULE_IDS = (ID["left_arm"], ID["right_arm"])

# Geometry codes of the shading table (how the normal at a hit point is computed).
GEO_SEGMENT, GEO_FIXED, GEO_BOX, GEO_CYLINDER = 0, 1, 2, 3
_FAR = -1000.0  # disabled or hidden primitives are moved this far below the floor (the room hides them)

# The activity: fractions of one hand cycle spent reaching, carrying and returning.
_REACH_END, _CARRY_END = 0.25, 0.75
_EYE_FORWARD = 0.08  # eye in front of the head centre (m, scaled by the actor's size); inside the head
_EYE_UP = 0.02


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the procedural world and of the rendered takes.

    size: output frames are ``size x size`` pixels. supersample: rays per pixel side (box-filtered).
    exo_frames, ego_frames: frames per view; frame i of either view is at time ``i / fps`` seconds.
    exo_fov_deg, ego_fov_deg: (min, max) horizontal = vertical field of view, sampled per scene.
    objects: (min, max) number of objects on the table (2..6).
    near: hits closer than this to the camera (metres) are not drawn.
    chunk_rays: rays cast together (memory and cache locality, not results).
    threads: torch threads while rendering takes and clips (0: leave torch's setting). The ray caster runs
    many small ops; on the shared 2-core machine one thread renders 1.2-1.5k frames/s at 32x32 while two
    threads fall to 0.1-0.8k whenever other processes are busy (``syn2seq bench render``), hence 1. The
    thread count is set for the duration of each render call and restored after it.
    textured: cover every surface with fine procedural noise (off by default: the bundled model's world, and
    every take rendered before the option existed, is untextured, and stays so byte for byte). The noise is a
    function of the hit point in world coordinates (static surfaces) or relative to the primitive's anchor
    (moving ones), keyed by the scene's seed and the primitive, so it is fixed to the surfaces: the same
    point looks the same from every camera and at every time, which gives feature matchers (SIFT) and
    structure from motion something to match at 128-256 pixels. See
    :func:`~syn2seq_core.data.synthetic_render.texture_noise`.
    """

    size: int = 64
    supersample: int = 2
    exo_frames: int = 8
    ego_frames: int = 8
    fps: float = 8.0
    exo_fov_deg: tuple[float, float] = (38.0, 50.0)
    ego_fov_deg: tuple[float, float] = (70.0, 85.0)
    objects: tuple[int, int] = (2, 4)
    near: float = 0.05
    chunk_rays: int = 32768
    threads: int = 1
    textured: bool = False

    def __post_init__(self):
        require(int(self.size) == self.size and self.size >= 4, "size", "an integer >= 4", self.size)
        require(int(self.supersample) == self.supersample and 1 <= self.supersample <= 8, "supersample",
                "an integer in [1, 8]", self.supersample)
        for name in ("exo_frames", "ego_frames"):
            v = getattr(self, name)
            require(int(v) == v and v >= 1, name, "an integer >= 1", v)
        require(self.fps > 0, "fps", "a positive number", self.fps)
        for name in ("exo_fov_deg", "ego_fov_deg"):
            lo, hi = getattr(self, name)
            require(0 < lo <= hi < 170, name, "(min, max) degrees with 0 < min <= max < 170", (lo, hi))
        lo, hi = self.objects
        require(2 <= lo <= hi <= OBJECT_SLOTS, "objects", f"(min, max) with 2 <= min <= max <= {OBJECT_SLOTS}",
                (lo, hi))
        require(0 < self.near < 1, "near", "a distance in (0, 1) metres", self.near)
        require(self.chunk_rays >= 256, "chunk_rays", "at least 256", self.chunk_rays)
        require(int(self.threads) == self.threads and self.threads >= 0, "threads", "an integer >= 0 (0: unchanged)",
                self.threads)
        require(isinstance(self.textured, bool), "textured", "True or False", repr(self.textured))
        object.__setattr__(self, "exo_fov_deg", tuple(float(x) for x in self.exo_fov_deg))
        object.__setattr__(self, "ego_fov_deg", tuple(float(x) for x in self.ego_fov_deg))
        object.__setattr__(self, "objects", tuple(int(x) for x in self.objects))


@dataclass(frozen=True, eq=False)
class Scene:
    """Parameters of ``B`` procedural scenes (float32 unless noted; world coordinates, metres).

    The layout is static; the actor's head, hands and arms and the handled objects move with time
    (see :func:`scene_state`). Shapes name the batch ``B``; ``P = NUM_PRIMITIVES``, ``O = OBJECT_SLOTS``.
    """

    seed: Tensor  # [B] int64
    facing: Tensor  # [B, 3] unit vector the actor faces (horizontal, axis-aligned)
    right: Tensor  # [B, 3] the actor's right (horizontal)
    table_lo: Tensor  # [B, 3] table box corners
    table_hi: Tensor  # [B, 3]
    legs: Tensor  # [B, 5] vertical cylinder (cx, cy, r, z0, z1)
    torso: Tensor  # [B, 5]
    head_base: Tensor  # [B, 3] head centre at rest
    head_r: Tensor  # [B]
    shoulders: Tensor  # [B, 2, 3] left, right
    arm_r: Tensor  # [B]
    hand_r: Tensor  # [B]
    hand_rest: Tensor  # [B, 2, 3]
    eye_offset: Tensor  # [B, 3] eye minus head centre
    obj_base: Tensor  # [B, O, 3] object centres at rest
    obj_size: Tensor  # [B, O, 3] sphere (r, r, r), box (hx, hy, hz), cylinder (r, r, hz)
    obj_enabled: Tensor  # [B, O] bool
    obj_disp: Tensor  # [B, O, 3] where a carry moves the object (from base to base + disp and back)
    hand_obj: Tensor  # [B, 2] int64 slot handled by the left / right hand
    period: Tensor  # [B, 2] seconds per hand cycle
    phase: Tensor  # [B, 2] cycle phase at t = 0 (in cycles)
    lift: Tensor  # [B, 2] carry arc height (m)
    head_amp: Tensor  # [B, 3] head sway (right), lean (facing), bob (up) amplitudes (m)
    head_freq: Tensor  # [B, 3] Hz
    head_phase: Tensor  # [B, 3] radians
    work_center: Tensor  # [B, 3] on the table top, between the objects
    look_mix: Tensor  # [B] weight of the hands (vs work_center) in the ego look target
    look_amp: Tensor  # [B, 2] look-around amplitudes (right, facing), metres on the table
    look_freq: Tensor  # [B, 2]
    look_phase: Tensor  # [B, 2]
    material: Tensor  # [B, P, 12] (c0 rgb, c1 - c0 rgb, frequency xyz, offset xyz) per primitive id
    light_dir: Tensor  # [B, 3] unit vector towards the light
    ambient: Tensor  # [B]
    exo_c2w: Tensor  # [B, 4, 4] static exo camera
    exo_K: Tensor  # [B, 4]
    exo_target: Tensor  # [B, 3] the point the exo camera looks at
    ego_K: Tensor  # [B, 4]
    texture: Tensor  # [B] int64 key of the procedural noise texture (the scene's seed); -1: untextured

    @property
    def batch_size(self) -> int:
        return self.seed.shape[0]

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self, index) -> Scene:
        """Scene(s) ``index`` as a batch (an int gives a batch of one)."""
        if isinstance(index, int):
            n = self.batch_size
            require(-n <= index < n, "index", f"a scene index in [-{n}, {n})", index)
            index = slice(index, index + 1 if index != -1 else None)
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(scenes: list[Scene]) -> Scene:
        """Concatenate batches of scenes."""
        require(len(scenes) > 0, "scenes", "at least one scene", "none")
        return Scene(**{f.name: torch.cat([getattr(s, f.name) for s in scenes]) for f in fields(Scene)})


# --- sampling ------------------------------------------------------------------------------------------
class _Draw:
    """Deterministic draws from one seed (float64 on CPU, independent of any global RNG)."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(int(seed))

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.g, dtype=torch.float64))

    def i(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi] (inclusive)."""
        return int(torch.randint(lo, hi + 1, (), generator=self.g))

    def choice(self, options, weights=None):
        w = torch.tensor([1.0] * len(options) if weights is None else weights, dtype=torch.float64)
        return options[int(torch.multinomial(w, 1, generator=self.g))]

    def perm(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.g).tolist()


def _hsv(h: float, s: float, v: float) -> list[float]:
    return list(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


_SKIN = ((0.96, 0.80, 0.69), (0.90, 0.70, 0.56), (0.78, 0.57, 0.44), (0.60, 0.42, 0.30), (0.42, 0.28, 0.20))


def _material(c0, c1=None, freq=(0.0, 0.0, 0.0), offset=(0.0, 0.0, 0.0)) -> list[float]:
    """One row of the material table: albedo c0 where the pattern is 0, c1 where it is 1.

    The pattern at hit point X on a face with normal n is ``sum_k floor(X_k * freq_k * (1 - |n_k|) +
    offset_k) mod 2``: all three frequencies equal give a checker on every face, one non-zero frequency
    gives stripes across that axis, a single low frequency with a chosen offset gives a two-tone split.
    """
    c1 = c0 if c1 is None else c1
    return [*c0, *(b - a for a, b in zip(c0, c1)), *freq, *offset]


def _surface_material(d: _Draw, kind: str, size: float, axis: int | None, base_v: tuple[float, float]):
    """A two-colour procedural texture: 'solid', 'checker', 'stripes' (across ``axis``) or 'split'."""
    h = d.u()
    c0 = _hsv(h, d.u(0.15, 0.65), d.u(*base_v))
    # the second colour: a clearly different value and a nearby or complementary hue
    h1 = h + d.choice([0.0, 0.08, 0.5, 0.33])
    v1 = d.u(*base_v)
    v1 = v1 - 0.35 if v1 > 0.6 else v1 + 0.35
    c1 = _hsv(h1, d.u(0.2, 0.7), v1)
    f = 1.0 / size
    o = [d.u(0.05, 0.95) for _ in range(3)]
    if kind == "solid":
        return _material(c0)
    if kind == "checker":
        return _material(c0, c1, (f, f, f), o)
    if kind == "stripes":
        freq = [0.0, 0.0, 0.0]
        freq[axis] = f
        return _material(c0, c1, freq, [o[0] if k == axis else 0.0 for k in range(3)])
    if kind == "split":  # two-tone at height `size` (walls): floor(z / 10 + 1 - size / 10) flips at z = size
        return _material(c0, c1, (0.0, 0.0, 0.1), (0.0, 0.0, 1.0 - 0.1 * size))
    raise ValueError(kind)


def _sample_one(seed: int, config: SyntheticConfig) -> dict:
    """Parameters of one scene as nested lists (float64 python values)."""
    d = _Draw(seed)
    # orientation: the actor faces one of the four axis directions; local (x right, y forward, z up)
    k = d.i(0, 3)
    ang = k * math.pi / 2
    fwd = (-math.sin(ang), math.cos(ang), 0.0)
    rgt = (math.cos(ang), math.sin(ang), 0.0)
    center = (d.u(-0.3, 0.3), d.u(-0.3, 0.3))

    def world(x: float, y: float, z: float) -> list[float]:
        return [center[0] + x * rgt[0] + y * fwd[0], center[1] + x * rgt[1] + y * fwd[1], z]

    def wvec(x: float, y: float, z: float) -> list[float]:
        return [x * rgt[0] + y * fwd[0], x * rgt[1] + y * fwd[1], z]

    # table (local half sizes along right / forward), a solid box from the floor to the top
    hx, hy, top = d.u(0.5, 0.8), d.u(0.36, 0.5), d.u(0.78, 0.92)
    c_lo, c_hi = world(-hx, -hy, 0.0), world(hx, hy, top)
    table_lo = [min(a, b) for a, b in zip(c_lo, c_hi)]
    table_hi = [max(a, b) for a, b in zip(c_lo, c_hi)]

    # actor
    s = d.u(0.95, 1.08)
    torso_r = 0.18 * s
    ax = d.u(-0.25, 0.25) * hx
    ay = -hy - 0.06 - torso_r
    foot = world(ax, ay, 0.0)
    legs = [foot[0], foot[1], 0.14 * s, 0.0, 0.9 * s]
    torso = [foot[0], foot[1], torso_r, 0.86 * s, 1.4 * s]
    head_r = 0.13 * s
    # the head leans forward over the table edge, so the ego camera sees the table rather than the chest
    head_base = world(ax, ay + 0.12 * s, 1.4 * s + 0.07 * s + head_r)
    shoulders = [world(ax + sx * (torso_r - 0.02 * s), ay + 0.03 * s, 1.35 * s) for sx in (-1.0, 1.0)]
    arm_r, hand_r = 0.042 * s, 0.07 * s
    hand_rest = [world(ax + sx * 0.2 * s, -hy + 0.1, top + hand_r + 0.02) for sx in (-1.0, 1.0)]
    eye_offset = wvec(0.0, _EYE_FORWARD * s, _EYE_UP * s)

    # objects: n of the six typed slots, placed without overlap on the near part of the table top
    n_obj = d.i(*config.objects)
    slots = sorted(d.perm(OBJECT_SLOTS)[:n_obj])
    x_lo, x_hi = -hx + 0.16, hx - 0.16
    y_lo, y_hi = -hy + 0.14, min(hy - 0.14, -hy + 0.72)
    obj_base = [[0.0, 0.0, _FAR] for _ in range(OBJECT_SLOTS)]
    obj_size = [[0.05, 0.05, 0.05] for _ in range(OBJECT_SLOTS)]
    obj_disp = [[0.0, 0.0, 0.0] for _ in range(OBJECT_SLOTS)]
    enabled = [False] * OBJECT_SLOTS
    local_xy = {}
    placed: list[tuple[float, float, float]] = []
    for j in slots:
        kind = SLOT_KIND[j]
        if kind == "sphere":
            r = d.u(0.09, 0.13)
            size = (r, r, r)
        elif kind == "box":
            size = (d.u(0.08, 0.13), d.u(0.08, 0.13), d.u(0.06, 0.12))
        else:
            r = d.u(0.07, 0.11)
            size = (r, r, d.u(0.08, 0.15))
        foot_r = math.hypot(size[0], size[1]) if kind == "box" else size[0]
        for _ in range(64):
            x, y = d.u(x_lo, x_hi), d.u(y_lo, y_hi)
            if all(math.hypot(x - px, y - py) > foot_r + pr + 0.05 for px, py, pr in placed):
                break
        placed.append((x, y, foot_r))
        local_xy[j] = (x, y)
        sz = (size[1], size[0], size[2]) if k % 2 == 1 and kind == "box" else size  # world-axis half sizes
        obj_size[j] = list(sz)
        obj_base[j] = world(x, y, top + size[2])
        enabled[j] = True
        # the carry goes to a random nearby point that stays on the table
        a = d.u(0.0, 2 * math.pi)
        L = d.u(0.15, 0.3)
        ex = min(max(x + L * math.cos(a), x_lo), x_hi)
        ey = min(max(y + L * math.sin(a), y_lo), y_hi)
        obj_disp[j] = wvec(ex - x, ey - y, 0.0)
    # the two handled objects: the left hand takes the one further left
    pick = d.perm(n_obj)[:2]
    h0, h1 = slots[pick[0]], slots[pick[1]]
    if local_xy[h0][0] > local_xy[h1][0]:
        h0, h1 = h1, h0
    hand_obj = [h0, h1]
    objs_xy = [local_xy[j] for j in slots]
    wx = sum(p[0] for p in objs_xy) / n_obj
    wy = sum(p[1] for p in objs_xy) / n_obj
    work_center = world(0.5 * wx + 0.5 * ax, wy, top)

    # colours
    body_h = d.u()
    shirt = _hsv(body_h, d.u(0.5, 0.9), d.u(0.55, 0.9))
    trousers = _hsv(body_h + d.u(0.3, 0.7), d.u(0.3, 0.7), d.u(0.25, 0.5))
    skin = list(_SKIN[d.i(0, len(_SKIN) - 1)])
    arm = shirt if d.u() < 0.5 else skin
    h0o = d.u()
    obj_cols = [_hsv(h0o + i / n_obj + d.u(-0.05, 0.05), d.u(0.7, 1.0), d.u(0.8, 1.0)) for i in range(n_obj)]
    mats = [None] * NUM_PRIMITIVES
    floor_kind = d.choice(["checker", "stripes", "solid"], [0.5, 0.3, 0.2])
    mats[ID["floor"]] = _surface_material(d, floor_kind, d.u(0.45, 1.0), d.i(0, 1), (0.35, 0.85))
    mats[ID["ceiling"]] = _material(_hsv(d.u(), d.u(0.0, 0.2), d.u(0.75, 0.95)))
    for name, along in (("wall_x-", 1), ("wall_x+", 1), ("wall_y-", 0), ("wall_y+", 0)):
        kind = d.choice(["stripes", "split", "checker", "solid"], [0.35, 0.3, 0.15, 0.2])
        size = d.u(0.9, 1.5) if kind == "split" else d.u(0.35, 0.9)
        mats[ID[name]] = _surface_material(d, kind, size, along, (0.45, 0.95))
    table_kind = d.choice(["solid", "stripes", "checker"], [0.4, 0.35, 0.25])
    mats[ID["table"]] = _surface_material(d, table_kind, d.u(0.12, 0.25), d.i(0, 1), (0.35, 0.8))
    mats[ID["legs"]] = _material(trousers)
    mats[ID["torso"]] = _material(shirt)
    mats[ID["head"]] = _material(skin)
    mats[ID["left_arm"]] = mats[ID["right_arm"]] = _material(arm)
    mats[ID["left_hand"]] = mats[ID["right_hand"]] = _material(skin)
    for j in range(OBJECT_SLOTS):
        mats[OBJECT_ID0 + j] = _material([0.5, 0.5, 0.5])
    for i, j in enumerate(slots):
        mats[OBJECT_ID0 + j] = _material(obj_cols[i])

    # light
    el, az = math.radians(d.u(35, 70)), d.u(0, 2 * math.pi)
    light_dir = [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
    ambient = d.u(0.35, 0.5)

    # exo camera: across the table (phi = 0) or to a side, never behind the actor
    fov = math.radians(d.u(*config.exo_fov_deg))
    phi = math.radians(d.u(-110, 110))
    chest = (ax, ay, 1.2 * s)
    tx = 0.5 * chest[0] + 0.5 * wx + d.u(-0.08, 0.08)
    ty = 0.5 * chest[1] + 0.5 * wy + d.u(-0.08, 0.08)
    target = world(tx, ty, d.u(0.95, 1.1) * s)
    # distance from the field of view, so that a width of 1.4-1.9 m around the target fills the frame
    dist, height = d.u(0.7, 0.95) / math.tan(fov / 2), d.u(1.5, 2.4)
    eye = world(tx + dist * math.sin(phi), ty + dist * math.cos(phi), height)
    margin = 0.25
    eye[0] = min(max(eye[0], ROOM_LO[0] + margin), ROOM_HI[0] - margin)
    eye[1] = min(max(eye[1], ROOM_LO[1] + margin), ROOM_HI[1] - margin)
    f_exo = 0.5 / math.tan(fov / 2)
    f_ego = 0.5 / math.tan(math.radians(d.u(*config.ego_fov_deg)) / 2)

    # head motion and gaze
    head_amp = [d.u(0.01, 0.03) * s, d.u(0.01, 0.03) * s, d.u(0.004, 0.012) * s]
    head_freq = [d.u(0.15, 0.45), d.u(0.1, 0.35), d.u(0.5, 1.0)]
    head_phase = [d.u(0, 2 * math.pi) for _ in range(3)]
    return dict(
        seed=int(seed), facing=list(fwd), right=list(rgt), table_lo=table_lo, table_hi=table_hi, legs=legs,
        torso=torso, head_base=head_base, head_r=head_r, shoulders=shoulders, arm_r=arm_r, hand_r=hand_r,
        hand_rest=hand_rest, eye_offset=eye_offset, obj_base=obj_base, obj_size=obj_size, obj_enabled=enabled,
        obj_disp=obj_disp, hand_obj=hand_obj, period=[d.u(1.6, 2.6), d.u(1.6, 2.6)],
        phase=[d.u(), d.u()], lift=[d.u(0.08, 0.2), d.u(0.08, 0.2)], head_amp=head_amp, head_freq=head_freq,
        head_phase=head_phase, work_center=work_center, look_mix=d.u(0.35, 0.75),
        look_amp=[d.u(0.02, 0.06), d.u(0.02, 0.05)], look_freq=[d.u(0.2, 0.6), d.u(0.2, 0.6)],
        look_phase=[d.u(0, 2 * math.pi), d.u(0, 2 * math.pi)], material=mats, light_dir=light_dir,
        ambient=ambient, exo_eye=eye, exo_target=target, exo_K=[f_exo, f_exo, 0.5, 0.5],
        ego_K=[f_ego, f_ego, 0.5, 0.5],
    )


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, Tensor):
        seeds = seeds.tolist()
    seeds = list(seeds)
    require(len(seeds) > 0, "seeds", "at least one seed", "none")
    for s in seeds:
        if not (isinstance(s, int) and not isinstance(s, bool)) or s < 0:
            raise Syn2SeqInputError("seeds", "non-negative integers", repr(s))
    return seeds


def sample_scenes(seeds, config: SyntheticConfig = SyntheticConfig()) -> Scene:
    """Sample one scene per seed. seeds: list of B non-negative ints -> Scene with batch B.

    Scene ``i`` depends only on ``seeds[i]`` and ``config`` (not on the other seeds).
    """
    seeds = _check_seeds(seeds)
    raw = [_sample_one(s, config) for s in seeds]
    f32 = torch.float32

    def stack(key, dtype=f32):
        return torch.tensor([r[key] for r in raw], dtype=dtype)

    eye, target = stack("exo_eye", torch.float64), stack("exo_target", torch.float64)
    exo_c2w = look_at(eye, target).to(f32)
    return Scene(
        seed=stack("seed", torch.int64), facing=stack("facing"), right=stack("right"),
        table_lo=stack("table_lo"), table_hi=stack("table_hi"), legs=stack("legs"), torso=stack("torso"),
        head_base=stack("head_base"), head_r=stack("head_r"), shoulders=stack("shoulders"), arm_r=stack("arm_r"),
        hand_r=stack("hand_r"), hand_rest=stack("hand_rest"), eye_offset=stack("eye_offset"),
        obj_base=stack("obj_base"), obj_size=stack("obj_size"), obj_enabled=stack("obj_enabled", torch.bool),
        obj_disp=stack("obj_disp"), hand_obj=stack("hand_obj", torch.int64), period=stack("period"),
        phase=stack("phase"), lift=stack("lift"), head_amp=stack("head_amp"), head_freq=stack("head_freq"),
        head_phase=stack("head_phase"), work_center=stack("work_center"), look_mix=stack("look_mix"),
        look_amp=stack("look_amp"), look_freq=stack("look_freq"), look_phase=stack("look_phase"),
        material=stack("material"), light_dir=stack("light_dir"), ambient=stack("ambient"),
        exo_c2w=exo_c2w, exo_K=stack("exo_K"), exo_target=target.to(f32), ego_K=stack("ego_K"),
        texture=torch.tensor(seeds if config.textured else [-1] * len(seeds), dtype=torch.int64),
    )


def sample_scene(seed: int, config: SyntheticConfig = SyntheticConfig()) -> Scene:
    """One scene (a batch of one) from ``seed``; the same as ``sample_scenes([seed], config)``."""
    return sample_scenes([seed], config)


# --- the scene over time ---------------------------------------------------------------------------------
def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _check_times(scene: Scene, times) -> Tensor:
    times = torch.as_tensor(times, dtype=torch.float32)
    if times.ndim == 1:
        times = times[None].expand(scene.batch_size, -1)
    require(times.ndim == 2 and times.shape[0] == scene.batch_size, "times",
            f"shape [N] or [B, N] with B = {scene.batch_size}", tuple(times.shape))
    require(bool(torch.isfinite(times).all()), "times", "finite values (seconds)", "NaN/inf")
    return times


def scene_state(scene: Scene, times) -> dict[str, Tensor]:
    """Where everything that moves is at ``times``. times: [N] or [B, N] seconds.

    Returns a dict of [B, N, ...] tensors: ``objects`` [B, N, O, 3] object centres, ``hands`` [B, N, 2, 3],
    ``head`` [B, N, 3] head centre, ``eye`` [B, N, 3] ego camera centre, ``look`` [B, N, 3] the point on
    the table the ego camera looks at.
    """
    times = _check_times(scene, times)
    B, N = times.shape
    ez = torch.tensor([0.0, 0.0, 1.0])
    # hands: cycles of reach / carry / return, alternately carrying A -> B and B -> A
    cyc = times[:, :, None] / scene.period[:, None, :] + scene.phase[:, None, :]  # [B, N, 2]
    k = torch.floor(cyc)
    u = cyc - k
    prog = _smoothstep((u - _REACH_END) / (_CARRY_END - _REACH_END))
    odd = torch.remainder(k, 2.0) > 0.5
    g = torch.where(odd, 1.0 - prog, prog)
    lift = scene.lift[:, None, :] * torch.sin(math.pi * prog)
    slot = scene.hand_obj  # [B, 2]
    A = torch.gather(scene.obj_base, 1, slot[:, :, None].expand(-1, -1, 3))  # [B, 2, 3]
    disp = torch.gather(scene.obj_disp, 1, slot[:, :, None].expand(-1, -1, 3))
    half_h = torch.gather(scene.obj_size[..., 2], 1, slot)  # [B, 2]
    held = A[:, None] + g[..., None] * disp[:, None] + lift[..., None] * ez  # [B, N, 2, 3]
    onehot = torch.nn.functional.one_hot(slot, OBJECT_SLOTS).to(torch.float32)  # [B, 2, O]
    objects = scene.obj_base[:, None] + torch.einsum("bnhc,bho->bnoc", held - A[:, None], onehot)
    grasp = held + (half_h + 0.7 * scene.hand_r[:, None])[:, None, :, None] * ez
    rest = scene.hand_rest[:, None]  # [B, 1, 2, 3]
    a = _smoothstep(u / _REACH_END)[..., None]
    r = _smoothstep((u - _CARRY_END) / (1.0 - _CARRY_END))[..., None]
    arc = 0.06
    reach = rest + a * (grasp - rest) + arc * torch.sin(math.pi * a) * ez
    back = grasp + r * (rest - grasp) + arc * torch.sin(math.pi * r) * ez
    uu = u[..., None]
    hands = torch.where(uu < _REACH_END, reach, torch.where(uu < _CARRY_END, grasp, back))
    # head: sway (right), lean (facing), bob (up)
    w = 2 * math.pi * scene.head_freq[:, None, :] * times[:, :, None] + scene.head_phase[:, None, :]
    s = scene.head_amp[:, None, :] * torch.sin(w)  # [B, N, 3]
    head = (scene.head_base[:, None] + s[..., 0:1] * scene.right[:, None] + s[..., 1:2] * scene.facing[:, None]
            + s[..., 2:3] * ez)
    eye = head + scene.eye_offset[:, None]
    # gaze: between the work centre and the hands, with a slow look-around
    m = scene.look_mix[:, None, None]
    look = (1 - m) * scene.work_center[:, None] + m * hands.mean(2)
    wl = 2 * math.pi * scene.look_freq[:, None, :] * times[:, :, None] + scene.look_phase[:, None, :]
    sl = scene.look_amp[:, None, :] * torch.sin(wl)
    look = look + sl[..., 0:1] * scene.right[:, None] + sl[..., 1:2] * scene.facing[:, None]
    look = torch.cat([look[..., :2], scene.work_center[:, None, 2:].expand(B, N, 1)], -1)
    return dict(objects=objects, hands=hands, head=head, eye=eye, look=look)


def ego_c2w(scene: Scene, times) -> Tensor:
    """Ego camera poses at ``times``. times: [N] or [B, N] -> c2w [B, N, 4, 4] (float32, OpenCV axes)."""
    st = scene_state(scene, times)
    return look_at(st["eye"].to(torch.float64), st["look"].to(torch.float64)).to(torch.float32)


def exo_c2w(scene: Scene, times) -> Tensor:
    """Exo camera poses (static) at ``times``. times: [N] or [B, N] -> c2w [B, N, 4, 4]."""
    times = _check_times(scene, times)
    return scene.exo_c2w[:, None].expand(-1, times.shape[1], -1, -1).clone()


# --- primitive tables for the ray caster -----------------------------------------------------------------
def primitive_tables(scene: Scene, times, hidden=()) -> dict[str, Tensor]:
    """The geometry of every primitive at ``times`` in the layout the ray caster wants.

    times: [N] or [B, N]. hidden: names from ``PRIMITIVE_NAMES`` not to draw (actor parts or objects).
    Returns (all float32): ``spheres`` [B, N, 5, 4] (centre, r); ``boxes`` [B, N, 3, 6] (lo, hi);
    ``cylinders`` [B, N, 4, 5] (cx, cy, r, z0, z1); ``capsules`` [B, N, 2, 7] (a, b, r); ``geometry``
    [B, N, P, 7] the shading table (code, 6 parameters: see ``GEO_*``); ``material`` [B, P, 12].
    """
    times = _check_times(scene, times)
    B, N = times.shape
    st = scene_state(scene, times)
    hidden = set(hidden)
    unknown = hidden - set(PRIMITIVE_NAMES[ID["table"]:])
    require(not unknown, "hidden", f"names among {list(PRIMITIVE_NAMES[ID['table']:])}", sorted(unknown))
    far = torch.tensor([0.0, 0.0, _FAR])
    objects, size = st["objects"], scene.obj_size[:, None].expand(B, N, -1, -1)
    enabled = scene.obj_enabled[:, None, :, None].expand(B, N, -1, 1)
    for j in range(OBJECT_SLOTS):
        if PRIMITIVE_NAMES[OBJECT_ID0 + j] in hidden:
            enabled = enabled.clone()
            enabled[:, :, j] = False
    objects = torch.where(enabled, objects, far)

    def hide(name: str, x: Tensor) -> Tensor:  # move a point far below the floor
        return x + far if name in hidden else x

    def bn(x: Tensor) -> Tensor:  # static [B, ...] -> [B, N, ...]
        return x[:, None].expand(B, N, *x.shape[1:])

    head = hide("head", st["head"])
    hands = st["hands"]
    lh, rh = hide("left_hand", hands[:, :, 0]), hide("right_hand", hands[:, :, 1])
    hr = bn(scene.hand_r)[..., None]
    spheres = torch.stack([
        torch.cat([head, bn(scene.head_r)[..., None]], -1),
        torch.cat([lh, hr], -1),
        torch.cat([rh, hr], -1),
        torch.cat([objects[:, :, 0], size[:, :, 0, :1]], -1),
        torch.cat([objects[:, :, 1], size[:, :, 1, :1]], -1),
    ], 2)
    table = torch.cat([scene.table_lo, scene.table_hi], -1)
    if "table" in hidden:
        table = table + torch.tensor([0, 0, _FAR, 0, 0, _FAR])
    boxes = torch.stack([bn(table)] + [torch.cat([objects[:, :, j] - size[:, :, j], objects[:, :, j] + size[:, :, j]],
                                                  -1) for j in (2, 3)], 2)

    def cyl_hidden(name, c):
        return c + torch.tensor([0, 0, 0, _FAR, _FAR]) if name in hidden else c

    cyls = [bn(cyl_hidden("legs", scene.legs)), bn(cyl_hidden("torso", scene.torso))]
    for j in (4, 5):
        c, sz = objects[:, :, j], size[:, :, j]
        cyls.append(torch.stack([c[..., 0], c[..., 1], sz[..., 0], c[..., 2] - sz[..., 2], c[..., 2] + sz[..., 2]], -1))
    cylinders = torch.stack(cyls, 2)
    caps = []
    for i, name in enumerate(("left_arm", "right_arm")):
        a = hide(name, bn(scene.shoulders[:, i]))
        b = hide(name, hands[:, :, i])
        caps.append(torch.cat([a, b, bn(scene.arm_r)[..., None]], -1))
    capsules = torch.stack(caps, 2)
    return dict(spheres=spheres, boxes=boxes, cylinders=cylinders, capsules=capsules,
                geometry=_geometry_table(spheres, boxes, cylinders, capsules), material=scene.material)


def _geometry_table(spheres, boxes, cylinders, capsules) -> Tensor:
    """[B, N, P, 7] rows (code, p0 xyz, p1 xyz) from which a hit point's normal is computed.

    Segment (spheres: p0 = p1 = centre; capsules): p0, p1 the segment ends. Fixed (room faces): p0 the
    normal. Box: p0 the centre, p1 the inverse half sizes. Cylinder: p0 (cx, cy, z middle), p1 (1/r, 1/r,
    1/half height).
    """
    B, N = spheres.shape[:2]
    geo = torch.zeros(B, N, NUM_PRIMITIVES, 7)
    room_normals = torch.tensor([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]],
                                dtype=torch.float32)  # inward normals of floor, ceiling, x-, x+, y-, y+
    geo[:, :, :6, 0] = GEO_FIXED
    geo[:, :, :6, 1:4] = room_normals
    for i, pid in enumerate(SPHERE_IDS):
        geo[:, :, pid, 0] = GEO_SEGMENT
        geo[:, :, pid, 1:4] = spheres[:, :, i, :3]
        geo[:, :, pid, 4:7] = spheres[:, :, i, :3]
    for i, pid in enumerate(CAPSULE_IDS):
        geo[:, :, pid, 0] = GEO_SEGMENT
        geo[:, :, pid, 1:7] = capsules[:, :, i, :6]
    for i, pid in enumerate(BOX_IDS):
        lo, hi = boxes[:, :, i, :3], boxes[:, :, i, 3:]
        geo[:, :, pid, 0] = GEO_BOX
        geo[:, :, pid, 1:4] = 0.5 * (lo + hi)
        geo[:, :, pid, 4:7] = 2.0 / (hi - lo).clamp(min=1e-6)
    for i, pid in enumerate(CYLINDER_IDS):
        c = cylinders[:, :, i]
        geo[:, :, pid, 0] = GEO_CYLINDER
        geo[:, :, pid, 1] = c[..., 0]
        geo[:, :, pid, 2] = c[..., 1]
        geo[:, :, pid, 3] = 0.5 * (c[..., 3] + c[..., 4])
        geo[:, :, pid, 4] = 1.0 / c[..., 2].clamp(min=1e-6)
        geo[:, :, pid, 5] = geo[:, :, pid, 4]
        geo[:, :, pid, 6] = 2.0 / (c[..., 4] - c[..., 3]).clamp(min=1e-6)
    return geo
