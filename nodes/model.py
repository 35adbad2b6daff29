"""Model nodes: load a DFoT generator, the diffusion-forcing sampler, and the model's conditional mean."""

from __future__ import annotations

from comfy_api.latest import io

from ..syn2seq_core.base.errors import Syn2SeqInputError
from ..syn2seq_core.base.limits import LIMITS
from . import convert, management, paths, progress
from .sockets import CATEGORY, Cameras, Model, Sequence


def _file_fingerprint(name):
    """A model-folder file by path, size and mtime (a changed file reloads); the bundled model and "none" as
    they are."""
    if name in (paths.BUNDLED_MODEL, paths.NO_LORA, None):
        return name
    return paths.file_fingerprint(paths.resolve_model_file, name)


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
                    io.Combo.Input("weight_dtype", options=list(management.WEIGHT_DTYPES), default="auto",
                                   optional=True,
                                   tooltip="How the weights are stored. auto: ComfyUI's choice for the device (bf16 "
                                           "where supported, else fp16; fp32 on the CPU). Sampling computes in bf16 "
                                           "where the device has it natively, else fp32, whatever this says."),
                    io.Combo.Input("lora", options=paths.list_loras(), default=paths.NO_LORA, optional=True,
                                   tooltip="LoRA adapters trained on this model (a LoRA run's lora.safetensors, put "
                                           "in ComfyUI/models/syn2seq/), merged into its weights at load.")],
            outputs=[
                Model.Output("model_out", display_name="model"),
                io.Int.Output("width", display_name="width"),
                io.Int.Output("height", display_name="height"),
                io.Int.Output("transition_frames", display_name="transition_frames",
                              tooltip="Transition length the model was trained with."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, model, weight_dtype="auto", lora=paths.NO_LORA, **kwargs):
        return tuple(_file_fingerprint(name) for name in (model, lora)) + (weight_dtype,)

    @classmethod
    def execute(cls, model, weight_dtype="auto", lora=paths.NO_LORA) -> io.NodeOutput:
        if weight_dtype not in management.WEIGHT_DTYPES:
            raise Syn2SeqInputError("weight_dtype", f"one of {list(management.WEIGHT_DTYPES)}", repr(weight_dtype))
        path = None if model == paths.BUNDLED_MODEL else paths.resolve_model_file(model)
        lora_path = None if lora in (None, paths.NO_LORA) else paths.resolve_model_file(lora, "lora")
        loaded = management.load(path, weight_dtype, name=model, lora=lora_path)
        height, width = loaded.size
        return io.NodeOutput(loaded, width, height, loaded.model.transition_frames)


class Syn2SeqSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.dfot.guidance import HISTORY_GUIDANCE
        from ..syn2seq_core.dfot.scheduling import SCHEDULING_MATRICES

        matrices, guidance = sorted(SCHEDULING_MATRICES), sorted(HISTORY_GUIDANCE)
        steps, scale, seed = LIMITS["steps"], LIMITS["guidance_scale"], LIMITS["seed"]
        stab = LIMITS["stabilization"]
        return io.Schema(
            node_id="Syn2SeqSampler",
            display_name="Syn2Seq Sampler (Diffusion Forcing)",
            category=f"{CATEGORY}/model",
            description="Generate the frames a sequence marks for generation (transition and target view), with the "
                        "source view as clean context and the whole camera track as Plücker rays. Long sequences "
                        "are generated window by window. Sampling uses the stochasticity (eta) the model records "
                        "(the bundled model: 1, ancestral; else 0, DDIM). Cancel stops it at the next step. With "
                        "previews on "
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
        raise Syn2SeqInputError("model/sequence", "a model and a sequence", "None")
    if not isinstance(model, management.ManagedModel):
        raise Syn2SeqInputError("model", "the output of Syn2Seq Load Model", type(model).__name__)
    height, width = model.size
    if (sequence.height, sequence.width) != (height, width):
        raise Syn2SeqInputError("sequence", f"frames of {width}x{height} (the model's size)",
                                f"{sequence.width}x{sequence.height}",
                                "Connect the width and height outputs of Syn2Seq Load Model to the take loader")


class Syn2SeqConditionalMean(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        draws, seed = LIMITS["mean_draws"], LIMITS["seed"]
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
            raise Syn2SeqInputError("sequence", f"at most {model.window} frames (this model's window)",
                                    f"{len(sequence)} frames", "Use Syn2Seq Sampler for longer sequences")
        mean = model.ready(len(sequence)).predict_mean(sequence, seed=int(seed), draws=int(draws),
                                                        dtype=model.compute_dtype)
        return io.NodeOutput(mean, convert.frames_to_image(mean.frames))


class Syn2SeqImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..syn2seq_core.dfot.guidance import HISTORY_GUIDANCE
        from ..syn2seq_core.dfot.scheduling import SCHEDULING_MATRICES
        from ..syn2seq_core.generation.image2video import DEFAULT_KEYFRAME_DENSITY, MODES

        matrices, guidance = sorted(SCHEDULING_MATRICES), sorted(HISTORY_GUIDANCE)
        steps, scale, seed, stab = (LIMITS[k] for k in ("steps", "guidance_scale", "seed", "stabilization"))
        density = LIMITS["keyframe_density"]
        return io.Schema(
            node_id="Syn2SeqImageToVideo",
            display_name="Syn2Seq Image to Video (DFoT)",
            category=f"{CATEGORY}/model",
            description="A video along a camera track from one or more images, with any DFoT-family model (DFoT's "
                        "own task: load the converted DFoT_RE10K model). The images are clean context at their "
                        "frames of the track (fitted to the model's size like the cameras); every other frame is "
                        "generated. sliding: the window slides along the track; keyframes: keyframes spread over "
                        "the track first, then the frames between them (less drift on long tracks).",
            inputs=[
                Model.Input("model"),
                io.Image.Input("images", tooltip="One or more images (a batch), placed at image_frames."),
                Cameras.Input("cameras", tooltip="The camera track: one camera per output frame."),
                io.String.Input("image_frames", default="0",
                                tooltip="Comma-separated frame of each image in the track, negative from the end "
                                        "(e.g. 0,-1 for first and last)."),
                io.Combo.Input("mode", options=list(MODES), default="sliding"),
                io.Float.Input("keyframe_density", default=DEFAULT_KEYFRAME_DENSITY, min=density.lo,
                               max=density.hi, step=0.0025, tooltip="keyframes mode: share of the frames "
                               "generated first (DFoT: 0.0625)."),
                io.Int.Input("steps", default=50, min=steps.lo, max=steps.hi,
                             tooltip="Denoising steps (DFoT samples 50 on its own grid)."),
                io.Combo.Input("scheduling", options=matrices,
                               default="full_sequence" if "full_sequence" in matrices else matrices[0]),
                io.Combo.Input("history_guidance", options=guidance,
                               default="conditional" if "conditional" in guidance else guidance[0]),
                io.Float.Input("guidance_scale", default=1.0, min=scale.lo, max=scale.hi, step=0.05),
                io.Float.Input("stabilization", default=0.0, min=stab.lo, max=stab.hi, step=0.01,
                               tooltip="Stabilized history guidance for long tracks (DFoT: 0.02)."),
                io.Int.Input("seed", default=0, min=seed.lo, max=seed.hi, control_after_generate=True),
            ],
            outputs=[io.Image.Output("frames", display_name="frames"),
                     Cameras.Output("cameras_out", display_name="cameras",
                                    tooltip="The track at the model's size (what the model was given).")],
        )

    @classmethod
    def execute(cls, model, images, cameras, image_frames, mode, keyframe_density, steps, scheduling,
                history_guidance, guidance_scale, stabilization, seed) -> io.NodeOutput:
        import torch

        from ..syn2seq_core.generation.image2video import fit_image, image_sequence, image_to_video

        if not isinstance(model, management.ManagedModel):
            raise Syn2SeqInputError("model", "the output of Syn2Seq Load Model", type(model).__name__)
        try:
            frames_at = [int(x) for x in str(image_frames).split(",") if x.strip()] or None
        except ValueError:
            raise Syn2SeqInputError("image_frames", "comma-separated integers, e.g. 0,-1", repr(image_frames)) from None
        height, width = model.size
        pictures = convert.image_to_frames(images, "images")
        fitted = torch.stack([fit_image(p, width, height) for p in pictures])
        track = cameras.resize_and_center_crop((width, height))
        sequence = image_sequence(fitted, track, frames_at)
        core_model = model.ready(min(len(sequence), model.window), history_guidance, float(guidance_scale))
        step = progress.step_callback(int(steps), core_model.config)
        with management.measured(model, f"image to video ({len(sequence)} frames, {mode})") as tick:
            def callback(info: dict) -> None:
                tick()
                step(info)

            frames = image_to_video(core_model, sequence, mode=mode, keyframe_density=float(keyframe_density),
                                   steps=int(steps), scheduling=scheduling, guidance=history_guidance,
                                   guidance_scale=float(guidance_scale), stabilization=float(stabilization),
                                   seed=int(seed), dtype=model.compute_dtype, callback=callback)
        return io.NodeOutput(convert.frames_to_image(frames), track)


NODES = [Syn2SeqLoadModel, Syn2SeqSampler, Syn2SeqConditionalMean, Syn2SeqImageToVideo]
