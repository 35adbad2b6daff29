"""The Syn2Seq network under ComfyUI's model management.

The loader wraps the network in a ``comfy.model_patcher.ModelPatcher`` (as ComfyUI's own CLIP-vision and
model-patch loaders wrap plain modules) and builds its layers from ``comfy.ops``, so that ComfyUI's memory
manager owns it like any core model: the weights wait on the offload device, ``load_models_gpu`` moves them to
the compute device when a node samples (making room first, by offloading other models, for the weights plus
the working memory a sequence of that size needs), offloads them when another model needs the memory, frees
them on ``POST /free``, and under ``--lowvram`` / ``--novram`` keeps part of them on the CPU and casts each
layer's weights to the GPU as it runs. ``--cpu`` keeps everything on the CPU.

Precision: the weights are stored in ``weight_dtype`` (``auto`` = ComfyUI's choice for the device, as for its
diffusion models: bf16 where the device supports it, else fp16, fp32 on the CPU). Sampling computes in
:func:`compute_dtype`: bf16 autocast where the device computes bf16 natively, float32 everywhere else, never
fp16 (``docs/comfyui.md`` gives the measured differences against fp32 and the reason).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref

WEIGHT_DTYPES = ("auto", "fp32", "bf16", "fp16")
LOG = logging.getLogger("syn2seq")
# Patcher -> what /syn2seq/models reports about it. Weak keys and plain values: no reference keeps a network
# alive after ComfyUI lets go of it (a cycle would delay freeing until the garbage collector runs).
_PATCHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def weight_dtype_for(name: str, load_device, parameters: int):
    """The storage dtype for a ``weight_dtype`` choice on ``load_device``."""
    import comfy.model_management as mm
    import torch

    if name == "auto":
        return mm.unet_dtype(device=load_device, model_params=parameters,
                             supported_dtypes=[torch.bfloat16, torch.float16, torch.float32])
    return _torch_dtype(name)


def compute_dtype(load_device):
    """The dtype sampling computes in on ``load_device``: bf16 (autocast) where it is native, else float32."""
    from ..syn2seq_core.generation.pipeline import default_autocast_dtype

    return default_autocast_dtype(load_device)


class ManagedModel:
    """What the SYN2SEQ_MODEL socket carries inside ComfyUI: the core model (``model``), the ``patcher`` through
    which ComfyUI's memory manager loads and offloads its network, and the chosen dtypes."""

    def __init__(self, model, patcher, weight_dtype, compute_dtype, name: str):
        self.model = model
        self.patcher = patcher
        self.weight_dtype = weight_dtype
        self.compute_dtype = compute_dtype
        self.name = name

    @property
    def size(self) -> tuple[int, int]:
        return self.model.size

    @property
    def window(self) -> int:
        return self.model.window

    def memory_required(self, frames: int, guidance: str = "conditional", guidance_scale: float = 1.0) -> int:
        """Working memory (bytes, beyond the weights) of sampling ``frames`` frames with ``guidance``."""
        return self.model.memory_required(frames, guidance=guidance, guidance_scale=guidance_scale,
                                          dtype=self.compute_dtype)

    def ready(self, frames: int, guidance: str = "conditional", guidance_scale: float = 1.0):
        """The core model, its network loaded on the compute device by ComfyUI (which first makes room for the
        weights and :meth:`memory_required`); call it at the start of every node run that samples."""
        import comfy.model_management as mm

        need = self.memory_required(frames, guidance, guidance_scale)
        mm.load_models_gpu([self.patcher], memory_required=need)
        self.model.execution_device = self.patcher.load_device
        LOG.debug("syn2seq: %s on %s, %.1f MiB of weights loaded, %.1f MiB working memory requested",
                  self.name, self.patcher.load_device, self.patcher.loaded_size() / 2**20, need / 2**20)
        return self.model


@contextlib.contextmanager
def measured(model: ManagedModel, what: str):
    """Log how long the sampling inside took per step and, on CUDA, its peak of allocated device memory (one INFO
    line, e.g. for benchmarks reading ComfyUI's log). Yields ``tick()``, to be called once per step."""
    import torch

    device = torch.device(model.patcher.load_device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    steps = [0]
    start = time.perf_counter()
    yield lambda: steps.__setitem__(0, steps[0] + 1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    peak = (f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated on {device}"
            if device.type == "cuda" else f" on {device}")
    LOG.info("syn2seq: %s: %d steps in %.2f s (%.4f s/step), %s weights, %s compute%s", what, steps[0], elapsed,
             elapsed / max(steps[0], 1), str(model.weight_dtype).removeprefix("torch."),
             str(model.compute_dtype).removeprefix("torch."), peak)


def load(path, weight_dtype: str = "auto", name: str = "", lora=None) -> ManagedModel:
    """Load a model file (None = the bundled model), with a LoRA file's adapters merged in, for ComfyUI's memory
    manager; nothing goes to the GPU yet."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops
    import torch

    from ..syn2seq_core.dfot.checkpoint import build_model, read_config
    from ..syn2seq_core.generation.pipeline import BUNDLED_MODEL, load_model

    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    file = path if path is not None else BUNDLED_MODEL
    config = read_config(file)
    parameters = sum(v.numel() for v in build_model(config, device="meta").parameters())
    dtype = weight_dtype_for(weight_dtype, load_device, parameters)
    compute = compute_dtype(load_device)
    # Autocast computes the matrix products in `compute`; outside autocast the layers cast their weights to
    # the float32 input. Either way the layers must accept weights stored in another dtype, on another device.
    ops = comfy.ops.pick_operations(dtype, None if compute == dtype else compute, load_device=load_device)
    model = load_model(path, device=offload_device, dtype=dtype, operations=ops, lora=lora)
    model.network.compute_dtype = torch.float32
    patcher = comfy.model_patcher.ModelPatcher(model.network, load_device=load_device, offload_device=offload_device)
    name = (name or str(file)) + (f" + {os.path.basename(str(lora))}" if lora is not None else "")
    _PATCHERS[patcher] = {"name": name, "weight_dtype": str(dtype).removeprefix("torch."),
                          "compute_dtype": str(compute).removeprefix("torch.")}
    LOG.info("syn2seq: loaded %s (%.1fM parameters) as %s weights, computing in %s on %s", name or file,
             parameters / 1e6, str(dtype).removeprefix("torch."), str(compute).removeprefix("torch."), load_device)
    return ManagedModel(model, patcher, dtype, compute, name or str(file))


def loaded_models() -> list[dict]:
    """The Syn2Seq networks in ComfyUI's list of loaded models: name, device, dtypes, bytes on the device."""
    import comfy.model_management as mm

    out = []
    for loaded in list(mm.current_loaded_models):
        patcher = loaded.model
        info = _PATCHERS.get(patcher) if patcher is not None else None
        if info is not None:
            out.append({**info, "device": str(loaded.device), "loaded_bytes": int(patcher.loaded_size()),
                        "model_bytes": int(patcher.model_size())})
    return out


def register_routes() -> None:
    """``GET /syn2seq/models``: JSON ``{"models": loaded_models()}``, which Syn2Seq networks ComfyUI holds where
    (for scripts and tests; the same list ComfyUI's memory manager offloads from). No-op without a server."""
    import sys

    module = sys.modules.get("server")  # ComfyUI's server module, imported by main.py before packs load
    server = getattr(getattr(module, "PromptServer", None), "instance", None)
    if server is None or getattr(register_routes, "done", False):
        return
    from aiohttp import web

    @server.routes.get("/syn2seq/models")
    async def models(request):
        return web.json_response({"models": loaded_models()})

    register_routes.done = True
