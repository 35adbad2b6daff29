"""Model nodes: load a DFoT generator, the diffusion-forcing sampler, and the model's conditional mean."""

from __future__ import annotations

import os

from comfy_api.latest import io

from . import convert, management, paths, progress
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
                        "height are the frame size the model generates: feed them to the take loader. ComfyUI's "
                        "memory manager owns the network: it goes to the GPU when a sampler needs it and is "
                        "offloaded when other models need the memory (--lowvram / --novram respected).",
            inputs=[io.Combo.Input("model", options=paths.list_models(), default=paths.BUNDLED_MODEL),
                    io.Combo.Input("weight_dtype", options=list(management.WEIGHT_DTYPES), default="auto", optional=True,
                                   tooltip="How the weights are stored. auto: ComfyUI's choice for the device (bf16 "
                                           "where supported, else fp16; fp32 on the CPU). Sampling computes in bf16 "
                                           "where the device has it natively, else fp32, whatever this says.")],
            outputs=[
                Model.Output("model_out", display_name="model"),
                io.Int.Output("width", display_name="width"),
                io.Int.Output("height", display_name="height"),
                io.Int.Output("transition_frames", display_name="transition_frames",
                              tooltip="Transition length the model was trained with."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, model, weight_dtype="auto", **kwargs):
        if model == paths.BUNDLED_MODEL:
            return model, weight_dtype
        try:
            p = paths.resolve_model_file(model)
            st = os.stat(p)
            return (str(p), st.st_size, st.st_mtime_ns, weight_dtype)
        except (OSError, ValueError):
            return model, weight_dtype

    @classmethod
    def execute(cls, model, weight_dtype="auto") -> io.NodeOutput:
        if weight_dtype not in management.WEIGHT_DTYPES:
            raise input_error("weight_dtype", f"one of {list(management.WEIGHT_DTYPES)}", repr(weight_dtype))
        path = None if model == paths.BUNDLED_MODEL else paths.resolve_model_file(model)
        loaded = management.load(path, weight_dtype, name=model)
        height, width = loaded.size
        return io.NodeOutput(loaded, width, height, loaded.model.transition_frames)


class Syn2SeqSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        matrices = sorted(core("dfot.scheduling").SCHEDULING_MATRICES)
        guidance = sorted(core("dfot.guidance").HISTORY_GUIDANCE)
        limits = core("limits").LIMITS
        steps, scale, seed = limits["steps"], limits["guidance_scale"], limits["seed"]
        stab = limits["stabilization"]
        return io.Schema(
            node_id="Syn2SeqSampler",
            display_name="Syn2Seq Sampler (Diffusion Forcing)",
            category=f"{CATEGORY}/model",
            description="Generate the frames a sequence marks for generation (transition and target view), with the "
                        "source view as clean context and the whole camera track as Plücker rays. Long sequences "
                        "are generated window by window. Cancel stops it at the next step. With previews on "
                        "(--preview-method other than none) the node shows the frames forming at every step.",
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
                io.Float.Input("stabilization", default=0.0, min=stab.lo, max=stab.hi, step=0.01, optional=True,
                               tooltip="Stabilized history guidance (DFoT, for long rollouts): frames generated by "
                                       "earlier windows are shown to later ones at this noise level instead of "
                                       "clean, so small errors do not compound (DFoT uses 0.02). 0 = clean."),
            ],
            outputs=[
                Sequence.Output("sequence_out", display_name="sequence"),
                io.Image.Output("frames", display_name="frames", tooltip="All frames of the generated sequence."),
            ],
        )

    @classmethod
    def execute(cls, model, sequence, steps, scheduling, history_guidance, guidance_scale, seed,
                stabilization=0.0) -> io.NodeOutput:
        _check_inputs(model, sequence)
        core_model = model.ready(len(sequence), history_guidance, float(guidance_scale))
        step = progress.step_callback(int(steps), core_model.config)
        with management.measured(model, f"sampler ({len(sequence)} frames, {history_guidance})") as tick:
            def callback(info: dict) -> None:
                tick()
                step(info)

            generated = core_model.generate(sequence, steps=int(steps), scheduling=scheduling,
                                            guidance=history_guidance, guidance_scale=float(guidance_scale),
                                            stabilization=float(stabilization), seed=int(seed),
                                            dtype=model.compute_dtype, callback=callback)
        return io.NodeOutput(generated, convert.frames_to_image(generated.frames))


def _check_inputs(model, sequence) -> None:
    if model is None or sequence is None:
        raise input_error("model/sequence", "a model and a sequence", "None")
    if not isinstance(model, management.ManagedModel):
        raise input_error("model", "the output of Syn2Seq Load Model", type(model).__name__)
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
        mean = model.ready(len(sequence)).predict_mean(sequence, seed=int(seed), draws=int(draws),
                                                        dtype=model.compute_dtype)
        return io.NodeOutput(mean, convert.frames_to_image(mean.frames))


NODES = [Syn2SeqLoadModel, Syn2SeqSampler, Syn2SeqConditionalMean]
