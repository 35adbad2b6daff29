"""The pack in a real ComfyUI server (``main.py --cpu``), driven over HTTP and its websocket.

Skipped, with the reason, when no ComfyUI checkout is configured (``COMFYUI_PATH``). The shipped API
workflows are posted as they are, except that the sampler runs ``SYN2SEQ_TEST_STEPS`` steps (default 4)
instead of the workflow's 25 so the suite stays short on a CPU; set ``SYN2SEQ_TEST_STEPS=0`` to run them
unchanged.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from . import graphs
from .harness import PACK_ROOT, PromptRejected, output_files, status_messages
from .make_workflows import comparable, used_core_nodes
from .workflow_format import load_snapshot, signature

API_DIR = PACK_ROOT / "workflows" / "api"
TEST_STEPS = int(os.environ.get("SYN2SEQ_TEST_STEPS", "4"))


def api_workflow(name: str, steps: int | None = None) -> dict:
    prompt = json.loads((API_DIR / f"{name}_api.json").read_text(encoding="utf-8"))
    steps = TEST_STEPS if steps is None else steps
    for node in prompt.values():
        if node["class_type"] == "Syn2SeqSampler" and steps:
            node["inputs"]["steps"] = steps
    return prompt


def node_id(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


def test_object_info_lists_every_pack_node(object_info):
    pack = sorted(k for k in object_info if k.startswith("Syn2Seq"))
    snapshot = sorted(k for k in load_snapshot() if k.startswith("Syn2Seq"))
    assert pack == snapshot
    assert len(pack) == 17
    for k in pack:
        assert object_info[k]["category"].startswith("Syn2Seq")


def test_live_definitions_match_the_snapshot_the_static_checks_use(object_info):
    """Pack nodes and the core nodes the workflows use have the inputs and outputs of object_info_snapshot.json
    (names, types, order, ranges, options; the pack's nodes also their descriptions and tooltips)."""
    snapshot = load_snapshot()
    stale = []
    for k in sorted(set(snapshot) | used_core_nodes()):
        if k not in object_info or k not in snapshot:
            stale.append(k)
        elif k.startswith("Syn2Seq"):
            if comparable(object_info[k], k) != snapshot[k]:
                stale.append(k)
        elif signature(comparable(object_info[k], k)) != signature(snapshot[k]):
            stale.append(k)
    assert not stale, (f"definitions changed for {stale}; re-run `python -m tests.nodes.make_workflows --snapshot` "
                       "and review the workflow diff")


def test_template_browser_lists_the_ui_workflows_only(comfy_server):
    listed = comfy_server.get("/workflow_templates").get("syn2seq", [])
    assert sorted(listed) == sorted(graphs.WORKFLOWS)
    served = comfy_server.get("/api/workflow_templates/syn2seq/exo2ego.json")
    assert served == json.loads((PACK_ROOT / "workflows" / "exo2ego.json").read_text(encoding="utf-8"))


def test_pack_imports_fast_and_cleanly(comfy_server):
    """Reports the pack's import time from ComfyUI's own log (no timed assertion) and checks it imported."""
    log = comfy_server.log()
    lines = [l for l in log.splitlines() if l.rstrip().endswith("custom_nodes/syn2seq")]
    assert lines, "ComfyUI did not report importing the pack"
    assert "IMPORT FAILED" not in lines[-1], comfy_server.log_tail()
    seconds = float(re.search(r"([\d.]+) seconds", lines[-1]).group(1))
    print(f"\n[syn2seq] pack import time reported by ComfyUI: {seconds:.1f} s ({lines[-1].strip()})")
    assert "Error while calling comfy_entrypoint" not in log, comfy_server.log_tail()


@pytest.mark.parametrize("name", sorted(graphs.RUNNABLE))
def test_runnable_workflow_writes_its_videos(comfy_server, name):
    import av

    prompt = api_workflow(name)
    started = time.monotonic()
    entry = comfy_server.run(prompt, timeout=1200)
    elapsed = time.monotonic() - started
    errors = [m for m in status_messages(entry) if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "success", json.dumps(errors, indent=1)[:4000]
    print(f"\n[syn2seq] {name}: {elapsed:.1f} s on CPU (sampler steps: {TEST_STEPS or 'as saved'})")
    files = [f for f in output_files(entry) if f["filename"].endswith(".mp4")]
    for prefix in graphs.RUNNABLE[name]:
        folder, stem = prefix.rsplit("/", 1)
        mine = [f for f in files if f["subfolder"] == folder and f["filename"].startswith(stem + "_")]
        assert mine, f"no video with prefix {prefix} in {files}"
        path = comfy_server.output_dir / folder / mine[-1]["filename"]
        assert path.is_file() and path.stat().st_size > 0
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 0, path


def test_take_loader_sends_the_camera_path_to_the_browser(comfy_server):
    """The UI payload the web widget draws: exo and ego segments with one centre and view direction each."""
    prompt = api_workflow("build_training_sequence")
    entry = comfy_server.run(prompt, timeout=600)
    assert entry["status"]["status_str"] == "success"
    load = node_id(prompt, "Syn2SeqLoadTake")
    build = node_id(prompt, "Syn2SeqBuildSequence")
    take_path = entry["outputs"][load]["syn2seq_camera_path"][0]
    seq_path = entry["outputs"][build]["syn2seq_camera_path"][0]
    assert [s["role"] for s in take_path["segments"]] == ["exo", "ego"]
    assert [s["role"] for s in seq_path["segments"]] == ["exo", "transition", "ego"]
    assert seq_path["segments"][1]["count"] == prompt[build]["inputs"]["n_transition"]
    for seg in take_path["segments"] + seq_path["segments"]:
        assert len(seg["centers"]) == len(seg["forward"]) > 0
        for f in seg["forward"]:
            assert abs(sum(v * v for v in f) ** 0.5 - 1) < 1e-2  # unit view directions


def test_wan_workflow_is_valid_apart_from_the_missing_wan_weights(comfy_server):
    """Graph, types and widget values of the Wan FLF2V workflow pass ComfyUI's validation; the only errors
    are the model files this machine does not have."""
    prompt = api_workflow("wflf_wan_flf2v")
    with pytest.raises(PromptRejected) as e:
        comfy_server.queue(prompt)
    errors = e.value.node_errors
    loaders = {"UNETLoader", "CLIPLoader", "VAELoader", "CLIPVisionLoader"}
    assert errors, e.value.body
    for nid, info in errors.items():
        assert info["class_type"] in loaders, (nid, info)
        assert {err["type"] for err in info["errors"]} == {"value_not_in_list"}, info


def test_bad_input_gives_a_clear_validation_error(comfy_server):
    prompt = api_workflow("build_training_sequence")
    load = node_id(prompt, "Syn2SeqLoadTake")
    prompt[load]["inputs"].update(width=64, height=0)
    with pytest.raises(PromptRejected) as e:
        comfy_server.queue(prompt)
    details = json.dumps(e.value.node_errors[load])
    assert "width and height: expected both 0" in details


def test_interrupt_stops_the_sampler_within_one_step(comfy_server):
    """POST /interrupt while the sampler runs: the sampler reports at most one more step, then stops."""
    prompt = api_workflow("exo2ego", steps=500)  # far more steps than the test waits for
    sampler = node_id(prompt, "Syn2SeqSampler")
    ws = comfy_server.websocket(timeout=600)
    try:
        prompt_id = comfy_server.queue(prompt)
        seen_at_interrupt = None
        last = 0
        interrupted = False
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            raw = ws.recv()
            if not isinstance(raw, str):
                continue  # binary preview frames
            msg = json.loads(raw)
            data = msg.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if msg["type"] == "progress" and data.get("node") == sampler:
                last = int(data["value"])
                assert int(data["max"]) == 500
                if seen_at_interrupt is None and last >= 2:
                    seen_at_interrupt = last
                    comfy_server.interrupt()
            elif msg["type"] == "execution_interrupted":
                interrupted = True
                break
            elif msg["type"] in ("execution_error", "execution_success"):
                break
    finally:
        ws.close()
    assert seen_at_interrupt is not None, "the sampler never reported progress"
    assert interrupted, "no execution_interrupted event"
    print(f"\n[syn2seq] interrupt sent after step {seen_at_interrupt}; last step reported {last} of 500")
    assert last <= seen_at_interrupt + 1
    entry = comfy_server.wait(prompt_id, timeout=60)
    assert "execution_interrupted" in [m[0] for m in status_messages(entry)]
    assert not [f for f in output_files(entry) if f["filename"].endswith(".mp4")]


def test_dfot_image_to_video_workflow_runs_a_converted_dfot_checkpoint(comfy_server, tmp_path):
    """The shipped workflow with a small random-weight network written in DFoT's checkpoint layout and converted
    by convert-dfot (reference grid, RE10K camera convention), as a user would run DFoT_RE10K."""
    from syn2seq_core.dfot.convert import convert_dfot_checkpoint

    from tests.core.test_convert_dfot import make_dfot_ckpt

    folder = comfy_server.models_dir / "syn2seq"
    folder.mkdir(parents=True, exist_ok=True)
    make_dfot_ckpt(tmp_path / "dfot.ckpt")
    convert_dfot_checkpoint(tmp_path / "dfot.ckpt", folder / "dfot_tiny.safetensors", height=16, width=16,
                            max_frames=4)
    prompt = json.loads((API_DIR / "dfot_image_to_video_api.json").read_text(encoding="utf-8"))
    prompt[node_id(prompt, "Syn2SeqLoadModel")]["inputs"]["model"] = "dfot_tiny.safetensors"
    prompt[node_id(prompt, "Syn2SeqImageToVideo")]["inputs"]["steps"] = 3
    entry = comfy_server.run(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    videos = [f for f in output_files(entry) if f["filename"].endswith(".mp4")]
    assert videos and videos[0]["subfolder"].startswith("syn2seq")
