"""The generator as users call it: a DFoT network + its noise schedule, turning Syn2Seq sequences into video.

``load_model(path=None)`` loads a safetensors model (None = the bundled one); ``model.generate(sequence)``
fills the frames a sequence marks for generation (the transition and the target view), with the source
view as clean context and the whole camera track as Plücker rays. The same object also provides what
training needs (``build_network``, ``training_step_loss``), so train and test see frames, rays and
normalisation in exactly the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import conventions as C
from ..base.errors import Syn2SeqInputError, require
from ..dfot.sampler import accepts_keyword
from ..dfot.schedule import TIME_GRIDS
from .sequence import Syn2SeqSequence

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # syn2seq_core/assets
DEFAULT_STEPS = 25
# "pack": the rays of a cropped frame use the intrinsics of the crop (renormalised: the pixels' true rays), as
# the pack's training does. "re10k": the normalised intrinsics of the frame *before* its centre crop, applied
# to the crop, as DFoT's RealEstate10K loader feeds its model (it crops to a square without renormalising);
# converted DFoT RealEstate10K checkpoints carry it. For 16:9 footage the two differ in focal length by 1.78x.
CAMERA_CONVENTIONS = ("pack", "re10k")
BUNDLED_MODEL = ASSETS / "models" / "syn2seq_synthetic_tiny.safetensors"
# Seeds of the synthetic world at or above this are never used for training: held-out takes live here.
HELDOUT_SEED_BASE = 1 << 30


def build_network(model_cfg: dict):
    """A fresh network from a config table: ``{"arch": "dit3d" | "uvit3d_pose", "preset": ..., **field
    overrides}`` (:func:`~syn2seq_core.dfot.checkpoint.config_from_table`)."""
    from ..dfot.checkpoint import build_model, config_from_table

    return build_model(config_from_table(model_cfg))


def ray_input(config, K: Tensor, c2w: Tensor, height: int, width: int, fisheye=None) -> Tensor:
    """The camera input a network of ``config`` takes: K [..., T, 4], c2w [..., T, 4, 4] already relative to
    the reference camera -> [..., T, H, W, R]: Plücker rays for ``plucker_*`` ray formats, DFoT's
    180-channel encoding for ``dfot_ray_encoding``. Used by sampling and training alike."""
    fmt = getattr(config, "ray_format", "plucker_dm")
    if fmt.startswith("plucker_"):
        from ..geometry.plucker import plucker_rays

        return plucker_rays(K, c2w, height, width, fmt[-2:], fisheye)
    from ..dfot.embeddings import dfot_ray_encoding

    require(fisheye is None, "cameras", f"pinhole cameras for a network with ray format {fmt}", "fisheye cameras",
            "Undistort the frames first")
    return dfot_ray_encoding(K.float(), c2w.float(), height, width)


def sequence_ray_input(config, sequence: Syn2SeqSequence, reference: int = 0) -> Tensor:
    """[T, H, W, R] float32 camera input of a sequence for a network of ``config``, relative to frame
    ``reference``; zero where a pose is unknown."""
    fmt = getattr(config, "ray_format", "plucker_dm")
    if fmt.startswith("plucker_"):
        rays = sequence.rays(config.height, config.width, order=fmt[-2:], reference=reference).to(torch.float32)
    else:
        cams = sequence.cameras.relative_to(sequence.cameras.c2w[reference])
        rays = ray_input(config, cams.K.float(), cams.c2w.float(), config.height, config.width, cams.fisheye)
        rays = rays * sequence.pose_known.to(rays.dtype)[:, None, None, None]
    if config.cue == "none":
        return rays
    require(sequence.cue is not None, "sequence", f"the source view's depth for this model's {config.cue} cue",
            "a sequence without it", "Give the source view's depth: a take's <view>_depth.safetensors "
            "(syn2seq render-synthetic writes it), Syn2SeqSequence.with_depth_cue, or in ComfyUI Syn2Seq Load "
            "Take's exo_depth into Syn2Seq Build Sequence's source_depth")
    return torch.cat([rays, cue_input(config, sequence.cue)], -1)


def cue_input(config, cue: Tensor) -> Tensor:
    """[..., T, 4, H, W] cue (RGB in [0, 1], coverage) -> [..., T, H, W, 4] network input: the RGB in model space,
    zero where nothing landed, and the coverage."""
    rgb, coverage = cue[..., :3, :, :].float(), cue[..., 3:, :, :].float()
    if tuple(cue.shape[-2:]) != (config.height, config.width):
        raise Syn2SeqInputError("cue", f"maps of {config.width}x{config.height}", f"{cue.shape[-1]}x{cue.shape[-2]}")
    x = torch.cat([to_model_space(rgb, config) * coverage, coverage], -3)
    return x.movedim(-3, -1)


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def default_autocast_dtype(device: torch.device) -> torch.dtype:
    """Sampling's autocast dtype: bf16 where the hardware computes it natively (CUDA with bf16, a CPU with
    AVX512-BF16 or AMX), else float32 (no autocast). An emulated bf16 is no saving: on an AVX2-only CPU a
    bf16 linear layer runs about 10x slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else torch.float32
    return torch.float32


def unwrap(net):
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return getattr(net, "module", net)


def to_model_space(frames: Tensor, config) -> Tensor:
    """[..., C, H, W] in [0, 1] -> the network's normalised space."""
    mean = torch.tensor(config.data_mean, dtype=frames.dtype, device=frames.device)[:, None, None]
    std = torch.tensor(config.data_std, dtype=frames.dtype, device=frames.device)[:, None, None]
    return (frames - mean) / std


def from_model_space(x: Tensor, config) -> Tensor:
    mean = torch.tensor(config.data_mean, dtype=x.dtype, device=x.device)[:, None, None]
    std = torch.tensor(config.data_std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x * std + mean).clamp(0, 1)


def resize_frames(frames: Tensor, height: int, width: int) -> Tensor:
    """[T, 3, h, w] -> [T, 3, height, width] (antialiased bilinear); a no-op at the same size."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


@dataclass(frozen=True)
class TrainingBatch:
    """frames [B, T, 3, H, W] in [0, 1]; rays [B, T, H, W, 6]; noise_t [B, T] in [0, 1];
    loss_mask [B, T] frame weights; roles [B, T] (0 exo / 1 transition / 2 ego; all 0 for single-view clips)."""

    frames: Tensor
    rays: Tensor
    noise_t: Tensor
    loss_mask: Tensor
    roles: Tensor

    def to(self, device) -> "TrainingBatch":
        return TrainingBatch(*(getattr(self, f).to(device) for f in ("frames", "rays", "noise_t", "loss_mask",
                                                                       "roles")))

    @staticmethod
    def cat(batches: list["TrainingBatch"]) -> "TrainingBatch":
        return TrainingBatch(*(torch.cat([getattr(b, f) for b in batches]) for f in ("frames", "rays", "noise_t",
                                                                                     "loss_mask", "roles")))

    def split(self, parts: int) -> list["TrainingBatch"]:
        """``parts`` consecutive micro-batches of equal size (gradient accumulation)."""
        n = self.frames.shape[0]
        require(n % parts == 0, "batch", f"a size divisible by {parts} micro-batches", n)
        fields = [getattr(self, f).chunk(parts) for f in ("frames", "rays", "noise_t", "loss_mask", "roles")]
        return [TrainingBatch(*chunk) for chunk in zip(*fields)]


def training_step_loss(net, batch: TrainingBatch, generator: torch.Generator | None = None, schedule=None,
                       weighting: str = "sigmoid", noise: Tensor | None = None):
    """The diffusion-forcing loss of one batch. Returns (loss, {"loss_exo": ..., "loss_ego": ...}).
    noise: [B, T, C, H, W] in model space, instead of drawing it from ``generator``."""
    loss, frame_loss = _batch_loss(net, batch, generator, schedule, weighting, noise)
    return loss, role_losses(frame_loss, batch)


def _batch_loss(net, batch: TrainingBatch, generator, schedule, weighting: str, noise: Tensor | None,
                pose_drop: Tensor | None = None):
    from ..dfot.objective import diffusion_loss

    config = unwrap(net).config
    x0 = to_model_space(batch.frames, config)
    denoiser = net if pose_drop is None else (lambda x, logsnr, rays: net(x, logsnr, rays, pose_mask=pose_drop))
    loss, info = diffusion_loss(denoiser, x0, rays=batch.rays, noise_t=batch.noise_t, loss_mask=batch.loss_mask,
                                schedule=schedule, generator=generator, weighting=weighting, noise=noise)
    return loss, info["frame_loss"]


def role_losses(frame_loss: Tensor, batch: TrainingBatch) -> dict[str, Tensor]:
    """{"loss_exo": ..., "loss_transition": ..., "loss_ego": ...}: the mean per-frame loss of each frame role
    among the frames with a loss (detached); roles absent from the batch are left out."""
    parts = {}
    for role, name in C.ROLE_NAMES.items():
        sel = (batch.roles == role) & (batch.loss_mask > 0)
        if bool(sel.any()):
            parts[f"loss_{name}"] = frame_loss[sel].mean().detach()
    return parts


def accumulated_backward(net, batch: TrainingBatch, generator: torch.Generator | None, schedule, weighting: str,
                         micro_batches: int = 1, autocast=None, *, noise: Tensor | None = None,
                         pose_drop: Tensor | None = None, weight_total: Tensor | None = None, world: int = 1):
    """Forward and backward of one optimiser step's batch in ``micro_batches`` consecutive parts (gradient
    accumulation: the memory of one part). The gradients equal those of the whole batch at once (up to float
    summation order): the noise of the whole batch is drawn first (or given: ``noise``), and each part's loss
    is weighted by its share of the loss weights. Across ``world`` processes (DDP or FSDP2), each holding part
    of the global batch whose loss weights sum to ``weight_total``, the loss is scaled so that the gradient
    average is the gradient of the global batch; the gradients are all-reduced (DDP) or reduce-scattered
    (FSDP2) once, after the last part.
    ``pose_drop`` [B] bool: the videos whose pose is dropped. ``autocast``: a context-manager factory around
    each forward. Returns (this process's share of the loss, already scaled so that the sum over processes /
    world is the global loss, and the per-role parts)."""
    import contextlib

    from ..dfot.sampler import randn

    autocast = autocast or contextlib.nullcontext
    if noise is None:
        noise = randn(batch.frames.shape, generator, batch.frames.device, torch.float32)
    total = (batch.loss_mask.sum() if weight_total is None else weight_total).clamp(min=1e-8)
    loss_sum, frame_losses = torch.zeros((), device=batch.frames.device), []
    drops = [None] * micro_batches if pose_drop is None else pose_drop.chunk(micro_batches)
    parts = list(zip(batch.split(micro_batches), noise.chunk(micro_batches), drops))
    for i, (micro, micro_noise, drop) in enumerate(parts):
        last = i == len(parts) - 1
        wrapped = getattr(net, "_orig_mod", net)  # under torch.compile
        if hasattr(wrapped, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter after the last part only
            wrapped.set_requires_gradient_sync(last)
        sync = contextlib.nullcontext() if last or not hasattr(wrapped, "no_sync") else wrapped.no_sync()
        with sync:
            with autocast():
                loss, frame_loss = _batch_loss(net, micro, None, schedule, weighting, micro_noise, drop)
                loss = loss * (world * micro.loss_mask.sum() / total)
            loss.backward()
        loss_sum += loss.detach()
        frame_losses.append(frame_loss)
    return loss_sum, role_losses(torch.cat(frame_losses), batch)


def _check_sampling(steps, guidance_scale, eta, seed, matrix: bool = False, stabilization: float = 0.0) -> None:
    """The sampling numbers a user gives, against :mod:`syn2seq_core.base.limits` (before any allocation)."""
    from ..base import limits

    if not matrix:
        limits.check("steps", steps)
    limits.check("guidance_scale", guidance_scale)
    limits.check("stabilization", stabilization)
    limits.check("eta", eta)
    limits.check("seed", seed)


class Syn2SeqModel:
    """A loaded generator: ``network`` (DiT3D), its noise ``schedule`` and training metadata ``info``."""

    def __init__(self, network, schedule=None, info: dict | None = None, path: Path | None = None,
                 default_steps: int = 25, camera_convention: str = "pack", default_eta: float = 0.0):
        from ..dfot.schedule import NoiseSchedule

        self.network = network.eval()
        self.schedule = schedule or NoiseSchedule()
        self.info = info or {}
        self.path = path
        # Sampling steps when a caller gives none: 25 for the pack's models, DFoT's 50 on its reference grid
        # for converted DFoT checkpoints (their schedule's grid is "dfot_ddim").
        self.default_steps = int(default_steps)
        # DDIM stochasticity when a caller gives none (0 deterministic, 1 ancestral): a model may record the one
        # its samples are best with (the bundled model: 1, MODEL_CARD.md).
        self.default_eta = float(default_eta)
        # How the network expects intrinsics of centre-cropped frames (CAMERA_CONVENTIONS).
        self.camera_convention = camera_convention
        # Where sampling runs. None: where the network's weights are. A host that keeps part of the weights on
        # an offload device and streams them per layer (ComfyUI's low-VRAM modes) sets its compute device.
        self.execution_device: torch.device | None = None

    @property
    def config(self):
        return self.network.config

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the model generates."""
        return self.config.height, self.config.width

    @property
    def window(self) -> int:
        return self.config.max_frames

    @property
    def data(self) -> dict:
        """The [data] table the model was trained with (frame counts per segment, ...), or {}."""
        return self.info.get("config", {}).get("data", {})

    @property
    def transition_frames(self) -> int:
        """Transition frames the model was trained with (0 for a direct exo -> ego model)."""
        if self.data.get("transition") == "none":
            return 0
        return int(self.data.get("transition_frames", 4))

    @property
    def cue_optional(self) -> bool:
        """Whether this model runs without its cue's input (a take without depth): true for a network without a
        cue, and for a cue network trained with the cue dropped from a share of its sequences
        (``[data] cue_dropout_prob`` > 0 in its training record), which then reads the empty cue."""
        return self.config.cue == "none" or float(self.data.get("cue_dropout_prob", 0.0)) > 0

    def without_cue(self, sequence: Syn2SeqSequence, why: str = "a sequence without it") -> Syn2SeqSequence:
        """``sequence`` for this model where the cue's input (the source view's depth) is missing: with the empty
        cue if the model was trained for it (:attr:`cue_optional`), else an error naming the model and what it
        needs. why: what lacks the depth (for the error)."""
        if self.config.cue == "none":
            return sequence
        name = f"'{self.path}'" if self.path is not None else "the bundled model"
        require(self.cue_optional, f"model {name}", f"the source view's depth for its {self.config.cue} cue (it "
                "was trained with the cue always present)", why,
                "Give the source view's depth: a take's <view>_depth.safetensors (syn2seq render-synthetic writes "
                "it), Syn2SeqSequence.with_depth_cue, or in ComfyUI Syn2Seq Load Take's exo_depth into Syn2Seq "
                "Build Sequence's source_depth; or use a model trained with [data] cue_dropout_prob > 0")
        return sequence.with_empty_cue()

    def sequence_mode(self, direction: str) -> str:
        """The sequence layout this model was trained on, for ``direction``: the Syn2Seq mode itself
        ("exo2ego"/"ego2exo"), or "video_only" for a model trained with transition frames but no transition
        poses (the ablation; its transition frames get no rays at inference either), or "direct" for a model
        trained without transition frames."""
        if self.data.get("transition") == "none":
            return "direct"
        if self.data.get("pose_interpolation", True) is False:
            return "video_only"
        return direction

    @property
    def device(self) -> torch.device:
        if self.execution_device is not None:
            return torch.device(self.execution_device)
        return next(self.network.parameters()).device

    def memory_required(self, frames: int, *, guidance: str = "conditional", guidance_scale: float = 1.0,
                        samples: int = 1, dtype: torch.dtype | None = None) -> int:
        """Bytes of working memory one sampling call needs on the device, beyond the weights, for a sequence of
        ``frames`` frames (windows of at most :attr:`window`) under ``guidance`` at ``guidance_scale`` (its
        branches are batched, so memory grows with their number): the network's activations at their peak (with
        a 20% margin), the sampler's per-frame tensors, and the low-precision weight copies autocast keeps when
        ``dtype`` (default :func:`default_autocast_dtype` of :attr:`device`) differs from the weights' dtype, and the
        cache the sampler keeps for a window (``sampling_cache_bytes``: the rays' part of every FiLM, and the U-ViT's
        per-frame down path). A host (ComfyUI's model management) makes this
        much room before sampling."""
        from ..dfot.guidance import history_guidance

        T = max(1, min(int(frames), self.window))
        batch = int(samples) * history_guidance(guidance, scale=float(guidance_scale)).nfe
        c = self.config
        activations = int(1.2 * self.network.activation_bytes(T, batch))
        # state, context, x0, v, eps, update and two branch-stacked copies, float32; rays for every branch.
        sampler = 4 * int(samples) * T * c.height * c.width * (8 * c.in_channels + 2 * batch * c.cond_channels)
        autocast_dtype = dtype if dtype is not None else default_autocast_dtype(self.device)
        copies = 0
        if autocast_dtype != torch.float32:
            copies = sum(p.numel() * autocast_dtype.itemsize for p in self.network.parameters()
                         if p.is_floating_point() and p.dtype != autocast_dtype)
        compute = autocast_dtype if autocast_dtype != torch.float32 else (
            getattr(self.network, "compute_dtype", None) or next(self.network.parameters()).dtype)
        kept = self.network.sampling_cache_bytes(T, batch, compute.itemsize) if hasattr(
            self.network, "sampling_cache_bytes") else 0
        return activations + sampler + copies + kept

    def denoiser(self, x_t: Tensor, logsnr: Tensor, rays: Tensor | None, *, pose_mask: Tensor | None = None,
                 cache: dict | None = None, needed: Tensor | None = None) -> Tensor:
        """The sampler's denoiser; ``pose_mask`` [B] drops the pose of some videos (guidance in one call); ``cache``:
        the sampling run's dict, where the network keeps what depends only on the rays (``DiT3D.forward``);
        ``needed`` [B, T] bool: the frames whose output the sampler reads (``UViT3DPose.forward``)."""
        extra = {}
        if cache is not None:
            extra["cache"] = cache
        if needed is not None and accepts_keyword(self.network, "needed"):
            extra["needed"] = needed
        return self.network(x_t, logsnr, rays, pose_mask=pose_mask, **extra)

    def _rays(self, sequence: Syn2SeqSequence, reference: int = 0) -> Tensor:
        """[T, H, W, R] the camera input of this network: Plücker rays relative to the sequence's first
        camera (zero where a pose is unknown), or the network's own encoding (DFoT's 180-channel rays), from the
        intrinsics of :attr:`camera_convention` (``CAMERA_CONVENTIONS``)."""
        if self.camera_convention == "re10k":  # the intrinsics of the uncropped frames, as DFoT's loader gives
            sequence = replace(sequence, cameras=sequence.cameras.with_uncropped_intrinsics())
        if self.config.cue != "none" and sequence.cue is None:
            sequence = self.without_cue(sequence)
        return sequence_ray_input(self.config, sequence, reference)

    def _check(self, sequence: Syn2SeqSequence) -> None:
        require(isinstance(sequence, Syn2SeqSequence), "sequence", "a Syn2SeqSequence", type(sequence).__name__)
        require((sequence.height, sequence.width) == self.size, "sequence", f"frames of {self.size[1]}x"
                f"{self.size[0]} (this model's size)", f"{sequence.width}x{sequence.height}",
                "Build the sequence from frames resized to the model's size (pipeline.resize_frames)")

    @torch.no_grad()
    def generate(self, sequence: Syn2SeqSequence, *, steps: int | None = None, scheduling: str = "full_sequence",
                 guidance: str = "conditional", guidance_scale: float = 1.0, fractional_level: float = 0.5,
                 stabilization: float = 0.0, seed: int = 0, eta: float | None = None, callback=None,
                 dtype: torch.dtype | None = None) -> Syn2SeqSequence:
        """Fill the frames of ``sequence`` whose context mask is 0. Returns a new sequence.

        steps: denoising steps (default :attr:`default_steps`); scheduling: a registered scheduling matrix (or a matrix [S+1, T]); guidance: history guidance
        (``conditional``, ``vanilla``, ``fractional``) with ``guidance_scale`` and ``fractional_level``;
        stabilization: noise time at which generated history frames are shown (DFoT's stabilized guidance for
        long rollouts, e.g. 0.02; 0 = clean); seed: all noise; callback(info) once per step with "step"/"total" (raise in it to cancel);
        dtype: autocast dtype (default :func:`default_autocast_dtype`: bf16 where native, else float32).
        """
        from ..dfot.guidance import history_guidance
        from ..dfot.sampler import sample
        from ..dfot.scheduling import scheduling_matrix

        self._check(sequence)
        steps = self.default_steps if steps is None else steps
        eta = self.default_eta if eta is None else eta
        _check_sampling(steps, guidance_scale, eta, seed, matrix=isinstance(scheduling, Tensor),
                        stabilization=stabilization)
        T = len(sequence)
        if T > self.window:  # window by window: collect the streamed rollout
            frames = sequence.frames.clone()
            for index, part in self.generate_stream(sequence, steps=steps, scheduling=scheduling, guidance=guidance,
                                                    guidance_scale=guidance_scale, fractional_level=fractional_level,
                                                    stabilization=stabilization, seed=seed, eta=eta, callback=callback,
                                                    dtype=dtype):
                frames[index] = part.to(frames.dtype)
            return self._filled(sequence, frames)
        device = self.device
        config = self.config
        guide = history_guidance(guidance, scale=float(guidance_scale), fractional_level=float(fractional_level),
                                 stabilization=float(stabilization))
        g = torch.Generator(device=device).manual_seed(int(seed))
        context = to_model_space(sequence.frames.to(device, torch.float32), config)[None]
        mask = sequence.context_mask.to(device)[None]
        autocast_dtype = dtype if dtype is not None else default_autocast_dtype(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
            rays = self._rays(sequence).to(device)[None]
            matrix = scheduling if isinstance(scheduling, Tensor) else scheduling_matrix(scheduling, int(steps), T)
            x0 = sample(self.denoiser, tuple(context.shape), matrix,
                        schedule=self.schedule, context=context, context_mask=mask, rays=rays,
                        guidance=guide, eta=eta, generator=g, callback=callback)
        frames = from_model_space(x0[0].float(), config).to(sequence.frames.dtype).cpu()
        return self._filled(sequence, frames)

    @staticmethod
    def _filled(sequence: Syn2SeqSequence, frames: Tensor) -> Syn2SeqSequence:
        """``sequence`` with its generated frames set from ``frames`` [T, 3, H, W] (context kept bit-identical)."""
        frames = torch.where((sequence.context_mask >= C.MASK_CONTEXT)[:, None, None, None], sequence.frames, frames)
        new_mask = torch.where(sequence.context_mask == C.MASK_GENERATE, C.MASK_GENERATED_CONTEXT,
                               sequence.context_mask)
        return replace(sequence, frames=frames, known=torch.ones_like(sequence.known), context_mask=new_mask)

    @torch.no_grad()
    def generate_stream(self, sequence: Syn2SeqSequence, *, read_frames=None, steps: int | None = None,
                        scheduling: str = "full_sequence", guidance: str = "conditional", guidance_scale: float = 1.0,
                        fractional_level: float = 0.5, stabilization: float = 0.0, seed: int = 0, eta: float | None = None,
                        callback=None, dtype: torch.dtype | None = None) -> Iterator[tuple[list[int], Tensor]]:
        """:meth:`generate`, frames yielded as they are finished: ``(indices, frames [n, 3, H, W])`` on the CPU in
        [0, 1], indices increasing, each generated frame once. Memory is bounded by the model's window, whatever
        the length of the sequence: known frames are read per window through ``read_frames(start, end) ->
        [end - start, 3, H, W]`` (default: ``sequence.frames``; a sequence built without pixels,
        ``build_sequence(size=...)``, streams its source view from a video this way). Sampling is the same as
        :meth:`generate` (same windows, noise and rays); arguments as there.
        """
        from ..dfot.guidance import history_guidance
        from ..dfot.sampler import rollout_stream

        self._check(sequence)
        steps = self.default_steps if steps is None else steps
        eta = self.default_eta if eta is None else eta
        _check_sampling(steps, guidance_scale, eta, seed, stabilization=stabilization)
        read = read_frames or (lambda start, end: sequence.frames[start:end])
        T = len(sequence)
        if T <= self.window:
            ctx = (sequence.context_mask >= C.MASK_CONTEXT)[:, None, None, None]
            frames = torch.where(ctx, read(0, T).to(sequence.frames.dtype), torch.zeros((), dtype=sequence.frames.dtype))
            out = self.generate(replace(sequence, frames=frames), steps=steps, scheduling=scheduling,
                                guidance=guidance, guidance_scale=guidance_scale, fractional_level=fractional_level,
                                stabilization=stabilization, seed=seed, eta=eta, callback=callback, dtype=dtype)
            index = torch.nonzero(sequence.context_mask == C.MASK_GENERATE).flatten().tolist()
            yield index, out.frames[index]
            return
        require(isinstance(scheduling, str), "scheduling", f"a registered name for sequences longer "
                f"than the model's window ({self.window})", "a matrix")
        device, config = self.device, self.config
        guide = history_guidance(guidance, scale=float(guidance_scale), fractional_level=float(fractional_level),
                                 stabilization=float(stabilization))
        g = torch.Generator(device=device).manual_seed(int(seed))
        autocast_dtype = dtype if dtype is not None else default_autocast_dtype(device)

        def denoiser(x_t, logsnr, rays, *, pose_mask=None, cache=None, needed=None):  # named: the sampler looks
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
                return self.denoiser(x_t, logsnr, rays, pose_mask=pose_mask, cache=cache, needed=needed)

        def read_context(start: int, end: int) -> Tensor:
            return to_model_space(read(start, end).to(device, torch.float32), config)[None]

        def window_rays(start: int, end: int) -> Tensor:
            # Relative to each window's first camera, as in training windows.
            return self._rays(sequence.window(start, end)).to(device)[None]

        for index, x0 in rollout_stream(denoiser, read_context, sequence.context_mask.to(device),
                                        frame_shape=(config.in_channels, *self.size), window=self.window,
                                        steps=int(steps), scheduling=scheduling, schedule=self.schedule,
                                        rays=window_rays, guidance=guide, eta=eta, generator=g, callback=callback):
            yield index, from_model_space(x0[0].float(), config).cpu()

    @torch.no_grad()
    def predict_mean(self, sequence: Syn2SeqSequence, seed: int = 0, draws: int = 1,
                     dtype: torch.dtype | None = None) -> Syn2SeqSequence:
        """The model's estimate of its conditional mean: the one-shot x0 prediction with every generated frame
        at full noise, averaged over ``draws`` noise draws (seeds ``seed .. seed + draws - 1``). At full noise
        the input carries no signal, so a converged model ignores it; an under-trained one leaks part of the
        noise into x0, and the average removes that part. The estimate PSNR favours, next to single samples."""
        require(len(sequence) <= self.window, "sequence", f"at most {self.window} frames for predict_mean",
                len(sequence))
        from ..base import limits

        draws = limits.check("mean_draws", draws, "draws")
        limits.check_seed_span(seed, draws)
        one_step = torch.tensor([[1.0] * len(sequence), [0.0] * len(sequence)])
        outs = [self.generate(sequence, steps=1, scheduling=one_step, seed=seed + k, eta=0.0, dtype=dtype)
                for k in range(int(draws))]
        if len(outs) == 1:
            return outs[0]
        mean = torch.stack([o.frames for o in outs]).mean(dim=0)
        ctx = (sequence.context_mask >= C.MASK_CONTEXT)[:, None, None, None]
        return replace(outs[0], frames=torch.where(ctx, outs[0].frames, mean))  # context stays bit-identical


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               operations=None, lora: str | Path | None = None) -> Syn2SeqModel:
    """Load a generator from a ``.safetensors`` file written by training (None = the bundled model).

    dtype: the weights' dtype (default: as stored); operations: the layer namespace of the network
    (:mod:`syn2seq_core.dfot.ops`; ComfyUI passes its weight-casting layers); lora: a LoRA run's
    ``lora.safetensors`` to merge into the weights (:func:`syn2seq_core.dfot.lora.apply_lora`); the model then has the
    LoRA run's record (sampling, cameras, frame counts), as its merged model.safetensors, and a base the LoRA was
    not trained on is refused (:func:`syn2seq_core.dfot.lora.lora_model_metadata`)."""
    from ..dfot.checkpoint import load_model as load_network, read_metadata

    path = Path(path) if path is not None else BUNDLED_MODEL
    if not path.exists():
        hint = ("The bundled model is missing from this install; reinstall the pack" if path == BUNDLED_MODEL
                else "Put model files in ComfyUI/models/syn2seq/ or pass an existing path")
        raise Syn2SeqInputError("model", "an existing .safetensors model file", str(path), hint)
    from ..dfot.schedule import NoiseSchedule

    network = load_network(path, device=device, dtype=dtype, operations=operations)
    meta = read_metadata(path)
    if lora is not None:  # the LoRA run's record (sampling, cameras, frame counts), checked against the base
        from ..dfot.lora import apply_lora, lora_model_metadata

        meta = lora_model_metadata(lora, path, meta, network.config)
        apply_lora(network, lora)
    info = json.loads(meta["training"]) if "training" in meta else {}
    sampling = _json_meta(meta, "sampling", path)
    require(sampling.get("grid", "uniform") in TIME_GRIDS, f"model '{path}' sampling grid",
            f"one of {list(TIME_GRIDS)}", sampling.get("grid"), "This model was written by a newer syn2seq")
    camera_convention = meta.get("camera_convention", "pack")
    require(camera_convention in CAMERA_CONVENTIONS, f"model '{path}' camera_convention",
            f"one of {list(CAMERA_CONVENTIONS)}", camera_convention, "This model was written by a newer syn2seq")
    # Models without training metadata (e.g. converted DFoT checkpoints) use DFoT's 256x256 shift.
    schedule = NoiseSchedule(shift=float(info.get("config", {}).get("noise_shift", 0.125)),
                             grid=sampling.get("grid", "uniform"), timesteps=int(sampling.get("timesteps", 1000)))
    return Syn2SeqModel(network, schedule=schedule, info=info, path=path,
                        default_steps=int(sampling.get("steps", DEFAULT_STEPS)), camera_convention=camera_convention,
                        default_eta=float(sampling.get("eta", 0.0)))


def _json_meta(meta: dict, key: str, path) -> dict:
    if key not in meta:
        return {}
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError:
        value = None
    require(isinstance(value, dict), f"model '{path}' metadata {key}", "a JSON object", repr(meta[key])[:80])
    return value
