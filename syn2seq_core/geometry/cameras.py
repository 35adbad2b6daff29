"""The camera track: a frozen dataclass and the conversions between the usual conventions.

Conventions (see :mod:`syn2seq_core.base.conventions`): ``c2w [N, 4, 4]`` OpenCV axes, ``K [N, 4]`` normalised
``(fx/W, fy/H, cx/W, cy/H)``, optional fisheye distortion: Kannala–Brandt ``[N, 4]`` or FISHEYE624 ``[N, 12]``
(the lens model is told by the length, see :data:`~syn2seq_core.geometry.plucker.LENS_MODELS`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..base import conventions as C
from ..base.errors import Syn2SeqInputError, check_finite, require

# OpenGL (x right, y up, z back) <-> OpenCV (x right, y down, z forward): flip the y and z camera axes.
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def full_precision(fn):
    """Run camera maths with autocast disabled (conventions: never bf16/fp16 for poses and rays)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def _as_float(x, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t


@full_precision
def check_rotations(c2w: Tensor, name: str = "c2w") -> None:
    """Refuse non-finite, non-orthonormal or reflecting rotations, and a bad bottom row. c2w: [N, 4, 4]."""
    check_finite(c2w, name)
    if c2w.numel() == 0:
        return
    R = c2w[..., :3, :3].to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=c2w.device)
    err = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    if err.numel() and float(err.max()) > C.ROTATION_TOLERANCE:
        i = int(err.argmax())
        raise Syn2SeqInputError(
            name, f"orthonormal rotations (max |R^T R - I| <= {C.ROTATION_TOLERANCE})",
            f"error {float(err.max()):.3g} at pose {i}",
        )
    det = torch.linalg.det(R)
    if det.numel() and float(det.min()) < 0:
        raise Syn2SeqInputError(name, "proper rotations (det = +1)", f"det = -1 at pose {int(det.argmin())}")
    bottom = c2w[..., 3, :].to(torch.float64)
    ok = torch.allclose(bottom, torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64, device=c2w.device).expand_as(bottom), atol=1e-6)
    require(ok, name, "last row [0, 0, 0, 1]", bottom.reshape(-1, 4)[0].tolist())


def check_intrinsics(K: Tensor, name: str = "K") -> None:
    """Refuse intrinsics that are not normalised by image size. K: [N, 4]."""
    check_finite(K, name)
    f, c = K[..., :2], K[..., 2:]
    lo, hi = C.FOCAL_RANGE
    if K.numel() and (float(f.min()) <= lo or float(f.max()) > hi):
        raise Syn2SeqInputError(
            name, f"normalised focal lengths fx/W, fy/H in ({lo}, {hi}]",
            f"range [{float(f.min()):.4g}, {float(f.max()):.4g}]",
            "Pixel intrinsics must be divided by the image width and height",
        )
    lo, hi = C.PRINCIPAL_POINT_RANGE
    if K.numel() and (float(c.min()) < lo or float(c.max()) > hi):
        raise Syn2SeqInputError(
            name, f"normalised principal point cx/W, cy/H in [{lo}, {hi}]",
            f"range [{float(c.min()):.4g}, {float(c.max()):.4g}]",
            "Pixel intrinsics must be divided by the image width and height",
        )


@dataclass(frozen=True, eq=False)
class Cameras:
    """A track of ``N`` cameras sharing one image size.

    c2w: [N, 4, 4] camera-to-world, OpenCV axes, metres.
    K: [N, 4] normalised intrinsics (fx/W, fy/H, cx/W, cy/H).
    width, height: image size in pixels the intrinsics refer to.
    fisheye: [N, 4] Kannala–Brandt k1..k4 (GoPro), [N, 12] FISHEYE624 k0..k5, p0, p1, s0..s3 (Project Aria;
        single focal: ``K[:, 0] * width == K[:, 1] * height``), or None for a pinhole camera. The length names the
        model (:attr:`lens_model`); code that passes ``cameras.fisheye`` to
        :func:`~syn2seq_core.geometry.plucker.plucker_rays` gets the true lens either way.
    uncropped_K: [N, 4] the normalised intrinsics of the frames before they were cropped (set by :meth:`crop`;
    None: never cropped, the same as ``K``). ``K`` is what the cropped pixels really see; a model trained the
    way DFoT's RealEstate10K loader crops (to a square, intrinsics not renormalised) expects these instead
    (:attr:`source_K`, :meth:`with_uncropped_intrinsics`).
    """

    c2w: Tensor
    K: Tensor
    width: int
    height: int
    fisheye: Tensor | None = None
    uncropped_K: Tensor | None = None

    def __post_init__(self):
        c2w = _as_float(self.c2w, "c2w")
        K = _as_float(self.K, "K")
        if c2w.ndim == 2:
            c2w = c2w[None]
        require(c2w.ndim == 3 and c2w.shape[-2:] == (4, 4), "c2w", "shape [N, 4, 4]", tuple(c2w.shape))
        n = c2w.shape[0]  # 0 is allowed (an empty transition); user-facing loaders refuse empty files
        if K.ndim == 1:
            K = K[None]
        require(K.ndim == 2 and K.shape[-1] == 4, "K", "shape [N, 4] (fx/W, fy/H, cx/W, cy/H)", tuple(K.shape))
        if K.shape[0] == 1 and n != 1:
            K = K.expand(n, 4).clone()
        require(K.shape[0] == n, "K", f"{n} rows (one per pose)", K.shape[0])
        require(int(self.width) > 0 and int(self.height) > 0, "image size", "positive width and height",
                (self.width, self.height))
        check_rotations(c2w)
        check_intrinsics(K)
        fisheye = self.fisheye
        if fisheye is not None:
            fisheye = _as_float(fisheye, "fisheye")
            if fisheye.ndim == 1:
                fisheye = fisheye[None]
            require(fisheye.ndim == 2 and fisheye.shape[-1] in (4, 12), "fisheye",
                    "shape [N, 4] (Kannala-Brandt k1..k4) or [N, 12] (FISHEYE624 k0..k5 p0 p1 s0..s3)",
                    tuple(fisheye.shape))
            if fisheye.shape[0] == 1 and n != 1:
                fisheye = fisheye.expand(n, fisheye.shape[-1]).clone()
            require(fisheye.shape[0] == n, "fisheye", f"{n} rows", fisheye.shape[0])
            check_finite(fisheye, "fisheye")
            fisheye = fisheye.to(c2w.dtype)
        uncropped = self.uncropped_K
        if uncropped is not None:
            uncropped = _as_float(uncropped, "uncropped_K")
            if uncropped.ndim == 1:
                uncropped = uncropped[None]
            if uncropped.shape[0] == 1 and n != 1:
                uncropped = uncropped.expand(n, 4).clone()
            require(tuple(uncropped.shape) == (n, 4), "uncropped_K", f"shape [{n}, 4]", tuple(uncropped.shape))
            check_intrinsics(uncropped)
            uncropped = uncropped.to(c2w.dtype)
        object.__setattr__(self, "uncropped_K", uncropped)
        object.__setattr__(self, "c2w", c2w)
        object.__setattr__(self, "K", K.to(c2w.dtype))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "fisheye", fisheye)

    # --- basic access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index) -> "Cameras":
        if isinstance(index, int):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"camera index {index} out of range for {n} cameras")
            index = slice(index % n, index % n + 1)
        return replace(self, c2w=self.c2w[index], K=self.K[index],
                       fisheye=None if self.fisheye is None else self.fisheye[index],
                       uncropped_K=None if self.uncropped_K is None else self.uncropped_K[index])

    @property
    def lens_model(self) -> str:
        """``"pinhole"``, ``"kannala_brandt"`` (fisheye [N, 4]) or ``"fisheye624"`` (fisheye [N, 12])."""
        return {None: "pinhole", 4: "kannala_brandt", 12: "fisheye624"}[
            None if self.fisheye is None else int(self.fisheye.shape[-1])]

    def as_fisheye624(self) -> "Cameras":
        """The same cameras with FISHEYE624 coefficients: Kannala–Brandt ``k1..k4`` is exactly FISHEYE624
        ``(k1, k2, k3, k4, 0, 0, p = 0, s = 0)`` (same rays); a pinhole has no FISHEYE624 equivalent."""
        require(self.fisheye is not None, "cameras", "fisheye cameras (a pinhole is not a FISHEYE624 lens)",
                "pinhole cameras")
        if self.lens_model == "fisheye624":
            return self
        fish = torch.cat([self.fisheye, torch.zeros(len(self), 8, dtype=self.fisheye.dtype,
                                                    device=self.fisheye.device)], -1)
        return replace(self, fisheye=fish)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def w2c(self) -> Tensor:
        """[N, 4, 4] world-to-camera."""
        return invert_pose(self.c2w)

    @property
    def centers(self) -> Tensor:
        """[N, 3] camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    @property
    def rotations(self) -> Tensor:
        """[N, 3, 3] camera-to-world rotations."""
        return self.c2w[:, :3, :3]

    def to(self, dtype: torch.dtype) -> "Cameras":
        return replace(self, c2w=self.c2w.to(dtype), K=self.K.to(dtype),
                       fisheye=None if self.fisheye is None else self.fisheye.to(dtype),
                       uncropped_K=None if self.uncropped_K is None else self.uncropped_K.to(dtype))

    @property
    def source_K(self) -> Tensor:
        """[N, 4] the normalised intrinsics before any crop (``uncropped_K``, else ``K``)."""
        return self.K if self.uncropped_K is None else self.uncropped_K

    def with_uncropped_intrinsics(self) -> "Cameras":
        """These cameras with :attr:`source_K` as their intrinsics: what a model of DFoT's RealEstate10K
        convention was shown for such crops (for a 16:9 frame cropped to a square, fx 1.78x smaller)."""
        return replace(self, K=self.source_K, uncropped_K=None)

    # --- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_w2c(cls, w2c, K, width: int, height: int, fisheye=None) -> "Cameras":
        return cls(invert_pose(_as_float(w2c, "w2c")), K, width, height, fisheye)

    @classmethod
    def from_opengl(cls, c2w_gl, K, width: int, height: int, fisheye=None) -> "Cameras":
        """From c2w in OpenGL axes (x right, y up, z back), as in NeRF ``transforms.json``."""
        return cls(opengl_to_opencv(_as_float(c2w_gl, "c2w")), K, width, height, fisheye)

    @classmethod
    def from_pixel_intrinsics(cls, c2w, K_pixels, width: int, height: int, fisheye=None) -> "Cameras":
        """K_pixels: [N, 3, 3] or [N, 4] (fx, fy, cx, cy) in pixels."""
        return cls(c2w, normalize_intrinsics(_as_float(K_pixels, "K"), width, height), width, height, fisheye)

    @classmethod
    def cat(cls, tracks: list["Cameras"]) -> "Cameras":
        """Concatenate tracks of the same image size; fisheye only if every track has it."""
        require(len(tracks) > 0, "tracks", "at least one camera track", "none")
        w, h = tracks[0].size
        for i, t in enumerate(tracks):
            require(t.size == (w, h), f"tracks[{i}]", f"image size {(w, h)}", t.size,
                    "Resize or crop the tracks to one size first")
        dtype = torch.promote_types(tracks[0].c2w.dtype, torch.float32)
        for t in tracks:
            dtype = torch.promote_types(dtype, t.c2w.dtype)
        fish = None
        kinds = {t.fisheye is not None for t in tracks if len(t)}
        if len(kinds) > 1:
            # Zero Kannala-Brandt coefficients are the equidistant model, not a pinhole: no honest padding.
            raise Syn2SeqInputError("tracks", "all pinhole or all fisheye cameras", "a mix of both",
                                    "Undistort the fisheye view to a pinhole first, or give both views fisheye "
                                    "coefficients")
        if kinds == {True}:
            if len({t.lens_model for t in tracks if len(t)}) > 1:  # KB is exactly a FISHEYE624 special case
                tracks = [t.as_fisheye624() for t in tracks]
            fish = torch.cat([t.fisheye.to(dtype) for t in tracks if len(t)])
        uncropped = None
        if any(t.uncropped_K is not None for t in tracks):
            uncropped = torch.cat([t.source_K.to(dtype) for t in tracks])
        return cls(torch.cat([t.c2w.to(dtype) for t in tracks]), torch.cat([t.K.to(dtype) for t in tracks]),
                   w, h, fish, uncropped)

    # --- conversions ------------------------------------------------------------------------------
    def to_opengl(self) -> Tensor:
        """[N, 4, 4] c2w in OpenGL axes."""
        return opengl_to_opencv(self.c2w)  # the axis flip is its own inverse

    def K_pixels(self) -> Tensor:
        """[N, 3, 3] pixel intrinsics matrices for (width, height)."""
        return denormalize_intrinsics(self.K, self.width, self.height)

    def resize(self, width: int, height: int) -> "Cameras":
        """The same cameras for an image resized to (width, height): normalised K is unchanged."""
        return replace(self, width=int(width), height=int(height))

    def center_crop(self, width: int, height: int) -> "Cameras":
        """The cameras of the central (width x height) crop of the current image (pixels)."""
        require(0 < width <= self.width and 0 < height <= self.height, "crop size",
                f"within the image size {self.size}", (width, height))
        left = (self.width - width) // 2
        top = (self.height - height) // 2
        return self.crop(left, top, width, height)

    def crop(self, left: int, top: int, width: int, height: int) -> "Cameras":
        """The cameras of the crop whose top-left pixel is (left, top)."""
        Kp = torch.stack([self.K[:, 0] * self.width, self.K[:, 1] * self.height,
                          self.K[:, 2] * self.width - left, self.K[:, 3] * self.height - top], -1)
        K = Kp / torch.tensor([width, height, width, height], dtype=Kp.dtype, device=Kp.device)
        return replace(self, K=K, width=int(width), height=int(height), uncropped_K=self.source_K)

    def resize_and_center_crop(self, size: int | tuple[int, int], src_size: tuple[int, int] | None = None):
        """Scale the short side to fit ``size`` (w, h), then centre-crop; returns the new cameras."""
        out_w, out_h = (size, size) if isinstance(size, int) else size
        w, h = src_size or self.size
        scale = max(out_w / w, out_h / h)
        rw, rh = max(out_w, round(w * scale)), max(out_h, round(h * scale))
        return self.resize(rw, rh).center_crop(out_w, out_h)

    @full_precision
    def relative_to(self, reference: Tensor | None = None) -> "Cameras":
        """Re-express every pose in the frame of ``reference`` (a c2w [4, 4]; default: the first camera).

        After this the reference camera is the identity, so rays do not depend on where the world origin
        of the dataset happens to be.
        """
        ref = self.c2w[0] if reference is None else _as_float(reference, "reference").to(self.c2w.dtype)
        return replace(self, c2w=invert_pose(ref)[None] @ self.c2w)

    def scaled(self, factor: float) -> "Cameras":
        """Scale the translations (world units) by ``factor``."""
        c2w = self.c2w.clone()
        c2w[:, :3, 3] *= factor
        return replace(self, c2w=c2w)


# --- free functions ------------------------------------------------------------------------------
@full_precision
def invert_pose(T: Tensor) -> Tensor:
    """Inverse of a rigid transform. T: [..., 4, 4] -> [..., 4, 4] (exact, no general matrix inverse)."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


@full_precision
def opengl_to_opencv(c2w: Tensor) -> Tensor:
    """Convert c2w between OpenGL and OpenCV camera axes (flip camera y and z). c2w: [..., 4, 4]."""
    return c2w @ _GL_TO_CV.to(dtype=c2w.dtype, device=c2w.device)


def normalize_intrinsics(K_pixels: Tensor, width: int, height: int) -> Tensor:
    """[..., 3, 3] matrix or [..., 4] (fx, fy, cx, cy) in pixels -> [..., 4] normalised."""
    if K_pixels.shape[-2:] == (3, 3):
        K_pixels = torch.stack([K_pixels[..., 0, 0], K_pixels[..., 1, 1], K_pixels[..., 0, 2],
                                K_pixels[..., 1, 2]], -1)
    require(K_pixels.shape[-1] == 4, "K", "[..., 3, 3] or [..., 4] pixel intrinsics", tuple(K_pixels.shape))
    return K_pixels / torch.tensor([width, height, width, height], dtype=K_pixels.dtype, device=K_pixels.device)


# Our pixel coordinates span [0, W] x [0, H]: the top-left pixel's centre is (0.5, 0.5) (COLMAP, NeRF, our Plücker
# rays). projectaria_tools, and with it every Ego-Exo4D calibration (gopro_calibs.csv KB3, online_calibration.jsonl
# FISHEYE624), puts that centre at (0, 0) (core/calibration/CameraCalibration.cpp, checkPixelInImageBound). One
# shift converts both, applied by :func:`intrinsics_from_centre0` and nowhere else.
CENTRE0_TO_OURS_PX = 0.5


def intrinsics_from_centre0(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> tuple:
    """Pixel intrinsics whose top-left pixel centre is (0, 0) (projectaria_tools / Ego-Exo4D) -> our normalised
    ``(fx/W, fy/H, cx/W, cy/H)`` with that centre at (0.5, 0.5): ``cx_ours = cx + 0.5``. With the shift the
    normalised intrinsics do not depend on the calibration's image size (a resize keeps them)."""
    s = CENTRE0_TO_OURS_PX
    return fx / width, fy / height, (cx + s) / width, (cy + s) / height


def denormalize_intrinsics(K: Tensor, width: int, height: int) -> Tensor:
    """[..., 4] normalised -> [..., 3, 3] pixel intrinsics matrices."""
    out = torch.zeros(*K.shape[:-1], 3, 3, dtype=K.dtype, device=K.device)
    out[..., 0, 0] = K[..., 0] * width
    out[..., 1, 1] = K[..., 1] * height
    out[..., 0, 2] = K[..., 2] * width
    out[..., 1, 2] = K[..., 3] * height
    out[..., 2, 2] = 1.0
    return out


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> Tensor:
    """c2w [..., 4, 4] (OpenCV axes) of cameras at ``eye`` looking at ``target``; ``up`` is world up.

    eye, target: [..., 3].
    """
    eye = _as_float(eye, "eye")
    target = _as_float(target, "target").to(eye.dtype)
    up = torch.as_tensor(up, dtype=eye.dtype, device=eye.device).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up)  # image x points right when y (down) is opposite to world up
    norm = x.norm(dim=-1, keepdim=True)
    require(bool((norm > 1e-9).all()), "look_at", "a view direction not parallel to up", "parallel",
            "Pass another up vector")
    x = x / norm
    y = torch.linalg.cross(z, x)
    out = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    out[..., :3, 0], out[..., :3, 1], out[..., :3, 2], out[..., :3, 3] = x, y, z, eye
    out[..., 3, 3] = 1.0
    return out
