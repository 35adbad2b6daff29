"""Syn2SeqEvaluate: PSNR / SSIM / LPIPS of generated frames against ground truth, as text and a chart."""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.errors import Syn2SeqInputError
from . import convert, paths, plots
from .sockets import CATEGORY


class Syn2SeqEvaluate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Syn2SeqEvaluate",
            display_name="Syn2Seq Evaluate",
            category=f"{CATEGORY}/eval",
            description="PSNR, SSIM and LPIPS of generated frames against ground truth (same count and size). Score "
                        "only generated frames (e.g. the ego batch of Syn2SeqSplitSequence). LPIPS needs backbone "
                        "weights in ComfyUI/models/syn2seq/ (a file with 'lpips' in its name); without them it "
                        "reports 'unavailable' instead of a number.",
            inputs=[
                io.Image.Input("generated"),
                io.Image.Input("ground_truth"),
                io.Combo.Input("lpips_weights", options=paths.list_lpips_weights(), default="none"),
            ],
            outputs=[
                io.String.Output("report", display_name="report"),
                io.Image.Output("psnr_plot", display_name="psnr_plot"),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, generated, ground_truth, lpips_weights) -> io.NodeOutput:
        pred = convert.image_to_frames(generated, "generated")
        target = convert.image_to_frames(ground_truth, "ground_truth")
        if len(pred) == 0 or len(target) == 0:
            raise Syn2SeqInputError("generated/ground_truth", "at least one frame each",
                                    f"{len(pred)} and {len(target)} frames", "Is the ground-truth view in the take?")
        weights = None if lpips_weights == "none" else paths.resolve_model_file(lpips_weights)
        from ..syn2seq_core.metrics.frames import evaluate_frames

        report = evaluate_frames(pred, target, lpips_weights=weights)
        text = convert.metrics_text(report)
        psnr = report["psnr"]["per_frame"] if isinstance(report["psnr"], dict) else []
        return io.NodeOutput(text, plots.per_frame_chart(psnr), ui={"text": [text]})


NODES = [Syn2SeqEvaluate]
