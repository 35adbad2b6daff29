"""Memory planner of a training config: per-GPU memory of DDP and FSDP2, with and without activation
checkpointing, for 1-8 GPUs, and which settings fit ``--vram`` GB.

Computed from the config's network itself, never from a table of guesses:

- **states**: the parameter count from the network built on the meta device (no memory): fp32 weights,
  fp32 gradients, AdamW's two fp32 moments and the trainer's fp32 EMA copy, 20 bytes per parameter; DDP adds
  its fp32 gradient buckets (4 more). FSDP2 (``fully_shard`` per block) divides the 20 bytes by the number
  of GPUs and adds the largest block's unsharded weights twice (the all-gather of the block running and
  of the next one, prefetched) and its unsharded gradients once (before the reduce-scatter): fp32, or under
  bf16 the bfloat16 weights and gradients of :func:`syn2seq_core.parallel.fsdp.mixed_precision` and the gradient's fp32
  copy that is reduced.
- **activations**: measured. The network runs forward on the CPU at two small probe sizes (under bf16
  autocast, as training on a GPU), at the config's frame size reduced to ``--probe-size`` and at 1 and 2
  frames, and a saved-tensor hook adds up the bytes autograd keeps for the backward pass (parameters
  themselves excluded). Activation memory is linear in the number of pixels times frames for these networks
  (convolutions, MLPs and fused attention keep O(tokens) each), so the two probes give the constant part (bf16
  copies of the weights, embeddings) and the per-pixel-frame part, extrapolated to the config's size and
  window. With activation checkpointing only the blocks' inputs are kept, plus the largest block's own
  activations while it is recomputed (measured per block, constant and per-pixel-frame parts alike).
- **batch**: the step's frames, their noise and the camera input (rays: 180 channels for the U-ViT) in fp32.
- **overhead**: ``--overhead`` GB per GPU (CUDA context, NCCL buffers, allocator fragmentation; default 2).

The numbers are a plan. ``--measure`` checks it where the command runs: it trains the config's network
(random weights, the config's data, bf16 and compile settings) for a few steps in one process per setting
(batch x activation checkpointing), on CUDA when there is a GPU, else on the CPU, and prints beside the
one-process plan (states without DDP buckets + activations + batch, no overhead) the peak of live tensor
bytes on the device (:class:`~syn2seq_core.benchmarks.memory.LiveTensors`: what the plan counts, measured
alike on every device) and their ratio, then, as columns of their own, what else a process holds: on CUDA the
allocator's peak allocated and reserved memory, everywhere the process's peak RSS above its size before
training (interpreter, libraries, the allocator's free lists), and the trainer's step time. ``--measure-ranks
N`` trains on N processes (torchrun) under DDP and FSDP2 and prints each process's parameters, gradients,
optimizer state and EMA side by side (the FSDP2 rows of the plan, measured).

How close the plan is (2-core CPU, 2026-12-07; ``--measure --measure-steps 1 --probe-size 16`` on
``configs/synthetic_tiny.toml``, a 2.6M-parameter DiT3D, and ``configs/synthetic_uvit.toml``, a 5.7M-parameter
U-ViT, each at 32 and at 64 px (``--size 64``), batch 1 and 2, checkpointing off and on: 16 settings): the peak
of live tensors was 0.88-1.10 x the plan (0.88-0.99 without activation checkpointing, 0.92-1.10 with it);
the process RSS above its start, what the previous column compared, was 1.7-3.6 x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import torch

from ..base import limits

GB = 1024**3
STATE_BYTES = 4 + 4 + 8 + 4  # fp32 weights, gradients, AdamW moments, EMA
DDP_BUCKET_BYTES = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a training config (TOML)")
    parser.add_argument("--vram", **limits.option("plan_vram_gb", "GPU memory in GB (GiB) to plan for", 80.0))
    parser.add_argument("--batch", type=limits.arg("plan_batch"), nargs="+", default=[1, 2],
                        help="micro-batch sizes per GPU (default 1 2)")
    parser.add_argument("--gpus", type=limits.arg("plan_gpus"), nargs="+", default=[1, 2, 4, 8],
                        help="GPUs per node (default 1 2 4 8)")
    parser.add_argument("--frames", **limits.option("model_window", "frames per training sequence", None,
                                                    default_text="default: the model's window"))
    parser.add_argument("--probe-size", **limits.option(
        "model_size", "frame side of the CPU measurement (a multiple of the network's stride)", 64))
    parser.add_argument("--overhead", **limits.option(
        "plan_overhead_gb", "GB per GPU for the CUDA context, NCCL and fragmentation", 2.0))
    parser.add_argument("--size", **limits.option(
        "model_size", "frame side to plan and measure at instead of the config's (the same network otherwise)",
        None, default_text="default: the config's [data] size"))
    parser.add_argument("--measure", action="store_true",
                        help="also train each one-process setting (--batch x checkpointing off/on) for a few "
                             "steps here (CUDA if there is a GPU, else CPU; random weights) and print measured "
                             "peak memory and step time beside the plan")
    parser.add_argument("--measure-steps", **limits.option("plan_steps", "timed steps per measured setting", 3))
    parser.add_argument("--measure-ranks", type=limits.arg("plan_gpus"), default=None, metavar="N",
                        help="also train 2 steps on N processes (torchrun: gloo on CPU, NCCL on GPUs) under DDP, "
                             "then under FSDP2, 1 sequence per process, and print each process's parameters, "
                             "gradients, optimizer state and EMA, and its peak of live tensors, side by side")


def block_modules(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The units activation checkpointing wraps: DiT3D blocks, U-ViT ResBlocks / transformer blocks."""
    from ..dfot.model import DiTBlock
    from ..dfot.uvit3d import ResBlock, TransformerBlock

    return [m for m in network.modules() if isinstance(m, (DiTBlock, ResBlock, TransformerBlock))]


def measure_activations(config, frames: int, batch: int = 1, checkpoint: bool = False) -> tuple[int, int]:
    """(bytes autograd keeps for backward, the largest single block's share) of one forward of ``batch``
    videos of ``frames`` frames of a network of ``config`` (random weights), on the CPU under bf16 autocast."""
    from ..dfot.checkpoint import build_model

    torch.manual_seed(0)
    net = build_model(config).train()
    net.checkpoint_blocks = checkpoint
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: set[int] = set()
    total = [0]
    per_block: dict[int, int] = {}
    current: list[int] = []

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total[0] += storage.nbytes()
            if current:
                per_block[current[-1]] = per_block.get(current[-1], 0) + storage.nbytes()
        return t

    def enter(i):
        def hook(module, args):
            current.append(i)
        return hook

    def leave(module, args, output):  # returns None: the output stays
        current.pop()

    hooks = []
    for i, block in enumerate(block_modules(net)):
        hooks.append(block.register_forward_pre_hook(enter(i)))
        hooks.append(block.register_forward_hook(leave))
    c = config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, frames, c.in_channels, c.height, c.width, generator=g)
    rays = torch.randn(batch, frames, c.height, c.width, c.cond_channels, generator=g)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(x, torch.zeros(batch, frames), rays)
        del out
    finally:
        for h in hooks:
            h.remove()
    return total[0], max(per_block.values(), default=0)


@dataclasses.dataclass
class Plan:
    parameters: int
    largest_block_parameters: int
    # activation bytes = const + per_pixel_frame * batch * frames * height * width, without / with checkpointing
    act_const: float
    act_per_px: float
    ckpt_const: float
    ckpt_per_px: float
    block_peak_per_px: float
    # the largest block's own activations (recomputed under checkpointing): const + per_px * pixel frames
    block_peak_const: float = 0.0
    # the step's batch on the device, float32: frames, their noise and the camera input (rays, cue)
    input_per_px: float = 0.0

    def activations(self, batch: int, pixel_frames: int, checkpoint: bool) -> float:
        n = batch * pixel_frames
        if checkpoint:
            return self.ckpt_const + self.ckpt_per_px * n + self.block_peak_const + self.block_peak_per_px * n
        return self.act_const + self.act_per_px * n

    def inputs(self, batch: int, pixel_frames: int) -> float:
        return self.input_per_px * batch * pixel_frames

    def total(self, strategy: str, gpus: int, batch: int, pixel_frames: int, checkpoint: bool,
              bf16: bool = False) -> float:
        """Bytes per GPU of a training step: states, activations and the batch (no overhead)."""
        return (self.states(strategy, gpus, bf16) + self.activations(batch, pixel_frames, checkpoint)
                + self.inputs(batch, pixel_frames))

    def states(self, strategy: str, gpus: int, bf16: bool = False) -> float:
        """Bytes per GPU of ``strategy``: "ddp", "fsdp2", or "single" (one process, no wrapper). FSDP2 under
        ``bf16`` gathers bfloat16 weights (syn2seq_core.parallel.fsdp.mixed_precision): 2 bytes per unsharded weight and
        unsharded gradient, and the gradient's float32 copy for the reduce-scatter."""
        p, b = self.parameters, self.largest_block_parameters
        if strategy == "single":
            return STATE_BYTES * p
        if strategy == "ddp":
            return (STATE_BYTES + DDP_BUCKET_BYTES) * p
        return STATE_BYTES * p / gpus + ((2 * 2 + 2 + 4) if bf16 else (2 * 4 + 4)) * b


def make_plan(config, probe_size: int) -> Plan:
    from ..dfot.checkpoint import build_model
    from ..parallel.fsdp import shard_units

    meta = build_model(config, device="meta")
    parameters = sum(p.numel() for p in meta.parameters())
    largest = max((sum(p.numel() for p in m.parameters()) for m in shard_units(meta)), default=0)
    probe = dataclasses.replace(config, height=probe_size, width=probe_size)
    px = probe_size * probe_size
    full1, _ = measure_activations(probe, 1)
    full2, _ = measure_activations(probe, 2)
    ck1, _ = measure_activations(probe, 1, checkpoint=True)
    ck2, _ = measure_activations(probe, 2, checkpoint=True)
    _, block1 = measure_activations(probe, 1)
    _, block2 = measure_activations(probe, 2)
    per_px = (full2 - full1) / px
    ck_per_px = (ck2 - ck1) / px
    block_per_px = (block2 - block1) / px  # a block's bf16 weight copies are its constant part, not per pixel
    return Plan(parameters, largest, full1 - per_px * px, per_px, ck1 - ck_per_px * px, ck_per_px,
                block_per_px, block1 - block_per_px * px, 4 * (2 * config.in_channels + config.cond_channels))


def at_size(cfg, size: int | None):
    """``cfg`` with its network as an explicit [model] table (random weights: no init_from), at frame side
    ``size`` (its own when None)."""
    from ..dfot.checkpoint import config_to_dict
    from ..training.config import network_config

    config = network_config(cfg)
    size = size or cfg.data.size
    table = {"arch": type(config).arch, **config_to_dict(config), "height": size, "width": size}
    return dataclasses.replace(cfg, model=table, init_from=None, data=dataclasses.replace(cfg.data, size=size))


def measured_config(cfg, batch: int, checkpoint: bool, cuda: bool):
    """What ``--measure`` trains: one process, ``batch`` sequences, no accumulation, nothing written but the
    log; on a GPU the procedural scenes are rendered by DataLoader workers, as a GPU run should."""
    from ..training.config import MAX_STEPS

    workers = cfg.data.loader_workers or (min(8, (os.cpu_count() or 2) - 1) if cuda else 0)
    return dataclasses.replace(
        cfg, activation_checkpointing=checkpoint, checkpoint_every=MAX_STEPS, snapshot_every=0, preview_every=0,
        tensorboard=False, log_every=1, data=dataclasses.replace(cfg.data, loader_workers=workers),
        optim=dataclasses.replace(cfg.optim, batch_size=batch, accumulate=1))


def measure_training(cfg_json: str, steps: int, live: bool = False) -> dict:
    """Train the config (its JSON) for 1 + ``steps`` steps in this process, keeping nothing; the peak memory
    and the mean time of the steps after the first. Run in a fresh process (:func:`measure_all`).
    live: count the peak bytes of live tensors on the training device instead (:class:`~.memory.LiveTensors`
    around the whole run: model, EMA, optimizer state, batches, activations; its per-operator overhead makes
    the times of such a run meaningless)."""
    import contextlib
    import tempfile
    from pathlib import Path

    from ..base.errors import Syn2SeqInputError
    from ..training import batches as training  # noqa: F401  the trainer's imports, before the baseline
    from ..training.checkpoints import LOG_NAME
    from ..training.config import config_from_dict
    from ..training.loop import train
    from ._rss import peak_mb, reset_peak
    from .memory import LiveTensors

    cfg = config_from_dict(json.loads(cfg_json), "measured config")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # one process, also when the command runs under torchrun
        os.environ.pop(name, None)
    cuda = torch.cuda.is_available()
    reset_peak()
    base = peak_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    counter = LiveTensors() if live else None
    try:
        with tempfile.TemporaryDirectory(prefix="syn2seq_measure_") as tmp:
            with counter or contextlib.nullcontext():
                train(cfg, tmp, max_steps=steps + 1, progress=False, final_checkpoint=False)
            records = [json.loads(line) for line in (Path(tmp) / LOG_NAME).read_text().splitlines()]
    except (torch.OutOfMemoryError, Syn2SeqInputError) as e:
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    if counter is not None:
        return {"peak_live": counter.peak[f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"]}
    elapsed = [r["elapsed_s"] for r in records]
    result = {"first_step_s": elapsed[0], "step_s": (elapsed[-1] - elapsed[0]) / steps,
              "peak_rss": (peak_mb() - base) * 2**20}
    if cuda:
        result["peak_allocated"] = torch.cuda.max_memory_allocated()
        result["peak_reserved"] = torch.cuda.max_memory_reserved()
    return result


def measure_all(configs: list, steps: int, live: bool = False):
    """Yield :func:`measure_training` of each config, each in its own fresh process (peaks do not mix; an
    out-of-memory kill ends only that one)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    for cfg in configs:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                yield pool.submit(measure_training, cfg.to_json(), steps, live).result()
            except BrokenProcessPool:
                yield {"error": "the process died (killed for memory?)"}


def measure_settings(cfg, batches: list[int], steps: int) -> list[tuple[int, bool, dict]]:
    """(batch, checkpointing, :func:`measure_training`'s result) of each setting: a timed run (RSS, CUDA
    allocator peaks, step times) and a run of 2 steps under the live-tensor counter (the optimizer state exists
    from the first step's end, so the second holds everything the plan counts), each in a fresh process. Run
    before the plan, whose CPU probes would otherwise stay in this process's memory beside the measured one."""
    cuda = torch.cuda.is_available()
    settings = [(b, c) for b in batches for c in (False, True)]
    print(f"measuring {len(settings)} settings on {torch.cuda.get_device_name() if cuda else 'the CPU'} (1 warm-up "
          f"+ {steps} timed steps each, then 2 steps counting live tensors; one process each) ...", flush=True)
    configs = [measured_config(cfg, b, c, cuda) for b, c in settings]
    results = []
    for (batch, ckpt), got, counted in zip(settings, measure_all(configs, steps), measure_all(configs, 1, live=True)):
        if "error" not in got:
            got = {**got, **counted} if "error" not in counted else {**got, "live_error": counted["error"]}
        print(f"  batch {batch}, checkpointing {'on' if ckpt else 'off'}: "
              + (got["error"] if "error" in got else f"{got['step_s']:.3f} s/step"), flush=True)
        results.append((batch, ckpt, got))
    return results


RANK_WORKER = "--rank-worker"


def rank_worker(cfg_json: str, out_dir: str) -> None:
    """One torchrun process of :func:`measure_ranks`: train 2 steps counting live tensors, then write
    ``<out_dir>/rank<R>.json`` (the trainer's ``state_bytes``, the peak of live tensors on its device and the
    dtype the weights had inside a forward)."""
    import tempfile
    from pathlib import Path

    from ..training.config import config_from_dict
    from ..training.loop import train
    from .memory import LiveTensors

    cfg = config_from_dict(json.loads(cfg_json), "measured config")
    rank = int(os.environ.get("RANK", "0"))
    seen: list[str] = []

    def weight_dtype(module, args):
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None and not seen:
            seen.append(str(getattr(weight, "_local_tensor", weight).dtype).replace("torch.", ""))

    hook = torch.nn.modules.module.register_module_forward_pre_hook(weight_dtype)
    try:
        with tempfile.TemporaryDirectory(prefix=f"syn2seq_ranks{rank}_") as tmp, LiveTensors() as live:
            summary = train(cfg, tmp, max_steps=2, progress=False, final_checkpoint=False)
    finally:
        hook.remove()
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
        {"rank": rank, **summary["state_bytes"], "peak_live": live.peak[device], "forward_weights": seen[0]}))


def measure_ranks(cfg, procs: int) -> dict[str, list[dict]]:
    """{"ddp": [per rank], "fsdp": [per rank]}: :func:`rank_worker` of 2 training steps on ``procs`` processes
    under each engine (torchrun, 1 sequence per process, no accumulation, nothing kept)."""
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from ..base.errors import Syn2SeqInputError

    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if exe is None:
        raise Syn2SeqInputError("--measure-ranks", "torchrun (installed with torch)", "no torchrun on PATH")
    results = {}
    for engine in ("ddp", "fsdp"):
        measured = measured_config(cfg, procs, False, torch.cuda.is_available())
        measured = dataclasses.replace(measured, parallel=engine, data=dataclasses.replace(measured.data,
                                                                                          loader_workers=0))
        with tempfile.TemporaryDirectory(prefix="syn2seq_ranks_") as tmp:
            env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
            r = subprocess.run([exe, "--standalone", f"--nproc_per_node={procs}", "-m", __spec__.name,
                                RANK_WORKER, measured.to_json(), tmp], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"--measure-ranks {procs} under {engine} failed:\n{r.stderr[-3000:]}")
            results[engine] = [json.loads(Path(tmp, f"rank{i}.json").read_text()) for i in range(procs)]
    return results


def print_ranks(cfg, plan: Plan, results: dict[str, list[dict]], procs: int) -> None:
    MB = 2**20
    device = "GPU" if torch.cuda.is_available() else "CPU, gloo"
    print(f"\nper process at {procs} processes ({device}): {cfg.name}, {cfg.data.size}x{cfg.data.size}, bf16 "
          f"{'on' if cfg.bf16 else 'off'}, 1 sequence per process, 2 steps\n")
    print("| engine | rank | parameters MB | gradients MB | optimizer MB | EMA MB | states MB | plan states MB | "
          "peak live tensors MB | weights in forward |\n|---|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for engine, ranks in results.items():
        strategy = "ddp" if engine == "ddp" else "fsdp2"
        planned = plan.states(strategy, procs, bf16=cfg.bf16)
        for r in ranks:
            states = r["parameters"] + r["gradients"] + r["optimizer"] + r["ema"]
            totals.setdefault(engine, []).append((states, r["peak_live"]))
            print(f"| {'DDP' if engine == 'ddp' else 'FSDP2'} | {r['rank']} | {r['parameters'] / MB:.2f} | "
                  f"{r['gradients'] / MB:.2f} | {r['optimizer'] / MB:.2f} | {r['ema'] / MB:.2f} | {states / MB:.2f} | "
                  f"{planned / MB:.2f} | {r['peak_live'] / MB:.1f} | {r['forward_weights']} |")
    if len(totals) == 2:
        states = max(s for s, _ in totals["fsdp"]) / max(s for s, _ in totals["ddp"])
        live = max(p for _, p in totals["fsdp"]) / max(p for _, p in totals["ddp"])
        print(f"FSDP2 / DDP per process: states (parameters + gradients + optimizer + EMA) x{states:.2f}, "
              f"peak live tensors x{live:.2f} (the largest process each; FSDP2's rank 0 also holds a full EMA "
              "for model files and previews)")


def print_measurements(cfg, plan: Plan, results: list[tuple[int, bool, dict]], steps: int) -> None:
    from ..training.config import _training_frames

    cuda = torch.cuda.is_available()
    frames = _training_frames(cfg)[0]
    pixel_frames = frames * cfg.data.size**2
    print(f"\nmeasured on {torch.cuda.get_device_name() if cuda else 'CPU'}: {cfg.name}, {cfg.data.size}x"
          f"{cfg.data.size}, {frames} frames, bf16 {'on' if cfg.bf16 else 'off'}, compile {cfg.compile or 'off'}, "
          f"1 warm-up + {steps} timed steps per setting\n")
    device = "cuda" if cuda else "cpu"
    cuda_cols = "CUDA peak allocated GB | CUDA peak reserved GB | " if cuda else ""
    print(f"| batch | checkpointing | plan GB (1 process, no overhead) | live tensors peak GB ({device}) | "
          f"live / plan | {cuda_cols}peak RSS GB (above the process before training) | step s | first step s |")
    print("|" + "---|" * (8 + 2 * cuda))
    for batch, ckpt, got in results:
        predicted = plan.total("single", 1, batch, pixel_frames, ckpt) / GB
        head = f"| {batch} | {'on' if ckpt else 'off'} | {predicted:.3g} | "
        if "error" in got:
            print(head + f"{got['error']} |" + " |" * (4 + 2 * cuda))
            continue
        live = got.get("peak_live")
        cells = [f"{live / GB:.3g}", f"{live / GB / predicted:.2f}"] if live else [got.get("live_error", "?"), ""]
        if cuda:
            cells += [f"{got['peak_allocated'] / GB:.3g}", f"{got['peak_reserved'] / GB:.3g}"]
        cells += [f"{got['peak_rss'] / GB:.3g}", f"{got['step_s']:.3f}", f"{got['first_step_s']:.2f}"]
        print(head + " | ".join(cells) + " |")
    print("live tensors: the peak bytes of tensor storages alive at once on the device (what the plan counts); "
          "RSS adds the interpreter, libraries and the allocator's free memory" + (", CUDA reserved the caching "
                                                                                  "allocator's pool" if cuda else ""))


def run(args) -> int:
    from ..base.errors import Syn2SeqInputError
    from ..training.config import load_config, network_config

    cfg = load_config(args.config)
    config = network_config(cfg)
    stride = config.patch_size * 2 ** (len(getattr(config, "channels", (0,))) - 1)
    for option, value in (("--probe-size", args.probe_size), ("--size", args.size)):
        if value and value % stride:
            raise Syn2SeqInputError(option, f"a multiple of the network's stride {stride}", value)
    if args.size or args.measure or args.measure_ranks:
        cfg = at_size(cfg, args.size)
        config = network_config(cfg)
    batches, gpus = args.batch, args.gpus
    frames = args.frames or config.max_frames
    measured = measure_settings(cfg, batches, args.measure_steps) if args.measure else None
    ranks = measure_ranks(cfg, args.measure_ranks) if args.measure_ranks else None
    print(f"measuring activations of {type(config).__name__} at {args.probe_size}x{args.probe_size}, 1 and 2 frames "
          f"(CPU, bf16 autocast) ...", flush=True)
    plan = make_plan(config, args.probe_size)
    pixel_frames = frames * config.height * config.width
    print(f"{cfg.name}: {plan.parameters / 1e6:.1f}M parameters (largest block {plan.largest_block_parameters / 1e6:.1f}M), "
          f"{config.height}x{config.width}, {frames} frames per sequence")
    print(f"activations per sequence: {plan.activations(1, pixel_frames, False) / GB:.2f} GB, with activation "
          f"checkpointing {plan.activations(1, pixel_frames, True) / GB:.2f} GB; states per GPU: DDP "
          f"{plan.states('ddp', 1) / GB:.2f} GB, FSDP2 {plan.states('fsdp2', 1) / GB:.2f} GB / N + ...")
    header = "| strategy | checkpointing | batch / GPU | " + " | ".join(f"{n} GPU{'s' * (n > 1)}" for n in gpus) + " |"
    print(f"\nGB per GPU (states + activations + batch + {args.overhead:g} overhead); * = fits {args.vram:g} GB\n")
    print(header)
    print("|" + "---|" * (3 + len(gpus)))
    for strategy in ("ddp", "fsdp2"):
        for ckpt in (False, True):
            for batch in batches:
                cells = []
                for n in gpus:
                    total = plan.total(strategy, n, batch, pixel_frames, ckpt, cfg.bf16) / GB + args.overhead
                    cells.append(f"{total:.1f}{'*' if total <= args.vram else ''}")
                print(f"| {strategy.upper() if strategy == 'ddp' else 'FSDP2'} | {'on' if ckpt else 'off'} | {batch} | "
                      + " | ".join(cells) + " |")
    print('\nIn the training config: FSDP2 = parallel = "fsdp", checkpointing = activation_checkpointing = true; '
          "a global batch larger than GPUs x batch / GPU: [optim] accumulate.")
    if measured:
        print_measurements(cfg, plan, measured, args.measure_steps)
    if args.measure_ranks:
        print_ranks(cfg, plan, ranks, args.measure_ranks)
    return 0


if __name__ == "__main__" and len(os.sys.argv) == 4 and os.sys.argv[1] == RANK_WORKER:
    rank_worker(os.sys.argv[2], os.sys.argv[3])
    os.sys.stdout.flush()
    os._exit(0)  # as `syn2seq train` under torchrun: no interpreter finalization after the process group
