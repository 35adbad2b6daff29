"""The training config: a TOML file (``syn2seq train --config FILE``), its ``base`` resolved
(:func:`resolve_config_file`: a config may build on another and state only what differs), read into
:class:`TrainConfig` (its sections ``[data]``, ``[optim]``, ``[lora]``, ``[model]`` as dataclasses), every count
checked against :data:`COUNT_RANGES`, the whole checked against the data and the processes it will run on
(:func:`check_config`, :func:`check_batch_memory`, :func:`check_processes`). :func:`same_run` decides whether a
checkpoint belongs to a config: only :data:`EXECUTION_FIELDS` may change on resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..base.errors import Syn2SeqInputError, check_choice, require
from ..dfot.lora import LoraConfig
from ..io.safe_paths import resolve_inside

STAGES = ("pretrain", "finetune")
PARALLEL = ("ddp", "fsdp")
# Fields that decide how a step is computed or what is recorded, not what is learned: a run may resume with
# them changed (e.g. with activation checkpointing or FSDP after running out of memory, or previews more often).
EXECUTION_FIELDS = ("activation_checkpointing", "compile", "parallel", "checkpoint_every", "snapshot_every",
                    "log_every", "tensorboard", "preview_every", "preview_steps")


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
    # TensorBoard beside metrics.jsonl (<out>/tensorboard/; syn2seq_core/training/board.py), and every
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
    # all-reduced) or "fsdp" (FSDP2, syn2seq_core/parallel/fsdp.py: parameters, gradients, optimizer and EMA state
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
    # LoRA finetune (syn2seq_core/dfot/lora.py): rank > 0 trains adapters only, on top of init_from.
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


# At most this many bases above a config (``base = "..."``, each of which may name its own).
MAX_BASE_DEPTH = 16
BASE_SUFFIXES = (".toml", ".json")
BASE_HINT = ("A base lies in the folder of the launched config or in that folder's parent (links followed): "
             "configs/ablation/x.toml may build on ../synthetic_tiny.toml, nothing further up")


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML (or JSON) training config: top-level keys of TrainConfig, tables [model], [data], [optim],
    [lora], with its ``base`` resolved (:func:`resolve_config_file`)."""
    cfg = config_from_dict(resolve_config_file(path), str(path))
    check_config(cfg, str(path))
    return cfg


def resolve_config_file(path: str | Path) -> dict:
    """The dict of a TOML (or JSON) config file, its ``base`` resolved: a config may name another, ``base =
    "other.toml"`` (a .toml or .json file, relative to the folder of the config that names it), and state only
    what differs. The base is resolved first (it may have a base of its own, at most :data:`MAX_BASE_DEPTH` deep),
    then the config's tables are merged over it key by key, at every depth; a value that is not a table (a
    number, a string, an array) replaces the base's. ``name`` is never inherited: it is the config's own, or its
    file stem. Refused, naming the config that names the base: a base that is missing, not a .toml / .json
    training config, part of a cycle, too deep, or outside the folder of the launched config and that folder's
    parent (links followed)."""
    path = Path(path)
    require(path.is_file(), "config", "an existing TOML or JSON file", str(path))
    root = Path(os.path.abspath(path)).parent.parent
    raw = _resolve_base(path, root, (path.resolve(),), str(path))
    raw["name"] = raw.get("name", path.stem)
    return raw


def _resolve_base(path: Path, root: Path, chain: tuple[Path, ...], where: str) -> dict:
    """The dict of ``path`` merged over its base's, resolved; chain: the resolved files from the launched config
    down to ``path``; where: ``path`` in messages (a base: and the config that names it)."""
    raw = _read_config_file(path, where)
    if "base" not in raw:
        return raw
    name = raw.pop("base")
    owner, where = f"config '{path}'", f"config '{path}' base"
    if len(chain) > MAX_BASE_DEPTH:
        raise Syn2SeqInputError(where, f"at most {MAX_BASE_DEPTH} bases above the launched config",
                                " -> ".join(p.name for p in chain) + f" -> {name}")
    require(isinstance(name, str) and Path(name).suffix in BASE_SUFFIXES, where,
            "the name of a .toml or .json config file", repr(name))
    base = resolve_inside(root, name, owner=owner, entry="base", base=path.parent, hint=BASE_HINT)
    require(base.is_file(), where, "an existing config file (relative to the folder of the config that names "
            "it)", f"'{name}', no file at '{base}'")
    if base.resolve() in chain:
        raise Syn2SeqInputError(where, "a base that does not lead back to a config of its own chain",
                                "the cycle " + " -> ".join(p.name for p in (*chain, base.resolve())))
    inherited = _resolve_base(base, root, (*chain, base.resolve()), f"'{base}' (the base of '{path}')")
    _check_base_keys(inherited, base, where)
    inherited.pop("name", None)
    return _merge(inherited, raw, owner)


def _read_config_file(path: Path, where: str) -> dict:
    """The table a .json (else TOML) file holds, refused naming the file (``where``) if it is not one."""
    text = path.read_text()
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise Syn2SeqInputError(where, "valid JSON", str(e)) from None
        require(isinstance(raw, dict), where, "a JSON object of config keys", type(raw).__name__)
        return raw
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Syn2SeqInputError(where, "valid TOML", str(e)) from None


def _check_base_keys(raw: dict, path: Path, where: str) -> None:
    """A base is a training config: top-level keys of TrainConfig, its tables as tables."""
    tables = ("model", "data", "optim", "lora")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    require(not unknown, where, f"a training config ('{path}' with top-level keys among {sorted(known)})",
            f"keys {unknown}")
    flat = sorted(k for k in tables if k in raw and not isinstance(raw[k], dict))
    require(not flat, where, f"a training config ('{path}' with {', '.join(f'[{k}]' for k in tables)} as tables)",
            f"values for {flat}")


def _merge(base: dict, over: dict, where: str) -> dict:
    """``over`` merged over ``base``: tables key by key at every depth, any other value replaced."""
    merged = dict(base)
    for key, value in over.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) != isinstance(merged[key], dict):
            raise Syn2SeqInputError(f"{where} {key}", "a table where its base has a table, a value where it has a "
                                    "value", f"{type(value).__name__} over {type(merged[key]).__name__}")
        else:
            merged[key] = _merge(merged[key], value, f"{where} {key}") if isinstance(value, dict) else value
    return merged


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
    from ..dfot.checkpoint import config_from_table, read_config

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


def check_batch_memory(cfg: TrainConfig, device=None) -> None:
    """Refuse a config whose training batch clearly does not fit: the rendered frames and the batch tensors
    (frames + rays, float32) of one step, a lower bound of what a step needs (the network's activations
    come on top), against the memory available now (on CPU, and on ``device`` when it is an accelerator)."""
    from ..base import limits

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
