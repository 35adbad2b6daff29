"""Camera nodes: load a camera file, SLERP transition poses, Plücker rays."""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.conventions import PLUCKER_ORDERS
from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert, paths
from .sockets import CATEGORY, Cameras, Rays


def _known_formats() -> list[str]:
    from ..syn2seq_core.io.poses import KNOWN_FORMATS

    return ["auto", *KNOWN_FORMATS]


class Syn2SeqLoadCameras(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Syn2SeqLoadCameras",
            display_name="Syn2Seq Load Cameras",
            category=f"{CATEGORY}/cameras",
            description="Load camera poses from ComfyUI's input folder: syn2seq cameras.json, RealEstate10K .txt, "
                        "COLMAP text model, NeRF transforms.json or Ego-Exo4D (exo GoPro CSV / Aria trajectory). "
                        "With frames connected, the cameras are fitted to them (a static camera repeated, "
                        "resized / centre-cropped to the frame size) and the frames pass through: the same as "
                        "one view of a take.",
            inputs=[
                io.Combo.Input("file", options=paths.list_camera_files(),
                               tooltip="A camera file or COLMAP folder under ComfyUI/input."),
                io.Combo.Input("format", options=_known_formats(), default="auto",
                               tooltip="'auto' detects the format from the content."),
                io.Image.Input("frames", optional=True,
                               tooltip="The frames these cameras belong to (one camera per frame, or one static)."),
            ],
            outputs=[
                Cameras.Output("cameras", display_name="cameras"),
                io.Image.Output("frames_out", display_name="frames"),
                io.Int.Output("count", display_name="count", tooltip="Number of cameras."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, file, **kwargs):
        return paths.file_fingerprint(paths.resolve_camera_file, file)

    @classmethod
    def execute(cls, file, format, frames=None) -> io.NodeOutput:
        from ..syn2seq_core.io.poses import load_cameras

        cams = load_cameras(paths.resolve_camera_file(file), format=format)
        f = convert.optional_frames(frames, "frames")
        if f is not None:
            cams = convert.fit_cameras_to_frames(cams, f, "cameras")
            out_frames = frames
        else:
            out_frames = convert.empty_image(cams.height, cams.width)
        ui = convert.ui_camera_path(convert.camera_path({"cameras": cams}))
        return io.NodeOutput(cams, out_frames, len(cams), ui=ui)


class Syn2SeqTransitionPoses(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        n = LIMITS["transition_frames"]
        return io.Schema(
            node_id="Syn2SeqTransitionPoses",
            display_name="Syn2Seq Transition Poses (SLERP)",
            category=f"{CATEGORY}/cameras",
            description="n cameras strictly between the last source camera and the first target camera: rotation "
                        "by quaternion SLERP, camera centre and intrinsics by linear interpolation.",
            inputs=[
                Cameras.Input("source_cameras", tooltip="The context view (exo for exo2ego); its last camera is used."),
                Cameras.Input("target_cameras",
                              tooltip="The generated view (ego for exo2ego); its first camera is used."),
                io.Int.Input("n", default=4, min=n.lo, max=n.hi, tooltip="Number of transition cameras."),
            ],
            outputs=[Cameras.Output("transition_cameras", display_name="transition_cameras")],
        )

    @classmethod
    def execute(cls, source_cameras, target_cameras, n) -> io.NodeOutput:
        from ..syn2seq_core.geometry.slerp import interpolate_cameras

        cams = interpolate_cameras(source_cameras, target_cameras, int(n))
        ui = convert.ui_camera_path(convert.camera_path(
            {"source": source_cameras, "transition": cams, "target": target_cameras}))
        return io.NodeOutput(cams, ui=ui)


class Syn2SeqPluckerRays(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        orders = list(PLUCKER_ORDERS)
        size = LIMITS["frame_size"]
        return io.Schema(
            node_id="Syn2SeqPluckerRays",
            display_name="Syn2Seq Plücker Rays",
            category=f"{CATEGORY}/cameras",
            description="Per-pixel Plücker rays (d, o x d) of a camera track, relative to its first camera, and a "
                        "preview of the ray directions as colours (d * 0.5 + 0.5).",
            inputs=[
                Cameras.Input("cameras"),
                io.Int.Input("width", default=0, min=size.lo, max=size.hi, tooltip="0 = the cameras' image width."),
                io.Int.Input("height", default=0, min=size.lo, max=size.hi, tooltip="0 = the cameras' image height."),
                io.Combo.Input("order", options=orders, default=orders[0],
                               tooltip="dm = (direction, moment) as DFoT; md = (moment, direction) as CameraCtrl."),
                io.Boolean.Input("relative_to_first", default=True,
                                 tooltip="Express every pose in the frame of the first camera (as the model "
                                         "sees them)."),
            ],
            outputs=[
                Rays.Output("rays", display_name="rays", tooltip="Tensor [N, H, W, 6]."),
                io.Image.Output("preview", display_name="preview"),
            ],
        )

    @classmethod
    def execute(cls, cameras, width, height, order, relative_to_first) -> io.NodeOutput:
        from ..syn2seq_core.geometry.plucker import plucker_rays

        if cameras is None:
            raise Syn2SeqInputError("cameras", "a camera track", "None")
        cams = cameras.relative_to() if relative_to_first else cameras
        rays = plucker_rays(cams.K, cams.c2w, int(height) or cams.height, int(width) or cams.width, order,
                            cams.fisheye)
        return io.NodeOutput(rays, convert.rays_to_image(rays, order))


NODES = [Syn2SeqLoadCameras, Syn2SeqTransitionPoses, Syn2SeqPluckerRays]
