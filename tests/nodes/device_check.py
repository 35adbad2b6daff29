"""The GPU check of the pack in a real ComfyUI: per weight dtype, the exo2ego API workflow with a random-weight
network, its time per sampler step, peak device memory while sampling, and device memory after ``POST /free``.

    COMFYUI_PATH=... [COMFYUI_PYTHON=...] python -m tests.nodes.device_check [--arch re10k] [--cpu] [--out F.json]

``--arch re10k`` (default) writes a DFoT_RE10K-sized U-ViT3D (256x256, 8-frame window, random weights, same
code and layout as the converted public checkpoint); ``bundled`` uses the pack's small model. ``--cpu`` runs the
same on the CPU (what CI's machine can check). The numbers come from ComfyUI itself: the sampler's log line
(``management.measured``), ``/syn2seq/models`` and ``/system_stats``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from .harness import ComfyServer, find_comfyui
from .test_comfyui_server import api_workflow, node_id

WEIGHT_DTYPES = ("auto", "fp32", "bf16", "fp16")
LOG_LINE = re.compile(r"syn2seq: sampler \((\d+) frames, \w+\): (\d+) steps in ([\d.]+) s \(([\d.]+) s/step\), "
                      r"(\w+) weights, (\w+) compute(?:, peak (\d+) MiB allocated on (\S+)| on (\S+))")


def write_random_model(folder: Path, arch: str) -> str:
    import torch

    from syn2seq_core.dfot.checkpoint import save_model
    from syn2seq_core.dfot.uvit3d import UViT3DPose, uvit3d_preset

    folder.mkdir(parents=True, exist_ok=True)
    name = f"random_{arch}.safetensors"
    if not (folder / name).exists():
        torch.manual_seed(0)
        net = UViT3DPose(uvit3d_preset(arch))
        with torch.no_grad():  # non-zero outputs (DFoT's output layers start at zero)
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_model(folder / name, net)
    return name


def vram_free(server) -> int | None:
    devices = server.get("/system_stats").get("devices", [])
    return devices[0].get("vram_free") if devices else None


def run(arch: str, cpu: bool, steps: int) -> list[dict]:
    install = find_comfyui()
    if isinstance(install, str):
        raise SystemExit(f"no ComfyUI: {install}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ComfyServer(install, Path(tmp), cpu=cpu) as server:
        model = "bundled" if arch == "bundled" else write_random_model(server.models_dir / "syn2seq", arch)
        for weight_dtype in WEIGHT_DTYPES:
            prompt = api_workflow("exo2ego", steps=steps)
            prompt[node_id(prompt, "Syn2SeqLoadModel")]["inputs"].update(model=model, weight_dtype=weight_dtype)
            lines_before = len(server.log().splitlines())
            start = time.monotonic()
            entry = server.run(prompt, timeout=580)
            wall = time.monotonic() - start
            ok = entry["status"]["status_str"] == "success"
            held = server.get("/syn2seq/models")["models"]
            new_log = "\n".join(server.log().splitlines()[lines_before:])
            found = LOG_LINE.search(new_log)
            # Posted again every 5 s: a POST between ComfyUI's read of the flags and its next wait is not seen
            # until that wait times out (see test_comfyui_memory.free_until).
            deadline, posted = time.monotonic() + 30, 0.0
            while time.monotonic() < deadline:
                if time.monotonic() - posted > 5:
                    server.post("/free", {"unload_models": True, "free_memory": True})
                    posted = time.monotonic()
                if not server.get("/syn2seq/models")["models"]:
                    break
                time.sleep(0.25)
            row = {"weight_dtype": weight_dtype, "ok": ok, "prompt_s": round(wall, 2),
                   "loaded_mib": round(held[0]["loaded_bytes"] / 2**20, 1) if held else None,
                   "vram_free_after_free_mib": round(free / 2**20) if (free := vram_free(server)) else None}
            if found:
                frames, n, _, per_step, wdt, cdt, peak, device, cpu_device = found.groups()
                row.update(frames=int(frames), steps=int(n), s_per_step=float(per_step), weights=wdt, compute=cdt,
                           peak_mib=int(peak) if peak else None, device=device or cpu_device)
            if not ok:
                row["error"] = json.dumps(entry["status"])[-600:]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="re10k", choices=["re10k", "base", "bundled"])
    parser.add_argument("--cpu", action="store_true", help="run ComfyUI with --cpu")
    parser.add_argument("--steps", type=int, default=10, help="sampler steps per window (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = run(args.arch, args.cpu, args.steps)
    print(f"{'weight_dtype':<12} {'weights':<9} {'compute':<9} {'s/step':>8} {'peak MiB':>9} {'free MiB after /free':>21}")
    for r in rows:
        print(f"{r['weight_dtype']:<12} {r.get('weights', '?'):<9} {r.get('compute', '?'):<9} "
              f"{r.get('s_per_step', float('nan')):>8.4f} {str(r.get('peak_mib')):>9} "
              f"{str(r['vram_free_after_free_mib']):>21}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
