"""Training: pretrain (single-view camera paths) and Syn2Seq finetune, single- or multi-process.

``syn2seq train --config configs/NAME.toml`` runs one stage. The loop is resumable: every
``checkpoint_every`` steps (and on Ctrl-C / SIGTERM / the time limit) it writes ``<out>/checkpoint.pt``
(model, EMA, optimiser, step, elapsed time) and keeps the one before as ``<out>/checkpoint.prev.pt``. A new
checkpoint goes to a hidden temporary file, is fsynced and read back (keys, types, step, zip CRCs) before
it replaces anything, so a crash or ``kill -9`` at any moment leaves at least one good checkpoint. A restart
with the same config continues from ``checkpoint.pt``, or, if that one is damaged (truncated, empty, not a
checkpoint), from ``checkpoint.prev.pt`` with a warning naming the damaged file; the metrics log is cut back
to the steps the checkpoint holds, so the steps redone after a kill are logged once. Data and noise are
drawn from generators seeded by (seed, step, sequence), so a resumed run sees exactly the batches an
uninterrupted run would have seen.

Multi-process: ``torchrun --nproc_per_node=N -m syn2seq_core train --config ...`` uses DDP (gloo on CPU,
NCCL on GPU), or FSDP2 with ``parallel = "fsdp"`` (:mod:`syn2seq_core.fsdp`); ``[optim] batch_size`` is the
global batch, each rank draws its share, every sequence from its own seed (:func:`sequence_seed`: its data,
noise, pose dropout, and the network's own dropout through ``dropout_seeds``), so the run does not depend on
the number of ranks (it may resume on another, under either engine: checkpoints hold full state dicts); rank
0 writes checkpoints and logs. The global batch must split evenly (:func:`check_processes`).

Data: the procedural world by default; with ``[data] shards`` (manifests of ``syn2seq prepare``) the
sequences come from prepared shards. Shards, and procedural scenes when ``[data] loader_workers`` > 0, come
through a DataLoader (that many worker processes) whose item is a step: which sample each sequence gets is a
function of (seed, step, its index in the global batch), as everything else is
(:class:`~syn2seq_core.data.training.ShardsSource`), so resume stays exact.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import Syn2SeqInputError, check_choice, require
from .lora import LORA_NAME, LoraConfig

STAGES = ("pretrain", "finetune")
PARALLEL = ("ddp", "fsdp")
# Fields that decide how a step is computed or what is recorded, not what is learned: a run may resume with
# them changed (e.g. with activation checkpointing or FSDP after running out of memory, or previews more often).
EXECUTION_FIELDS = ("activation_checkpointing", "compile", "parallel", "checkpoint_every", "snapshot_every",
                    "log_every", "tensorboard", "preview_every", "preview_steps")
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
MODEL_NAME = "model.safetensors"
LOG_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class DataConfig:
    """What the model sees. ``size``: square frame size; frame counts per segment of a Syn2Seq triplet."""

    size: int = 32
    supersample: int = 2
    exo_frames: int = 8
    ego_frames: int = 8
    transition_frames: int = 4
    # finetune: where transition frames come from: "interpolator" (the WFLF stand-in named below),
    # "ideal" (rendered along the SLERP path; only possible in the synthetic world) or "none" (direct).
    transition: str = "interpolator"
    interpolator: str = "blend"
    # False = the paper's "video only" ablation: transition frames without transition poses.
    pose_interpolation: bool = True
    # Training window (0 = the whole sequence); shorter windows use the stochastic decomposition.
    window: int = 0
    # Probability that the source view (exo; ego for ego2exo) is clean context without loss, as at inference.
    clean_context_prob: float = 0.7
    # Probability that a finetune sequence runs ego -> exo instead of exo -> ego.
    ego2exo_prob: float = 0.0
    # Probability that all frames to generate in a sequence share one noise level (as at inference, where
    # full_sequence sampling starts them all at full noise) instead of independent levels. With independent
    # levels alone, 4 ego frames are all above t = 0.8 in only 0.2^4 = 0.16% of sequences, so the model
    # rarely practises what decides a sample's layout and colours: predicting the view from context alone.
    shared_noise_prob: float = 0.0
    # finetune: probability that, in a sequence whose source view is clean context, every frame to generate
    # is at pure noise (t = 1): the model then regresses the other view from the context alone (its
    # conditional mean, and the first step of every sample). Uniform levels reach t > 0.9 for all generated
    # frames in at most 10% of shared-level sequences; yet only there does the source view carry what the
    # noisy frames themselves do not.
    full_noise_prob: float = 0.0
    # Loss weight of transition frames (synthetic in-betweens, not real views).
    transition_loss_weight: float = 1.0
    # finetune, networks with a cue: probability that a sequence is trained without its cue (the empty cue,
    # coverage zero everywhere, as at inference on a take with no depth). A model trained with it > 0 runs on
    # takes without depth (its training record says so; Syn2SeqModel.cue_optional).
    cue_dropout_prob: float = 0.0
    # pretrain: frames per single-view clip (0 = the model window).
    clip_frames: int = 0
    # Prepared shards instead of the procedural world (finetune only): manifest paths written by `syn2seq
    # prepare` (relative paths are relative to the working folder, like init_from), mixed with `weights`
    # (one per manifest; empty = in proportion to their sample counts). The transition frames are the shards'
    # (`interpolator` does not apply; transition = "none" drops them); size and frame counts must match theirs.
    shards: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    # DataLoader worker processes that read and decode shards, or render the procedural scenes (0 = in the
    # training process). How the batches are computed, not what they are: a run may resume with another value.
    loader_workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # Gradient accumulation: each step's batch_size sequences go through the network in this many equal
    # micro-batches (the activation memory of one), with the gradients of the whole batch.
    accumulate: int = 1


@dataclass(frozen=True)
class TrainConfig:
    name: str
    stage: str = "finetune"
    seed: int = 0
    max_steps: int = 1000
    checkpoint_every: int = 100
    # Also keep the EMA model of every N-th step as <out>/snapshots/model_step<N>.safetensors (0 = never):
    # comparisons at equal steps, learning curves.
    snapshot_every: int = 0
    log_every: int = 10
    # TensorBoard beside metrics.jsonl (<out>/tensorboard/; syn2seq_core/train_board.py), and every
    # preview_every steps the EMA model on held-out scenes there (0 = never).
    tensorboard: bool = True
    preview_every: int = 500
    # DDIM steps of the held-out sample video a preview also draws (0 = the one-shot estimate only).
    preview_steps: int = 10
    bf16: bool = True
    # Activation checkpointing: every transformer block / ResBlock recomputes its activations in the backward
    # pass instead of keeping them (less memory, about a third more compute); the gradients do not change.
    activation_checkpointing: bool = False
    # torch.compile the network for training: "" = off, "inductor" (torch's default; needs a C++ compiler on
    # the CPU, Triton on a GPU) or any other torch.compile backend (e.g. "aot_eager"). Sampling is not compiled.
    compile: str = ""
    # How several processes (torchrun) share the work: "ddp" (a full replica per process, gradients
    # all-reduced) or "fsdp" (FSDP2, syn2seq_core/fsdp.py: parameters, gradients, optimizer and EMA state
    # sharded over the processes; for models whose replica does not fit, see `syn2seq bench train`). One
    # process trains the same either way.
    parallel: str = "ddp"
    # Shift of the shifted-cosine logSNR schedule (Simple Diffusion: base 32 / resolution; DFoT 0.125 at
    # 256x256). Training and sampling must agree: it is stored with the model.
    noise_shift: float = 0.125
    # "sigmoid" (DFoT's eps-loss weighting) or "v" (v-MSE; keeps weight at high noise, see dfot/objective.py).
    loss_weighting: str = "sigmoid"
    init_from: str | None = None
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # LoRA finetune (syn2seq_core/lora.py): rank > 0 trains adapters only, on top of init_from.
    lora: LoraConfig = field(default_factory=LoraConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


# The range (inclusive) of every count in a training config, by table ("" = top level), checked by
# load_config. Generous but sane: a value outside is a typo (a missing or extra digit, a percentage, a float
# where a count goes) or more than any machine here would run. seed < 2^32 keeps the per-step seed
# ((seed * 1000003 + step) * 1009 + rank) inside torch.Generator's 64 bits for every step up to MAX_STEPS.
# Zero means "off" or "the default" where a field's comment says so (snapshot_every, window, clip_frames).
MAX_STEPS = 10**9
MAX_FRAMES = 1024
COUNT_RANGES: dict[str, dict[str, tuple[int, int]]] = {
    "": {"seed": (0, 2**32 - 1), "max_steps": (1, MAX_STEPS), "checkpoint_every": (1, MAX_STEPS),
         "snapshot_every": (0, MAX_STEPS), "log_every": (1, MAX_STEPS), "preview_every": (0, MAX_STEPS),
         "preview_steps": (0, 1000)},
    "data": {"size": (8, 4096), "supersample": (1, 16), "exo_frames": (1, MAX_FRAMES),
             "ego_frames": (1, MAX_FRAMES), "transition_frames": (0, MAX_FRAMES), "window": (0, MAX_FRAMES),
             "clip_frames": (0, MAX_FRAMES), "loader_workers": (0, 256)},
    "optim": {"batch_size": (1, 4096), "warmup_steps": (0, MAX_STEPS), "accumulate": (1, 4096)},
    "lora": {"rank": (0, 4096)},
    # DiT3DConfig and UViT3DPoseConfig fields (syn2seq_core/dfot/model.py, uvit3d.py); height/width must also
    # be multiples of patch_size (times 2^(levels - 1) for the U-ViT).
    "model": {"height": (8, 4096), "width": (8, 4096), "patch_size": (1, 64), "in_channels": (1, 64),
              "dim": (8, 16384), "depth": (1, 1024), "heads": (1, 1024), "max_frames": (1, MAX_FRAMES),
              "ray_channels": (1, 256), "noise_features": (1, 65536), "emb_channels": (8, 16384),
              "num_mid_blocks": (0, 1024), "num_heads": (1, 1024)},
}


def _build(cls, values: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise Syn2SeqInputError(where, f"keys among {sorted(known)}", unknown)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


def config_from_dict(raw: dict, where: str = "config") -> TrainConfig:
    """A TrainConfig from its dict form (``to_json``); keys it lacks take their defaults, so a run saved by
    an older version, before a field existed, still matches a config that leaves that field at its default."""
    raw = dict(raw)
    data = _build(DataConfig, raw.pop("data", {}), f"{where} [data]")
    optim = _build(OptimConfig, raw.pop("optim", {}), f"{where} [optim]")
    lora = _build(LoraConfig, raw.pop("lora", {}), f"{where} [lora]")
    return _build(TrainConfig, {**raw, "data": data, "optim": optim, "lora": lora}, where)


def same_run(saved: str, cfg: TrainConfig, where: str) -> bool:
    """Whether a checkpoint's config (its JSON) is ``cfg`` up to :data:`EXECUTION_FIELDS` and to fields added
    since it was saved (at their defaults)."""
    def identity(config: TrainConfig) -> str:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, loader_workers=0))
        return dataclasses.replace(config, **{f: getattr(TrainConfig, f) for f in EXECUTION_FIELDS}).to_json()

    try:
        return identity(config_from_dict(json.loads(saved), where)) == identity(cfg)
    except (ValueError, TypeError):  # a field this version no longer knows (Syn2SeqInputError)
        return False


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML (or JSON) training config: top-level keys of TrainConfig, tables [model], [data], [optim]."""
    path = Path(path)
    require(path.is_file(), "config", "an existing TOML or JSON file", str(path))
    text = path.read_text()
    if path.suffix == ".json":
        raw = json.loads(text)
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise Syn2SeqInputError(str(path), "valid TOML", str(e)) from None
    raw = dict(raw)
    raw.setdefault("name", path.stem)
    cfg = config_from_dict(raw, str(path))
    check_config(cfg, str(path))
    return cfg


def _check_count(value, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Syn2SeqInputError(name, f"an integer in [{lo}, {hi}]", repr(value))


def check_config(cfg: TrainConfig, where: str = "config") -> None:
    """Refuse a training config whose choices, probabilities or counts (:data:`COUNT_RANGES`) are out of
    range, or whose model does not fit its data (frame size, frames per sequence), naming the key."""
    check_choice(cfg.stage, STAGES, f"{where} stage")
    check_choice(cfg.data.transition, ("interpolator", "ideal", "none"), f"{where} [data] transition")
    check_choice(cfg.parallel, PARALLEL, f"{where} parallel")
    if cfg.compile:
        import torch._dynamo

        check_choice(cfg.compile, torch._dynamo.list_backends(exclude_tags=()), f"{where} compile")
    tables = {"": vars(cfg), "data": vars(cfg.data), "optim": vars(cfg.optim), "model": cfg.model,
              "lora": vars(cfg.lora)}
    for table, ranges in COUNT_RANGES.items():
        label = f"{where} [{table}] " if table else f"{where} "
        for key, (lo, hi) in ranges.items():
            if key in tables[table]:  # [model] keys not given take their preset's values
                _check_count(tables[table][key], label + key, lo, hi)
    for f in dataclasses.fields(cfg.data):
        value = getattr(cfg.data, f.name)
        if f.name.endswith("_prob") and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise Syn2SeqInputError(f"{where} [data] {f.name}", "a probability in [0, 1]", value)
    _check_shards(cfg, where)
    if cfg.data.transition == "ideal" and cfg.data.ego2exo_prob > 0 and not cfg.data.shards:
        raise Syn2SeqInputError(f"{where} [data] ego2exo_prob", "0 with transition = \"ideal\" (ideal "
                                "in-betweens are rendered exo -> ego only)", cfg.data.ego2exo_prob)
    if cfg.optim.batch_size % cfg.optim.accumulate:
        raise Syn2SeqInputError(f"{where} [optim] accumulate", f"a divisor of [optim] batch_size = "
                                f"{cfg.optim.batch_size} (the batch is split into equal micro-batches)",
                                cfg.optim.accumulate)
    if cfg.lora.rank:
        if not cfg.init_from:
            raise Syn2SeqInputError(f"{where} init_from", "the base weights the LoRA adapters are trained on "
                                    "([lora] rank > 0)", "none")
        if not (isinstance(cfg.lora.dropout, (int, float)) and 0 <= cfg.lora.dropout < 1):
            raise Syn2SeqInputError(f"{where} [lora] dropout", "a probability in [0, 1)", cfg.lora.dropout)
        if not (isinstance(cfg.lora.alpha, (int, float)) and cfg.lora.alpha >= 0):
            raise Syn2SeqInputError(f"{where} [lora] alpha", "a number >= 0 (0 = rank)", cfg.lora.alpha)
    _check_model_fits_data(cfg, where)


def _check_shards(cfg: TrainConfig, where: str) -> None:
    """[data] shards / weights: paths and weights of the right types and counts (the manifests themselves are
    read when training starts)."""
    data = cfg.data
    shards, weights = data.shards, data.weights
    require(isinstance(shards, tuple) and all(isinstance(p, str) and p for p in shards), f"{where} [data] shards",
            "a list of manifest paths", repr(shards))
    if not shards:
        require(not weights, f"{where} [data] weights", "no weights without [data] shards", repr(weights))
        return
    require(cfg.stage == "finetune", f"{where} stage", '"finetune" with [data] shards (shards hold Syn2Seq '
            'triplets; the paper\'s pretraining on stitched sequences of all categories is this stage too)', cfg.stage)
    ok = isinstance(weights, tuple) and all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                                            and math.isfinite(w) for w in weights)
    require(ok, f"{where} [data] weights", "numbers >= 0", repr(weights))
    if weights:
        require(len(weights) == len(shards), f"{where} [data] weights", f"one weight per manifest ({len(shards)})",
                f"{len(weights)} weights")
        require(sum(weights) > 0, f"{where} [data] weights", "at least one weight > 0", repr(weights))


def _training_frames(cfg: TrainConfig) -> tuple[int, str]:
    """Frames per training sequence, as ``data.training`` draws them, and the config keys that set it."""
    data = cfg.data
    if cfg.stage == "pretrain":
        if data.clip_frames:
            return data.clip_frames, "[data] clip_frames"
        return (network_config(cfg).max_frames,
                "[data] clip_frames = 0 (then the model's max_frames)")
    full = data.exo_frames + data.ego_frames + (0 if data.transition == "none" else data.transition_frames)
    if data.window and data.window < full:
        return data.window, "[data] window"
    return full, "[data] exo_frames + transition_frames + ego_frames"


def network_config(cfg: TrainConfig, where: str = "config"):
    """The network a training config trains: its [model] table (:func:`~.dfot.checkpoint.config_from_table`),
    or, with no [model] table and ``init_from`` naming a model file (e.g. a DFoT checkpoint converted by
    ``syn2seq convert-dfot``), the network stored in that file, exactly as it was trained."""
    from .dfot.checkpoint import config_from_table, read_config

    if not cfg.model and cfg.init_from and Path(cfg.init_from).suffix == ".safetensors":
        require(Path(cfg.init_from).is_file(), f"{where} init_from", "an existing model file (no [model] table: "
                "the network is the one stored there)", cfg.init_from)
        return read_config(cfg.init_from)
    return config_from_table(cfg.model, f"{where} [model]")


def _check_model_fits_data(cfg: TrainConfig, where: str) -> None:
    """The network (:func:`network_config`) has [data] size as its frame size and a window that holds a
    training sequence (otherwise the first step fails inside the network)."""
    model = network_config(cfg, where)
    data = cfg.data
    if (model.height, model.width) != (data.size, data.size):
        raise Syn2SeqInputError(f"{where} [data] size", f"the model's frame size ([model] height x width = "
                                f"{model.height} x {model.width}; training frames are size x size)", data.size)
    frames, key = _training_frames(cfg)
    if frames > model.max_frames:
        raise Syn2SeqInputError(f"{where} {key}", f"at most the model's window ([model] max_frames = "
                                f"{model.max_frames}) frames per training sequence", frames)


# --- distributed -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.distributed.init_process_group(backend)
    return Dist(rank, world, device)


# --- schedule ------------------------------------------------------------------------------------------
def learning_rate(cfg: OptimConfig, step: int, max_steps: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


# --- checkpoints ----------------------------------------------------------------------------------------
# What a training checkpoint holds, with the type each entry must have.
CHECKPOINT_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": str, "step": int, "elapsed": (int, float), "model": dict, "ema": dict, "optimizer": dict}


class CheckpointFallbackWarning(UserWarning):
    """The newest checkpoint of a run folder is damaged and the previous one is used (``syn2seq train`` prints
    it as one line: ``syn2seq train: warning: ...``)."""


class _DamagedCheckpoint(Exception):
    """A checkpoint file that cannot be used; the message says what is wrong with it."""


def _type_names(kind) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def _read_checkpoint(path: Path, keys: dict = CHECKPOINT_KEYS, *, mmap: bool = False, crc: bool = True) -> dict:
    """The state dict in checkpoint file ``path``, or :class:`_DamagedCheckpoint` saying what is wrong:
    missing, empty, truncated or corrupt (zip CRCs when ``crc``), not a checkpoint, missing ``keys`` or an
    entry of the wrong type. ``mmap``: map the tensors instead of reading them (a check of a fresh file)."""
    import zipfile

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _DamagedCheckpoint("missing") from None
    if size == 0:
        raise _DamagedCheckpoint("an empty file (0 bytes)")
    if crc and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as e:  # BadZipFile, EOFError, zlib errors ...: all mean a damaged archive
            bad = f"{type(e).__name__}: {e}"
        if bad is not None:
            raise _DamagedCheckpoint(f"corrupt ({size} bytes; bad zip record {bad})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # PytorchStreamReader's RuntimeError, EOFError, UnpicklingError, ...
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"
        reason = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]  # torch's first sentence
        kind = "truncated or corrupt" if zipped else "not a PyTorch checkpoint"
        raise _DamagedCheckpoint(f"{kind} ({size} bytes; {type(e).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise _DamagedCheckpoint(f"not a training checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [k for k in keys if k not in state]
    if missing:
        raise _DamagedCheckpoint(f"not a complete training checkpoint (no {', '.join(missing)})")
    for key, kind in keys.items():
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise _DamagedCheckpoint(f"'{key}' is a {type(value).__name__}, expected {_type_names(kind)}")
    for key in ("model", "ema"):
        if key in keys and not all(isinstance(v, torch.Tensor) for v in state[key].values()):
            raise _DamagedCheckpoint(f"'{key}' is not a state dict of tensors")
    if "optimizer" in keys and not {"state", "param_groups"} <= set(state["optimizer"]):
        raise _DamagedCheckpoint("'optimizer' is not an optimizer state dict (no state / param_groups)")
    if "step" in keys and state["step"] < 0:
        raise _DamagedCheckpoint(f"'step' is {state['step']}, expected >= 0")
    return state


def latest_checkpoint(out: str | Path, keys: dict = CHECKPOINT_KEYS, *,
                      warn: bool = True) -> tuple[dict, Path] | None:
    """``(state, path)`` of the newest good checkpoint in run folder ``out``: ``checkpoint.pt``, else
    ``checkpoint.prev.pt`` (with a warning naming the damaged file and what is wrong with it); None when the
    folder holds neither. Raises :class:`Syn2SeqInputError` naming each file and its problem when none is
    readable."""
    out = Path(out)
    paths = [out / CHECKPOINT_NAME, out / PREVIOUS_CHECKPOINT_NAME]
    if not any(p.exists() for p in paths):
        return None
    problems = []
    for path in paths:
        try:
            state = _read_checkpoint(path, keys)
        except _DamagedCheckpoint as e:
            problems.append((path, str(e)))
            continue
        if problems and warn:
            bad, problem = problems[0]
            warnings.warn(f"{bad}: {problem}; using the previous checkpoint {path.name} "
                          f"(step {state.get('step', '?')}) instead", CheckpointFallbackWarning, stacklevel=2)
        return state, path
    raise Syn2SeqInputError(str(out), f"a readable training checkpoint ({CHECKPOINT_NAME} or "
                            f"{PREVIOUS_CHECKPOINT_NAME})", "; ".join(f"{p.name}: {why}" for p, why in problems),
                            f"Move {CHECKPOINT_NAME} and {PREVIOUS_CHECKPOINT_NAME} out of this folder to start "
                            f"the run over from step 0 (its {LOG_NAME} then starts over too), or use a new --out "
                            "folder")


def load_checkpoint(out: str | Path):
    """The state of the newest good checkpoint in run folder ``out`` (see :func:`latest_checkpoint`), or
    None when it has none."""
    found = latest_checkpoint(out)
    return None if found is None else found[0]


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (POSIX; elsewhere a folder cannot be opened for this)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readback_problem(path: Path, state: dict) -> str | None:
    """What keeps the freshly written ``path`` from being ``state`` when read back (None: nothing)."""
    try:
        back = _read_checkpoint(path, mmap=True)
    except _DamagedCheckpoint as e:
        return str(e)
    for key in ("step", "config"):
        if back[key] != state[key]:
            return f"it holds another {key}"
    for key in ("model", "ema"):
        if list(back[key]) != list(state[key]):
            return f"its '{key}' holds other tensors"
    return None


def _good_step(path: Path) -> int | None:
    """The step of the checkpoint at ``path`` if it is readable (structure only: it was verified when
    written), else None."""
    try:
        return int(_read_checkpoint(path, mmap=True, crc=False)["step"])
    except _DamagedCheckpoint:
        return None


def _keep_as_previous(current: Path, previous: Path) -> None:
    """Make ``previous`` the file ``current`` is. With a hard link ``current`` stays in place throughout;
    where the file system has none, ``current`` is renamed, and until the new one replaces it the folder
    holds only ``previous`` (which loading then uses, with a warning)."""
    link = previous.with_name(f".{previous.name}.{os.getpid()}.link")
    try:
        link.unlink(missing_ok=True)
        try:
            os.link(current, link)
        except (OSError, NotImplementedError):
            os.replace(current, previous)
        else:
            os.replace(link, previous)
    finally:
        link.unlink(missing_ok=True)


def _write_checkpoint(out: Path, state: dict) -> Path:
    """Write ``state`` as ``out/checkpoint.pt``, keeping the good checkpoint it replaces as
    ``checkpoint.prev.pt``. The new file is written under a hidden name, fsynced and read back (keys,
    types, step, zip CRCs) before anything is replaced, so a crash at any moment leaves at least one good
    checkpoint. A file that does not read back raises ``RuntimeError`` and the earlier checkpoints stay."""
    from .atomic import temp_file_near

    current, previous = out / CHECKPOINT_NAME, out / PREVIOUS_CHECKPOINT_NAME
    tmp = temp_file_near(current)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        problem = _readback_problem(tmp, state)
        if problem is not None:
            kept = [p.name for p in (current, previous) if p.exists()]
            raise RuntimeError(f"{current}: the checkpoint of step {state['step']} did not read back after "
                               f"writing ({problem}); kept {', '.join(kept) or 'no earlier checkpoint'}. Check "
                               f"the disk under {out} (free space, errors)")
        # A checkpoint of the same step (a rerun that trained nothing) replaces it and keeps the older one
        # as the previous; a damaged current one is not kept.
        if _good_step(current) not in (None, state["step"]):
            _keep_as_previous(current, previous)
        os.replace(tmp, current)
        _fsync_dir(out)
    finally:
        tmp.unlink(missing_ok=True)
    return current


def _remove_partial_files(out: Path) -> None:
    """Hidden temporary files of checkpoint, model and log writes that a killed run left in ``out``."""
    patterns = [f".{Path(n).stem}.*.partial{Path(n).suffix}" for n in (CHECKPOINT_NAME, MODEL_NAME)]
    patterns += [f".{Path(LOG_NAME).stem}.*.partial.tmp", f".{PREVIOUS_CHECKPOINT_NAME}.*.link"]
    for pattern in patterns:
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def save_checkpoint(out: Path, cfg: TrainConfig, model_state: dict, ema, optimizer_state: dict, step: int,
                    elapsed: float) -> None:
    """Write ``out/checkpoint.pt`` (the one it replaces becomes ``checkpoint.prev.pt``) and
    ``out/model.safetensors`` (the EMA model with its training record). The model and optimizer as (full)
    state dicts, the EMA as a module."""
    _write_checkpoint(out, {"config": cfg.to_json(), "step": step, "elapsed": elapsed,
                            "model": model_state, "ema": ema.state_dict(), "optimizer": optimizer_state})
    _save_ema(out / MODEL_NAME, cfg, ema, step, elapsed)


def _save_ema(path: Path, cfg: TrainConfig, ema, step: int, elapsed: float) -> Path:
    """The EMA model as a loadable model file; in a LoRA run also its adapters alone (``lora.safetensors``
    beside it) while the model file holds the base with the adapters merged in."""
    from .dfot.checkpoint import save_model, save_state_dict

    record = _training_record(cfg, step, elapsed)
    if not cfg.lora.rank:
        return save_model(path, ema, extra_metadata=record)
    from .lora import KEY_LORA_BASE, base_record, merged_state_dict, save_lora

    # The adapters keep the run's record (how its model.safetensors is used) and the base's (what they fit).
    save_lora(path.with_name(LORA_NAME if path.name == MODEL_NAME else path.stem + ".lora.safetensors"), ema,
              cfg.lora, extra_metadata={**record, KEY_LORA_BASE: json.dumps(base_record(cfg.init_from))})
    return save_state_dict(path, merged_state_dict(ema, cfg.lora), ema.config, record)


def _training_record(cfg: TrainConfig, step: int, elapsed: float) -> dict:
    return {"training": json.dumps({"config": json.loads(cfg.to_json()), "step": step,
                                    "elapsed_s": round(elapsed, 1)})}


def snapshot_path(out: str | Path, step: int) -> Path:
    return Path(out) / "snapshots" / f"model_step{step:06d}.safetensors"


def save_snapshot(out: Path, cfg: TrainConfig, ema, step: int, elapsed: float) -> Path:
    """Keep this step's EMA model (a loadable model file with its training record) beside the run."""
    path = snapshot_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save_ema(path, cfg, ema, step, elapsed)


def initial_weights(source: str | Path) -> dict:
    """Weights to start from: a model ``.safetensors`` (EMA weights), a run's ``checkpoint.pt`` (its raw,
    not-averaged weights) or a run folder (its newest good checkpoint, see :func:`latest_checkpoint`)."""
    from .dfot.checkpoint import load_model

    path = Path(source)
    hint = f"Point init_from at a good checkpoint, a run folder or a model file (a run's {MODEL_NAME})"
    if path.is_dir():
        require(any((path / n).exists() for n in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME)), "init_from",
                "an existing model file, checkpoint or run folder", str(path / CHECKPOINT_NAME))
        try:
            return latest_checkpoint(path, {"model": dict})[0]["model"]
        except Syn2SeqInputError as e:
            raise Syn2SeqInputError(f"init_from {e.name}", e.expected, e.found, hint) from None
    require(path.exists(), "init_from", "an existing model file, checkpoint or run folder", str(path))
    if path.suffix == ".pt":
        try:
            return _read_checkpoint(path, {"model": dict})["model"]
        except _DamagedCheckpoint as e:
            raise Syn2SeqInputError("init_from", "a readable training checkpoint", f"{path}: {e}", hint) from None
    return load_model(path).state_dict()


# --- metrics log -----------------------------------------------------------------------------------------
def _trim_log(path: Path, step: int) -> tuple[int, int]:
    """Keep only the records of steps <= ``step`` (the checkpoint a run resumes from) in the metrics log:
    a run killed after logging steps past its last checkpoint redoes them, and would log them twice. Drops
    lines that are not a whole record too (the torn last line of a kill). Rewritten atomically, and only
    when something goes. Returns (records after ``step`` dropped, torn lines dropped)."""
    from .atomic import write_text_atomic

    if not path.exists():
        return 0, 0
    kept, later, torn = [], 0, 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            record = None
        if not isinstance(record, dict) or isinstance(record.get("step"), bool) \
                or not isinstance(record.get("step"), int):
            torn += 1
        elif record["step"] > step:
            later += 1
        else:
            kept.append(line)
    if later or torn:
        write_text_atomic(path, "".join(kept))
    return later, torn


def _stop_on_sigterm() -> None:
    """Turn SIGTERM (e.g. `kill`, a job scheduler's stop) into KeyboardInterrupt, so a checkpoint is written."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, handler)


def weights_digest(model) -> float:
    """A float64 fingerprint of all parameters (equal weights give equal digests)."""
    with torch.no_grad():
        return float(sum((p.detach().double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


def _check_ranks_agree(model, dist: Dist, log, step: int) -> None:
    """DDP keeps replicas identical; verify it at the end and record the per-rank digests in the log."""
    digests = [None] * dist.world
    torch.distributed.all_gather_object(digests, weights_digest(model))
    agree = all(d == digests[0] for d in digests)
    if log:
        log.write(json.dumps({"step": step, "ranks": dist.world, "weight_digests": digests, "ranks_agree": agree})
                  + "\n")
        log.flush()
    if not agree:
        raise RuntimeError(f"DDP ranks disagree on the weights after step {step}: {digests}")


def _sync_log(log) -> None:
    """Make the log durable up to the checkpoint about to be written (after a power cut it then holds every
    step the checkpoint does)."""
    if log:
        log.flush()
        os.fsync(log.fileno())


def check_batch_memory(cfg: TrainConfig, device=None) -> None:
    """Refuse a config whose training batch clearly does not fit: the rendered frames and the batch tensors
    (frames + rays, float32) of one step, a lower bound of what a step needs (the network's activations
    come on top), against the memory available now (on CPU, and on ``device`` when it is an accelerator)."""
    from . import limits

    data = cfg.data
    batch = max(1, cfg.optim.batch_size // int(os.environ.get("WORLD_SIZE", "1")))  # this process's share
    frames = _training_frames(cfg)[0]
    if cfg.stage == "pretrain":
        rendered = frames
    elif data.shards:  # read, not rendered
        rendered = 0
    else:  # whole takes are rendered (ideal in-betweens too), then cut to the window
        rendered = data.exo_frames + data.ego_frames + (data.transition_frames if data.transition == "ideal" else 0)
    tensors = limits.frames_bytes(batch * frames, data.size, data.size, channels=3 + 6)  # frames + rays
    hint = (f"{batch} sequences of {frames} frames at {data.size}x{data.size}, supersample {data.supersample}: "
            "lower [optim] batch_size, [data] size, the frame counts or [data] supersample")
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    render = limits.synthetic_render_bytes(batch, rendered, data.size, data.supersample) if rendered else 0
    cpu = ranks_here * (render + tensors)
    what = f"{cfg.name}: one training batch" + (f" on each of {ranks_here} ranks" if ranks_here > 1 else "")
    limits.require_memory(cpu, what, hint)
    if device is not None and torch.device(device).type != "cpu":
        limits.require_memory(tensors, f"{cfg.name}: one training batch on {device}", hint, device=device)


def check_processes(cfg: TrainConfig, world: int) -> None:
    """Refuse a run of ``cfg`` on ``world`` processes whose global batch (``[optim] batch_size``) does not split
    evenly into ``world`` x ``[optim] accumulate`` micro-batches."""
    if cfg.optim.batch_size % (world * cfg.optim.accumulate):
        raise Syn2SeqInputError(f"{cfg.name}: [optim] batch_size", f"a multiple of {world} processes x "
                                f"{cfg.optim.accumulate} micro-batches (the global batch is split evenly)",
                                cfg.optim.batch_size)


# --- the loop --------------------------------------------------------------------------------------------
def sequence_seed(seed: int, step: int, index: int) -> int:
    """The seed of sequence ``index`` of the global batch of ``step``: everything random about it (scene,
    noise levels, noise, pose dropout; the network's block dropout, :func:`dropout_seeds`) comes from this
    seed, whichever process draws it."""
    import numpy as np

    return int(np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0])


def _draw_step(cfg: TrainConfig, source, step: int, dist: Dist, model):
    """This process's share of the step's global batch (``[optim] batch_size`` sequences, split evenly over the
    processes): (batch, its noise, its pose-dropout mask), on the process's device. The same global batch for
    any number of processes, so a run may resume on more or fewer of them."""
    from .data.training import draw_share

    per_rank = cfg.optim.batch_size // dist.world
    rate = float(getattr(model.config, "pose_dropout", 0.0))
    batch, noise, pose_drop = draw_share(cfg, source, step, dist.rank * per_rank, per_rank, rate)
    return batch.to(dist.device), noise.to(dist.device), pose_drop.to(dist.device)


def dropout_seeds(cfg: TrainConfig, step: int, first: int, count: int) -> torch.Tensor:
    """[count] int64: the seeds of sequences ``first .. first + count - 1`` of the global batch of ``step``
    (:func:`sequence_seed`) for the network's own randomness (the U-ViT's block dropout), whichever process
    holds them."""
    return torch.tensor([sequence_seed(cfg.seed, step, i) % 2**63 for i in range(first, first + count)],
                        dtype=torch.int64)


class _PerSequenceSeeds:
    """The training network called micro-batch by micro-batch with each sequence's own ``dropout_seeds``
    (:func:`dropout_seeds`), in the order ``accumulated_backward`` runs the micro-batches of a step. Seen by
    that function as the network: ``module`` is the bare network (its config), ``_orig_mod`` the engine
    (DDP / FSDP2) that controls gradient sync."""

    def __init__(self, net, model):
        self.net, self.module = net, model
        self._orig_mod = getattr(net, "_orig_mod", net)
        self.seeds, self.used = None, 0

    def start(self, seeds: torch.Tensor) -> None:
        self.seeds, self.used = seeds, 0

    def __call__(self, x_t, logsnr, rays=None, **kwargs):
        B = x_t.shape[0]
        if self.used + B > len(self.seeds):
            raise RuntimeError(f"more sequences through the network this step than its {len(self.seeds)}")
        seeds = self.seeds[self.used:self.used + B]
        self.used += B
        return self.net(x_t, logsnr, rays, dropout_seeds=seeds, **kwargs)


# Test hook: a folder where each process appends the sample ids of its batches (samples.rank<R>.jsonl).
SAMPLE_LOG_ENV = "SYN2SEQ_SAMPLE_LOG"


def train(cfg: TrainConfig, out: str | Path, *, minutes: float | None = None, max_steps: int | None = None,
          progress: bool = True, final_checkpoint: bool = True) -> dict:
    """Run (or resume) one training stage into ``out``. Returns a summary dict.

    minutes: stop (with a checkpoint) after this many minutes of *this* invocation.
    max_steps: override ``cfg.max_steps`` as the stop step (the LR schedule still uses ``cfg.max_steps``).
    final_checkpoint: False for runs that keep nothing (``syn2seq bench train --measure``).
    """
    from tqdm import tqdm

    from .data.training import batch_source
    from .dfot.schedule import NoiseSchedule
    from .dfot.checkpoint import build_model
    from .fsdp import local_float
    from .pipeline import accumulated_backward

    dist = init_distributed()
    out = Path(out)
    check_processes(cfg, dist.world)
    check_batch_memory(cfg, dist.device)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        _remove_partial_files(out)
    torch.manual_seed(cfg.seed)
    net_config = network_config(cfg)
    model = build_model(net_config).to(dist.device)
    model.checkpoint_blocks = cfg.activation_checkpointing
    model.random_pose_dropout = False  # drawn per sequence by _draw_step
    if cfg.init_from:
        weights = initial_weights(cfg.init_from)
        if getattr(model.config, "attention", None) == "full":
            from .dfot.model import full_attention_weights

            weights = full_attention_weights(weights, model.config.dim)
        if model.config.cue != "none":
            from .dfot.model import cue_weights

            weights = cue_weights(weights, model.config)
        model.load_state_dict(weights)
        if dist.main:
            print(f"initialised from {cfg.init_from}", file=sys.stderr)
    ema = build_model(net_config).to(dist.device)
    if cfg.lora.rank:
        from .lora import add_lora

        add_lora(model, cfg.lora)
        add_lora(ema, cfg.lora)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    step, elapsed, optimizer_state = 0, 0.0, None
    found = latest_checkpoint(out, warn=dist.main)
    if found is not None:
        state, path = found
        if not same_run(state["config"], cfg, str(path)):
            raise Syn2SeqInputError(str(path), "a checkpoint of the same config",
                                    "a checkpoint of a different config",
                                    "Use a new --out folder, or the config the run was started with (only "
                                    f"{', '.join(EXECUTION_FIELDS)} may change)")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer_state = state["optimizer"]
        step, elapsed = int(state["step"]), float(state["elapsed"])
        del state, found  # the loaded copy is not kept for the whole run
        if dist.main:
            print(f"resuming {out} at step {step} ({elapsed / 60:.1f} min trained) from {path.name}",
                  file=sys.stderr)
    sharded = dist.world > 1 and cfg.parallel == "fsdp"
    host_ema = ema  # the EMA as a plain module on rank 0, for model files and previews
    if sharded:
        from . import fsdp

        if dist.main:
            host_ema = build_model(net_config).to(dist.device)
            if cfg.lora.rank:
                add_lora(host_ema, cfg.lora)
            host_ema.requires_grad_(False)
        fsdp.shard(model, bf16=cfg.bf16)  # bf16 weights for compute, float32 reduction (fsdp.mixed_precision)
        fsdp.shard(ema)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:  # all but the base weights of a LoRA run
            (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.optim.lr, betas=cfg.optim.betas)
    if optimizer_state is not None:
        if sharded:
            fsdp.load_optimizer_state(model, optimizer, optimizer_state)
        else:
            optimizer.load_state_dict(optimizer_state)
        del optimizer_state

    # With FSDP the next two are collective (every rank calls them at the same steps); rank 0 gets the full
    # states, in the format of a one-process run.
    def gather_ema() -> None:
        """Bring host_ema up to date with the (sharded) EMA."""
        if sharded:
            state = fsdp.full_model_state(ema)
            if dist.main:
                host_ema.load_state_dict(state)

    def checkpoint() -> None:
        if sharded:
            gather_ema()
            model_state, optimizer_state = fsdp.full_model_state(model), fsdp.full_optimizer_state(model, optimizer)
        else:
            model_state, optimizer_state = model.state_dict(), optimizer.state_dict()
        if dist.main:
            _sync_log(log)
            save_checkpoint(out, cfg, model_state, host_ema, optimizer_state, step, elapsed)

    if dist.main:
        later, torn = _trim_log(out / LOG_NAME, step)
        if later or torn:
            print(f"{out / LOG_NAME}: dropped {later} records of steps after {step} (they are redone) and "
                  f"{torn} torn lines", file=sys.stderr)
    net = model
    if dist.world > 1 and not sharded:
        net = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        net = torch.compile(net, backend=cfg.compile)
    import inspect

    seeded = "dropout_seeds" in inspect.signature(model.forward).parameters
    if seeded:  # the network's own randomness drawn per sequence (U-ViT block dropout)
        net = _PerSequenceSeeds(net, model)

    stop_step = cfg.max_steps if max_steps is None else min(max_steps, cfg.max_steps)
    source = batch_source(cfg)
    # Shards, or procedural scenes with [data] loader_workers: read / rendered by DataLoader workers, step by
    # step from the resumed one (the same batches as drawn here: each is a function of the step alone).
    batches = None
    if cfg.data.shards or cfg.data.loader_workers:
        from .data.training import step_loader

        batches = iter(step_loader(cfg, source, step, stop_step, rank=dist.rank, world=dist.world,
                                   pose_rate=float(getattr(model.config, "pose_dropout", 0.0))))
    sample_log = None
    if os.environ.get(SAMPLE_LOG_ENV):
        Path(os.environ[SAMPLE_LOG_ENV]).mkdir(parents=True, exist_ok=True)
        sample_log = open(Path(os.environ[SAMPLE_LOG_ENV]) / f"samples.rank{dist.rank}.jsonl", "a")
    schedule = NoiseSchedule(shift=cfg.noise_shift)
    log = open(out / LOG_NAME, "a") if dist.main else None
    from .train_board import Board

    board = Board(out, cfg, dist.device, cfg.tensorboard and dist.main, step)
    bar = tqdm(total=stop_step, initial=step, desc=f"{cfg.name} [{cfg.stage}]", disable=not (progress and dist.main),
               dynamic_ncols=True)
    t_start = time.perf_counter()
    t_last = t_start
    _stop_on_sigterm()
    running = None
    model.train()
    try:
        while step < stop_step:
            if minutes is not None and time.perf_counter() - t_start > minutes * 60:
                break
            # The network's own randomness comes from each sequence's seed (dropout_seeds); what else draws from
            # torch's global RNG (peft's LoRA dropout) is a function of the step and rank.
            torch.manual_seed((cfg.seed * 1_000_003 + step) * 1009 + dist.rank)
            per_rank = cfg.optim.batch_size // dist.world
            if seeded:
                net.start(dropout_seeds(cfg, step, dist.rank * per_rank, per_rank))
            if batches is None:
                batch, noise, pose_drop = _draw_step(cfg, source, step, dist, model)
                ids = list(getattr(source, "last_ids", []))
            else:
                got, batch, noise, pose_drop, ids = next(batches)
                if got != step:
                    raise RuntimeError(f"the data loader gave step {got} at step {step}")
                batch, noise, pose_drop = batch.to(dist.device), noise.to(dist.device), pose_drop.to(dist.device)
            if sample_log is not None:
                sample_log.write(json.dumps({"step": step, "rank": dist.rank, "ids": ids}) + "\n")
                sample_log.flush()
            weight_total = batch.loss_mask.sum()
            if dist.world > 1:
                torch.distributed.all_reduce(weight_total)
            lr = learning_rate(cfg.optim, step, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss, parts = accumulated_backward(
                net, batch, None, schedule, cfg.loss_weighting, cfg.optim.accumulate,
                lambda: torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=cfg.bf16),
                noise=noise, pose_drop=pose_drop, weight_total=weight_total, world=dist.world)
            if dist.world > 1:  # the global batch's loss, for the log
                torch.distributed.all_reduce(loss)
                loss = loss / dist.world
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            with torch.no_grad():
                # EMA warm-up (decay grows with the step), so short runs are not dominated by the init.
                decay = min(cfg.optim.ema_decay, (1 + step) / (10 + step))
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)  # shard by shard under FSDP
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}")
            if log and (step % cfg.log_every == 0 or step == stop_step):
                record = {"step": step, "loss": value, "loss_ema": running, "lr": lr,
                          "grad_norm": local_float(grad_norm), "elapsed_s": round(elapsed, 2),
                          **{k: float(v) for k, v in parts.items()}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                board.scalars(step, record)
            preview = cfg.preview_every and step % cfg.preview_every == 0
            snapshot = cfg.snapshot_every and step % cfg.snapshot_every == 0
            if step % cfg.checkpoint_every == 0:
                checkpoint()  # (also brings host_ema up to date)
            elif preview or snapshot:
                gather_ema()
            if dist.main and preview:
                board.preview(step, host_ema, schedule)
            if dist.main and snapshot:
                save_snapshot(out, cfg, host_ema, step, elapsed)
    finally:
        bar.close()
        del batches  # stops the loader's workers
        if sample_log is not None:
            sample_log.close()
        if step > 0 and final_checkpoint:
            checkpoint()
        held = state_bytes(model, ema, optimizer)
        if dist.world > 1:
            if not sharded:  # FSDP holds one copy of each shard: nothing to compare
                _check_ranks_agree(model, dist, log, step)
            del net  # the DDP wrapper before its process group; every rank done before the group goes
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        if log:
            log.close()
        board.close()
    return {"step": step, "elapsed_s": elapsed, "loss_ema": running, "out": str(out), "state_bytes": held}


def state_bytes(model, ema, optimizer) -> dict[str, int]:
    """Bytes this process holds of the parameters, their gradients, the optimizer state and the EMA (its own
    shards under FSDP2, a full replica under DDP)."""
    def size(t) -> int:
        t = getattr(t, "_local_tensor", t)  # a DTensor's shard
        return t.numel() * t.element_size()

    return {"parameters": sum(size(p) for p in model.parameters()),
            "gradients": sum(size(p.grad) for p in model.parameters() if p.grad is not None),
            "optimizer": sum(size(v) for s in optimizer.state.values() for v in s.values()
                             if isinstance(v, torch.Tensor) and v.ndim > 0),
            "ema": sum(size(p) for p in ema.parameters())}
