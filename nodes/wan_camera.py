"""Export a camera track to Wan camera control: ComfyUI's ``WAN_CAMERA_EMBEDDING`` for Wan-Fun Control-Camera.

The layout and conventions are stated once in ``syn2seq_core.geometry.wan_camera``.
"""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert
from .sockets import CATEGORY, Cameras


class Syn2SeqWanCameraEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        size, count = (LIMITS[k] for k in ("wan_size", "wan_length"))
        return io.Schema(
            node_id="Syn2SeqWanCameraEmbedding",
            display_name="Syn2Seq Wan Camera Embedding",
            category=f"{CATEGORY}/cameras",
            description="A camera track as the camera embedding of Wan-Fun Control-Camera (the same tensor as "
                        "ComfyUI's WanCameraEmbedding: CameraCtrl Plücker rays relative to the first camera, 4 "
                        "frames folded per latent frame). Connect its outputs to WanCameraImageToVideo's "
                        "camera_conditions, width, height and length.",
            inputs=[
                Cameras.Input("cameras", tooltip="The track the video follows, one camera per frame (ego for "
                                                 "exo2ego)."),
                io.Int.Input("width", default=832, min=size.lo, max=size.hi, step=16,
                             tooltip="Video width (a multiple of 16). The cameras are fitted like the start "
                                     "image: scaled to cover, centre-cropped."),
                io.Int.Input("height", default=480, min=size.lo, max=size.hi, step=16,
                             tooltip="Video height (a multiple of 16)."),
                io.Int.Input("length", default=0, min=count.lo, max=count.hi,
                             tooltip="Video frames, 4k + 1 (5, 9, ..., 81). 0 = one frame per camera (the track "
                                     "must then have 4k + 1 cameras); otherwise the track is resampled in time "
                                     "to this many cameras (SLERP between neighbours)."),
                Cameras.Input("start_cameras", optional=True,
                              tooltip="The view of the start image (exo for exo2ego): its last camera becomes "
                                      "frame 0, the reference of every pose. Leave empty when the track's first "
                                      "camera is the start image's."),
            ],
            outputs=[
                io.WanCameraEmbedding.Output("camera_embedding", display_name="camera_embedding",
                                             tooltip="[1, 24, (length - 1) / 4 + 1, height, width]"),
                io.Int.Output("width_out", display_name="width"),
                io.Int.Output("height_out", display_name="height"),
                io.Int.Output("length_out", display_name="length"),
                Cameras.Output("wan_cameras", display_name="wan_cameras",
                               tooltip="The camera of each Wan frame (fitted, start camera first, resampled)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, width=None, height=None, length=None) -> bool | str:
        from ..syn2seq_core.geometry.wan_camera import check_wan_length, check_wan_side

        try:  # inputs driven by a link arrive as None here and are checked when the node runs
            for name, value in (("width", width), ("height", height)):
                if value is not None:
                    check_wan_side(value, name)
            if length not in (None, 0):
                check_wan_length(length)
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, cameras, width, height, length, start_cameras=None) -> io.NodeOutput:
        import comfy.model_management

        from ..syn2seq_core.geometry.wan_camera import wan_camera_embedding, wan_camera_track

        if cameras is None:
            raise Syn2SeqInputError("cameras", "a camera track", "None")
        track = wan_camera_track(cameras, int(width), int(height), int(length), start_cameras)
        embedding = wan_camera_embedding(track, device=comfy.model_management.intermediate_device())
        ui = convert.ui_camera_path(convert.camera_path({"start": track[0], "wan": track[1:]}))
        return io.NodeOutput(embedding, track.width, track.height, len(track), track, ui=ui)


NODES = [Syn2SeqWanCameraEmbedding]
