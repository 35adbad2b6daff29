"""Syn2SeqCameraPath: a camera track from a preset (orbit, dolly, pan, tilt, walk, look-at) or keyframes.

The maths and the conventions (world z up, horizontal field of view, frame i at i / fps) are in
``syn2seq_core.geometry.camera_paths``.
"""

from __future__ import annotations

import math

from comfy_api.latest import io

from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert
from .sockets import CATEGORY, Cameras

DEFAULT_KEYFRAMES = """[
  {"position": [0.0, -4.0, 1.6], "look_at": [0.0, 0.0, 1.0]},
  {"position": [3.0, -2.5, 1.8], "look_at": [0.0, 0.0, 1.0], "fov_deg": 45},
  {"position": [3.5, 1.5, 2.2], "look_at": [0.0, 0.5, 1.0]},
  {"position": [0.0, 3.5, 1.6], "look_at": [0.0, 0.0, 1.0], "fov_deg": 75}
]"""

def path_payload(cameras) -> dict:
    """The camera-path widget's payload (``convert.camera_path``) plus, per drawn camera, its image-down axis
    (OpenCV y, world coordinates) and normalised intrinsics, so that the widget draws true frusta."""
    payload = convert.camera_path({"cameras": cameras})
    step = max(1, math.ceil(len(cameras) / convert.MAX_PATH_CAMERAS))
    for segment in payload["segments"]:
        segment["down"] = convert._round(cameras.c2w[::step, :3, 1].double().tolist())
        segment["K"] = convert._round(cameras.K[::step].double().tolist())
    return payload


class Syn2SeqCameraPath(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.geometry.camera_paths import PRESETS

        fps, frames, size, fov = (LIMITS[k] for k in ("fps", "path_frames", "path_image_size", "fov_deg"))
        coord, angle, dist, speed = (LIMITS[k] for k in ("path_coordinate", "path_angle", "path_distance",
                                                          "path_speed"))
        where = "metres; world z is up"
        return io.Schema(
            node_id="Syn2SeqCameraPath",
            display_name="Syn2Seq Camera Path",
            category=f"{CATEGORY}/cameras",
            description="Build a camera track: orbit around the target, dolly along the view, pan, tilt, walk "
                        "forward, slide sideways looking at the target, or keyframes (positions by a cubic spline, "
                        "rotations by SLERP, field of view per keyframe). The first camera stands at position and "
                        "looks at target; world z is up; OpenCV camera axes. The widget draws the path and the "
                        "camera frusta in 3D (drag to rotate, double-click for the top view).",
            inputs=[
                io.Combo.Input("preset", options=list(PRESETS), default="orbit",
                               tooltip="orbit: around the target by angle; dolly: along the view by distance; "
                                       "pan: turn right by angle; tilt: turn up by angle; walk: forward on the "
                                       "ground at speed; look_at: slide right by distance, keep looking at the "
                                       "target; keyframes: the keyframes text."),
                io.Int.Input("frames", default=49, min=frames.lo, max=frames.hi,
                             tooltip="Number of cameras (one per frame)."),
                io.Float.Input("fps", default=16.0, min=fps.lo, max=fps.hi, step=0.5,
                               tooltip="Frames per second: frame i is at i / fps seconds (walk speed, keyframe "
                                       "'time')."),
                io.Int.Input("width", default=256, min=size.lo, max=size.hi, step=8,
                             tooltip="Image width in pixels the intrinsics are for."),
                io.Int.Input("height", default=256, min=size.lo, max=size.hi, step=8,
                             tooltip="Image height in pixels."),
                io.Float.Input("fov_deg", default=60.0, min=fov.lo, max=fov.hi, step=0.5,
                               tooltip="Horizontal field of view in degrees (keyframes may set their own)."),
                io.Float.Input("position_x", default=0.0, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"First camera centre x ({where})."),
                io.Float.Input("position_y", default=-4.0, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"First camera centre y ({where})."),
                io.Float.Input("position_z", default=1.6, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"First camera centre z ({where})."),
                io.Float.Input("target_x", default=0.0, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"Point the first camera looks at (the orbit centre), x ({where})."),
                io.Float.Input("target_y", default=0.0, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"Point the first camera looks at (the orbit centre), y ({where})."),
                io.Float.Input("target_z", default=1.0, min=coord.lo, max=coord.hi, step=0.1,
                               tooltip=f"Point the first camera looks at (the orbit centre), z ({where})."),
                io.Float.Input("angle_deg", default=90.0, min=angle.lo, max=angle.hi, step=1.0,
                               tooltip="orbit: degrees around the target (positive: counter-clockwise from above); "
                                       "pan: degrees to the right; tilt: degrees up."),
                io.Float.Input("distance", default=2.0, min=dist.lo, max=dist.hi,
                               step=0.1, tooltip="dolly: metres forward (negative: back); look_at: metres to the "
                                                 "right (0: a static camera)."),
                io.Float.Input("speed", default=1.4, min=speed.lo, max=speed.hi, step=0.1,
                               tooltip="walk: metres per second along the ground."),
                io.String.Input("keyframes", multiline=True, default=DEFAULT_KEYFRAMES,
                                tooltip="preset keyframes: a JSON list of {position, look_at | quaternion [w,x,y,z] "
                                        "| rotation | c2w, optional frame or time, optional fov_deg}; without "
                                        "frame/time the keyframes are spread evenly."),
            ],
            outputs=[
                Cameras.Output("cameras", display_name="cameras"),
                io.Int.Output("count", display_name="count", tooltip="Number of cameras."),
                io.Float.Output("fps_out", display_name="fps", tooltip="The frame rate the path was built for."),
            ],
            is_output_node=True,  # draws its path even when nothing is connected yet
        )

    @classmethod
    def validate_inputs(cls, preset=None, keyframes=None) -> bool | str:
        from ..syn2seq_core.geometry.camera_paths import PRESETS, parse_keyframes

        if preset is not None and preset not in PRESETS:
            return f"preset: expected one of {list(PRESETS)}, got {preset!r}"
        if preset == "keyframes" and keyframes is not None:
            try:
                parse_keyframes(keyframes)
            except Syn2SeqInputError as e:
                return str(e)
        return True

    @classmethod
    def execute(cls, preset, frames, fps, width, height, fov_deg, position_x, position_y, position_z,
                target_x, target_y, target_z, angle_deg, distance, speed, keyframes) -> io.NodeOutput:
        from ..syn2seq_core.geometry.camera_paths import camera_path

        cams = camera_path(
            preset, int(frames), int(width), int(height), fov_deg=float(fov_deg), fps=float(fps),
            position=(position_x, position_y, position_z), target=(target_x, target_y, target_z),
            angle_deg=float(angle_deg), distance=float(distance), speed=float(speed),
            keyframes=keyframes if preset == "keyframes" else None)
        return io.NodeOutput(cams, len(cams), float(fps), ui=convert.ui_camera_path(path_payload(cams)))


NODES = [Syn2SeqCameraPath]
