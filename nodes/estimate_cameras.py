"""Syn2SeqEstimateCameras: a camera track for a batch of video frames, by structure from motion.

The work is ``syn2seq_core.geometry.sfm.estimate_cameras`` (pycolmap, the ``cameras`` extra; OpenCV for short clips
without it). Install pycolmap into ComfyUI's Python for longer clips: ``pip install pycolmap``.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.limits import LIMITS
from . import convert, progress
from .camera_paths import path_payload
from .sockets import CATEGORY, Cameras


class Syn2SeqEstimateCameras(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.geometry import sfm

        stride, frames, size, fov, share, seconds, seed = (LIMITS[k] for k in (
            "sfm_stride", "sfm_frames", "sfm_size", "sfm_fov_deg", "sfm_min_registered", "sfm_time_limit", "sfm_seed"))
        return io.Schema(
            node_id="Syn2SeqEstimateCameras",
            display_name="Syn2Seq Estimate Cameras",
            category=f"{CATEGORY}/cameras",
            description="Estimate a camera for every frame of a video by structure from motion (COLMAP through "
                        "pycolmap: SIFT, sequential matching, global or incremental mapping; OpenCV for short clips "
                        "when pycolmap is not installed). Frames that were not sampled or not registered are "
                        "interpolated (SLERP). The world is the first registered camera's, turned z up; the scale is "
                        "arbitrary (one unit = the median scene depth that camera sees). static: a fixed camera, one pose, nothing estimated. The widget "
                        "draws the track.",
            inputs=[
                io.Image.Input("images", tooltip="The video's frames (e.g. from Load Video + Get Video Components)."),
                io.Combo.Input("mapper", options=list(sfm.MAPPERS), default=sfm.DEFAULT_MAPPER,
                               tooltip="global: COLMAP's global mapper (GLOMAP), the reliable one on video; "
                                       "incremental: COLMAP's incremental mapper; opencv: essential matrices of "
                                       "consecutive frames, chained (short clips, no pycolmap needed)."),
                io.Boolean.Input("static", default=False,
                                 tooltip="A fixed camera (tripod): one pose for every frame, nothing estimated."),
                io.Float.Input("fov_deg", default=0.0, min=fov.lo, max=fov.hi, step=0.5,
                               tooltip="Known horizontal field of view in degrees, held fixed; 0 = unknown "
                                       "(estimated; guessed for a static camera or with opencv)."),
                io.Combo.Input("lens", options=list(sfm.LENSES), default=sfm.DEFAULT_LENS,
                               tooltip="pinhole, or fisheye (Kannala-Brandt k1..k4, kept on the cameras)."),
                io.Int.Input("stride", default=1, min=stride.lo, max=stride.hi,
                             tooltip="Every stride-th frame goes to structure from motion (the last always does)."),
                io.Int.Input("max_frames", default=0, min=frames.lo, max=frames.hi,
                             tooltip="At most this many frames, spread evenly, go to structure from motion; "
                                     "0 = all sampled."),
                io.Int.Input("sfm_size", default=sfm.DEFAULT_SFM_SIZE, min=size.lo, max=size.hi, step=16,
                             tooltip="Long side in pixels of the frame copies features are found in."),
                io.Float.Input("min_registered", default=sfm.DEFAULT_MIN_REGISTERED, min=share.lo, max=share.hi,
                               step=0.05, tooltip="Share of the sampled frames that must register, else an error."),
                io.Float.Input("time_limit_s", default=0.0, min=seconds.lo, max=seconds.hi, step=10.0,
                               tooltip="Stop with an error after this many seconds; 0 = no limit."),
                io.Int.Input("seed", default=0, min=seed.lo, max=seed.hi, control_after_generate=False,
                             tooltip="RANSAC and mapper seed (fixed: a new seed would re-run the estimate)."),
            ],
            outputs=[
                Cameras.Output("cameras", display_name="cameras", tooltip="One camera per frame, at the frames' size."),
                io.Int.Output("registered", display_name="registered", tooltip="Frames structure from motion placed."),
                io.String.Output("report", display_name="report",
                                 tooltip="How the track was estimated: method, counts, intrinsics, notes."),
            ],
            is_output_node=True,  # draws the track even when nothing is connected yet
        )

    @classmethod
    def execute(cls, images, mapper, static, fov_deg, lens, stride, max_frames, sfm_size, min_registered,
                time_limit_s, seed) -> io.NodeOutput:
        from ..syn2seq_core.geometry.sfm import estimate_cameras

        frames = convert.image_to_frames(images, "images")
        est = estimate_cameras(
            frames, static=bool(static), fov_deg=float(fov_deg) or None, mapper=mapper, lens=lens, stride=int(stride),
            max_frames=int(max_frames) or None, sfm_size=int(sfm_size), min_registered=float(min_registered),
            time_limit_s=float(time_limit_s) or None, seed=int(seed), progress=progress.step_callback(5))
        report = "\n".join([f"{est.method}: {est.num_registered} of {len(est)} frames registered, "
                            f"intrinsics {est.intrinsics}, {est.seconds:.1f} s"] + [f"- {n}" for n in est.notes])
        return io.NodeOutput(est.cameras, est.num_registered, report,
                             ui=convert.ui_camera_path(path_payload(est.cameras)))


NODES = [Syn2SeqEstimateCameras]
