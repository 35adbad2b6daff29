"""Model nodes: load a DFoT generator, the diffusion-forcing sampler, and the model's conditional mean."""

from __future__ import annotations

import os

from comfy_api.latest import io

from . import convert, paths, progress
from ._core import core, input_error
from .sockets import CATEGORY, Model, Sequence


class Syn2SeqLoadModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="Syn2SeqLoadModel",
            display_name="Syn2Seq Load Model",
            category=f"{CATEGORY}/model",
            description="Load a Syn2Seq DFoT model (.safetensors) from ComfyUI/models/syn2seq/, or the small model "
                        "bundled with the pack (trained on procedural ego/exo scenes; runs on CPU). Width and "
                        "height are the frame size the model generates: feed them to the take loader.",
            inputs=[io.Combo.Input("model", options=paths.list_models(), default=paths.BUNDLED_MODEL)],
            outputs=[
                Model.Output("model_out", display_name="model"),
                io.Int.Output("width", display_name="width"),
                io.Int.Output("height", display_name="height"),
                io.Int.Output("transition_frames", display_name="transition_frames",
                              tooltip="Transition length the model was trained with."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, model, **kwargs):
        if model == paths.BUNDLED_MODEL:
            return model
        try:
            p = paths.resolve_model_file(model)
            st = os.stat(p)
            return (str(p), st.st_size, st.st_mtime_ns)
        except (OSError, ValueError):
            return model

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        import comfy.model_management

        path = None if model == paths.BUNDLED_MODEL else paths.resolve_model_file(model)
        loaded = core("pipeline").load_model(path, device=comfy.model_management.get_torch_device())
        height, width = loaded.size
        return io.NodeOutput(loaded, width, height, loaded.transition_frames)


class Syn2SeqSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        matrices = sorted(core("dfot.scheduling").SCHEDULING_MATRICES)
        guidance = sorted(core("dfot.guidance").HISTORY_GUIDANCE)
        limits = core("limits").LIMITS
        steps, scale, seed = limits["steps"], limits["guidance_scale"], limits["seed"]
        return io.Schema(
            node_id="Syn2SeqSampler",
            display_name="Syn2Seq Sampler (Diffusion Forcing)",
            category=f"{CATEGORY}/model",
            description="Generate the frames a sequence marks for generation (transition and target view), with the "
                        "source view as clean context and the whole camera track as Plücker rays. Long sequences "
                        "are generated window by window. Cancel stops it at the next step.",
            inputs=[
                Model.Input("model"),
                Sequence.Input("sequence"),
                io.Int.Input("steps", default=25, min=steps.lo, max=steps.hi, tooltip="Denoising steps."),
                io.Combo.Input("scheduling", options=matrices,
                               default="full_sequence" if "full_sequence" in matrices else matrices[0],
                               tooltip="Scheduling matrix: the noise level of every frame at every step."),
                io.Combo.Input("history_guidance", options=guidance,
                               default="conditional" if "conditional" in guidance else guidance[0],
                               tooltip="conditional: no guidance; vanilla / fractional: DFoT history guidance."),
                io.Float.Input("guidance_scale", default=1.0, min=scale.lo, max=scale.hi, step=0.05,
                               tooltip="History guidance weight (1 = none)."),
                io.Int.Input("seed", default=0, min=seed.lo, max=seed.hi, control_after_generate=True),
            ],
            outputs=[
                Sequence.Output("sequence_out", display_name="sequence"),
                io.Image.Output("frames", display_name="frames", tooltip="All frames of the generated sequence."),
            ],
        )

    @classmethod
    def execute(cls, model, sequence, steps, scheduling, history_guidance, guidance_scale, seed) -> io.NodeOutput:
        _check_inputs(model, sequence)
        generated = model.generate(sequence, steps=int(steps), scheduling=scheduling, guidance=history_guidance,
                                   guidance_scale=float(guidance_scale), seed=int(seed),
                                   callback=progress.step_callback(int(steps)))
        return io.NodeOutput(generated, convert.frames_to_image(generated.frames))


def _check_inputs(model, sequence) -> None:
    if model is None or sequence is None:
        raise input_error("model/sequence", "a model and a sequence", "None")
    height, width = model.size
    if (sequence.height, sequence.width) != (height, width):
        raise input_error("sequence", f"frames of {width}x{height} (the model's size)",
                          f"{sequence.width}x{sequence.height}",
                          "Connect the width and height outputs of Syn2Seq Load Model to the take loader")


class Syn2SeqConditionalMean(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        limits = core("limits").LIMITS
        draws, seed = limits["mean_draws"], limits["seed"]
        return io.Schema(
            node_id="Syn2SeqConditionalMean",
            display_name="Syn2Seq Conditional Mean",
            category=f"{CATEGORY}/model",
            description="The model's estimate of the average of the frames the sequence marks for generation, "
                        "given the context: its one-shot prediction with those frames at full noise, averaged "
                        "over several noise draws. A blur where the sampler commits to details; for the small "
                        "bundled model it is the more faithful output (MODEL_CARD.md). Sequences up to the "
                        "model's window.",
            inputs=[
                Model.Input("model"),
                Sequence.Input("sequence"),
                io.Int.Input("draws", default=8, min=draws.lo, max=draws.hi, tooltip="Noise draws to average."),
                io.Int.Input("seed", default=0, min=seed.lo, max=seed.hi),
            ],
            outputs=[
                Sequence.Output("sequence_out", display_name="sequence"),
                io.Image.Output("frames", display_name="frames", tooltip="All frames of the sequence, the "
                                "generated ones replaced by the conditional mean."),
            ],
        )

    @classmethod
    def execute(cls, model, sequence, draws, seed) -> io.NodeOutput:
        _check_inputs(model, sequence)
        if len(sequence) > model.window:
            raise input_error("sequence", f"at most {model.window} frames (this model's window)",
                              f"{len(sequence)} frames", "Use Syn2Seq Sampler for longer sequences")
        mean = model.predict_mean(sequence, seed=int(seed), draws=int(draws))
        return io.NodeOutput(mean, convert.frames_to_image(mean.frames))


NODES = [Syn2SeqLoadModel, Syn2SeqSampler, Syn2SeqConditionalMean]
