"""``syn2seq selfcheck --gpu`` (``make gpu-check``): on a CUDA machine, run what the project has only prepared
for a GPU, each step in its own subprocess with its own timeout, and print ONE JSON summary on stdout.

Steps (in this order; the whole check stays under :data:`BUDGET_S`, 8 minutes on one H100):

``sampler_mfu``        one denoising step of DiT3D ``small`` and the RE10K-sized U-ViT3D (458M) in float32 and
                       bf16 autocast: FLOPs (``torch.utils.flop_counter``), s/step, model FLOPs utilisation against
                       the GPU's nominal peak and against a measured matmul (``syn2seq bench sampler``'s helpers);
                       for the U-ViT also a step as the sampler calls it mid-window (half context, ``needed``): its
                       s/step and speed-up over the every-frame step
``prepare_flow``       ``syn2seq prepare --transition flow`` of rendered takes, one process and torchrun with one
                       process per GPU (two on one GPU): the SHA-256 of both folders, equal, and their wall times
``wan_offload``        the tiny random-weight Wan FLF2V pipeline of the Wan tests (built by diffusers from configs)
                       on ``cuda`` with model CPU offload: peak VRAM, seconds, agreement with the CPU run (pytest
                       ``tests/core/test_gpu_check.py -k cuda``)
``comfyui_exo2ego``    the exo2ego API workflow in a real ComfyUI at the RE10K network size, per weight dtype: peak
                       VRAM, s/step, VRAM free after ``POST /free`` (``tests/nodes/device_check.py``)
``train_bf16``         ``syn2seq bench train --measure`` of ``configs/dfot_re10k_finetune.toml`` (its 458M network
                       at 128 px, bf16), activation checkpointing off and on: the planner's GB beside the measured
                       peak, and s/step
``train_compile``      the same with ``compile = "inductor"``
``train_fp32``         the same with ``bf16 = false``
``train_ddp``          ``--measure-ranks N``: DDP and FSDP2 on N = the GPU count (needs 2 GPUs: NCCL takes one GPU
                       per process)

Each step's entry in the summary: ``status`` (``ok``, ``failed``, ``timeout``, ``skipped``), ``seconds``,
``result`` (its numbers) and, when it did not pass, ``reason`` / ``output_tail``. A failing step does not stop
the next one. Exit status: 0 every step that ran passed; 1 a step failed or timed out; 77 (automake's "skipped")
no CUDA: nothing ran, and the JSON says ``{"skipped": "no CUDA", ...}``; 2 bad options. ``--dry-run`` prints the
plan (each step's command, timeout and whether it would run) without running anything, CUDA or not.

From a bare machine (CUDA torch and nothing else of ours): README, "GPU check".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_CUDA = 0, 1, 2, 77
BUDGET_S = 470  # the whole check, under 8 minutes; a step that would start with less than MIN_STEP_S left is skipped
MIN_STEP_S = 20
ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/, configs/) when run from a checkout
RE10K_CONFIG = "configs/dfot_re10k_finetune.toml"
# What the steps import (besides torch); a missing one is named in the summary's environment.
MODULES = ("einops", "safetensors", "kornia", "numpy", "cv2", "scipy", "av", "tqdm", "PIL", "diffusers",
           "transformers", "pytest")
# Nominal dense peak TFLOP/s (bf16 tensor cores, fp32 without tensor cores) by device name, from the vendors'
# data sheets; MFU against them. A GPU not listed gets only the ratio to the matmul measured beside the step.
PEAK_TFLOPS = {"H200": (989.4, 66.9), "H100 SXM": (989.4, 66.9), "H100 80GB HBM3": (989.4, 66.9),
               "H100 PCIe": (756.0, 51.2), "H100 NVL": (835.0, 60.0), "A100": (312.0, 19.5), "L40S": (362.1, 91.6),
               "A10G": (70.0, 31.2), "L4": (121.0, 30.3)}


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    timeout_s: int
    runs: str  # what the step's process runs (shown by --dry-run)
    needs: tuple[str, ...] = ()  # "checkout" (tests/ and configs/), "comfyui", "gpus2", or a module name
    cpu_ok: bool = True  # runs (at test sizes) with --cpu


BENCH = f"syn2seq bench train --config {RE10K_CONFIG} --gpus 1 --batch 1"
STEPS = (
    Step("sampler_mfu", "one denoising step of DiT3D small and the RE10K U-ViT3D: FLOPs, s/step, MFU", 60,
         "syn2seq_core.benchmarks.sampler's step_flops / matmul_gflops / step timing on cuda, B = 2"),
    Step("prepare_flow", "syn2seq prepare --transition flow, 1 process and torchrun: identical SHA-256, wall times",
         90, "syn2seq render-synthetic --takes 16 --size 128; syn2seq prepare --transition flow; torchrun "
         "--standalone --nproc_per_node=max(2, GPUs) -m syn2seq_core prepare ..."),
    Step("wan_offload", "the tests' tiny random Wan on cuda with model CPU offload, against the CPU", 90,
         "python -m pytest tests/core/test_gpu_check.py -k cuda_wan", ("checkout", "diffusers", "transformers",
                                                                        "pytest"), cpu_ok=False),
    Step("comfyui_exo2ego", "exo2ego API workflow in ComfyUI, RE10K network size, per weight dtype: peak VRAM, "
         "s/step, VRAM after /free", 200, "python -m tests.nodes.device_check --arch re10k --steps 10 (--cpu: "
         "--arch bundled --cpu --steps 2)", ("checkout", "comfyui")),
    Step("train_bf16", "bench train --measure, RE10K network at 128 px, bf16, activation checkpointing off/on: plan "
         "vs measured", 150, f"{BENCH} --size 128 --measure --measure-steps 1", ("checkout",), cpu_ok=False),
    Step("train_compile", "the same with compile = inductor", 150,
         f"{BENCH} --size 128 --measure --measure-steps 1 (config + compile = \"inductor\")", ("checkout",),
         cpu_ok=False),
    Step("train_fp32", "the same with bf16 = false", 100,
         f"{BENCH} --size 128 --measure --measure-steps 1 (config + bf16 = false)", ("checkout",), cpu_ok=False),
    Step("train_ddp", "bench train --measure-ranks N: DDP and FSDP2, one process per GPU (128 px)", 120,
         f"{BENCH} --size 128 --measure-ranks GPUS", ("checkout", "gpus2"), cpu_ok=False),
)
STEP_NAMES = tuple(s.name for s in STEPS)


@dataclass
class Context:
    """What the steps run with: device (``cuda`` or ``cpu`` for --cpu), the work folder, GPU count."""

    device: str
    work: Path
    gpus: int = 0
    env: dict = field(default_factory=dict)

    @property
    def small(self) -> bool:  # --cpu: test sizes
        return self.device == "cpu"


# --- the plan ----------------------------------------------------------------------------------------------
def comfyui_env() -> dict:
    """COMFYUI_PATH (set, else ../shared/ComfyUI or shared/ComfyUI beside the repository) and COMFYUI_PYTHON (set,
    else the ComfyUI checkout's .venv, else this repository's .venv-comfy (``make setup-comfyui``), else this
    Python: a bare machine's .venv-gpu that got ComfyUI's wheels from the wheelhouse too)."""
    env = {}
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        for candidate in (ROOT.parent / "shared" / "ComfyUI", ROOT / "shared" / "ComfyUI"):
            if (candidate / "main.py").is_file():
                path = str(candidate)
                break
    if path:
        env["COMFYUI_PATH"] = path
        found = [p for p in (Path(path) / ".venv" / "bin" / "python", ROOT / ".venv-comfy" / "bin" / "python")
                 if p.is_file()]
        env["COMFYUI_PYTHON"] = os.environ.get("COMFYUI_PYTHON") or str(found[0] if found else sys.executable)
    return env


def missing_modules() -> list[str]:
    import importlib.util

    return [m for m in MODULES if importlib.util.find_spec(m) is None]


def skip_reason(step: Step, ctx: Context, missing: list[str]) -> str | None:
    if ctx.small and not step.cpu_ok:
        return "--cpu: this step needs a GPU"
    for need in step.needs:
        if need == "checkout" and not ((ROOT / "tests").is_dir() and (ROOT / "configs").is_dir()):
            return f"needs the repository's tests/ and configs/ (run make gpu-check in a checkout; not at {ROOT})"
        if need == "comfyui" and "COMFYUI_PATH" not in ctx.env:
            return "no ComfyUI: set COMFYUI_PATH to a ComfyUI checkout (or put one at ../shared/ComfyUI)"
        if need == "gpus2" and ctx.gpus < 2:
            return f"DDP needs 2 GPUs (NCCL: one GPU per process); this machine has {ctx.gpus}"
        if need in missing:
            return f"module {need} is not installed (carry a wheelhouse: README, GPU check)"
    return None


def step_command(step: Step, ctx: Context) -> list[str]:
    cmd = [sys.executable, "-m", __spec__.name, "--step", step.name, "--work", str(ctx.work)]
    return cmd + (["--cpu"] if ctx.small else [])


def environment(ctx: Context) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "missing_modules": missing_modules(),
            "root": str(ROOT), "checkout": (ROOT / "tests").is_dir(), "comfyui": ctx.env.get("COMFYUI_PATH"),
            "pythonpath": os.environ.get("PYTHONPATH")}
    if torch.cuda.is_available():
        info["devices"] = [{"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                            "capability": f"{p.major}.{p.minor}"}
                           for p in (torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count()))]
    return info


# --- running -----------------------------------------------------------------------------------------------
def run_step(step: Step, ctx: Context, timeout: float) -> dict:
    """One step in its own process group (killed whole on timeout: torchrun's workers, ComfyUI's server)."""
    result_file = ctx.work / f"{step.name}.result.json"
    result_file.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(step_command(step, ctx), cwd=ROOT, env={**os.environ, **ctx.env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = "timeout"
    entry = {"status": status, "seconds": round(time.monotonic() - start, 1), "returncode": proc.returncode}
    if result_file.is_file():
        entry["result"] = json.loads(result_file.read_text(encoding="utf-8"))
    if status != "ok":
        entry["reason"] = f"timed out after {timeout:.0f} s" if status == "timeout" else \
            (output.strip().splitlines() or ["(no output)"])[-1][-300:]
        entry["output_tail"] = output[-3000:]
    (ctx.work / f"{step.name}.log").write_text(output or "", encoding="utf-8")
    return entry


def check(names: list[str], *, cpu: bool = False, dry_run: bool = False, work: Path | None = None,
          timeouts: dict[str, float] | None = None, budget_s: float = BUDGET_S, say=print) -> tuple[int, dict]:
    """Run (or with dry_run, plan) the steps ``names``; (exit status, summary)."""
    import torch

    timeouts = timeouts or {}
    cuda = torch.cuda.is_available()
    plan = [s for s in STEPS if s.name in names]
    if not cuda and not cpu and not dry_run:
        return EXIT_NO_CUDA, {"skipped": "no CUDA", "exit_code": EXIT_NO_CUDA, "torch": torch.__version__,
                              "cuda_build": torch.version.cuda, "ran": [], "would_run": [s.name for s in plan],
                              "note": "torch sees no CUDA device: nothing was run. Run make gpu-check on a machine "
                                      "with an NVIDIA GPU and a CUDA build of torch."}
    if dry_run and work is None:
        work = Path("<a new temporary folder>")
    ctx = Context("cpu" if cpu else "cuda", Path(work or tempfile.mkdtemp(prefix="syn2seq_gpu_check_")),
                  torch.cuda.device_count() if cuda else 0, comfyui_env())
    missing = missing_modules()
    summary = {"gpu_check": 1, "device": "cpu (--cpu: plumbing only, numbers mean nothing)" if ctx.small else
               torch.cuda.get_device_name(0) if cuda else "none", "environment": environment(ctx),
               "budget_s": budget_s, "work": str(ctx.work), "steps": {}}
    if dry_run:
        summary["dry_run"] = True
        if not cuda and not cpu:
            summary["note"] = (f"no CUDA on this machine: a run here does nothing and exits {EXIT_NO_CUDA}; the plan "
                               "is what a CUDA machine with this checkout runs")
        for step in plan:
            reason = skip_reason(step, ctx, missing)
            summary["steps"][step.name] = {"what": step.what, "timeout_s": timeouts.get(step.name, step.timeout_s),
                                           "runs": step.runs, "command": step_command(step, ctx),
                                           "would_run": reason is None,
                                           **({"reason": reason} if reason else {})}
        return EXIT_OK, summary
    ctx.work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    for step in plan:
        left = budget_s - (time.monotonic() - start)
        reason = skip_reason(step, ctx, missing)
        if reason is None and left < MIN_STEP_S:
            reason = f"time budget: {left:.0f} s of {budget_s:.0f} s left"
        if reason:
            summary["steps"][step.name] = {"status": "skipped", "reason": reason}
            say(f"gpu-check: {step.name}: skipped ({reason})")
            continue
        timeout = min(timeouts.get(step.name, step.timeout_s), left)
        say(f"gpu-check: {step.name}: {step.what} (timeout {timeout:.0f} s) ...")
        entry = run_step(step, ctx, timeout)
        summary["steps"][step.name] = entry
        say(f"gpu-check: {step.name}: {entry['status']} in {entry['seconds']} s"
            + (f": {entry['reason']}" if entry.get("reason") else ""))
    summary["seconds"] = round(time.monotonic() - start, 1)
    statuses = [e["status"] for e in summary["steps"].values()]
    summary["ok"] = all(s in ("ok", "skipped") for s in statuses)
    summary["complete"] = "skipped" not in statuses  # every step ran (skipped ones say why)
    summary["counts"] = {s: statuses.count(s) for s in ("ok", "failed", "timeout", "skipped")}
    code = EXIT_OK if summary["ok"] else EXIT_FAILED
    summary["exit_code"] = code
    return code, summary


# --- the steps (each runs in its own process: python -m syn2seq_core.commands.gpu_check --step NAME) ----------
def _sh(cmd: list[str], timeout: float, env: dict | None = None, cwd=None) -> str:
    """Run a command of a step; its output; a failure raises with the output's tail."""
    r = subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=cwd or ROOT, capture_output=True, text=True,
                       timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {r.returncode}:\n{(r.stdout + r.stderr)[-2500:]}")
    return r.stdout


def markdown_tables(text: str) -> list[list[dict]]:
    """Every markdown table of ``text`` (a header row, a ``|---|`` row, body rows) as a list of row dicts."""
    tables, lines = [], text.splitlines()
    for k in range(len(lines) - 1):
        if lines[k].startswith("|") and lines[k + 1].replace("|", "").replace("-", "").strip() == "" \
                and lines[k + 1].startswith("|---"):
            header = [c.strip() for c in lines[k].strip().strip("|").split("|")]
            rows = []
            for line in lines[k + 2:]:
                if not line.startswith("|"):
                    break
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells)))
            tables.append(rows)
    return tables


def step_sampler_mfu(ctx: Context) -> dict:
    import torch

    from ..benchmarks import sampler
    from ..dfot.model import DiT3D
    from ..dfot.uvit3d import UViT3DPose, uvit3d_preset

    device = torch.device(ctx.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peaks = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    nets = [("dit3d_tiny", DiT3D, sampler._config("tiny", 0).replace(max_frames=2))] if ctx.small else \
        [("dit3d_small", DiT3D, sampler._config("small", 0)), ("uvit3d_re10k", UViT3DPose, uvit3d_preset("re10k"))]
    matmul = {label: sampler.matmul_gflops(dtype, device, size=512 if ctx.small else 8192, reps=3)
              for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    rows = {}
    for label, cls, config in nets:
        try:
            rows[label] = _mfu_row(cls, config, device, matmul, peaks, reps=1 if ctx.small else 5)
        except (RuntimeError, ValueError) as e:  # e.g. out of memory: the other network still gets measured
            rows[label] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if all("error" in r for r in rows.values()):
        raise RuntimeError(f"no network could be measured: {rows}")
    return {"device": name, "nominal_peak_tflops": dict(zip(("bf16", "fp32"), peaks)) if peaks else None,
            "matmul_tflops": {k: round(v / 1e3, 3) for k, v in matmul.items()}, "networks": rows}


def _mfu_row(cls, config, device, matmul: dict, peaks, reps: int) -> dict:
    """FLOPs (counted on the meta device), s/step and MFU of one denoising step (B = 2, the full window)."""
    import torch

    from ..benchmarks import sampler
    from ..dfot.model import count_parameters

    frames = config.max_frames
    torch.manual_seed(0)
    model = cls(config).to(device).eval()
    x, logsnr, rays = sampler._inputs(config, 2, frames, device)
    flops = sampler.step_flops(cls(config, device="meta").eval(), *(t.to("meta") for t in (x, logsnr, rays)))
    row = {"params_m": round(count_parameters(model) / 1e6, 1), "frames": frames, "batch": 2,
           "gflop_per_step": round(flops / 1e9, 1)}
    for dtype, bf16 in (("fp32", False), ("bf16", True)):
        inputs = (x, logsnr, rays)
        cache: dict = {}  # a sampling run's ray cache, as the sampler keeps it (built by the warm-up step)
        seconds = sampler._median_time(lambda m=model, b=bf16, i=inputs, c=cache: sampler._step(m, *i, bf16=b, cache=c),
                                       device, reps, budget_s=10)
        tflops = flops / seconds / 1e12
        row[dtype] = {"s_per_step": round(seconds, 4), "tflops": round(tflops, 2),
                      "of_matmul": round(tflops * 1e3 / matmul[dtype], 3),
                      "mfu": round(tflops / peaks[1 if dtype == "fp32" else 0], 3) if peaks else None}
        if hasattr(model, "per_frame_levels"):  # a U-ViT: also a step as the sampler calls it (half the window context)
            step = sampler.sampling_step(model, config, 2, frames, device, bf16)
            sampling = sampler._median_time(step, device, reps, budget_s=10)
            row[dtype].update(s_per_sampling_step=round(sampling, 4), sampling_speedup=round(seconds / sampling, 3))
    return row


def _tree_hashes(folder: Path) -> dict[str, str]:
    from ..data.shards import file_sha256

    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())}


def step_prepare_flow(ctx: Context) -> dict:
    import torch

    work = ctx.work / "prepare_flow"
    shutil.rmtree(work, ignore_errors=True)
    size, takes = ("32", "4") if ctx.small else ("128", "16")
    py = [sys.executable, "-m", "syn2seq_core"]
    _sh(py + ["render-synthetic", "--out", str(work / "takes"), "--takes", takes, "--size", size, "--exo-frames", "8",
              "--ego-frames", "8"], 300)
    args = ["prepare", "--takes", str(work / "takes"), "--size", size, "--exo-frames", "8", "--ego-frames", "8",
            "--transition-frames", "4", "--transition", "flow", "--takes-per-shard", "2", "--no-progress"]
    procs = max(2, torch.cuda.device_count())
    launch = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    t = time.perf_counter()
    _sh(py + args + ["--out", str(work / "one")], 300, env=launch)
    one_s = time.perf_counter() - t
    t = time.perf_counter()
    _sh([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", "-m",
         "syn2seq_core"] + args + ["--out", str(work / "many")], 300, env=launch)
    many_s = time.perf_counter() - t
    one, many = _tree_hashes(work / "one"), _tree_hashes(work / "many")
    if one != many:
        raise RuntimeError(f"{procs} processes wrote other bytes than one: {sorted(set(one.items()) ^ set(many.items()))}")
    return {"takes": int(takes), "size": int(size), "processes": procs, "identical": True,
            "manifest_sha256": one["manifest.json"], "wall_s": {"1": round(one_s, 1), str(procs): round(many_s, 1)}}


def step_wan_offload(ctx: Context) -> dict:
    result = ctx.work / "wan_offload.pytest.json"
    _sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core/test_gpu_check.py", "-k",
         "cuda_wan"], 600, env={RESULT_ENV: str(result), "HF_HUB_OFFLINE": "1"})
    if not result.is_file():
        raise RuntimeError("the CUDA Wan test was skipped (no CUDA in pytest's process?)")
    return json.loads(result.read_text(encoding="utf-8"))


def step_comfyui_exo2ego(ctx: Context) -> dict:
    out = ctx.work / "comfyui_exo2ego.rows.json"
    args = ["--arch", "bundled", "--cpu", "--steps", "2"] if ctx.small else ["--arch", "re10k", "--steps", "10"]
    text = _sh([sys.executable, "-m", "tests.nodes.device_check", *args, "--out", str(out)], 900)
    rows = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []
    keep = ("weight_dtype", "ok", "weights", "compute", "s_per_step", "peak_mib", "vram_free_after_free_mib",
            "loaded_mib", "prompt_s", "device", "error")
    return {"arch": args[1], "rows": [{k: r[k] for k in keep if k in r} for r in rows],
            "table": text.strip().splitlines()[-5:]}


def config_variant(text: str, **top_level) -> str:
    """A TOML config's text with top-level keys set (replaced where the file has them, else added first)."""
    import re

    lines = text.splitlines()
    first_table = next((k for k, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    for key, value in top_level.items():
        rendered = f"{key} = {json.dumps(value)}"
        for k in range(first_table):
            if re.match(rf"\s*{re.escape(key)}\s*=", lines[k]):
                lines[k] = rendered
                break
        else:
            lines.insert(0, rendered)
            first_table += 1
    return "\n".join(lines) + "\n"


def _bench_train(ctx: Context, name: str, extra: list[str], **top_level) -> dict:
    import torch

    config = ROOT / RE10K_CONFIG
    if top_level:
        variant = ctx.work / f"{name}.toml"
        variant.write_text(config_variant(config.read_text(encoding="utf-8"), **top_level), encoding="utf-8")
        config = variant
    vram = torch.cuda.get_device_properties(0).total_memory / 2**30
    text = _sh([sys.executable, "-m", "syn2seq_core", "bench", "train", "--config", str(config), "--vram",
                f"{vram:.0f}", "--gpus", "1", "--batch", "1", "--size", "128", *extra], 900)
    tables = markdown_tables(text)
    return {"config": top_level or "as shipped", "options": extra, "plan": tables[0] if tables else None,
            "measured": tables[1:] or None, "tail": text.strip().splitlines()[-3:]}


def step_train_bf16(ctx: Context) -> dict:
    return _bench_train(ctx, "train_bf16", ["--measure", "--measure-steps", "1"])


def step_train_compile(ctx: Context) -> dict:
    return _bench_train(ctx, "train_compile", ["--measure", "--measure-steps", "1"], compile="inductor")


def step_train_fp32(ctx: Context) -> dict:
    return _bench_train(ctx, "train_fp32", ["--measure", "--measure-steps", "1"], bf16=False)


def step_train_ddp(ctx: Context) -> dict:
    return _bench_train(ctx, "train_ddp", ["--measure-ranks", str(ctx.gpus)])


RESULT_ENV = "SYN2SEQ_GPU_CHECK_RESULT"  # where tests/core/test_gpu_check.py's CUDA test writes its numbers


def run_one(name: str, work: Path, cpu: bool) -> int:
    """The body of one step (in its own process): its numbers to ``WORK/NAME.result.json``."""
    import torch

    ctx = Context("cpu" if cpu else "cuda", work, 0 if cpu else torch.cuda.device_count(), comfyui_env())
    result = globals()[f"step_{name}"](ctx)
    (work / f"{name}.result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def _main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="one step of syn2seq selfcheck --gpu")
    p.add_argument("--step", required=True, choices=STEP_NAMES)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--cpu", action="store_true")
    args = p.parse_args(argv)
    return run_one(args.step, args.work, args.cpu)


if __name__ == "__main__":
    sys.exit(_main())
