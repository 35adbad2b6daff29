"""The ray caster of the procedural world: analytic ray–primitive intersection in torch, vectorised over
frames and pixels.

One ray per sub-pixel centre (``supersample`` x ``supersample`` per output pixel, box-filtered), the nearest
hit among the room (inside of a box), spheres, axis-aligned boxes, vertical cylinders and capsules, Lambert
shading with one directional light plus ambient, and two-colour procedural textures. No shadows.

Speed notes (CPU, measured on the 2-core development machine):

- tensors are kept as separate x/y/z planes ("structure of arrays"); reductions over a last dimension of 3
  (``F.normalize``, ``vector_norm``) are several times slower than ``x * rsqrt(x·x)`` on planes;
- ``torch.where`` / ``masked_fill`` and ``torch.sqrt`` of zeros or negatives run 10–20x slower than plain
  arithmetic, so misses are carried in the sign bit (NaN included) and the nearest hit is an integer
  minimum of (depth bits | primitive id), and square roots are ``x * rsqrt(x)``;
- rays are processed in chunks of whole frames (``chunk_rays``, 32k rays is the sweet spot) so the
  intermediates stay in cache; primitives absent from a whole chunk are skipped.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ..base import conventions as C
from .synthetic_scene import (BOX_IDS, CAPSULE_IDS, CYLINDER_IDS, GEO_BOX, GEO_CYLINDER, GEO_FIXED, GEO_SEGMENT,
                              NUM_PRIMITIVES, ROOM_HI, ROOM_LO, SPHERE_IDS)

# Nearest-hit search without torch.where (a slow, unvectorised path on CPU): every candidate hit is a
# float v = t - near whose sign bit marks a miss (NaN from a negative discriminant counts as a miss too).
# Its bits, read as an int32, order like the floats for v >= 0; misses map to INT32_MAX; the low
# _ID_BITS bits are replaced by the primitive id, so one integer amin gives both the nearest hit and its id
# (at a relative depth precision of 2^-(23 - _ID_BITS), about 4e-6).
_ID_BITS = 5
_ID_MASK = (1 << _ID_BITS) - 1
_SIGN = -(1 << 31)  # int32 0x80000000
_ABS = (1 << 31) - 1  # int32 0x7fffffff


# The procedural noise texture (SyntheticConfig.textured): octaves of value noise on cubic lattices with these
# cell sizes (metres) and weights. The finest cell is about 4-8 pixels on the table in a 160-pixel ego frame
# and the coarsest gives blobs SIFT finds at its larger scales; the albedo is scaled by a factor in
# [TEXTURE_FLOOR, TEXTURE_FLOOR + TEXTURE_GAIN] = [0, 2] (mean about 1: the scene keeps its brightness; chosen on
# 8 takes for the most SIFT inliers between ego frames 0.6 s apart at 128 and 192 pixels).
TEXTURE_CELLS = (0.025, 0.06, 0.15)
TEXTURE_WEIGHTS = (0.45, 0.35, 0.2)
TEXTURE_FLOOR, TEXTURE_GAIN = 0.0, 2.0
_M32 = 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mix of int64 values in [0, 2^32) (no overflow: each product stays below 2^59)."""
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    return (x >> 16) ^ x


def texture_noise(X, key: Tensor, pid: Tensor) -> Tensor:
    """Value noise in [0, 1] at points X fixed to the surfaces they lie on.

    X: 3 planes [F, P] (coordinates in metres of each hit point, world or primitive-anchored); key: [F]
    int64 texture keys (>= 0); pid: [F, P] int64 primitive ids. Each octave hashes the integer lattice
    corners around ``X / cell`` with the key, the primitive and the octave, and interpolates the 8 corner
    values trilinearly with smoothstep weights (continuous across cells, so a surface lying on a lattice
    plane shows no seam). A pure function of its inputs: the same point looks the same in every view.
    """
    seed = _hash32((key[:, None] * 0x9E3779B1 + pid * 0x85EBCA77) & _M32)  # [F, P]
    out = None
    for octave, (cell, weight) in enumerate(zip(TEXTURE_CELLS, TEXTURE_WEIGHTS)):
        base = _hash32((seed + octave * 0xC2B2AE3D) & _M32)
        inv = 1.0 / cell
        ijk, w = [], []
        for k in range(3):
            q = X[k] * inv + 0.37 * (k + 1)  # lattice planes away from the room's faces
            f = torch.floor(q)
            u = q - f
            w.append(u * u * (3.0 - 2.0 * u))
            ijk.append(f.to(torch.int64))
        hz = [_hash32((base ^ ((ijk[2] + dz) * 0x27D4EB2F & _M32))) for dz in (0, 1)]
        hyz = [[_hash32(h ^ ((ijk[1] + dy) * 0x165667B1 & _M32)) for h in hz] for dy in (0, 1)]
        val = None
        for dx in (0, 1):
            hx = (ijk[0] + dx) * 0x61C88647 & _M32
            c = [[_hash32(hyz[dy][dz] ^ hx).to(torch.float32) * (1.0 / _M32) for dz in (0, 1)] for dy in (0, 1)]
            y0 = torch.lerp(c[0][0], c[0][1], w[2])
            y1 = torch.lerp(c[1][0], c[1][1], w[2])
            v = torch.lerp(y0, y1, w[1])
            val = v if val is None else torch.lerp(val, v, w[0])
        out = weight * val if out is None else out.add_(val, alpha=weight)
    return out


# Columns holding a primitive's z coordinates in each group's table, and the height below which a primitive
# counts as parked (primitive_tables moves absent and hidden primitives 1000 m below the floor).
_TOP_Z = {"spheres": [2], "boxes": [5], "cylinders": [4], "capsules": [2, 5]}
_PARKED = -500.0


def _bits(x: Tensor) -> Tensor:
    return x.view(torch.int32)


def _keys(v: Tensor) -> Tensor:
    """Float candidates (sign bit set = miss) -> non-negative int32 keys (INT32_MAX = miss)."""
    b = _bits(v)
    return (b & _ABS) | ((b >> 31) & _ABS)


def _valid_if(v: Tensor, *conditions: Tensor) -> Tensor:
    """Mark v as a miss (sign bit) wherever one of the float ``conditions`` is negative."""
    b = _bits(v)
    for c in conditions:
        b = b | (_bits(c) & _SIGN)
    return b.view(torch.float32)


def _sqrt_or_nan(x: Tensor) -> Tensor:
    """sqrt(x) for x > 0, NaN for x <= 0. (torch.sqrt of zero or negatives is slow on some CPUs.)"""
    return x * torch.rsqrt(x)


def _p(x: Tensor, k: int) -> Tensor:
    """Column k of a per-frame parameter table [F, G, D] as [F, G, 1] (broadcasts over pixels)."""
    return x[:, :, k:k + 1]


def _dot(d, v: Tensor) -> Tensor:
    """d . v for ray planes d: 3 x [F, 1, P] and per-primitive vectors v: [F, G, 3] -> [F, G, P]."""
    out = d[0] * v[..., 0:1]
    return out.addcmul_(d[1], v[..., 1:2]).addcmul_(d[2], v[..., 2:3])


def _sphere_v(centre: Tensor, radius: Tensor, o: Tensor, d, near: float) -> Tensor:
    """Front-face hit candidates t - near of spheres. centre: [F, G, 3]; radius: [F, G, 1]; o: [F, 3];
    d: planes [F, 1, P] -> [F, G, P]. A sphere that contains the camera is not hit (no back faces)."""
    co = centre - o[:, None, :]
    cc = (co * co).sum(-1, keepdim=True) - radius * radius
    nb = _dot(d, co)
    disc = nb * nb - cc
    return nb - _sqrt_or_nan(disc) - near


def _spheres(s: Tensor, o: Tensor, d, inv, near: float) -> Tensor:
    """Spheres (centre, r). s: [F, G, 4] -> keys [F, G, P]."""
    return _keys(_sphere_v(s[..., :3], s[..., 3:4], o, d, near))


def _slab(lo: Tensor, hi: Tensor, oc: Tensor, inv: Tensor) -> tuple[Tensor, Tensor]:
    t1 = (lo - oc) * inv
    t2 = (hi - oc) * inv
    return torch.minimum(t1, t2), torch.maximum(t1, t2)


def _boxes(b: Tensor, o: Tensor, d, inv, near: float) -> Tensor:
    """Axis-aligned boxes (lo, hi). b: [F, G, 6]; inv: 1/d planes [F, 1, P] -> keys [F, G, P]."""
    tn = tf = None
    for k in range(3):
        n, f = _slab(_p(b, k), _p(b, k + 3), o[:, None, k:k + 1], inv[k])
        tn = n if tn is None else torch.maximum(tn, n)
        tf = f if tf is None else torch.minimum(tf, f)
    return _keys(_valid_if(tn - near, tf - tn))


def _cylinders(c: Tensor, o: Tensor, d, inv, near: float) -> Tensor:
    """Vertical capped cylinders (cx, cy, r, z0, z1). c: [F, G, 5] -> keys [F, G, P]."""
    cox = _p(c, 0) - o[:, None, 0:1]
    coy = _p(c, 1) - o[:, None, 1:2]
    cc = cox * cox + coy * coy - _p(c, 2) ** 2
    a = d[0] * d[0] + d[1] * d[1]  # [F, 1, P]
    inv_a = 1.0 / a
    nb = d[0] * cox
    nb.addcmul_(d[1], coy)
    s = _sqrt_or_nan(torch.addcmul(nb * nb, a, cc, value=-1.0))
    t_in = (nb - s) * inv_a
    t_out = (nb + s) * inv_a
    zn, zf = _slab(_p(c, 3), _p(c, 4), o[:, None, 2:3], inv[2])
    tn = torch.maximum(t_in, zn)
    tf = torch.minimum(t_out, zf)
    return _keys(_valid_if(tn - near, tf - tn))


def _capsules(c: Tensor, o: Tensor, d, inv, near: float) -> Tensor:
    """Capsules (segment a -> b, radius r): the body and the sphere at a (the arm's hand sphere covers
    the cap at b). c: [F, G, 7] -> keys [F, G, P]."""
    a, b, r = c[..., :3], c[..., 3:6], c[..., 6:7]
    ba = b - a
    oa = o[:, None, :] - a
    baba = (ba * ba).sum(-1, keepdim=True)
    baoa = (ba * oa).sum(-1, keepdim=True)
    oaoa = (oa * oa).sum(-1, keepdim=True)
    bard = _dot(d, ba)
    rdoa = _dot(d, oa)
    k2 = baba - bard * bard
    k1 = baba * rdoa - baoa * bard
    k0 = baba * oaoa - baoa * baoa - r * r * baba
    t = (-k1 - _sqrt_or_nan(k1 * k1 - k2 * k0)) / k2
    y = baoa + t * bard
    body = _keys(_valid_if(t - near, y, baba - y))
    cap = _keys(_sphere_v(a, r, o, d, near))
    return torch.minimum(body, cap)


def _room(o: Tensor, d, inv) -> Tensor:
    """The six inner faces of the room as planes (floor, ceiling, x-, x+, y-, y+): the one in front of
    the camera along each axis is valid. -> float candidates t [F, 6, P] (near is not applied: the
    camera is always inside the room)."""
    F, P = d[0].shape[0], d[0].shape[-1]
    out = torch.empty(F, 6, P)
    for j, (k, plane) in enumerate(((2, ROOM_LO[2]), (2, ROOM_HI[2]), (0, ROOM_LO[0]), (0, ROOM_HI[0]),
                                    (1, ROOM_LO[1]), (1, ROOM_HI[1]))):
        torch.mul(plane - o[:, k:k + 1], inv[k][:, 0], out=out[:, j])
    return out


def _onehot(code: Tensor, k: int) -> Tensor:
    """Float 1 where an integer-valued float code == k, else 0 (without a bool round trip)."""
    return (1.0 - (code - k).abs()).clamp_(min=0.0)


def _shade(t: Tensor, pid: Tensor, o: Tensor, d, geo: Tensor, mat: Tensor, light: Tensor,
           ambient: Tensor, texture: Tensor | None = None) -> Tensor:
    """Colour of each hit. t, pid: [F, P]; geo: [F, NP, 7]; mat: [F, NP, 12]; light: [F, 3];
    ambient: [F]; texture: None or [F] int64 noise-texture keys (-1: none) -> rgb [3, F, P]."""
    F, P = t.shape
    flat = (pid + (torch.arange(F)[:, None] * NUM_PRIMITIVES)).reshape(-1)
    g = geo.reshape(F * NUM_PRIMITIVES, 7).t().contiguous().index_select(1, flat).reshape(7, F, P)
    m = mat.reshape(F * NUM_PRIMITIVES, 12).t().contiguous().index_select(1, flat).reshape(12, F, P)
    X = [torch.addcmul(o[:, k:k + 1], t, d[k][:, 0]) for k in range(3)]
    code = g[0]
    tiny = 1e-20
    # segment (spheres and capsules): away from the closest point of the segment p0 -> p1
    wx, wy, wz = X[0] - g[1], X[1] - g[2], X[2] - g[3]
    bx, by, bz = g[4] - g[1], g[5] - g[2], g[6] - g[3]
    bb = (bx * bx + by * by + bz * bz).clamp_(min=1e-12)
    h = ((wx * bx + wy * by + wz * bz) / bb).clamp_(0.0, 1.0)
    sx, sy, sz = wx - h * bx, wy - h * by, wz - h * bz
    inv = torch.rsqrt(sx * sx + sy * sy + sz * sz + tiny)
    seg = (sx * inv, sy * inv, sz * inv)
    # box: the face whose normalised coordinate is the largest; cylinder: cap or side
    q = (wx * g[4], wy * g[5], wz * g[6])
    aq = [x.abs() for x in q]
    amax = torch.maximum(torch.maximum(aq[0], aq[1]), aq[2])
    box = [torch.sign(q[k]) * ((aq[k] - amax) * 1e4 + 1.0).clamp_(min=0.0) for k in range(3)]
    rl2 = q[0] * q[0] + q[1] * q[1] + tiny
    inv_rl = torch.rsqrt(rl2)
    cap = ((aq[2] - rl2 * inv_rl) * 1e4 + 0.5).clamp_(0.0, 1.0)
    side = (1.0 - cap) * inv_rl
    cyl = (q[0] * side, q[1] * side, torch.sign(q[2]) * cap)
    m_seg, m_fix, m_box, m_cyl = (_onehot(code, k) for k in (GEO_SEGMENT, GEO_FIXED, GEO_BOX, GEO_CYLINDER))
    n = [m_seg * seg[k] + m_fix * g[1 + k] + m_box * box[k] + m_cyl * cyl[k] for k in range(3)]
    # texture: sum_k floor(X_k * f_k * (1 - |n_k|) + o_k) mod 2
    pat = None
    for k in range(3):
        term = torch.floor(X[k] * m[6 + k] * (1.0 - n[k].abs()) + m[9 + k])
        pat = term if pat is None else pat + term
    pat = pat - 2.0 * torch.floor(pat * 0.5)
    ndl = (n[0] * light[:, 0:1] + n[1] * light[:, 1:2] + n[2] * light[:, 2:3]).clamp_(min=0.0)
    amb = ambient[:, None]
    shade = amb + (1.0 - amb) * ndl
    if texture is not None and bool((texture >= 0).any()):
        # noise fixed to the surface: room faces (fixed normals) in world coordinates, every other primitive
        # relative to its anchor p0 (a sphere's or box's centre, a cylinder's axis middle, a capsule's start),
        # which moves with it
        anchored = 1.0 - m_fix
        local = [X[k] - anchored * g[1 + k] for k in range(3)]
        noise = texture_noise(local, texture.clamp(min=0), pid)
        on = (texture >= 0).to(torch.float32)[:, None]
        shade = shade * (1.0 + on * (TEXTURE_FLOOR + TEXTURE_GAIN * noise - 1.0))
    return torch.stack([(m[c] + pat * m[3 + c]) * shade for c in range(3)])


def subpixel_centers(height: int, width: int, supersample: int) -> tuple[Tensor, Tensor]:
    """Normalised sub-pixel centres (u, v), each [s * s * H * W], ordered (i, j, h, w): sub-row i and
    sub-column j of output pixel (h, w), whose centre in the (s*H, s*W) image is at
    ``((s*w + j + 0.5) / (s*W), (s*h + i + 0.5) / (s*H))``. Sub-pixel-major order makes the box filter a
    sum of s*s contiguous planes."""
    s = supersample
    i = torch.arange(s, dtype=torch.float32)
    v = (s * torch.arange(height, dtype=torch.float32)[None, :] + i[:, None] + C.PIXEL_CENTER_OFFSET) / (s * height)
    u = (s * torch.arange(width, dtype=torch.float32)[None, :] + i[:, None] + C.PIXEL_CENTER_OFFSET) / (s * width)
    uu = u[None, :, None, :].expand(s, s, height, width)  # [i, j, h, w]
    vv = v[:, None, :, None].expand(s, s, height, width)
    return uu.reshape(-1), vv.reshape(-1)


def cast(tables: dict[str, Tensor], c2w: Tensor, K: Tensor, light: Tensor, ambient: Tensor, height: int,
         width: int, supersample: int, near: float, chunk_rays: int, aux: bool = False,
         rays: tuple[Tensor, Tensor] | None = None, texture: Tensor | None = None):
    """Render F frames with ``supersample`` x ``supersample`` rays per pixel, box-filtered.

    rays: for a lens other than the pinhole, the camera-space direction of every sub-pixel ray as
    ``(X / Z, Y / Z)``, each [F, s*s*H*W] in the order of :func:`subpixel_centers` (``K`` is then unused);
    None: pinhole rays from ``K`` (unchanged).

    tables: from :func:`~syn2seq_core.data.synthetic_scene.primitive_tables`, flattened to F frames
    (``spheres [F, 5, 4]`` ... ``geometry [F, NP, 7]``, ``material [F, NP, 12]``); c2w: [F, 4, 4];
    K: [F, 4]; light: [F, 3]; ambient: [F]; texture: None or [F] int64 keys of the noise texture (-1: the
    frame's scene is untextured; see :func:`texture_noise`). Returns rgb [F, 3, H, W]; with ``aux`` also z-depth
    [F, s*H, s*W] (metres along the camera's optical axis) and primitive id [F, s*H, s*W] (int64) at the
    supersampled resolution.
    """
    F = c2w.shape[0]
    s2 = supersample * supersample
    u, v = subpixel_centers(height, width, supersample)
    P = u.numel()
    HW = height * width
    per = max(1, chunk_rays // P)
    rgb = torch.empty(3, F, HW)
    if aux:
        depth = torch.empty(F, P)
        ids = torch.empty(F, P, dtype=torch.int64)
    groups = (("spheres", SPHERE_IDS, _spheres), ("boxes", BOX_IDS, _boxes),
              ("cylinders", CYLINDER_IDS, _cylinders), ("capsules", CAPSULE_IDS, _capsules))
    room_pids = torch.arange(6, dtype=torch.int32)[None, :, None]  # the room's faces are primitives 0..5
    for s in range(0, F, per):
        e = min(F, s + per)
        f = e - s
        R, o, k = c2w[s:e, :3, :3], c2w[s:e, :3, 3], K[s:e]
        if rays is None:
            xc = (u - k[:, 2:3]) / k[:, 0:1]  # [f, P] camera-space direction (x, y, 1)
            yc = (v - k[:, 3:4]) / k[:, 1:2]
        else:
            xc, yc = rays[0][s:e], rays[1][s:e]
        dx = R[:, 0, 0:1] * xc + R[:, 0, 1:2] * yc + R[:, 0, 2:3]
        dy = R[:, 1, 0:1] * xc + R[:, 1, 1:2] * yc + R[:, 1, 2:3]
        dz = R[:, 2, 0:1] * xc + R[:, 2, 1:2] * yc + R[:, 2, 2:3]
        zfac = torch.rsqrt(dx * dx + dy * dy + dz * dz)  # z-depth per unit distance along the ray
        d = (dx.mul_(zfac)[:, None], dy.mul_(zfac)[:, None], dz.mul_(zfac)[:, None])  # [f, 1, P] planes
        inv = tuple(1.0 / x for x in d)
        # nearest hit: a running minimum of (distance bits | primitive id) over the groups
        best = (_keys(_room(o, d, inv) - near) & ~_ID_MASK | room_pids).amin(1)
        for name, pids, fn in groups:
            prm = tables[name][s:e]
            # primitives parked below the floor in every frame of the chunk (absent objects, hidden parts)
            # cannot be hit: skip them
            active = (prm[..., _TOP_Z[name]].amax(-1) > _PARKED).any(0).tolist()
            if not any(active):
                continue
            if not all(active):
                keep = [g for g in range(len(pids)) if active[g]]
                prm, pids = prm[:, keep], [pids[g] for g in keep]
            pid_t = torch.tensor(pids, dtype=torch.int32)[None, :, None]
            kg = (fn(prm, o, d, inv, near) & ~_ID_MASK | pid_t).amin(1)
            torch.minimum(best, kg, out=best)
        pid = (best & _ID_MASK).to(torch.int64)
        t = (best & ~_ID_MASK).view(torch.float32) + near
        col = _shade(t, pid, o, d, tables["geometry"][s:e], tables["material"][s:e], light[s:e], ambient[s:e],
                     None if texture is None else texture[s:e])
        torch.sum(col.view(3, f, s2, HW), 2, out=rgb[:, s:e])
        if aux:
            depth[s:e] = t * zfac
            ids[s:e] = pid
    rgb = rearrange(rgb.mul_(1.0 / s2), "c f (h w) -> f c h w", h=height)
    if not aux:
        return rgb
    pattern = "f (i j h w) -> f (h i) (w j)"
    dims = dict(i=supersample, j=supersample, h=height)
    return rgb, rearrange(depth, pattern, **dims), rearrange(ids, pattern, **dims)
