"""ComfyUI's memory manager and preview mechanism with the pack, in real servers (``main.py --cpu``).

After a run the Syn2Seq network is in ComfyUI's list of loaded models (``GET /syn2seq/models`` reads that list);
``POST /free`` unloads it and, with ``free_memory``, returns its memory to the system; the next run reloads it.
Previews: a server started with ``--preview-method auto`` sends one picture per sampler step over the
websocket, one with ``--preview-method none`` sends none. Each ``weight_dtype`` runs the exo2ego API workflow.
Skipped, with the reason, when no ComfyUI checkout is configured (``COMFYUI_PATH``).
"""

from __future__ import annotations

import json
import struct
import time

import pytest

from .harness import ComfyServer, output_files
from .test_comfyui_server import api_workflow, node_id

PREVIEW_IMAGE = 1  # ComfyUI's BinaryEventTypes.PREVIEW_IMAGE: the first 4 bytes of a binary websocket frame


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def syn2seq_models(server) -> list[dict]:
    return server.get("/syn2seq/models")["models"]


def wait_until(predicate, timeout: float = 30.0):
    """The first truthy value of ``predicate()`` within ``timeout`` s (ComfyUI frees memory between prompts)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def free_until(server, payload: dict, predicate, timeout: float = 120.0):
    """POST /free with ``payload`` until ``predicate()`` holds (its first truthy value, or the last falsy one).

    ComfyUI's prompt worker reads the free flags once per loop, after its queue wait; POST /free wakes the wait,
    but a POST that lands after the worker read the flags and before it waits again is only seen at the
    wait's timeout (up to 1000 s): ComfyUI 0.3.64 main.prompt_worker / execution.PromptQueue.set_flag. Posting
    again wakes it; the flags are idempotent."""
    deadline = time.monotonic() + timeout
    while True:
        status, _ = server.post("/free", payload)
        assert status == 200
        value = wait_until(predicate, timeout=min(10.0, max(0.0, deadline - time.monotonic())))
        if value or time.monotonic() > deadline:
            return value


@pytest.fixture(scope="module")
def big_model(comfy_server):
    """A random-weight DiT3D of ~120M parameters (470 MB in float32) in the server's models folder, at the
    bundled model's frame size, so that what ComfyUI holds and frees stands out of the process's memory. Wide
    and shallow: two thirds of it are tensors over 32 MB, which glibc always maps on their own and so gives
    back to the system when they are freed (smaller ones may stay in the heap for reuse, and RSS would not say
    whether ComfyUI let go of them)."""
    import torch

    from syn2seq_core.dfot.checkpoint import save_model
    from syn2seq_core.generation.pipeline import build_network

    folder = comfy_server.models_dir / "syn2seq"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "random_120m.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        net = build_network({"preset": "tiny", "dim": 1536, "depth": 2, "heads": 12})
        save_model(path, net)
    return path.name


def exo2ego(model: str | None = None, weight_dtype: str | None = None, steps: int = 2) -> dict:
    prompt = api_workflow("exo2ego", steps=steps)
    load = prompt[node_id(prompt, "Syn2SeqLoadModel")]["inputs"]
    if model is not None:
        load["model"] = model
    if weight_dtype is not None:
        load["weight_dtype"] = weight_dtype
    return prompt


def test_free_unloads_the_network_returns_its_memory_and_a_second_run_reloads_it(comfy_server, big_model):
    entry = comfy_server.run(exo2ego(big_model))
    assert entry["status"]["status_str"] == "success", entry["status"]
    held = syn2seq_models(comfy_server)
    assert [m["name"] for m in held] == [big_model]
    assert held[0]["loaded_bytes"] == held[0]["model_bytes"] > 350 * 2**20
    pid = comfy_server.process.pid
    before = rss_bytes(pid)

    assert free_until(comfy_server, {"unload_models": True}, lambda: syn2seq_models(comfy_server) == []), \
        syn2seq_models(comfy_server)
    returned = free_until(comfy_server, {"unload_models": True, "free_memory": True},  # and drop the caches
                          lambda: before - rss_bytes(pid) > 250 * 2**20)
    after = rss_bytes(pid)
    print(f"\n[syn2seq] server RSS {before / 2**20:.0f} MiB with the 470 MB network loaded, "
          f"{after / 2**20:.0f} MiB after POST /free")
    assert returned, f"RSS went from {before / 2**20:.0f} to {after / 2**20:.0f} MiB"

    entry = comfy_server.run(exo2ego(big_model))
    assert entry["status"]["status_str"] == "success"
    assert [m["name"] for m in syn2seq_models(comfy_server)] == [big_model]
    # ComfyUI reads the flags between prompts: wait until it has, or it would unload after the next test's run.
    assert free_until(comfy_server, {"unload_models": True, "free_memory": True},
                      lambda: syn2seq_models(comfy_server) == [])


@pytest.mark.parametrize("weight_dtype", ["auto", "fp32", "bf16", "fp16"])
def test_each_weight_dtype_runs_the_exo2ego_workflow(comfy_server, weight_dtype):
    entry = comfy_server.run(exo2ego(weight_dtype=weight_dtype))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert [f for f in output_files(entry) if f["filename"].endswith(".mp4")]
    held = syn2seq_models(comfy_server)
    expected = {"auto": "float32", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[weight_dtype]
    assert [m["weight_dtype"] for m in held] == [expected]  # --cpu: auto is float32, as for ComfyUI's models


def count_previews(server, prompt: dict) -> tuple[int, int]:
    """(preview images, sampler progress events) the websocket receives while ``prompt`` runs."""
    sampler = node_id(prompt, "Syn2SeqSampler")
    ws = server.websocket(timeout=600)
    previews = steps = 0
    try:
        prompt_id = server.queue(prompt)
        while True:
            raw = ws.recv()
            if isinstance(raw, bytes):
                if struct.unpack(">I", raw[:4])[0] == PREVIEW_IMAGE:
                    previews += 1
                continue
            msg = json.loads(raw)
            data = msg.get("data", {})
            if msg["type"] == "progress" and data.get("node") == sampler and data.get("prompt_id") == prompt_id:
                steps += 1
            elif msg["type"] in ("execution_success", "execution_error", "execution_interrupted") and \
                    data.get("prompt_id") == prompt_id:
                assert msg["type"] == "execution_success", msg
                break
    finally:
        ws.close()
    return previews, steps


def test_previews_follow_the_preview_method(comfy_server, comfy_install, tmp_path):
    prompt = exo2ego(steps=5)
    none_previews, none_steps = count_previews(comfy_server, prompt)  # the session server: --preview-method none
    with ComfyServer(comfy_install, tmp_path / "base", extra_args=("--preview-method", "auto")) as server:
        previews, steps = count_previews(server, prompt)
    print(f"\n[syn2seq] previews over the websocket: {previews} for {steps} sampler steps with "
          f"--preview-method auto, {none_previews} with none")
    assert none_steps == steps == 5
    assert none_previews == 0
    assert previews == steps
