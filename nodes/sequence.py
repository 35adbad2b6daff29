"""Sequence nodes: build a Syn2Seq [source | transition | target] sequence, and split one into IMAGE batches."""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base import conventions
from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert
from .sockets import CATEGORY, Cameras, Depth, Sequence


class Syn2SeqBuildSequence(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.generation.sequence import DEFAULT_TRANSITION_FRAMES, MODES

        n = LIMITS["transition_frames"]
        return io.Schema(
            node_id="Syn2SeqBuildSequence",
            display_name="Syn2Seq Build Sequence",
            category=f"{CATEGORY}/sequence",
            description="Stitch [exo | transition | ego] (or [ego | transition | exo] for ego2exo) into one sequence "
                        "with one camera track: transition cameras by SLERP, transition frames from an "
                        "interpolator if connected. The source view's frames are the context; the target view's "
                        "frames, if connected, are ground truth (training data). Modes: exo2ego, ego2exo, direct "
                        "(no transition), video_only (transition frames without transition poses).",
            inputs=[
                Cameras.Input("exo_cameras"),
                Cameras.Input("ego_cameras"),
                io.Combo.Input("mode", options=list(MODES), default="exo2ego"),
                io.Int.Input("n_transition", default=DEFAULT_TRANSITION_FRAMES, min=n.lo, max=n.hi,
                             tooltip="Transition frames when no transition_frames are connected (ignored otherwise; "
                                     "0 in direct mode)."),
                io.Image.Input("exo_frames", optional=True),
                io.Image.Input("ego_frames", optional=True),
                io.Image.Input("transition_frames", optional=True,
                               tooltip="From Syn2SeqInterpolate or Syn2SeqWanFramesToTransition (training data)."),
                Depth.Input("source_depth", optional=True,
                            tooltip="The source view's z-depth (Syn2Seq Load Take's exo_depth for exo2ego, or "
                                    "Syn2Seq Depth From Image): models with the depth_warp cue (the bundled one) "
                                    "read it, and run without it if trained so; others ignore it."),
            ],
            outputs=[
                Sequence.Output("sequence", display_name="sequence"),
                io.Image.Output("frames", display_name="frames",
                                tooltip="All frames of the sequence; frames still to generate are black."),
            ],
        )

    @classmethod
    def execute(cls, exo_cameras, ego_cameras, mode, n_transition, exo_frames=None, ego_frames=None,
                transition_frames=None, source_depth=None) -> io.NodeOutput:
        from ..syn2seq_core.generation.sequence import build_sequence

        for name, cams in (("exo_cameras", exo_cameras), ("ego_cameras", ego_cameras)):
            if cams is None:
                raise Syn2SeqInputError(name, "a camera track", "None (the take has no such view)")
        tr = convert.optional_frames(transition_frames, "transition_frames")
        sequence = build_sequence(
            exo_cameras, ego_cameras,
            exo_frames=convert.optional_frames(exo_frames, "exo_frames"),
            ego_frames=convert.optional_frames(ego_frames, "ego_frames"),
            transition_frames=tr,
            n_transition=None if tr is not None or mode == "direct" else int(n_transition),
            mode=mode,
        )
        if source_depth is not None:
            sequence = sequence.with_depth_cue(source_depth)
        ui = convert.ui_camera_path(convert.sequence_path(sequence))
        return io.NodeOutput(sequence, convert.frames_to_image(sequence.frames), ui=ui)


class Syn2SeqSplitSequence(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Syn2SeqSplitSequence",
            display_name="Syn2Seq Split Sequence",
            category=f"{CATEGORY}/sequence",
            description="The exo, transition and ego frames of a sequence as three IMAGE batches (a missing part "
                        "is an empty batch).",
            inputs=[Sequence.Input("sequence")],
            outputs=[
                io.Image.Output("exo_frames", display_name="exo_frames"),
                io.Image.Output("transition_frames", display_name="transition_frames"),
                io.Image.Output("ego_frames", display_name="ego_frames"),
            ],
        )

    @classmethod
    def execute(cls, sequence) -> io.NodeOutput:
        if sequence is None:
            raise Syn2SeqInputError("sequence", "a Syn2Seq sequence", "None")
        parts = [convert.frames_to_image(sequence.frames[sequence.indices(role)])
                 for role in (conventions.ROLE_EXO, conventions.ROLE_TRANSITION, conventions.ROLE_EGO)]
        return io.NodeOutput(*parts)


class Syn2SeqDepthFromImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.geometry.reproject import DEFAULT_MEDIAN_DEPTH_M, DEPTH_ESTIMATE_KINDS

        m = LIMITS["depth_median_m"]
        return io.Schema(
            node_id="Syn2SeqDepthFromImage",
            display_name="Syn2Seq Depth From Image",
            category=f"{CATEGORY}/sequence",
            description="A depth estimator's maps (an IMAGE batch, one per source frame) as the source view's depth "
                        "for Build Sequence's source_depth, for footage without depth. Relative maps are inverted "
                        "if inverse, then one scale for the clip puts their median at median_m metres.",
            inputs=[
                io.Image.Input("depth_image", tooltip="One map per source frame, grey or RGB (channels averaged)."),
                io.Combo.Input("kind", options=[k for k in DEPTH_ESTIMATE_KINDS if k != "metric"],
                               default="inverse",
                               tooltip="inverse: relative inverse depth, near is bright (MiDaS, Depth Anything); "
                                       "depth: relative depth, far is bright."),
                io.Float.Input("median_m", default=DEFAULT_MEDIAN_DEPTH_M, min=m.lo, max=m.hi, step=0.1,
                               tooltip="The median depth of the scene in metres (default: the procedural "
                                       "world's, where the bundled model learnt the cue)."),
            ],
            outputs=[Depth.Output("depth", display_name="depth")],
        )

    @classmethod
    def execute(cls, depth_image, kind, median_m) -> io.NodeOutput:
        from ..syn2seq_core.geometry.reproject import depth_from_estimate

        frames = convert.image_to_frames(depth_image, "depth_image")
        return io.NodeOutput(depth_from_estimate(frames, kind, float(median_m)))


NODES = [Syn2SeqBuildSequence, Syn2SeqSplitSequence, Syn2SeqDepthFromImage]
