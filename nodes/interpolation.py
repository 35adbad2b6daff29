"""First-last-frame (WFLF) interpolation nodes: the pack's own backends, and Wan FLF2V output."""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert, progress
from .sockets import CATEGORY


def _backends() -> list[str]:
    from ..syn2seq_core.interpolation.base import known_interpolators

    # wan runs in ComfyUI through its native Wan nodes (their frames go through Syn2SeqWanFramesToTransition),
    # which share ComfyUI's model management; the core's diffusers pipeline would load a second copy.
    return [b for b in known_interpolators() if b != "wan"]


class Syn2SeqInterpolate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.interpolation.base import DEFAULT_BACKEND

        backends = _backends()
        default = DEFAULT_BACKEND if DEFAULT_BACKEND in backends else backends[0]
        n = LIMITS["transition_frames"]
        return io.Schema(
            node_id="Syn2SeqInterpolate",
            display_name="Syn2Seq Interpolate (first-last frame)",
            category=f"{CATEGORY}/interpolation",
            description="n transition frames strictly between the LAST frame of 'first' and the FIRST frame of "
                        "'last' (connect the exo frames and the ego frames directly). Backends: blend (linear "
                        "cross-fade), flow (OpenCV DIS optical flow), rife (RIFE v4.x, weights from "
                        "ComfyUI/models/rife/). For Wan first-last-frame video use Syn2SeqWanFramesToTransition.",
            inputs=[
                io.Image.Input("first", tooltip="Frames before the transition; the last one is used."),
                io.Image.Input("last", tooltip="Frames after the transition; the first one is used."),
                io.Int.Input("n", default=4, min=n.lo, max=n.hi, tooltip="Number of transition frames."),
                io.Combo.Input("backend", options=backends, default=default),
            ],
            outputs=[io.Image.Output("transition_frames", display_name="transition_frames")],
        )

    @classmethod
    def execute(cls, first, last, n, backend) -> io.NodeOutput:
        import folder_paths

        from ..syn2seq_core.interpolation.base import interpolate

        a = convert.image_to_frames(first, "first")
        b = convert.image_to_frames(last, "last")
        if len(a) == 0 or len(b) == 0:
            raise Syn2SeqInputError("first/last", "at least one frame each", f"{len(a)} and {len(b)} frames")
        options = {"comfyui_path": folder_paths.base_path} if backend == "rife" else {}
        frames = interpolate(a[-1], b[0], int(n), backend=backend,
                             progress=progress.count_callback(int(n)), **options)
        return io.NodeOutput(convert.frames_to_image(frames))


class Syn2SeqWanFramesToTransition(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.interpolation.wan import MODES

        n = LIMITS["transition_frames"]
        return io.Schema(
            node_id="Syn2SeqWanFramesToTransition",
            display_name="Syn2Seq Wan Frames To Transition",
            category=f"{CATEGORY}/interpolation",
            description="Map the 4k+1 frames of a Wan first-last-frame video (WanFirstLastFrameToVideo -> KSampler "
                        "-> VAEDecode, with the last exo frame as start_image and the first ego frame as "
                        "end_image) onto n transition frames; the two endpoint frames are dropped.",
            inputs=[
                io.Image.Input("wan_frames", tooltip="The decoded Wan video, first and last frame included."),
                io.Int.Input("n", default=4, min=n.lo, max=n.hi, tooltip="Number of transition frames."),
                io.Combo.Input("mode", options=list(MODES), default="nearest",
                               tooltip="nearest: the Wan frame nearest to each transition time; linear: a blend "
                                       "of the two Wan frames around it."),
            ],
            outputs=[io.Image.Output("transition_frames", display_name="transition_frames")],
        )

    @classmethod
    def execute(cls, wan_frames, n, mode) -> io.NodeOutput:
        from ..syn2seq_core.interpolation.wan import wan_to_transition

        frames = convert.image_to_frames(wan_frames, "wan_frames")
        out = wan_to_transition(frames, int(n), mode=mode)
        return io.NodeOutput(convert.frames_to_image(out))


NODES = [Syn2SeqInterpolate, Syn2SeqWanFramesToTransition]
