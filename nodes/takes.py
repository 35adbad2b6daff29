"""Syn2SeqLoadTake: a take folder (exo/ego videos + camera files) -> IMAGE batches, cameras and fps."""

from __future__ import annotations

import os

from comfy_api.latest import io

from ..syn2seq_core.base.limits import LIMITS
from . import convert, paths
from .sockets import CATEGORY, Cameras, Depth

def size_arg(width: int, height: int):
    """Node widgets -> the ``size`` argument of the core readers (None = native size)."""
    return (int(width), int(height)) if width and height else None


def size_problem(width, height) -> str | None:
    if width is None or height is None:  # linked inputs are checked when they arrive
        return None
    if (width == 0) != (height == 0):
        return f"width and height: expected both 0 (native size) or both > 0, got {width}x{height}"
    r = LIMITS["frame_size"]
    if not (r.contains(width) and r.contains(height)):
        return f"width and height: expected values in {r.interval}, got {width}x{height}"
    return None


def frame_range(start: int, frames: int, stride: int) -> tuple[int, int | None, int]:
    """(start, stop, stride) of ``frames`` frames from ``start`` every ``stride`` (0 frames = to the end)."""
    stop = start + (frames - 1) * stride + 1 if frames else None
    return int(start), stop, int(stride)


def fingerprint_folder(folder: str) -> tuple:
    """Names, sizes and modification times of a folder's files: re-run the node when any changes."""
    try:
        with os.scandir(folder) as it:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it if e.is_file()))
    except OSError:
        return ()


class Syn2SeqLoadTake(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        size, start, count, stride = (LIMITS[k] for k in ("frame_size", "start_frame", "frame_count", "frame_stride"))
        return io.Schema(
            node_id="Syn2SeqLoadTake",
            display_name="Syn2Seq Load Take",
            category=f"{CATEGORY}/io",
            description="Load a take folder from ComfyUI's input folder: exo.mp4 and/or ego.mp4 with their camera "
                        "files (exo_cameras.*, ego_cameras.*). A view without a video (the view to generate) "
                        "gives an empty IMAGE batch and its cameras. exo_depth / ego_depth: the view's z-depth "
                        "(<view>_depth.safetensors, e.g. procedural takes), cropped like the frames; for models "
                        "with the depth_warp cue (connect the source view's to Syn2Seq Build Sequence).",
            inputs=[
                io.Combo.Input("take", options=paths.list_takes(),
                               tooltip="A folder under ComfyUI/input holding exo.mp4 / ego.mp4 and camera files; "
                                       "'(bundled)' entries ship with the pack; 'release/index.jsonl | name' "
                                       "entries are the takes of an Ego-Exo4D index (syn2seq index-egoexo4d "
                                       "ROOT --out ROOT/index.jsonl, ROOT under ComfyUI/input)."),
                io.Int.Input("width", default=0, min=size.lo, max=size.hi, step=8,
                             tooltip="Output width; 0 with height 0 keeps the native size. Frames are scaled to "
                                     "cover width x height and centre-cropped; the cameras follow."),
                io.Int.Input("height", default=0, min=size.lo, max=size.hi, step=8),
                io.Int.Input("start", default=0, min=start.lo, max=start.hi, tooltip="First frame to read."),
                io.Int.Input("frames", default=0, min=count.lo, max=count.hi,
                             tooltip="Frames to read; 0 = to the end."),
                io.Int.Input("stride", default=1, min=stride.lo, max=stride.hi, tooltip="Read every stride-th frame."),
            ],
            outputs=[
                io.Image.Output("exo_frames", display_name="exo_frames"),
                io.Image.Output("ego_frames", display_name="ego_frames"),
                Cameras.Output("exo_cameras", display_name="exo_cameras"),
                Cameras.Output("ego_cameras", display_name="ego_cameras"),
                io.Float.Output("fps", display_name="fps",
                                tooltip="Frame rate of the frames read (take fps / stride)."),
                Depth.Output("exo_depth", display_name="exo_depth",
                             tooltip="The exo view's z-depth of the frames read, or None if the take has none."),
                Depth.Output("ego_depth", display_name="ego_depth",
                             tooltip="The ego view's z-depth of the frames read, or None if the take has none."),
            ],
        )

    @classmethod
    def validate_inputs(cls, width=None, height=None) -> bool | str:
        return size_problem(width, height) or True

    @classmethod
    def fingerprint_inputs(cls, take, **kwargs):
        try:
            path = paths.resolve_take(take)
            # a take folder's files, or an Ego-Exo4D take's index file
            return fingerprint_folder(str(path)) if path.is_dir() else paths.file_fingerprint(paths.resolve_take, take)
        except ValueError:
            return take

    @classmethod
    def execute(cls, take, width, height, start, frames, stride) -> io.NodeOutput:
        from ..syn2seq_core.data.takes import VIEWS

        loaded = paths.load_take(take)
        size = size_arg(width, height)
        start, stop, stride = frame_range(start, frames, stride)
        images, cameras, depth = {}, {}, {}
        for view in VIEWS:
            depth[view] = None
            if loaded.depth(view) is not None:
                depth[view] = loaded.read_depth(view, start=start, stop=stop, stride=stride, size=size)
            if loaded.has_video(view):
                f, cameras[view] = loaded.read_view(view, size=size, start=start, stop=stop, stride=stride)
                images[view] = convert.frames_to_image(f)
            elif loaded.cameras(view) is not None:
                cameras[view] = loaded.view_cameras(view, size=size, start=start, stop=stop, stride=stride)
                images[view] = convert.empty_image(cameras[view].height, cameras[view].width)
            else:
                cameras[view], images[view] = None, convert.empty_image(1, 1)
        ui = convert.ui_camera_path(convert.camera_path({"exo": cameras["exo"], "ego": cameras["ego"]}))
        return io.NodeOutput(images["exo"], images["ego"], cameras["exo"], cameras["ego"], loaded.fps / stride,
                             depth["exo"], depth["ego"], ui=ui)
NODES = [Syn2SeqLoadTake]
