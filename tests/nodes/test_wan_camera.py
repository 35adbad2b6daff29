"""Syn2SeqWanCameraEmbedding in a real ComfyUI: equal to core's WanCameraEmbedding on its presets, accepted by
WanCameraImageToVideo, and the Wan-Fun Control-Camera baseline workflow valid apart from the weight files.

The in-process checks run ``wan_camera_checks.py`` once with ComfyUI's own Python; the workflow check posts
the graph of ``graphs.baseline_wan_fun_camera`` (built against the live server's /object_info) to a real
server. Skipped, with the reason, when no ComfyUI checkout is configured (``COMFYUI_PATH``).
"""

from __future__ import annotations

import json

import pytest

from . import graphs
from .harness import PACK_ROOT, PromptRejected, run_inprocess_checks
from .workflow_format import build

SCRIPT = PACK_ROOT / "tests" / "nodes" / "wan_camera_checks.py"
CHECK_NAMES = [
    "presets_equal_core_wan_camera_embedding",
    "outputs_plug_into_wan_camera_image_to_video_and_the_camera_adapter",
    "bad_sizes_and_lengths_are_refused_with_the_fix",
    "sample_take_starts_the_wan_track_at_the_last_exo_camera",
]
WAN_LOADERS = {"UNETLoader", "CLIPLoader", "VAELoader", "CLIPVisionLoader"}


@pytest.fixture(scope="module")
def results(comfy_install, tmp_path_factory):
    return run_inprocess_checks(comfy_install, SCRIPT, tmp_path_factory.mktemp("wan-camera"), timeout=600)


def test_every_check_ran(results):
    assert sorted(results) == sorted(CHECK_NAMES)


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check(results, name):
    assert results[name]["ok"], results[name]["detail"]


def test_report_the_match_with_core(results):
    """Prints how close the node is to core's WanCameraEmbedding (the assertion is in the check)."""
    print(f"\n[syn2seq] Wan camera embedding vs core: {results['presets_equal_core_wan_camera_embedding']['detail']}")


def test_baseline_workflow_is_valid_apart_from_the_missing_wan_weights(comfy_server):
    """Graph, types and widget values of the Wan-Fun Control-Camera baseline pass ComfyUI's validation; the
    only errors are the model files this machine does not have."""
    _, prompt = build(graphs.baseline_wan_fun_camera(), comfy_server.object_info(), "baseline_wan_fun_camera")
    assert "Syn2SeqWanCameraEmbedding" in {n["class_type"] for n in prompt.values()}
    with pytest.raises(PromptRejected) as e:
        comfy_server.queue(prompt)
    errors = e.value.node_errors
    assert errors, e.value.body
    for nid, info in errors.items():
        assert info["class_type"] in WAN_LOADERS, (nid, info)
        assert {err["type"] for err in info["errors"]} == {"value_not_in_list"}, info
    assert {info["class_type"] for info in errors.values()} == WAN_LOADERS


def test_baseline_workflow_refuses_a_length_wan_cannot_make(comfy_server):
    """validate_inputs runs in the server: a length that is not 4k + 1 is named with the nearest ones."""
    _, prompt = build(graphs.baseline_wan_fun_camera(), comfy_server.object_info(), "baseline_wan_fun_camera")
    nid = next(k for k, v in prompt.items() if v["class_type"] == "Syn2SeqWanCameraEmbedding")
    prompt[nid]["inputs"]["length"] = 80
    with pytest.raises(PromptRejected) as e:
        comfy_server.queue(prompt)
    text = json.dumps(e.value.node_errors.get(nid, {}))
    assert "77 or 81" in text, e.value.body
