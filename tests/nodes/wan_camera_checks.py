"""The Wan camera node inside a real ComfyUI process (no server), run with ComfyUI's own Python:

    $COMFYUI_PYTHON tests/nodes/wan_camera_checks.py COMFYUI_PATH WORK_DIR

Loads ComfyUI and this pack as ``inprocess_checks.setup`` does, then compares ``Syn2SeqWanCameraEmbedding``
with ComfyUI's own ``WanCameraEmbedding`` (``comfy_extras/nodes_camera_trajectory.py``) on its own presets,
feeds the result to ``WanCameraImageToVideo`` and Wan's camera adapter, and prints one JSON object
``{check_name: {"ok": bool, "detail": str}}`` that ``test_wan_camera.py`` asserts.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import inprocess_checks  # this script's folder is sys.path[0]; setup() takes it off again

CHECKS = {}
TOLERANCE = 1e-5  # max |ours - ComfyUI's| over the whole embedding


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def _comfy_preset_cameras(camera_pose: str, length: int, speed: float, fx=0.5, fy=0.5, cx=0.5, cy=0.5):
    """ComfyUI's own poses for a preset, as our Cameras by the convention of syn2seq_core.geometry.wan_camera:
    the 3x4 rows [R | T] of ``get_camera_motion`` are c2w (OpenCV axes), and fx, fy, cx, cy are normalised to
    ``process_pose_params``'s source frame (original_pose_width x original_pose_height, 1280x720)."""
    import numpy as np
    import torch
    from comfy_extras import nodes_camera_trajectory as ct
    from syn2seq_pack.syn2seq_core.geometry.cameras import Cameras

    preset = ct.CAMERA_DICT[camera_pose]
    rt = ct.get_camera_motion(np.array(preset["angle"]), np.array(preset["T"]), speed, length)  # [L, 3, 4]
    c2w = torch.eye(4, dtype=torch.float64).repeat(length, 1, 1)
    c2w[:, :3, :] = torch.from_numpy(np.asarray(rt, dtype=np.float64))
    params = inspect.signature(ct.process_pose_params).parameters
    src_w, src_h = params["original_pose_width"].default, params["original_pose_height"].default
    return Cameras(c2w, torch.tensor([fx, fy, cx, cy], dtype=torch.float64), src_w, src_h)


def _presets() -> list[str]:
    from comfy_extras import nodes_camera_trajectory as ct

    schema = ct.WanCameraEmbedding.define_schema()
    return list(next(i for i in schema.inputs if i.id == "camera_pose").options)


@check
def presets_equal_core_wan_camera_embedding(work: Path):
    """For every camera_pose of core's WanCameraEmbedding, at several sizes, lengths, speeds and intrinsics."""
    from comfy_extras import nodes_camera_trajectory as ct
    from syn2seq_pack.nodes.wan_camera import Syn2SeqWanCameraEmbedding

    presets = _presets()
    cases = []
    for pose in presets:  # (pose, width, height, length, speed, fx, fy, cx, cy)
        cases += [(pose, 832, 480, 9, 1.0, 0.5, 0.5, 0.5, 0.5),  # narrower than 16:9: fx grows
                  (pose, 512, 512, 5, 2.5, 0.5, 0.5, 0.5, 0.5),
                  (pose, 1024, 480, 13, 0.5, 0.5, 0.5, 0.5, 0.5)]  # wider than 16:9: fy grows
    cases += [("Pan Left", 832, 480, 9, 1.0, 0.7, 0.4, 0.5, 0.5),
              ("Zoom Out", 1024, 576, 5, 1.5, 0.6, 0.55, 0.4, 0.6),  # 16:9: any principal point
              ("ClockWise (CW)", 832, 480, 5, 0.0, 0.5, 0.5, 0.5, 0.5),  # speed 0: static
              ("Zoom In", 832, 480, 81, 1.0, 0.5, 0.5, 0.5, 0.5)]  # core's defaults, Wan's 81 frames
    worst, lines = 0.0, []
    for pose, w, h, n, speed, fx, fy, cx, cy in cases:
        ref = ct.WanCameraEmbedding.execute(pose, w, h, n, speed, fx, fy, cx, cy).result
        ours = Syn2SeqWanCameraEmbedding.execute(_comfy_preset_cameras(pose, n, speed, fx, fy, cx, cy), w, h, 0).result
        same_shape = tuple(ours[0].shape) == tuple(ref[0].shape) and ours[0].dtype == ref[0].dtype
        diff = float((ours[0] - ref[0].to(ours[0].device)).abs().max()) if same_shape else float("inf")
        ints_ok = tuple(ours[1:4]) == tuple(ref[1:4])
        worst = max(worst, diff)
        if not (same_shape and ints_ok and diff <= TOLERANCE):
            lines.append(f"{pose} {w}x{h} L={n} speed={speed} K=({fx},{fy},{cx},{cy}): shape "
                         f"{tuple(ours[0].shape)} vs {tuple(ref[0].shape)}, ints {ours[1:4]} vs {ref[1:4]}, "
                         f"max diff {diff:.3g}")
    detail = (f"{len(cases)} cases over presets {presets}; max |ours - core| = {worst:.3g} "
              f"(tolerance {TOLERANCE}); e.g. 81 frames at 832x480 -> {tuple(ref[0].shape)} {ref[0].dtype}")
    return not lines and len(presets) == 9 and worst <= TOLERANCE, detail + "".join(f"\n{l}" for l in lines)


@check
def outputs_plug_into_wan_camera_image_to_video_and_the_camera_adapter(work: Path):
    """Socket types as core's node; WanCameraImageToVideo passes the embedding on; Wan's camera adapter turns
    it into exactly the patch grid of the latent that node makes."""
    import torch
    from comfy.ldm.wan.model import WanCamAdapter
    from comfy_extras import nodes_camera_trajectory as ct
    from comfy_extras import nodes_wan
    from syn2seq_pack.nodes.wan_camera import Syn2SeqWanCameraEmbedding

    ours_types = [o.io_type for o in Syn2SeqWanCameraEmbedding.define_schema().outputs]
    core_types = [o.io_type for o in ct.WanCameraEmbedding.define_schema().outputs]
    cams = inprocess_checks._cameras(7, width=96, height=64)
    emb, w, h, n, track = Syn2SeqWanCameraEmbedding.execute(cams, 64, 48, 9).result
    cond = [[torch.zeros(1, 4, 16), {}]]
    pos, neg, latent = nodes_wan.WanCameraImageToVideo.execute(cond, cond, None, w, h, n, 1,
                                                              camera_conditions=emb).result
    passed = pos[0][1].get("camera_conditions") is emb and neg[0][1].get("camera_conditions") is emb
    dim = 8
    adapter = WanCamAdapter(emb.shape[1], dim, kernel_size=(2, 2), stride=(2, 2),
                            operation_settings={"operations": torch.nn, "device": None, "dtype": None})
    patches = torch.nn.Conv3d(16, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))  # Wan's patch embedding
    with torch.no_grad():
        cam_tokens = adapter(emb)
        latent_tokens = patches(latent["samples"])
    ok = (ours_types[:4] == core_types and ours_types[4] == "SYN2SEQ_CAMERAS" and passed
          and tuple(emb.shape) == (1, 24, 3, 48, 64) and len(track) == 9
          and cam_tokens.shape == latent_tokens.shape)
    return ok, (f"outputs {ours_types} (core {core_types}); embedding {tuple(emb.shape)}, latent "
                f"{tuple(latent['samples'].shape)}; adapter {tuple(cam_tokens.shape)} vs patches "
                f"{tuple(latent_tokens.shape)}; passed on as camera_conditions: {passed}")


@check
def bad_sizes_and_lengths_are_refused_with_the_fix(work: Path):
    from syn2seq_pack.nodes.wan_camera import Syn2SeqWanCameraEmbedding as node

    size = node.validate_inputs(width=100, height=480, length=0)
    length = node.validate_inputs(width=832, height=480, length=80)
    fine = node.validate_inputs(width=832, height=480, length=81) is True and node.validate_inputs(
        width=832, height=480, length=0) is True
    eight = inprocess_checks.raises(node.execute, inprocess_checks._cameras(8), 64, 48, 0)
    ok = (isinstance(size, str) and "multiple of 16" in size and "96" in size
          and isinstance(length, str) and "77 or 81" in length and fine
          and eight is not None and "5 or 9" in eight and "set length" in eight)
    return ok, f"width 100: {size!r}; length 80: {length!r}; 8 cameras with length 0: {eight!r}"


@check
def sample_take_starts_the_wan_track_at_the_last_exo_camera(work: Path):
    """The baseline workflow's path: the sample take at 480x480, exo cameras as start_cameras, length 0."""
    import torch
    from syn2seq_pack.nodes.takes import Syn2SeqLoadTake
    from syn2seq_pack.nodes.wan_camera import Syn2SeqWanCameraEmbedding

    take = Syn2SeqLoadTake.execute("(bundled) sample_take", 480, 480, 0, 0, 1).result
    exo_cams, ego_cams = take[2], take[3]
    out = Syn2SeqWanCameraEmbedding.execute(ego_cams, 480, 480, 0, start_cameras=exo_cams)
    emb, w, h, n, track = out.result
    roles = [(s["role"], s["count"]) for s in out.ui["syn2seq_camera_path"][0]["segments"]]
    first_moment = float(emb[0, :12, 0].abs().max())  # latent frame 0 = the exo camera = the reference
    ok = (n == 1 + len(ego_cams) and (w, h) == (480, 480) and tuple(emb.shape) == (1, 24, 2, 480, 480)
          and torch.allclose(track.c2w[0], exo_cams.c2w[-1].to(track.c2w.dtype))
          and torch.allclose(track.c2w[1:], ego_cams.c2w.to(track.c2w.dtype))
          and first_moment < 1e-6 and roles == [("start", 1), ("wan", len(ego_cams))])
    return ok, (f"{len(exo_cams)} exo + {len(ego_cams)} ego cameras -> length {n}, embedding {tuple(emb.shape)}, "
                f"frame-0 moments {first_moment:.2g}, path {roles}")


def main(argv: list[str]) -> int:
    return inprocess_checks.main(argv, CHECKS)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
