"""``wan``: Wan first-last-frame-to-video ("WFLF", the paper's transition interpolator) through diffusers.

The optional ``wan`` extra (``pip install 'syn2seq[wan]'``: diffusers, transformers, accelerate) runs
diffusers' ``WanImageToVideoPipeline`` with ``last_image``, from local files only; nothing is downloaded:

* ``model=DIR``: a diffusers-format folder (``model_index.json``, ``transformer/``, ``vae/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``, and ``image_encoder/`` + ``image_processor/`` when
  its ``model_index.json`` names them, as Wan 2.1 FLF2V / I2V do), e.g. a copy of
  ``Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers``;
* ``transformer_file=FILE`` as well: a single-file Wan transformer as ComfyUI keeps them
  (``ComfyUI/models/diffusion_models/wan2.1_flf2v_720p_14B_fp16.safetensors``), loaded with diffusers'
  ``WanTransformer3DModel.from_single_file(..., config=DIR, subfolder="transformer")``; the folder then
  supplies the rest, and its ``transformer/`` needs only ``config.json``. diffusers' converter does not
  map the FLF2V image-position table ``img_emb.emb_pos``; it is renamed here, and a transformer left with
  unloaded parameters is refused.

One call per pair: Wan generates ``wan_length(n)`` frames (``4k + 1``, at least ``min_length``) at
:func:`~.wan.wan_size` of the input (multiples of the VAE x patch factor read from the pipeline, at most
``max_area`` pixels), the clip is resized back to the input size, :func:`~.wan.wan_to_transition` (or
:func:`~.wan.wan_frames_at` for other times) picks the transition frames, both endpoints excluded, and
:func:`~.wan.match_color` removes the clip's colour drift (``color_match=True``, the default).

The prompt is encoded once per interpolator (UMT5, the pipeline's own tokenizer and text encoder) and
reused for every pair; every pair is drawn from ``seed``, so a pair's frames do not depend on its
neighbours. On CUDA the transformer and text encoder run in bf16 (the VAE and image encoder in float32,
as Wan's reference does) with diffusers' model CPU offload (accelerate), which keeps one component at a
time on the GPU; on the CPU everything is float32.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import limits
from ..base.errors import Syn2SeqInputError, check_choice, require
from ..geometry.slerp import transition_times
from .wan import (COLOR_SPACES, DEFAULT_COLOR_SPACE, MODES, WAN_MIN_LENGTH, match_color, wan_frames_at, wan_length,
                  wan_size, wan_to_transition)

DEFAULT_PROMPT = "a smooth, continuous camera move between two views of the same scene"
DEFAULT_NEGATIVE_PROMPT = "static, jump cut, flicker, colour shift, blurry, distorted, low quality"
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 5.5  # diffusers' Wan 2.1 FLF2V example
DEFAULT_MAX_AREA = 1280 * 720  # the FLF2V-14B-720P training size
MAX_SEQUENCE_LENGTH = 512  # Wan's UMT5 context
DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}
PIPELINE_CLASS = "WanImageToVideoPipeline"
# Components kept in float32 whatever the dtype (Wan's reference runs its VAE and CLIP in float32).
FLOAT32_COMPONENTS = ("vae", "image_encoder")
# Components without weights, and the weight files a component folder must hold.
NO_WEIGHTS = ("tokenizer", "scheduler", "image_processor")
WEIGHT_SUFFIX = ".safetensors"
# diffusers' single-file converter (0.42) leaves this Wan 2.1 FLF2V key unmapped.
FLF_POS_KEY, FLF_POS_TARGET = "img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"
COMFY_PREFIX = "model.diffusion_model."

_LAYOUT = ("a diffusers-format Wan first-last-frame (or image-to-video) folder: model_index.json naming "
           f"{PIPELINE_CLASS}, and the folders transformer/, vae/, text_encoder/, tokenizer/, scheduler/ (plus "
           "image_encoder/ and image_processor/ when model_index.json lists them), each with its config and "
           "*.safetensors weights")
_OFFLINE = ("Nothing is downloaded: copy such a folder from a machine with internet (e.g. `hf "
            "download Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers --local-dir DIR`) and pass it as model=DIR "
            "(--wan-model DIR). To use ComfyUI's single-file transformer "
            "(models/diffusion_models/*.safetensors) pass it as transformer_file= (--wan-transformer); the "
            "folder's transformer/ then needs only config.json")


def _dependencies() -> None:
    missing = [m for m in ("diffusers", "transformers", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise Syn2SeqInputError("the 'wan' interpolator", "diffusers, transformers and accelerate installed",
                                f"missing {missing}", "pip install 'syn2seq[wan]'")


def _component_has_weights(folder: Path) -> bool:
    return any(p.name.endswith(WEIGHT_SUFFIX) for p in folder.iterdir() if p.is_file())


def check_model_folder(model, transformer_file=None) -> Path:
    """Check a local diffusers Wan folder before diffusers reads it; returns it. Names what is missing."""
    if model is None:
        raise Syn2SeqInputError("Wan model folder", _LAYOUT, "none given (model=None / no --wan-model)", _OFFLINE)
    folder = Path(model).expanduser()
    if not folder.is_dir():
        found = f"'{folder}', a file" if folder.exists() else f"no folder at '{folder}'"
        raise Syn2SeqInputError("Wan model folder", _LAYOUT, found, _OFFLINE)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise Syn2SeqInputError("Wan model folder", _LAYOUT, f"'{folder}' without model_index.json", _OFFLINE)
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Syn2SeqInputError("Wan model folder", _LAYOUT, f"an unreadable {index_path} ({e})", _OFFLINE) from None
    require(isinstance(index, dict), "Wan model folder", _LAYOUT, f"{index_path} holding {type(index).__name__}")
    cls = index.get("_class_name")
    require(cls == PIPELINE_CLASS, "Wan model folder", f"a {PIPELINE_CLASS} (first-last-frame or image-to-video) model",
            f"'{folder}' holding a {cls}", "Text-to-video Wan models cannot take a last frame; use a Wan 2.1 "
            "FLF2V (or I2V) model")
    require(not index.get("expand_timesteps"), "Wan model folder", "a model that conditions on the last frame",
            f"'{folder}' with expand_timesteps=true (Wan 2.2 TI2V-5B), whose diffusers pipeline ignores last_image",
            "Use Wan 2.1 FLF2V-14B (or another I2V model without expand_timesteps)")
    missing = []
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
            continue
        sub = folder / name
        if name == "transformer" and transformer_file is not None:
            if not (sub / "config.json").is_file():
                missing.append(f"{name}/config.json")
        elif not sub.is_dir():
            missing.append(f"{name}/")
        elif name not in NO_WEIGHTS and not _component_has_weights(sub):
            missing.append(f"{name}/*{WEIGHT_SUFFIX}")
    if missing:
        raise Syn2SeqInputError("Wan model folder", _LAYOUT, f"'{folder}' lacking {missing}", _OFFLINE)
    return folder


def _read_transformer_file(path) -> dict[str, Tensor]:
    """The tensors of a single-file Wan transformer (safetensors only), FLF2V key fixed for diffusers."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise Syn2SeqInputError("Wan transformer file", "an existing .safetensors file (e.g. from "
                                "ComfyUI/models/diffusion_models/)", f"no file at '{p}'", _OFFLINE)
    require(p.suffix.lower() == WEIGHT_SUFFIX, "Wan transformer file", "a .safetensors file (never unpickled)",
            f"'{p.name}'", "ComfyUI's repackaged Wan files are .safetensors; convert other formats first")
    from safetensors.torch import load_file

    try:
        state = load_file(str(p), device="cpu")
    except Exception as e:  # safetensors raises several types for a damaged or foreign file
        detail = " ".join(str(e).split())[:300]
        raise Syn2SeqInputError("Wan transformer file", "a readable safetensors file", f"'{p}' ({type(e).__name__}: "
                                f"{detail})") from None
    scaled = [k for k in state if k.endswith("scale_weight") or k == "scaled_fp8"]
    if scaled:
        raise Syn2SeqInputError("Wan transformer file", "fp16/bf16 (or plain fp8) weights",
                                f"'{p.name}', ComfyUI's scaled-fp8 format ({len(scaled)} scale tensors)",
                                "Use the fp16 or bf16 file of the same model")
    for prefix in ("", COMFY_PREFIX):
        if prefix + FLF_POS_KEY in state:
            state[prefix + FLF_POS_TARGET] = state.pop(prefix + FLF_POS_KEY)
    return state


def _load_error(what: str, where: str, e: Exception) -> Syn2SeqInputError:
    detail = " ".join(str(e).split())[:400]
    return Syn2SeqInputError(what, _LAYOUT, f"'{where}' that diffusers cannot load ({type(e).__name__}: {detail})",
                             _OFFLINE)


def _dtype_keyword() -> str:
    """diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` (the old name still works there, with a warning)."""
    from diffusers import __version__

    major_minor = tuple(int(p) for p in re.findall(r"\d+", __version__)[:2])
    return "dtype" if major_minor >= (0, 42) else "torch_dtype"


def load_wan_pipeline(model, transformer_file=None, dtype: torch.dtype = torch.float32):
    """diffusers' ``WanImageToVideoPipeline`` from local files only (see the module docstring)."""
    _dependencies()
    folder = check_model_folder(model, transformer_file)
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    dtypes = {"default": dtype, **{name: torch.float32 for name in FLOAT32_COMPONENTS}}
    components = {}
    if transformer_file is not None:
        state = _read_transformer_file(transformer_file)
        try:
            transformer = WanTransformer3DModel.from_single_file(state, config=str(folder), subfolder="transformer",
                                                                 local_files_only=True)
        except NotImplementedError as e:  # a parameter the file lacks stays on the meta device and cannot move
            if "meta" not in str(e):
                raise
            raise Syn2SeqInputError("Wan transformer file", f"weights for every parameter of {folder}/transformer",
                                    f"'{transformer_file}' lacking some of them", "Pair the file with the folder of "
                                    "the same model (FLF2V, I2V) and size") from None
        except Exception as e:  # diffusers raises ValueError/OSError/RuntimeError/KeyError for a mismatched file
            raise Syn2SeqInputError("Wan transformer file", f"a Wan transformer matching {folder}/transformer/config.json",
                                    f"'{transformer_file}' ({type(e).__name__}: {' '.join(str(e).split())[:300]})",
                                    "Pair the file with the folder of the same model and size (e.g. an FLF2V-14B "
                                    "file with Wan2.1-FLF2V-14B-720P-diffusers)") from None
        unloaded = [n for n, t in [*transformer.named_parameters(), *transformer.named_buffers()] if t.is_meta]
        if unloaded:  # should diffusers ever leave them without failing
            raise Syn2SeqInputError("Wan transformer file", f"weights for every parameter of {folder}/transformer",
                                    f"'{transformer_file}' lacking {len(unloaded)} of them, e.g. {unloaded[:3]}",
                                    "Pair the file with the folder of the same model (FLF2V, I2V) and size")
        if any(p.dtype != dtype for p in transformer.parameters() if p.is_floating_point()):
            transformer = transformer.to(dtype)
        components["transformer"] = transformer
    try:
        pipe = WanImageToVideoPipeline.from_pretrained(str(folder), **{_dtype_keyword(): dtypes},
                                                       local_files_only=True, use_safetensors=True, **components)
    except Syn2SeqInputError:
        raise
    except Exception as e:  # OSError (missing file), ValueError/TypeError/KeyError (foreign config), ImportError
        raise _load_error("Wan model folder", str(folder), e) from None
    require(pipe.transformer is not None, "Wan model folder", "a transformer", f"'{folder}' without one", _OFFLINE)
    return pipe


def _resize(x: Tensor, height: int, width: int) -> Tensor:
    """[N, 3, h, w] -> [N, 3, height, width], bilinear, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    shrink = height < x.shape[-2] or width < x.shape[-1]
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)


def _to_pil(x: Tensor):
    """[3, H, W] float RGB in [0, 1] -> an 8-bit PIL image (what the pipeline's CLIP and VAE inputs take)."""
    from PIL import Image

    u8 = (x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(u8)


class WanInterpolator:
    """Wan first-last-frame-to-video through diffusers (see the module docstring).

    model: local diffusers Wan folder; transformer_file: optional single-file transformer (ComfyUI's
    ``models/diffusion_models``). prompt / negative_prompt: text conditioning (negative used when
    ``guidance_scale > 1``). steps, guidance_scale, seed: sampling (ranges of ``syn2seq_core.base.limits``).
    dtype: "bf16" (default on CUDA), "fp16" or "fp32" (default on the CPU) for the transformer and text
    encoder. device: where it runs (default cuda when there is one, else cpu). cpu_offload: diffusers'
    model CPU offload (default on for CUDA; not available on the CPU). min_length: the shortest
    Wan clip (rounded up to 4k + 1). mode: "nearest" or "linear" Wan frames per time. color_match,
    color_space: colour-drift removal (:func:`~.wan.match_color`). max_area: most pixels Wan runs at.
    progress_bar: diffusers' per-step bar.
    """

    name = "wan"
    times_per_call = None  # one Wan clip gives every time of the pair

    def __init__(self, model: str | Path | None = None, transformer_file: str | Path | None = None,
                 prompt: str = DEFAULT_PROMPT, negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
                 steps: int = DEFAULT_STEPS, guidance_scale: float = DEFAULT_GUIDANCE, seed: int = 0,
                 dtype: str | None = None, device: str | None = None, cpu_offload: bool | None = None,
                 min_length: int = WAN_MIN_LENGTH, mode: str = "nearest", color_match: bool = True,
                 color_space: str = DEFAULT_COLOR_SPACE, max_area: int | None = DEFAULT_MAX_AREA,
                 progress_bar: bool = True):
        for text, label in ((prompt, "prompt"), (negative_prompt, "negative_prompt")):
            require(isinstance(text, str), label, "a string", type(text).__name__)
        self.steps = limits.check("steps", steps, "steps")
        self.guidance_scale = float(limits.check("guidance_scale", guidance_scale, "guidance_scale"))
        self.seed = limits.check("seed", seed, "seed")
        require(isinstance(min_length, int) and not isinstance(min_length, bool) and 1 <= min_length <= 1025,
                "min_length", "an int in [1, 1025]", repr(min_length))
        self.mode = check_choice(mode, MODES, "mode")
        self.color_space = check_choice(color_space, COLOR_SPACES, "color_space")
        self.color_match = bool(color_match)
        require(max_area is None or (isinstance(max_area, int) and max_area >= 256), "max_area",
                "None or an int >= 256 pixels", repr(max_area))
        self.device = torch.device(limits.check_device(device if device is not None else
                                                       ("cuda" if torch.cuda.is_available() else "cpu")))
        accel = self.device.type != "cpu"
        if dtype is None:
            dtype = "bf16" if accel else "fp32"
        self.dtype = DTYPES[check_choice(dtype, DTYPES, "dtype")]
        self.cpu_offload = self.device.type == "cuda" if cpu_offload is None else bool(cpu_offload)
        require(not (self.cpu_offload and not accel), "cpu_offload", "False on the CPU (it offloads to the CPU "
                "from an accelerator)", True, "Pass cpu_offload=False, or a device such as cuda")
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.min_length, self.max_area = min_length, max_area
        self.model = Path(model).expanduser() if model is not None else None
        self.transformer_file = Path(transformer_file).expanduser() if transformer_file is not None else None
        self.pipe = load_wan_pipeline(model, transformer_file, self.dtype)
        if self.cpu_offload:
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:
            self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=not progress_bar)
        self._embeds: tuple[Tensor, Tensor | None] | None = None

    @property
    def multiple(self) -> tuple[int, int]:
        """(height, width) multiples Wan's frames must have: VAE spatial factor x transformer patch size."""
        patch = self.pipe.transformer.config.patch_size
        s = self.pipe.vae_scale_factor_spatial
        return s * patch[1], s * patch[2]

    def _encode(self, text: str) -> Tensor:
        """[1, MAX_SEQUENCE_LENGTH, D] UMT5 states of ``text``, zero past its tokens (as Wan's pipeline does)."""
        text = " ".join(html.unescape(html.unescape(text)).split())
        pipe = self.pipe
        tokens = pipe.tokenizer([text], padding="max_length", max_length=MAX_SEQUENCE_LENGTH, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        device = pipe._execution_device
        mask = tokens.attention_mask.to(device)
        states = pipe.text_encoder(tokens.input_ids.to(device), mask).last_hidden_state
        return (states * mask[..., None].to(states.dtype)).to(self.dtype)

    def prompt_embeds(self) -> tuple[Tensor, Tensor | None]:
        """The encoded prompt and negative prompt (None without guidance), computed once."""
        if self._embeds is None:
            with torch.inference_mode():
                neg = self._encode(self.negative_prompt) if self.guidance_scale > 1 else None
                self._embeds = (self._encode(self.prompt), neg)
        return self._embeds

    def clip(self, first: Tensor, last: Tensor, length: int) -> Tensor:
        """The whole Wan clip of ``length`` (4k + 1) frames from each pair, endpoints included, at the input size.

        first, last: ``[B, 3, H, W]`` float RGB in [0, 1] -> ``[B, length, 3, H, W]`` float32 on the CPU.
        """
        require(isinstance(length, int) and length >= 5 and (length - 1) % 4 == 0, "Wan clip length",
                "4k + 1 frames, at least 5", length)
        b, _, h, w = first.shape
        wh, ww = wan_size(h, w, self.multiple, self.max_area)
        pos, neg = self.prompt_embeds()
        out = torch.empty(b, length, 3, h, w, dtype=torch.float32)
        for i in range(b):
            a = _resize(first[i:i + 1].detach().float().cpu(), wh, ww)[0]
            z = _resize(last[i:i + 1].detach().float().cpu(), wh, ww)[0]
            generator = torch.Generator("cpu").manual_seed(self.seed)
            video = self.pipe(image=_to_pil(a), last_image=_to_pil(z), prompt_embeds=pos,
                              negative_prompt_embeds=neg, height=wh, width=ww, num_frames=length,
                              num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                              generator=generator, output_type="pt").frames  # [1, L, 3, wh, ww] in [0, 1]
            require(tuple(video.shape) == (1, length, 3, wh, ww), "Wan output", f"shape (1, {length}, 3, {wh}, {ww})",
                    tuple(video.shape))
            out[i] = _resize(video[0].float().cpu(), h, w).clamp(0.0, 1.0)
        return out

    def __call__(self, first: Tensor, last: Tensor, times: Tensor) -> Tensor:
        """first, last: [B, 3, H, W] in [0, 1]; times: [n] -> [B, n, 3, H, W]."""
        n = len(times)
        times = times.to(torch.float64).cpu()
        clips = self.clip(first, last, wan_length(n, self.min_length))
        standard = torch.allclose(times, transition_times(n), rtol=0, atol=1e-12)
        frames = torch.stack([wan_to_transition(c, n, self.mode) if standard else wan_frames_at(c, times, self.mode)
                              for c in clips])
        if self.color_match:
            frames = match_color(frames, first.detach().float().cpu(), last.detach().float().cpu(), times,
                                 self.color_space)
        return frames.to(first.device, first.dtype).clamp(0.0, 1.0)
