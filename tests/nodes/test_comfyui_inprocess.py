"""Node code inside a real ComfyUI process (its folder_paths, comfy, comfy_api), without a server.

Runs ``inprocess_checks.py`` once with ComfyUI's own Python and asserts each of its checks.
Skipped, with the reason, when no ComfyUI checkout is configured (``COMFYUI_PATH``).
"""

from __future__ import annotations

import pytest

from .harness import PACK_ROOT, run_inprocess_checks

SCRIPT = PACK_ROOT / "tests" / "nodes" / "inprocess_checks.py"
CHECK_NAMES = [
    "pack_loads_through_its_entrypoint",
    "paths_stay_inside_the_input_folder",
    "model_folder_is_registered_for_safetensors_only",
    "image_batches_convert_both_ways",
    "cameras_fit_frames_like_the_video_reader",
    "transition_node_returns_slerp_cameras_and_a_path",
    "plucker_preview_shows_unit_directions",
    "build_and_split_sequence_round_trip",
    "sampler_callback_cancels_on_interrupt",
    "conditional_mean_node_keeps_the_context_and_refuses_long_sequences",
    "evaluate_reports_metrics_and_lpips_unavailable",
    "comfy_model_management_loads_offloads_and_reloads_the_network",
    "each_weight_dtype_samples_close_to_float32",
    "low_vram_partial_load_samples_like_a_full_load",
    "memory_need_grows_with_frames_and_resolution",
    "sampler_preview_is_a_strip_of_the_generated_frames",
    "image_to_video_node_runs_a_dfot_family_model_in_keyframe_mode",
]


@pytest.fixture(scope="module")
def results(comfy_install, tmp_path_factory):
    return run_inprocess_checks(comfy_install, SCRIPT, tmp_path_factory.mktemp("inprocess"), timeout=300)


def test_every_check_ran(results):
    assert sorted(results) == sorted(CHECK_NAMES)


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check(results, name):
    assert results[name]["ok"], results[name]["detail"]


def test_report_pack_load_time(results):
    """Prints how long the pack takes to load inside ComfyUI (no timed assertion)."""
    print(f"\n[syn2seq] pack load in ComfyUI: {results['pack_loads_through_its_entrypoint']['detail']}")
