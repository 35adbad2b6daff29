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
    "depth_from_image_feeds_build_sequence_the_depth_of_an_estimate",
    "an_egoexo4d_take_runs_load_take_to_sampler_with_the_bundled_model",
    "evaluate_reports_metrics_and_lpips_unavailable",
    "comfy_model_management_loads_offloads_and_reloads_the_network",
    "each_weight_dtype_samples_close_to_float32",
    "low_vram_partial_load_samples_like_a_full_load",
    "memory_need_grows_with_frames_and_resolution",
    "sampler_preview_is_a_strip_of_the_generated_frames",
    "image_to_video_node_runs_a_dfot_family_model_in_keyframe_mode",
    "load_model_node_merges_a_trained_lora",
    "estimate_cameras_node_recovers_a_textured_take_and_names_the_extra",
]

def _train_lora_pair(models):
    """A base model and a LoRA finetune of it, trained here (peft is in the pack's venv, not ComfyUI's), into
    the folder the check registers as ComfyUI's syn2seq model folder."""
    import shutil

    pytest.importorskip("peft")
    from syn2seq_core.training.config import load_config
    from syn2seq_core.training.loop import train

    from ..core.test_train import TINY

    models.mkdir(parents=True, exist_ok=True)
    runs = models.parent / "runs"
    config = runs / "base.toml"
    runs.mkdir(parents=True, exist_ok=True)
    config.write_text(TINY.format(stage="finetune", steps=4, every=4).replace("lr = 2e-3", "lr = 2e-2"))
    train(load_config(config), runs / "base", progress=False)
    shutil.copy(runs / "base" / "model.safetensors", models / "lora_base.safetensors")
    config.write_text(config.read_text().replace('name = "tiny"', 'name = "tiny"\ninit_from = "'
                                                 f'{(models / "lora_base.safetensors").as_posix()}"') + "[lora]\nrank = 4\n")
    train(load_config(config), runs / "lora", progress=False)
    shutil.copy(runs / "lora" / "lora.safetensors", models / "lora_adapters.safetensors")
    shutil.copy(runs / "lora" / "model.safetensors", models / "lora_merged.safetensors")


@pytest.fixture(scope="module")
def results(comfy_install, tmp_path_factory):
    work = tmp_path_factory.mktemp("inprocess")
    _train_lora_pair(work / "models")
    return run_inprocess_checks(comfy_install, SCRIPT, work, timeout=300)


def test_every_check_ran(results):
    assert sorted(results) == sorted(CHECK_NAMES)


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check(results, name):
    assert results[name]["ok"], results[name]["detail"]


def test_report_pack_load_time(results):
    """Prints how long the pack takes to load inside ComfyUI (no timed assertion)."""
    print(f"\n[syn2seq] pack load in ComfyUI: {results['pack_loads_through_its_entrypoint']['detail']}")
