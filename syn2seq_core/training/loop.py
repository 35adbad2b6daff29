"""The training loop: pretrain (single-view camera paths) and Syn2Seq finetune, single- or multi-process.

``syn2seq train --config configs/NAME.toml`` runs one stage (:func:`train`). The loop is resumable: every
``checkpoint_every`` steps (and on Ctrl-C / SIGTERM / the time limit) it writes a checkpoint that survives any crash
(:mod:`.checkpoints`). A restart with the same config continues from the newest good checkpoint; the metrics log
is cut back to the steps the checkpoint holds, so the steps redone after a kill are logged once. Data and noise
are drawn from generators seeded by (seed, step, sequence) (:mod:`.seeds`), so a resumed run sees exactly the
batches an uninterrupted run would have seen.

Multi-process: ``torchrun --nproc_per_node=N -m syn2seq_core train --config ...`` uses DDP (gloo on CPU,
NCCL on GPU), or FSDP2 with ``parallel = "fsdp"`` (:mod:`syn2seq_core.parallel.fsdp`); ``[optim] batch_size`` is the
global batch, each rank draws its share, every sequence from its own seed (:func:`.seeds.sequence_seed`: its data,
noise, pose dropout, and the network's own dropout through ``dropout_seeds``), so the run does not depend on
the number of ranks (it may resume on another, under either engine: checkpoints hold full state dicts); rank
0 writes checkpoints and logs. The global batch must split evenly (:func:`.config.check_processes`).

Data: the procedural world by default; with ``[data] shards`` (manifests of ``syn2seq prepare``) the
sequences come from prepared shards. Shards, and procedural scenes when ``[data] loader_workers`` > 0, come
through a DataLoader (that many worker processes) whose item is a step: which sample each sequence gets is a
function of (seed, step, its index in the global batch), as everything else is
(:class:`~syn2seq_core.training.batches.ShardsSource`), so resume stays exact.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from ..base.errors import Syn2SeqInputError
from .checkpoints import (LOG_NAME, remove_partial_files, initial_weights, latest_checkpoint, save_checkpoint,
                          save_snapshot)
from .config import (EXECUTION_FIELDS, OptimConfig, TrainConfig, check_batch_memory, check_processes, network_config,
                     same_run)
from .parallel import Dist, check_ranks_agree, init_distributed, state_bytes
from .seeds import PerSequenceSeeds, dropout_seeds


def learning_rate(cfg: OptimConfig, step: int, max_steps: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def _trim_log(path: Path, step: int) -> tuple[int, int]:
    """Keep only the records of steps <= ``step`` (the checkpoint a run resumes from) in the metrics log:
    a run killed after logging steps past its last checkpoint redoes them, and would log them twice. Drops
    lines that are not a whole record too (the torn last line of a kill). Rewritten atomically, and only
    when something goes. Returns (records after ``step`` dropped, torn lines dropped)."""
    from ..io.atomic import write_text_atomic

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


def _sync_log(log) -> None:
    """Make the log durable up to the checkpoint about to be written (after a power cut it then holds every
    step the checkpoint does)."""
    if log:
        log.flush()
        os.fsync(log.fileno())


def _draw_step(cfg: TrainConfig, source, step: int, dist: Dist, model):
    """This process's share of the step's global batch (``[optim] batch_size`` sequences, split evenly over the
    processes): (batch, its noise, its pose-dropout mask), on the process's device. The same global batch for
    any number of processes, so a run may resume on more or fewer of them."""
    from .batches import draw_share

    per_rank = cfg.optim.batch_size // dist.world
    rate = float(getattr(model.config, "pose_dropout", 0.0))
    batch, noise, pose_drop = draw_share(cfg, source, step, dist.rank * per_rank, per_rank, rate)
    return batch.to(dist.device), noise.to(dist.device), pose_drop.to(dist.device)


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

    from ..dfot.checkpoint import build_model
    from ..dfot.schedule import NoiseSchedule
    from ..generation.pipeline import accumulated_backward
    from ..parallel.fsdp import local_float
    from .batches import batch_source

    dist = init_distributed()
    out = Path(out)
    check_processes(cfg, dist.world)
    check_batch_memory(cfg, dist.device)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        remove_partial_files(out)
    torch.manual_seed(cfg.seed)
    net_config = network_config(cfg)
    model = build_model(net_config).to(dist.device)
    model.checkpoint_blocks = cfg.activation_checkpointing
    model.random_pose_dropout = False  # drawn per sequence by _draw_step
    if cfg.init_from:
        weights = initial_weights(cfg.init_from)
        if getattr(model.config, "attention", None) == "full":
            from ..dfot.model import full_attention_weights

            weights = full_attention_weights(weights, model.config.dim)
        if model.config.cue != "none":
            from ..dfot.model import cue_weights

            weights = cue_weights(weights, model.config)
        model.load_state_dict(weights)
        if dist.main:
            print(f"initialised from {cfg.init_from}", file=sys.stderr)
    ema = build_model(net_config).to(dist.device)
    if cfg.lora.rank:
        from ..dfot.lora import add_lora

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
        from ..parallel import fsdp

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
        net = PerSequenceSeeds(net, model)

    stop_step = cfg.max_steps if max_steps is None else min(max_steps, cfg.max_steps)
    source = batch_source(cfg)
    # Shards, or procedural scenes with [data] loader_workers: read / rendered by DataLoader workers, step by
    # step from the resumed one (the same batches as drawn here: each is a function of the step alone).
    batches = None
    if cfg.data.shards or cfg.data.loader_workers:
        from .batches import step_loader

        batches = iter(step_loader(cfg, source, step, stop_step, rank=dist.rank, world=dist.world,
                                   pose_rate=float(getattr(model.config, "pose_dropout", 0.0))))
    sample_log = None
    if os.environ.get(SAMPLE_LOG_ENV):
        Path(os.environ[SAMPLE_LOG_ENV]).mkdir(parents=True, exist_ok=True)
        sample_log = open(Path(os.environ[SAMPLE_LOG_ENV]) / f"samples.rank{dist.rank}.jsonl", "a")
    schedule = NoiseSchedule(shift=cfg.noise_shift)
    log = open(out / LOG_NAME, "a") if dist.main else None
    from .board import Board

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
                check_ranks_agree(model, dist, log, step)
            del net  # the DDP wrapper before its process group; every rank done before the group goes
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        if log:
            log.close()
        board.close()
    return {"step": step, "elapsed_s": elapsed, "loss_ema": running, "out": str(out), "state_bytes": held}
