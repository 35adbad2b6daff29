"""``syn2seq bench sampler``: one DFoT denoising step of the DiT3D presets, measured side by side.

For each config (default: ``tiny``, the bundled CPU model, and ``small``, a larger one) at its full
window: parameters, GFLOPs per denoising step (``torch.utils.flop_counter`` on one forward, with the
CPU flash-attention kernel counted as ``4 N^2 d`` per head), step time and frames/s in float32 and in
bf16 autocast, and the achieved GFLOP/s as a fraction of this machine's matmul GFLOP/s (2048x2048,
same dtype) measured right before it. Peak memory of a step is measured in a fresh subprocess per
config (Linux: the peak-RSS counter is reset, then read after the step; elsewhere ``ru_maxrss``).
Last, the peak-memory ratio of ``factorized`` to ``full`` attention at 16 and 32 frames, once with the
default SDPA kernel and once with the math kernel that materialises the attention matrix.

Targets (issue 3): tiny float32 step >= 50% of float32 matmul; bf16 >= 25% of bf16 matmul;
factorized <= 1/3 of full's memory at 32 frames.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

PROBE = "import sys; from syn2seq_core.benchmarks.sampler import _memory_probe; _memory_probe(sys.argv[1])"


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few seconds: fewer repeats, short windows")
    parser.add_argument("--configs", default="tiny,small", help="DiT3D presets, comma separated")
    parser.add_argument("--batch", type=int, default=2, help="videos per step (2 = conditional + guidance)")
    parser.add_argument("--frames", type=int, default=0, help="frames per video (0 = each config's window)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")


# --- measurement helpers -------------------------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, device, reps: int, warmup: int = 1, budget_s: float = 20.0) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times, start = [], time.perf_counter()
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and len(times) >= 1:
            break
    return statistics.median(times)


def matmul_gflops(dtype, device, size: int = 2048, reps: int = 5) -> float:
    """Dense matmul throughput of this machine in ``dtype`` (GFLOP/s)."""
    import torch

    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return 2 * size ** 3 / _median_time(lambda: a @ b, device, reps) / 1e9


def step_flops(model, x, logsnr, rays) -> float:
    """FLOPs of one forward, counted by FlopCounterMode (+ the CPU flash-attention op it does not know)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def flash_cpu(q, k, v, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(q, k, v)

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = flash_cpu
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x, logsnr, rays)
    return float(counter.get_total_flops())


def _inputs(config, batch: int, frames: int, device, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, config.in_channels, config.height, config.width, generator=g)
    logsnr = torch.randn(batch, frames, generator=g) * 4
    rays = torch.randn(batch, frames, config.height, config.width, config.cond_channels, generator=g)
    return x.to(device), logsnr.to(device), rays.to(device)


def _config(name: str, frames: int, attention: str | None = None):
    from ..dfot.model import dit3d_preset

    overrides = {}
    if attention:
        overrides["attention"] = attention
    config = dit3d_preset(name, **overrides)
    if frames > config.max_frames:
        config = config.replace(max_frames=frames)
    return config


def _memory_probe(spec_json: str) -> None:
    """Child process: one denoising step; prints {"base_mb", "peak_mb", "step_mb"} as JSON."""
    import gc

    import torch

    from ..dfot.model import DiT3D
    from ._rss import peak_mb, reset_peak

    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    config = _config(spec["config"], spec["frames"], spec.get("attention"))
    model = DiT3D(config).to(device).eval()
    x, logsnr, rays = _inputs(config, spec["batch"], spec["frames"], device)
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernel = sdpa_kernel([SDPBackend.MATH]) if spec.get("math") else contextlib.nullcontext()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2 ** 20
    else:
        reset_peak()
        base = peak_mb()
    with torch.no_grad(), kernel, torch.autocast(device.type, dtype=torch.bfloat16,
                                                                 enabled=spec.get("bf16", False)):
        model(x, logsnr, rays)
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else peak_mb()
    print(json.dumps({"base_mb": base, "peak_mb": peak, "step_mb": peak - base}))


def memory_of_step(**spec) -> dict:
    """Run :func:`_memory_probe` in a fresh Python process (so earlier steps do not hide this one's peak)."""
    import torch

    spec.setdefault("threads", torch.get_num_threads())
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(spec)], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"memory probe failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _step(model, x, logsnr, rays, bf16: bool) -> None:
    import torch

    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        model(x, logsnr, rays)


# --- the benchmark -------------------------------------------------------------------------------------------
def run(args) -> int:
    import torch

    from ..dfot.model import DiT3D, count_parameters

    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    reps = 1 if args.quick else 3
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    print(f"syn2seq bench sampler: one denoising step (B={args.batch}), device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device.type == "cpu" and load > 0.5:
        print(f"warning: other processes keep the CPU busy (1-min load {load:.1f} on {os.cpu_count()} cores). "
              "Busy cores slow small multi-threaded ops far more than one big matmul (OpenMP threads spin-wait), "
              "so ratios come out low; for a fair ratio rerun when idle, or with --threads 1 or "
              "OMP_WAIT_POLICY=PASSIVE.")
    rows = []
    for name in names:
        base = _config(name, 0)
        frames = args.frames or base.max_frames
        if args.quick and name != "tiny":
            frames = min(frames, 4)
        config = _config(name, frames)
        torch.manual_seed(0)
        model = DiT3D(config).to(device).eval()
        x, logsnr, rays = _inputs(config, args.batch, frames, device)
        # FLOPs of the same network on the meta device: counted without computing anything.
        flops = step_flops(DiT3D(config, device="meta").eval(), *(t.to("meta") for t in (x, logsnr, rays)))
        row = {"config": name, "frames": frames, "tokens": frames * config.grid[0] * config.grid[1],
               "attention": config.attention, "params_m": count_parameters(model) / 1e6, "gflop": flops / 1e9}
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            peak = matmul_gflops(dtype, device, reps=3 if args.quick else 5)
            step = lambda m=model, bf16=label == "bf16": _step(m, x, logsnr, rays, bf16=bf16)  # noqa: E731
            seconds = _median_time(step, device, reps, budget_s=4 if args.quick else 8)
            row[label] = {"s": seconds, "fps": args.batch * frames / seconds, "gflops": flops / seconds / 1e9,
                          "peak": peak, "ratio": flops / seconds / 1e9 / peak}
        if not args.no_memory and not args.quick:
            row["memory"] = memory_of_step(config=name, frames=frames, batch=args.batch, device=str(device))
        rows.append(row)
        del model

    print()
    header = (f"{'config':<7} {'T':>3} {'tokens':>6} {'params':>8} {'GFLOP/step':>10} | {'dtype':<5} "
              f"{'step ms':>8} {'frames/s':>9} {'GFLOP/s':>8} {'matmul':>7} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        for i, label in enumerate(("fp32", "bf16")):
            r = row[label]
            lead = (f"{row['config']:<7} {row['frames']:>3} {row['tokens']:>6} {row['params_m']:>7.2f}M "
                    f"{row['gflop']:>10.2f}") if i == 0 else " " * 40
            print(f"{lead} | {label:<5} {r['s'] * 1e3:>8.1f} {r['fps']:>9.1f} {r['gflops']:>8.1f} "
                  f"{r['peak']:>7.0f} {r['ratio'] * 100:>5.0f}%")
    if any("memory" in r for r in rows):
        print("\npeak memory of one fp32 step (fresh process; 'step' = above the loaded model and inputs):")
        for row in rows:
            if "memory" in row:
                m = row["memory"]
                print(f"  {row['config']:<7} total {m['peak_mb']:>7.0f} MB   step +{m['step_mb']:.0f} MB")
    tiny = next((r for r in rows if r["config"] == "tiny"), None)
    if tiny:
        print(f"\ntargets (tiny): fp32 {tiny['fp32']['ratio'] * 100:.0f}% of fp32 matmul (>= 50%: "
              f"{'met' if tiny['fp32']['ratio'] >= 0.5 else 'NOT met'}); bf16 {tiny['bf16']['ratio'] * 100:.0f}% of "
              f"bf16 matmul (>= 25%: {'met' if tiny['bf16']['ratio'] >= 0.25 else 'NOT met'})")

    if not args.no_memory:
        print("\nfactorized / full attention, peak memory of one fp32 step above the model (tiny, "
              f"B={args.batch}):")
        frame_counts = (16,) if args.quick else (16, 32)
        kernels = (False,) if args.quick else (False, True)
        for math_kernel in kernels:
            cells = []
            for frames in frame_counts:
                mb = {att: memory_of_step(config="tiny", frames=frames, batch=args.batch, device=str(device),
                                          attention=att, math=math_kernel)["step_mb"]
                      for att in ("factorized", "full")}
                ratio = mb["factorized"] / max(mb["full"], 1e-6)
                cells.append(f"T={frames}: {mb['factorized']:.0f} / {mb['full']:.0f} MB = {ratio:.2f}"
                             + (f" (target <= 0.33: {'met' if ratio <= 1 / 3 else 'NOT met'})" if frames == 32 else ""))
            kernel = "math SDPA (materialised attention)" if math_kernel else "default SDPA kernel"
            print(f"  {kernel:<36} " + "   ".join(cells))
    return 0
