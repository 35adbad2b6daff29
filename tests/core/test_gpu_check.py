"""`syn2seq selfcheck --gpu` / `make gpu-check` (issue 33.3): without CUDA it runs nothing, says so in one JSON
and exits 77; its dry run lists every step; each step runs in a process of its own, so a step that times out
leaves the others' results (checked on the CPU with --cpu, at test sizes). On a CUDA machine the tiny random Wan
of the Wan tests runs on the GPU with model CPU offload (the check's wan_offload step runs that test)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from syn2seq_core.cli import main as cli
from syn2seq_core.commands import gpu_check

try:  # the tiny Wan pipeline of the Wan backend's tests
    from .test_wan_backend import STEPS as WAN_STEPS
    from .test_wan_backend import pair, tiny_wan
except ImportError as e:
    WAN_STEPS, _WAN_MISSING = 2, str(e)

    @pytest.fixture
    def tiny_wan():
        pytest.skip(f"the Wan backend's tests do not import here: {_WAN_MISSING}")

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NO_CUDA = {**ENV, "CUDA_VISIBLE_DEVICES": ""}  # torch sees no GPU, on a GPU machine too


def summary(stdout: str) -> dict:
    return json.loads(stdout)  # stdout is the one JSON; progress goes to stderr


def test_without_cuda_nothing_runs_exit_77_and_one_json():
    r = subprocess.run([sys.executable, "-m", "syn2seq_core", "selfcheck", "--gpu"], env=NO_CUDA, cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == gpu_check.EXIT_NO_CUDA == 77, r.stderr
    doc = summary(r.stdout)
    assert doc["skipped"] == "no CUDA" and doc["exit_code"] == 77 and doc["ran"] == []
    assert doc["would_run"] == list(gpu_check.STEP_NAMES)
    assert "nothing was run" in doc["note"]


def test_make_gpu_check_without_cuda(tmp_path):
    """The Makefile target as documented (make's own status is 2 when the command fails; it names Error 77)."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    r = subprocess.run(["make", "-s", "gpu-check", f"GPU_CHECK_PY={sys.executable}"], env=NO_CUDA, cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode != 0 and "Error 77" in r.stderr, r.stdout + r.stderr
    assert summary(r.stdout)["skipped"] == "no CUDA"
    r = subprocess.run(["make", "-s", "gpu-check", f"GPU_CHECK_PY={sys.executable}", "GPU_CHECK_ARGS=--dry-run"],
                       env=NO_CUDA, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert list(summary(r.stdout)["steps"]) == list(gpu_check.STEP_NAMES)


def test_dry_run_lists_every_step_and_runs_nothing(capsys, tmp_path):
    assert cli(["selfcheck", "--gpu", "--dry-run", "--timeout", "comfyui_exo2ego=99"]) == 0
    doc = summary(capsys.readouterr().out)
    assert doc["dry_run"] and doc["gpu_check"] == 1
    assert set(doc["environment"]) >= {"python", "torch", "cuda", "cuda_available", "missing_modules", "comfyui"}
    assert list(doc["steps"]) == list(gpu_check.STEP_NAMES)
    for name, step in doc["steps"].items():
        assert set(step) >= {"what", "timeout_s", "runs", "command", "would_run"}
        assert step["command"][1:5] == ["-m", "syn2seq_core.commands.gpu_check", "--step", name]
        assert step["would_run"] or step["reason"]
    assert doc["steps"]["comfyui_exo2ego"]["timeout_s"] == 99
    assert gpu_check.BUDGET_S < 8 * 60  # the steps share it, whatever their own timeouts
    if not torch.cuda.is_available():
        assert doc["device"] == "none" and "exits 77" in doc["note"]
    # --cpu: the steps that need a GPU say so
    assert cli(["selfcheck", "--gpu", "--dry-run", "--cpu"]) == 0
    steps = summary(capsys.readouterr().out)["steps"]
    assert steps["sampler_mfu"]["would_run"] and steps["prepare_flow"]["would_run"]
    assert steps["comfyui_exo2ego"]["would_run"] == ("COMFYUI_PATH" in gpu_check.comfyui_env())  # --arch bundled
    assert not steps["wan_offload"]["would_run"] and "needs a GPU" in steps["train_bf16"]["reason"]


def test_a_step_that_times_out_does_not_lose_the_others(tmp_path, capsys):
    """--cpu at test sizes: sampler_mfu is killed at its (tiny) timeout, prepare_flow still runs: 1 process and 2
    torchrun processes write the same bytes. Exit 1, every step's status in the JSON; --out holds it too."""
    out = tmp_path / "summary.json"
    code = cli(["selfcheck", "--gpu", "--cpu", "--only", "sampler_mfu,prepare_flow", "--timeout", "sampler_mfu=0.01",
                "--timeout", "prepare_flow=280", "--work", str(tmp_path / "work"), "--out", str(out)])
    captured = capsys.readouterr()
    doc = summary(captured.out)
    assert code == 1 and doc["exit_code"] == 1 and not doc["ok"], captured.err
    assert doc["steps"]["sampler_mfu"]["status"] == "timeout" and "timed out" in doc["steps"]["sampler_mfu"]["reason"]
    flow = doc["steps"]["prepare_flow"]
    assert flow["status"] == "ok", flow.get("output_tail")
    assert flow["result"]["identical"] and flow["result"]["processes"] == 2 and set(flow["result"]["wall_s"]) == {"1",
                                                                                                                 "2"}
    assert doc["counts"] == {"ok": 1, "failed": 0, "timeout": 1, "skipped": 0}
    assert json.loads(out.read_text()) == doc
    assert "gpu-check: sampler_mfu: timeout" in captured.err


def test_a_step_without_time_left_in_the_budget_is_skipped(tmp_path):
    code, doc = gpu_check.check(["sampler_mfu", "prepare_flow"], cpu=True, work=tmp_path, budget_s=10,
                                say=lambda text: None)
    assert code == 0 and doc["counts"]["skipped"] == 2 and not list(tmp_path.glob("*.log"))
    assert doc["steps"]["sampler_mfu"] == {"status": "skipped", "reason": "time budget: 10 s of 10 s left"}


def test_options_are_checked(capsys):
    assert cli(["selfcheck", "--gpu", "--dry-run", "--only", "sampler_mfu,nope"]) == 2
    assert "selfcheck --only: expected steps among" in capsys.readouterr().err
    assert cli(["selfcheck", "--gpu", "--dry-run", "--timeout", "sampler_mfu=soon"]) == 2
    assert "STEP=SECONDS" in capsys.readouterr().err
    assert cli(["selfcheck", "--dry-run"]) == 2
    assert "only with --gpu" in capsys.readouterr().err


def test_helpers_read_tables_and_write_config_variants():
    text = "plan\n| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\ntext\n| c |\n|---|\n| 3 |\n"
    assert gpu_check.markdown_tables(text) == [[{"a": "1", "b": "x"}, {"a": "2", "b": "y"}], [{"c": "3"}]]
    config = (ROOT / gpu_check.RE10K_CONFIG).read_text()
    variant = gpu_check.config_variant(config, bf16=False, compile="inductor")
    import tomllib

    doc, base = tomllib.loads(variant), tomllib.loads(config)
    assert doc["bf16"] is False and doc["compile"] == "inductor" and doc["model"] == base["model"]
    assert {k: v for k, v in doc.items() if k not in ("bf16", "compile")} == \
        {k: v for k, v in base.items() if k != "bf16"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (syn2seq selfcheck --gpu runs it on a GPU)")
def test_cuda_wan_with_offload(tiny_wan):
    """The tiny random Wan FLF2V pipeline on cuda with diffusers' model CPU offload (the default on CUDA): float32
    agrees with the CPU run, bf16 (the CUDA default) gives frames in range; the numbers go to the GPU check."""
    from syn2seq_core.interpolation import get_interpolator, interpolate

    a, b = pair()
    reference = interpolate(a, b, 3, get_interpolator("wan", model=tiny_wan[0], steps=WAN_STEPS, device="cpu",
                                                      progress_bar=False))
    rows = {}
    for dtype in ("fp32", "bf16"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        interp = get_interpolator("wan", model=tiny_wan[0], steps=WAN_STEPS, device="cuda", dtype=dtype,
                                  progress_bar=False)
        assert interp.cpu_offload and interp.device.type == "cuda"
        out = interpolate(a, b, 3, interp)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        assert out.shape == reference.shape and out.device.type == "cpu" and torch.isfinite(out).all()
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        diff = (out - reference).abs()
        rows[dtype] = {"seconds": round(seconds, 2), "peak_vram_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                       "vram_after_mib": round(torch.cuda.memory_allocated() / 2**20, 1),
                       "transformer_on_after": str(next(interp.pipe.transformer.parameters()).device),
                       "mean_abs_diff_vs_cpu": round(float(diff.mean()), 5),
                       "max_abs_diff_vs_cpu": round(float(diff.max()), 5)}
        del interp
    assert rows["fp32"]["mean_abs_diff_vs_cpu"] < 0.02, rows
    path = os.environ.get(gpu_check.RESULT_ENV)
    if path:
        Path(path).write_text(json.dumps({"device": torch.cuda.get_device_name(), "frames": list(reference.shape),
                                          "steps": WAN_STEPS, "runs": rows}, indent=1))


def test_the_wheelhouse_list_pins_our_environment_without_torch(tmp_path):
    """scripts/gpu_wheelhouse.sh DIR --list-only (README, GPU check): the pinned list of this checkout's
    environments, with no torch (the GPU machine's own CUDA build stays) and one line per package."""
    if not (ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("no .venv here (make test makes it)")
    r = subprocess.run(["sh", str(ROOT / "scripts" / "gpu_wheelhouse.sh"), str(tmp_path / "wh"), "--list-only"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "wh" / "requirements.txt").read_text().splitlines()
    names = [line.split("==")[0].lower().replace("_", "-") for line in lines]
    assert all("==" in line for line in lines) and len(names) == len(set(names))
    assert {"einops", "safetensors", "numpy", "av"} <= set(names)
    assert not {"torch", "torchvision", "torchaudio", "triton", "syn2seq"} & set(names)
    assert not [n for n in names if n.startswith("nvidia-")]
    assert not list((tmp_path / "wh").glob("*.whl"))  # --list-only downloads nothing


def _wheel(folder: Path, name: str, module: str, text: str) -> Path:
    """A minimal pure-Python wheel (PEP 427) of one module, built here: nothing is downloaded."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name}-0.1.dist-info"
    files = {f"{module}.py": text, f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test_gpu_check\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, content in files.items():
            z.writestr(path, content)
    return wheel


def test_make_gpu_check_installs_a_carried_wheelhouse_offline(tmp_path):
    """A bare machine's path, scaled down: `make gpu-check` with a wheelhouse (here one wheel built by the test)
    installs it offline into GPU_CHECK_DEPS, puts that on PYTHONPATH for the check and its steps, and only once."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    wheelhouse, deps = tmp_path / "wheelhouse", tmp_path / "deps"
    _wheel(wheelhouse, "syn2seq_gpu_probe", "syn2seq_gpu_probe", "CARRIED = True\n")
    (wheelhouse / "requirements.txt").write_text("syn2seq_gpu_probe==0.1\n")
    cmd = ["make", "-s", "gpu-check", f"GPU_CHECK_PY={sys.executable}", f"WHEELHOUSE={wheelhouse}",
           f"GPU_CHECK_DEPS={deps}", "GPU_CHECK_ARGS=--dry-run"]
    r = subprocess.run(cmd, env={**NO_CUDA, "PIP_NO_INDEX": "1"}, cwd=ROOT, capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (deps / "syn2seq_gpu_probe.py").is_file() and "installing" in r.stderr
    assert summary(r.stdout)["environment"]["pythonpath"].split(os.pathsep)[0] == str(deps)
    r = subprocess.run(cmd, env=NO_CUDA, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and "installing" not in r.stderr  # the same list: installed once


def test_the_sampler_row_of_a_uvit_also_times_a_step_as_the_sampler_calls_it():
    """``sampler_mfu``'s U-ViT row (CPU, micro network): the every-frame step and the sampling step mid-window."""
    from syn2seq_core.commands import gpu_check
    from syn2seq_core.dfot.uvit3d import UViT3DPose

    from .test_dfot_model import MICRO_UVIT

    row = gpu_check._mfu_row(UViT3DPose, MICRO_UVIT, torch.device("cpu"), {"fp32": 1.0, "bf16": 1.0}, None, reps=1)
    for dtype in ("fp32", "bf16"):
        assert row[dtype]["s_per_step"] > 0 and row[dtype]["s_per_sampling_step"] > 0
        # The seconds are printed to 4 decimals: at this size (a few ms a step) that is a few % of each.
        assert row[dtype]["sampling_speedup"] == pytest.approx(row[dtype]["s_per_step"]
                                                                / row[dtype]["s_per_sampling_step"], rel=0.1)
