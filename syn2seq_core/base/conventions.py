"""The conventions of the whole project, stated once.

Everything else imports these names instead of repeating numbers or re-explaining axes.

Frames
    Core tensors are ``[T, C, H, W]`` or ``[B, T, C, H, W]``, float, RGB, values in ``[0, 1]`` at every
    public boundary. Model-internal normalisation (e.g. to ``[-1, 1]``) stays inside the model wrapper.
    ComfyUI's IMAGE is ``[N, H, W, C]`` float32 in ``[0, 1]``; conversion happens only in ``nodes/``.

Cameras
    ``c2w [..., 4, 4]``: camera-to-world, OpenCV axes (x right, y down, z forward), metres.
    ``K [..., 4]``: intrinsics normalised by image size, ``(fx / W, fy / H, cx / W, cy / H)``. Because
    they are normalised, resizing an image leaves ``K`` unchanged; cropping changes it.
    Optional fisheye model: Kannala–Brandt ``(k1, k2, k3, k4)`` with
    ``r(theta) = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)`` in normalised focal units.
    Camera maths runs in float32 or float64, never under autocast.

Plücker rays
    One ray per pixel through the pixel centre (``u = (i + 0.5) / W``). ``d`` is the unit world-space
    direction, ``o`` the camera centre, ``m = o x d`` the moment. Layout ``[..., H, W, 6]``; order
    ``"dm"`` = ``(d, m)`` (DFoT, the default) or ``"md"`` = ``(m, d)`` (CameraCtrl). Poses are first
    made relative to a reference camera: the first frame of the sequence.

Transition poses
    Rotation by quaternion SLERP on the shortest arc, camera *centre* by linear interpolation (not the
    w2c translation), normalised intrinsics by linear interpolation; both endpoints excluded, so the
    k-th of ``n`` transition frames sits at ``s_k = k / (n + 1)``.

Sequence roles and context mask
    Roles: ``0 = exo``, ``1 = transition``, ``2 = ego``.
    Context mask (as DFoT): ``-1`` padding, ``0`` generate, ``1`` given context, ``2`` generated context.
"""

from __future__ import annotations

# --- cameras ----------------------------------------------------------------------------------
# Tolerance for accepting a rotation matrix as orthonormal (max |R^T R - I|).
ROTATION_TOLERANCE = 1e-3
# Plausible range of normalised intrinsics; values beyond mean pixel units were passed by mistake.
FOCAL_RANGE = (1e-3, 50.0)
PRINCIPAL_POINT_RANGE = (-1.0, 2.0)

# --- rays -------------------------------------------------------------------------------------
PIXEL_CENTER_OFFSET = 0.5
PLUCKER_ORDERS = ("dm", "md")

# --- sequences --------------------------------------------------------------------------------
ROLE_EXO = 0
ROLE_TRANSITION = 1
ROLE_EGO = 2
ROLE_NAMES = {ROLE_EXO: "exo", ROLE_TRANSITION: "transition", ROLE_EGO: "ego"}

MASK_PADDING = -1
MASK_GENERATE = 0
MASK_CONTEXT = 1
MASK_GENERATED_CONTEXT = 2
