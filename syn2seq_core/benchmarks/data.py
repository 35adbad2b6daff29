"""Shard loader speed against the training step: is reading prepared shards ever the bottleneck?

For a training config (default ``configs/synthetic_tiny.toml``), in one run: renders ``--takes`` procedural
takes at the config's size into a temporary folder, prepares them into shards (``syn2seq prepare``, the
``--transition`` backend), then measures side by side

* **loader**: samples/s of the training loader alone (:func:`~syn2seq_core.training.batches.step_loader`: read,
  decode, window, noise levels, rays, noise) with each ``--workers`` count (0 = in the training process);
* **step**: samples/s of the training step alone on batches drawn beforehand (forward, backward, AdamW, EMA:
  the config's network, batch, accumulation and bf16 setting, as ``syn2seq train`` runs it here);
* **train**: samples/s of steps fed by the loader (what a run sees), per worker count;
* **world**: samples/s of the procedural world's on-the-fly batches (the source without shards), for scale.

The ratio loader/step says how much faster data comes than the step consumes it (>= 1: never waiting on
data, given the cores); train/step says what is left of the step's speed with the loader running beside it
on this machine (the workers share its cores with the step). Best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = Path(__file__).resolve().parents[2] / "configs" / "synthetic_tiny.toml"
    parser.add_argument("--config", default=str(default), help="a training config (default configs/synthetic_tiny.toml)")
    parser.add_argument("--takes", type=int, default=24, help="procedural takes to prepare (default 24)")
    parser.add_argument("--transition", default="blend", help="backend of the prepared transitions (default blend)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader workers (default 0 1 2)")
    parser.add_argument("--steps", type=int, default=12, help="steps per measurement (default 12)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N runs (default 2)")


def _prepare(cfg, takes: int, transition: str, folder: Path) -> Path:
    from ..data import shards
    from ..data.synthetic import SyntheticConfig, render_takes
    from ..data.takes import write_take

    d = cfg.data
    world = SyntheticConfig(size=d.size, supersample=d.supersample, exo_frames=d.exo_frames, ego_frames=d.ego_frames)
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(world).items()
                if k not in ("chunk_rays", "threads")}
    batch = render_takes(list(range(takes)), world, depth=True)
    for i in range(takes):
        t = batch.take(i)
        write_take(folder / "takes" / f"take_{i:05d}", t.exo_frames, t.exo_cameras, t.ego_frames, t.ego_cameras,
                   fps=world.fps, depth={"exo": batch.exo_depth[i], "ego": batch.ego_depth[i]},
                   meta={"source": shards.SYNTHETIC_SOURCE, "seed": t.seed, "synthetic": settings})
    names, loader = shards.folder_takes(folder / "takes")
    settings = shards.PrepareSettings(size=d.size, exo_frames=d.exo_frames, ego_frames=d.ego_frames,
                                      transition_frames=d.transition_frames, transition=transition,
                                      takes_per_shard=8, both_directions=d.ego2exo_prob > 0 and transition != "ideal")
    shards.prepare(names, loader, folder / "shards", settings, progress=False)
    return folder / "shards" / shards.MANIFEST_NAME


def _best(fn, repeats: int) -> float:
    return min(fn() for _ in range(max(1, repeats)))


def run(args) -> int:
    from ..base.errors import require
    from ..dfot.checkpoint import build_model
    from ..dfot.schedule import NoiseSchedule
    from ..generation.pipeline import accumulated_backward
    from ..training.batches import batch_source, draw_share, step_loader
    from ..training.config import load_config, network_config

    require(args.takes >= 1 and args.steps >= 1, "--takes/--steps", "positive numbers", (args.takes, args.steps))
    require(all(w >= 0 for w in args.workers), "--workers", "counts >= 0", args.workers)
    base = load_config(args.config)
    require(base.stage == "finetune", f"{args.config} stage", "finetune (shards hold triplets)", base.stage)
    B, steps = base.optim.batch_size, args.steps
    with tempfile.TemporaryDirectory(prefix="syn2seq-bench-data-") as tmp:
        t0 = time.perf_counter()
        manifest = _prepare(base, args.takes, args.transition, Path(tmp))
        prep_s = time.perf_counter() - t0
        cfg = dataclasses.replace(base, init_from=None, data=dataclasses.replace(base.data, shards=(str(manifest),)))
        source = batch_source(cfg)
        net_cfg = network_config(cfg)
        rate = float(getattr(net_cfg, "pose_dropout", 0.0))

        def loader_rate(workers: int) -> float:
            it = iter(step_loader(cfg, source, 0, steps + 1, pose_rate=rate, workers=workers))
            next(it)  # start-up (worker processes) is not throughput
            t = time.perf_counter()
            for _ in range(steps):
                next(it)
            return B * steps / (time.perf_counter() - t)

        torch.manual_seed(0)
        model = build_model(net_cfg).train()
        model.random_pose_dropout = False
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ema = build_model(net_cfg)
        schedule = NoiseSchedule(shift=cfg.noise_shift)

        def step(batch, noise, pose_drop) -> None:
            opt.zero_grad(set_to_none=True)
            accumulated_backward(model, batch, None, schedule, cfg.loss_weighting, cfg.optim.accumulate,
                                 lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16), noise=noise,
                                 pose_drop=pose_drop, weight_total=batch.loss_mask.sum(), world=1)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 0.001)

        drawn = [draw_share(cfg, source, s, 0, B, rate) for s in range(steps + 1)]

        def step_rate() -> float:
            step(*drawn[0])
            t = time.perf_counter()
            for s in range(1, steps + 1):
                step(*drawn[s])
            return B * steps / (time.perf_counter() - t)

        def train_rate(workers: int) -> float:
            it = iter(step_loader(cfg, source, 0, steps + 1, pose_rate=rate, workers=workers))
            _, *first = next(it)
            step(*first[:3])
            t = time.perf_counter()
            for _ in range(steps):
                _, batch, noise, pose_drop, _ = next(it)
                step(batch, noise, pose_drop)
            return B * steps / (time.perf_counter() - t)

        world_source = batch_source(base)

        def world_rate() -> float:
            draw_share(base, world_source, 0, 0, B, rate)
            t = time.perf_counter()
            for s in range(1, steps + 1):
                draw_share(base, world_source, s, 0, B, rate)
            return B * steps / (time.perf_counter() - t)

        step_sps = _best(step_rate, args.repeats)
        rows = [(w, _best(lambda w=w: loader_rate(w), args.repeats), _best(lambda w=w: train_rate(w), args.repeats))
                for w in args.workers]
        world_sps = _best(world_rate, args.repeats)
    n = len(source.readers[0])
    d = cfg.data
    print(f"{cfg.name}: batch {B}, [{d.exo_frames} exo | {d.transition_frames} transition | {d.ego_frames} ego] at "
          f"{d.size}x{d.size}, window {d.window or 'whole'}; {n} samples prepared from {args.takes} takes "
          f"({args.transition}) in {prep_s:.1f} s; {torch.get_num_threads()} torch threads, "
          f"bf16 {'on' if cfg.bf16 else 'off'}{' (emulated on this CPU)' if cfg.bf16 and not _native_bf16() else ''}")
    print(f"training step alone: {step_sps:.1f} samples/s; procedural world on the fly: {world_sps:.1f} samples/s "
          f"({world_sps / step_sps:.2f}x the step)")
    header = ("loader workers", "loader samples/s", "loader/step", "train with loader samples/s", "train/step")
    print(" | ".join(header))
    for w, lr, tr in rows:
        print(" | ".join(f"{c:>{len(h)}}" for c, h in zip((w, f"{lr:.1f}", f"{lr / step_sps:.2f}x", f"{tr:.1f}",
                                                           f"{tr / step_sps:.2f}x"), header)))
    return 0


def _native_bf16() -> bool:
    from ..generation.pipeline import _cpu_has_native_bf16

    return _cpu_has_native_bf16()
