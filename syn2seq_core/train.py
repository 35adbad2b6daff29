"""Training: pretrain (single-view camera paths) and Syn2Seq finetune, single- or multi-process.

``syn2seq train --config configs/NAME.toml`` runs one stage. The loop is resumable: every
``checkpoint_every`` steps (and on Ctrl-C / the time limit) it writes ``<out>/checkpoint.pt`` atomically
(model, EMA, optimiser, step, elapsed time); a restart with the same config continues from it, also after
``kill -9``. Data and noise are drawn from generators seeded by (seed, step, rank), so a resumed run sees
exactly the batches an uninterrupted run would have seen.

Multi-process: ``torchrun --nproc_per_node=N -m syn2seq_core train --config ...`` uses DDP (gloo on CPU,
NCCL on GPU); each rank draws its own batches, rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import Syn2SeqInputError, check_choice, require

STAGES = ("pretrain", "finetune")
CHECKPOINT_NAME = "checkpoint.pt"
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
    # pretrain: frames per single-view clip (0 = the model window).
    clip_frames: int = 0


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
    bf16: bool = True
    # Shift of the shifted-cosine logSNR schedule (Simple Diffusion: base 32 / resolution; DFoT 0.125 at
    # 256x256). Training and sampling must agree: it is stored with the model.
    noise_shift: float = 0.125
    # "sigmoid" (DFoT's eps-loss weighting) or "v" (v-MSE; keeps weight at high noise, see dfot/objective.py).
    loss_weighting: str = "sigmoid"
    init_from: str | None = None
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


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
    return _build(TrainConfig, {**raw, "data": data, "optim": optim}, where)


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
    check_choice(cfg.stage, STAGES, f"{path} stage")
    check_choice(cfg.data.transition, ("interpolator", "ideal", "none"), f"{path} [data] transition")
    for f in dataclasses.fields(cfg.data):
        value = getattr(cfg.data, f.name)
        if f.name.endswith("_prob") and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise Syn2SeqInputError(f"{path} [data] {f.name}", "a probability in [0, 1]", value)
    if cfg.data.transition == "ideal" and cfg.data.ego2exo_prob > 0:
        raise Syn2SeqInputError(f"{path} [data] ego2exo_prob", "0 with transition = \"ideal\" (ideal "
                                "in-betweens are rendered exo -> ego only)", cfg.data.ego2exo_prob)
    return cfg


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
def _atomic_torch_save(obj, path: Path) -> None:
    from .atomic import temp_file_near

    tmp = temp_file_near(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(out: Path, cfg: TrainConfig, model, ema, optimizer, step: int, elapsed: float) -> None:
    from .dfot.checkpoint import save_model

    _atomic_torch_save({"config": cfg.to_json(), "step": step, "elapsed": elapsed,
                        "model": model.state_dict(), "ema": ema.state_dict(),
                        "optimizer": optimizer.state_dict()}, out / CHECKPOINT_NAME)
    save_model(out / MODEL_NAME, ema, extra_metadata=_training_record(cfg, step, elapsed))


def _training_record(cfg: TrainConfig, step: int, elapsed: float) -> dict:
    return {"training": json.dumps({"config": json.loads(cfg.to_json()), "step": step,
                                    "elapsed_s": round(elapsed, 1)})}


def snapshot_path(out: str | Path, step: int) -> Path:
    return Path(out) / "snapshots" / f"model_step{step:06d}.safetensors"


def save_snapshot(out: Path, cfg: TrainConfig, ema, step: int, elapsed: float) -> Path:
    """Keep this step's EMA model (a loadable model file with its training record) beside the run."""
    from .dfot.checkpoint import save_model

    path = snapshot_path(out, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model(path, ema, extra_metadata=_training_record(cfg, step, elapsed))


def initial_weights(source: str | Path) -> dict:
    """Weights to start from: a model ``.safetensors`` (EMA weights), a run's ``checkpoint.pt`` (its raw,
    not-averaged weights) or a run folder (its checkpoint)."""
    from .dfot.checkpoint import load_model

    path = Path(source)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    require(path.exists(), "init_from", "an existing model file, checkpoint or run folder", str(path))
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)["model"]
    return load_model(path).state_dict()


def load_checkpoint(out: Path):
    path = out / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


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


# --- the loop --------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out: str | Path, *, minutes: float | None = None, max_steps: int | None = None,
          progress: bool = True) -> dict:
    """Run (or resume) one training stage into ``out``. Returns a summary dict.

    minutes: stop (with a checkpoint) after this many minutes of *this* invocation.
    max_steps: override ``cfg.max_steps`` as the stop step (the LR schedule still uses ``cfg.max_steps``).
    """
    from tqdm import tqdm

    from .data.training import batch_source
    from .dfot.schedule import NoiseSchedule
    from .pipeline import build_network, training_step_loss

    dist = init_distributed()
    out = Path(out)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = build_network(cfg.model).to(dist.device)
    if cfg.init_from:
        weights = initial_weights(cfg.init_from)
        if getattr(model.config, "attention", None) == "full":
            from .dfot.model import full_attention_weights

            weights = full_attention_weights(weights, model.config.dim)
        model.load_state_dict(weights)
        if dist.main:
            print(f"initialised from {cfg.init_from}", file=sys.stderr)
    ema = build_network(cfg.model).to(dist.device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.optim.lr, betas=cfg.optim.betas)
    step, elapsed = 0, 0.0
    state = load_checkpoint(out)
    if state is not None:
        try:
            saved = config_from_dict(json.loads(state["config"]), str(out / CHECKPOINT_NAME)).to_json()
        except Syn2SeqInputError:  # a field this version no longer knows
            saved = state["config"]
        if saved != cfg.to_json():
            raise Syn2SeqInputError(str(out / CHECKPOINT_NAME), "a checkpoint of the same config",
                                    "a checkpoint of a different config",
                                    "Use a new --out folder, or the config the run was started with")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        if dist.main:
            print(f"resuming {out} at step {step} ({elapsed / 60:.1f} min trained)", file=sys.stderr)
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    stop_step = cfg.max_steps if max_steps is None else min(max_steps, cfg.max_steps)
    source = batch_source(cfg)
    schedule = NoiseSchedule(shift=cfg.noise_shift)
    log = open(out / LOG_NAME, "a") if dist.main else None
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
            step_seed = (cfg.seed * 1_000_003 + step) * 1009 + dist.rank
            g = torch.Generator().manual_seed(step_seed)
            torch.manual_seed(step_seed)  # in-model randomness (pose dropout) is a function of the step too
            batch = source(g, cfg.optim.batch_size).to(dist.device)
            lr = learning_rate(cfg.optim, step, cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss, parts = training_step_loss(net, batch, g, schedule, cfg.loss_weighting)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            with torch.no_grad():
                # EMA warm-up (decay grows with the step), so short runs are not dominated by the init.
                decay = min(cfg.optim.ema_decay, (1 + step) / (10 + step))
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
            step += 1
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}")
            if log and (step % cfg.log_every == 0 or step == stop_step):
                log.write(json.dumps({"step": step, "loss": value, "loss_ema": running, "lr": lr,
                                      "grad_norm": float(grad_norm), "elapsed_s": round(elapsed, 2),
                                      **{k: float(v) for k, v in parts.items()}}) + "\n")
                log.flush()
            if dist.main and step % cfg.checkpoint_every == 0:
                save_checkpoint(out, cfg, model, ema, optimizer, step, elapsed)
            if dist.main and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                save_snapshot(out, cfg, ema, step, elapsed)
    finally:
        bar.close()
        if dist.main and step > 0:
            save_checkpoint(out, cfg, model, ema, optimizer, step, elapsed)
        if dist.world > 1:
            _check_ranks_agree(model, dist, log, step)
            del net  # the DDP wrapper before its process group; every rank done before the group goes
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        if log:
            log.close()
    return {"step": step, "elapsed_s": elapsed, "loss_ema": running, "out": str(out)}
