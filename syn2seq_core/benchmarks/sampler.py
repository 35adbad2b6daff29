"""``syn2seq bench sampler``: one DFoT denoising step, measured side by side.

For each config at its full window (default: the DiT3D presets ``tiny``, the bundled CPU model's size, and
``small``; ``re10k`` is the 458M U-ViT3D-Pose of DFoT's RealEstate10K checkpoint at 256x256x8, ``base`` its
smaller yaml, ``large`` a DiT3D at 256x256): parameters, GFLOPs per denoising step (``torch.utils.flop_counter``
on one forward, with the CPU flash-attention kernel counted as ``4 N^2 d`` per head), step time and frames/s in
float32 and in bf16 autocast, and the achieved GFLOP/s as a fraction of this machine's matmul GFLOP/s (2048x2048,
same dtype) measured right before it. A step is timed as the sampler runs it: with the ray cache of a sampling
run (``DiT3D.forward``'s ``cache``: what depends only on the rays is computed once per window, before the
timed steps; for the U-ViT that is the pose part of every block's FiLM, so a step executes fewer FLOPs than the
network's own count, which the ratio uses, and both counts are printed). Peak memory of a step is measured in a
fresh subprocess per config (Linux: the peak-RSS counter is reset, then read after the step; elsewhere
``ru_maxrss``). Then the peak-memory ratio of ``factorized`` to ``full`` attention at 16 and 32 frames, once with
the default SDPA kernel and once with the math kernel that materialises the attention matrix.

``--reference DIR``: DFoT's own network (``UViT3DPose`` from a checkout of its code at DIR, imported at run time:
:mod:`._reference`) beside ours on the same random weights and inputs, at the U-ViT3D-Pose RE10K configuration
and ``--reference-sizes`` (default 32x32x4, 64x64x8 and the full 256x256x8), float32 and bf16: the steps are
interleaved (reference, ours with the ray cache, ours without it, the order turning each repeat), and the
medians, their ratio and the outputs' largest difference are printed.

Targets (issue 3): tiny float32 step >= 50% of float32 matmul; bf16 >= 25% of bf16 matmul;
factorized <= 1/3 of full's memory at 32 frames. Issue 34: >= 1.5x the reference at every size.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time

from ..base import limits

PROBE = f"import sys; from {__spec__.name} import _memory_probe; _memory_probe(sys.argv[1])"


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="a few seconds: fewer repeats, short windows")
    parser.add_argument("--configs", default="tiny,small",
                        help="comma separated: DiT3D presets (tiny, small, large) and U-ViT3D-Pose presets (re10k, "
                             "base); 'none' for only the reference comparison")
    parser.add_argument("--batch", **limits.option("bench_batch", "videos per step (2 = conditional + guidance)", 2))
    parser.add_argument("--frames", **limits.option("bench_frames", "frames per video (0 = each config's window)", 0))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", **limits.option("threads", "torch CPU threads (0 = torch's default)", 0))
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--compile", action="store_true",
                        help="also time a torch.compile'd step against the eager one (compile time reported apart)")
    parser.add_argument("--reference", metavar="DIR", default=None,
                        help="a checkout of DFoT's code: time its U-ViT3D-Pose beside ours (same weights and inputs)")
    parser.add_argument("--reference-sizes", default="32x4,64x8,256x8", metavar="SxT,...",
                        help="frame side x frames of the reference comparison (default: 32x4,64x8,256x8; "
                             "--quick: 32x4); the full RE10K size takes minutes per step on a CPU")
    parser.add_argument("--reps", **limits.option("bench_reps", "timed repeats per measurement", None,
                                                  default_text="default: 3, --quick 1"))


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
    """The configuration of a bench name (a DiT3D or U-ViT3D-Pose preset), its window grown to ``frames``."""
    from ..base.errors import check_choice
    from ..dfot.model import DIT3D_PRESETS, dit3d_preset
    from ..dfot.uvit3d import UVIT3D_PRESETS, uvit3d_preset

    check_choice(name, {**DIT3D_PRESETS, **UVIT3D_PRESETS}, "bench sampler config")
    if name in UVIT3D_PRESETS:
        config = uvit3d_preset(name)
    else:
        config = dit3d_preset(name, **({"attention": attention} if attention else {}))
    if frames > config.max_frames:
        config = config.replace(max_frames=frames)
    return config


def _network(config, device=None):
    from ..dfot.checkpoint import build_model

    return build_model(config, device=device)


def _memory_probe(spec_json: str) -> None:
    """Child process: one denoising step; prints {"base_mb", "peak_mb", "step_mb"} as JSON."""
    import gc

    import torch

    from ._rss import peak_mb, reset_peak

    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    config = _config(spec["config"], spec["frames"], spec.get("attention"))
    model = _network(config).to(device).eval()
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


def _step(model, x, logsnr, rays, bf16: bool, cache: dict | None = None) -> None:
    """One forward as the sampler runs it: no grad, bf16 autocast or none, the sampling run's ray ``cache``."""
    import torch

    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        if cache is None:
            model(x, logsnr, rays)
        else:
            model(x, logsnr, rays, cache=cache)


def step_flops_cached(model, x, logsnr, rays) -> float:
    """FLOPs of a step with the ray cache warm (counted on the second of two forwards)."""
    import torch

    cache: dict = {}
    with torch.no_grad():
        model(x, logsnr, rays, cache=cache)
    return step_flops(lambda *a: model(*a, cache=cache), x, logsnr, rays)


def compiled_steps(model, x, logsnr, rays, device, reps: int) -> dict:
    """A ``torch.compile``'d network against the eager one, per dtype: the first call's seconds (compiling) and the
    interleaved median step of each. ``{"error": ...}`` where compiling fails (no compiler, unsupported backend):
    sampling then simply stays eager."""
    import torch

    out = {}
    try:
        compiled = torch.compile(model, dynamic=False)
        for label in ("fp32", "bf16"):
            bf16 = label == "bf16"
            eager_cache: dict = {}
            compiled_cache: dict = {}
            t = time.perf_counter()
            _step(compiled, x, logsnr, rays, bf16=bf16, cache=compiled_cache)
            _sync(device)
            first = time.perf_counter() - t
            _step(model, x, logsnr, rays, bf16=bf16, cache=eager_cache)
            med = _interleaved({"eager": functools.partial(_step, model, x, logsnr, rays, bf16=bf16, cache=eager_cache),
                                "compiled": functools.partial(_step, compiled, x, logsnr, rays, bf16=bf16,
                                                              cache=compiled_cache)}, device, reps)
            out[label] = {"first_s": first, "eager_s": med["eager"], "compiled_s": med["compiled"]}
    except Exception as e:  # noqa: BLE001 -- any failure to compile means: no compiled step here
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    return out


def random_weights(model, seed: int = 0):
    """Every parameter random (the zero-initialised output layers too, so the outputs carry signal): weights
    N(0, 0.25 / fan_in), norm gains 1 + N(0, 0.01), other vectors N(0, 0.0004)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                value = torch.randn(p.shape, generator=g) * (0.5 / p[0].numel() ** 0.5)
            elif "norm" in name and not name.endswith("bias"):
                value = 1 + 0.1 * torch.randn(p.shape, generator=g)
            else:
                value = 0.02 * torch.randn(p.shape, generator=g)
            p.copy_(value.to(p.dtype))
    return model


def _interleaved(fns: dict, device, reps: int, results: dict | None = None) -> dict:
    """Median seconds of each function of ``fns`` over ``reps`` rounds, one call of each per round in an order that
    turns every round (so a slow spell of the machine hits every function alike). ``results``: filled with each
    function's last return value."""
    names = list(fns)
    times = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            t = time.perf_counter()
            value = fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - t)
            if results is not None:
                results[name] = value
    return {n: statistics.median(v) for n, v in times.items()}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"32x4,64x8" -> [(32, 4), (64, 8)]: frame side in pixels x frames."""
    from ..base.errors import Syn2SeqInputError

    sizes = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            side, frames = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise Syn2SeqInputError("--reference-sizes", "SIDExFRAMES items, e.g. 32x4,64x8", repr(part)) from None
        limits.check("model_size", side)
        limits.check("model_window", frames)
        sizes.append((side, frames))
    if not sizes:
        raise Syn2SeqInputError("--reference-sizes", "at least one SIDExFRAMES item", repr(text))
    return sizes


def compare_reference(root, sizes, batch: int, device, reps: int, dtypes=("fp32", "bf16"), log=print,
                      config=None) -> list[dict]:
    """Reference DFoT U-ViT3D-Pose vs ours, per (side, frames) and dtype: interleaved median seconds of the
    reference, of ours with the ray cache (after the call that builds it) and without it, and the outputs'
    largest difference. ``config``: the U-ViT3D-Pose configuration (default: RE10K's), resized to each size.
    Rows as dicts."""
    from ..dfot.uvit3d import uvit3d_preset
    from . import _reference

    backbones = _reference.load_backbones(root)
    config = config or uvit3d_preset("re10k")
    rows = []
    for side, frames in sizes:
        sized = config.replace(height=side, width=side, max_frames=frames)
        rows += _compare_size(backbones, sized, batch, device, reps, dtypes, log)
    return rows


def _step_inputs(config, batch: int, frames: int, device, seed: int = 1):
    """Two consecutive sampling steps of a window as :func:`~syn2seq_core.dfot.sampler.rollout` runs it: the first
    ``frames // 2`` frames clean context (the same frames at the clean level in both), the rest noisy (other values
    and levels in each). Returns ([(x, logsnr)] * 2, rays, needed [B, T] bool: the frames being denoised)."""
    import torch

    from ..dfot.schedule import NoiseSchedule

    x, _, rays = _inputs(config, batch, frames, device, seed)
    context = frames // 2
    schedule = NoiseSchedule()
    g = torch.Generator().manual_seed(seed + 1)
    steps = []
    for t in (0.6, 0.55):
        x_s = x.clone()
        x_s[:, context:] = torch.randn(x_s[:, context:].shape, generator=g).to(device)
        times = torch.full((batch, frames), t, dtype=torch.float64)
        times[:, :context] = 0.0
        steps.append((x_s, schedule.logsnr(times).to(device=device, dtype=torch.float32)))
    needed = torch.zeros(batch, frames, dtype=torch.bool, device=device)
    needed[:, context:] = True
    return steps, rays, needed


def _announced(steps) -> dict:
    """A sampling run's cache as :func:`~syn2seq_core.dfot.sampler.sample` starts it for ``steps`` (of
    :func:`_step_inputs`): the noise levels it will feed announced."""
    import torch

    return {"noise_levels": torch.cat([logsnr.flatten() for _, logsnr in steps]).unique()}


def sampling_step(model, config, batch: int, frames: int, device, bf16: bool):
    """A function that calls ``model`` as the sampler does in the middle of a window (:func:`_step_inputs`: half the
    frames clean context), on two consecutive steps in turn, with the run's cache, the announced noise levels and
    ``needed``; the first call builds the cache."""
    import itertools

    import torch

    steps, rays, needed = _step_inputs(config, batch, frames, device)
    cache = _announced(steps)
    turns = itertools.cycle(steps)

    def call():
        x, logsnr = next(turns)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(x, logsnr, rays, cache=cache, needed=needed)
    return call


def _compare_size(backbones, config, batch: int, device, reps: int, dtypes, log) -> list[dict]:
    import itertools

    import torch

    from ..dfot.uvit3d import UViT3DPose
    from . import _reference

    side, frames = config.height, config.max_frames
    torch.manual_seed(0)
    ours = random_weights(UViT3DPose(config)).to(device).eval()
    ref = _reference.reference_uvit3d_pose(backbones, config, frames)
    _reference.load_weights(ref, ours.state_dict())
    ref = ref.to(device).eval()
    steps, rays, needed = _step_inputs(config, batch, frames, device)
    ref_steps = [_reference.reference_inputs(config, logsnr, rays) for _, logsnr in steps]
    rows = []

    def alternating(fn):
        """``fn(x, logsnr, ref_noise, ref_rays)`` on the two steps in turn (returns the output and the step)."""
        turns = itertools.cycle(range(2))

        def call():
            k = next(turns)
            (x, logsnr), (noise, ref_rays) = steps[k], ref_steps[k]
            return fn(x, logsnr, noise, ref_rays), k
        return call

    def rays_only(x, logsnr, cache):
        ours.cache_frames = False
        try:
            return ours(x, logsnr, rays, cache=cache)
        finally:
            ours.cache_frames = True

    for label in dtypes:
        step_cache = _announced(steps)
        rays_cache: dict = {}
        out: dict = {}
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=label == "bf16"):
            t = time.perf_counter()
            ours(*steps[1], rays, cache=step_cache, needed=needed)  # the step before: builds the caches
            _sync(device)
            first = time.perf_counter() - t
            rays_only(*steps[1], rays_cache)
            med = _interleaved({
                "reference": alternating(lambda x, l, n, r: ref(x, n, r)),
                "ours": alternating(lambda x, l, n, r: ours(x, l, rays, cache=step_cache, needed=needed)),
                "ours_rays": alternating(lambda x, l, n, r: rays_only(x, l, rays_cache)),
                "ours_no_cache": alternating(lambda x, l, n, r: ours(x, l, rays)),
            }, device, reps, out)
            # The outputs of one step from every network (the timed calls may have ended on different steps).
            v_ref = out["reference"][0] if out["reference"][1] == 0 else ref(steps[0][0], *ref_steps[0])
            v = {name: (out[name][0] if out[name][1] == 0 else None) for name in ("ours", "ours_rays", "ours_no_cache")}
            if v["ours"] is None:
                v["ours"] = ours(*steps[0], rays, cache=step_cache, needed=needed)
            if v["ours_rays"] is None:
                v["ours_rays"] = rays_only(*steps[0], rays_cache)
            if v["ours_no_cache"] is None:
                v["ours_no_cache"] = ours(*steps[0], rays)
        v_ref = v_ref.float()
        gen = needed[:, :, None, None, None].expand_as(v_ref)
        diff = {name: float(((v_n.float() - v_ref).abs() * gen if name == "ours" else (v_n.float() - v_ref).abs()).max())
                for name, v_n in v.items()}
        row = {"side": side, "frames": frames, "batch": batch, "dtype": label, "context_frames": frames // 2,
               "first_s": first, **{f"{k}_s": val for k, val in med.items()},
               "ratio": med["reference"] / med["ours"], "ratio_rays": med["reference"] / med["ours_rays"],
               "ratio_no_cache": med["reference"] / med["ours_no_cache"],
               "max_diff": diff["ours"], "max_diff_rays": diff["ours_rays"], "max_diff_no_cache": diff["ours_no_cache"],
               "max_abs": float(v_ref.abs().max())}
        rows.append(row)
        log(f"  {side}x{side}x{frames} {label}: reference {row['reference_s']:.3f} s, ours {row['ours_s']:.3f} s "
            f"({row['ratio']:.2f}x); every frame computed: ray cache {row['ours_rays_s']:.3f} s "
            f"({row['ratio_rays']:.2f}x), no cache {row['ours_no_cache_s']:.3f} s ({row['ratio_no_cache']:.2f}x); "
            f"max |diff| {row['max_diff']:.1e} (denoised frames) / {row['max_diff_rays']:.1e} / "
            f"{row['max_diff_no_cache']:.1e} of max |v| {row['max_abs']:.2f}")
    return rows


def _reference_commit(root) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return out.stdout.strip() or "not a git checkout"


# --- the benchmark -------------------------------------------------------------------------------------------
def run(args) -> int:
    import torch

    from ..dfot.model import count_parameters

    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    names = [n.strip() for n in args.configs.split(",") if n.strip() and n.strip() != "none"]
    sizes = parse_sizes("32x4" if args.quick and args.reference_sizes == "32x4,64x8,256x8" else args.reference_sizes)
    if args.reference:
        from ._reference import load_backbones

        load_backbones(args.reference)  # a wrong folder or a missing package fails before anything is measured
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
        model = _network(config).to(device).eval()
        x, logsnr, rays = _inputs(config, args.batch, frames, device)
        # FLOPs of the same network on the meta device: counted without computing anything.
        meta = _network(config, device="meta").eval()
        meta_inputs = [t.to("meta") for t in (x, logsnr, rays)]
        flops = step_flops(meta, *meta_inputs)
        executed = step_flops_cached(meta, *meta_inputs)
        tokens = frames * (config.grid[0] * config.grid[1] if hasattr(config, "grid") else
                           config.level_grid(0)[0] * config.level_grid(0)[1])
        row = {"config": name, "frames": frames, "tokens": tokens, "params_m": count_parameters(model) / 1e6,
               "gflop": flops / 1e9, "gflop_executed": executed / 1e9}
        for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            peak = matmul_gflops(dtype, device, reps=3 if args.quick else 5)
            cache: dict = {}
            step = functools.partial(_step, model, x, logsnr, rays, bf16=label == "bf16", cache=cache)
            seconds = _median_time(step, device, reps, budget_s=4 if args.quick else 8)
            row[label] = {"s": seconds, "fps": args.batch * frames / seconds, "gflops": flops / seconds / 1e9,
                          "peak": peak, "ratio": flops / seconds / 1e9 / peak}
        if args.compile:
            row["compile"] = compiled_steps(model, x, logsnr, rays, device, reps)
        if not args.no_memory and not args.quick:
            row["memory"] = memory_of_step(config=name, frames=frames, batch=args.batch, device=str(device))
        rows.append(row)
        del model

    if rows:
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
    for row in rows:
        if "compile" in row:
            c = row["compile"]
            print(f"{row['config']:<7} torch.compile: " + (f"unavailable ({c['error']}): sampling stays eager"
                  if "error" in c else "; ".join(
                      f"{label} first call {c[label]['first_s']:.1f} s (compiling), step {c[label]['compiled_s'] * 1e3:.1f}"
                      f" ms vs eager {c[label]['eager_s'] * 1e3:.1f} ms ({c[label]['eager_s'] / c[label]['compiled_s']:.2f}x)"
                      for label in ("fp32", "bf16"))))
    cached = [r for r in rows if r["gflop_executed"] < 0.99 * r["gflop"]]
    if cached:
        print("with the ray cache a step executes fewer FLOPs than the network's count used above: " + ", ".join(
            f"{r['config']} {r['gflop_executed']:.2f} of {r['gflop']:.2f} GFLOP" for r in cached))
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

    if not args.no_memory and "tiny" in names:
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

    if args.reference:
        print(f"\nreference DFoT ({args.reference}, {_reference_commit(args.reference)}): its UViT3DPose beside ours, "
              f"RE10K configuration, B={args.batch}, the same random weights and inputs; interleaved medians of "
              f"{reps} (ratio = reference / ours, target >= 1.5x):", flush=True)
        rows_ref = compare_reference(args.reference, sizes, args.batch, device, reps,
                                     log=lambda line: print(line, flush=True))
        worst = min(r["ratio"] for r in rows_ref)
        print(f"target >= 1.5x the reference everywhere: {'met' if worst >= 1.5 else 'NOT met'} "
              f"(lowest {worst:.2f}x)")
    return 0
