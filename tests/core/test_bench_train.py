"""The memory planner (`syn2seq bench train`): its counts come from the network, its activation model predicts
a measurement it was not fitted on, and the command prints the plan."""

import pytest

from syn2seq_core.benchmarks.train import make_plan, measure_activations
from syn2seq_core.cli import main as cli
from syn2seq_core.dfot.checkpoint import build_model
from syn2seq_core.train import load_config, network_config

from .test_train import write_config, write_uvit_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ["dit3d", "uvit3d_pose"])
def test_activation_model_predicts_a_larger_video_and_checkpointing_keeps_less(tmp_path, arch):
    path = write_uvit_config(tmp_path) if arch == "uvit3d_pose" else write_config(tmp_path)
    config = network_config(load_config(path))
    plan = make_plan(config, 16)
    assert plan.parameters == sum(p.numel() for p in build_model(config).parameters())
    px = config.height * config.width
    for frames, batch in ((4, 1), (3, 2)):  # fitted on 1 and 2 frames at batch 1
        measured, _ = measure_activations(config, frames, batch)
        assert plan.activations(batch, frames * px, False) == pytest.approx(measured, rel=0.05)
        kept, _ = measure_activations(config, frames, batch, checkpoint=True)
        assert kept < 0.8 * measured
        assert plan.activations(batch, frames * px, True) >= kept
    p, b = plan.parameters, plan.largest_block_parameters
    assert plan.states("ddp", 8) == 24 * p  # fp32 weights, grads, 2 AdamW moments, EMA, DDP buckets
    assert plan.states("fsdp2", 4) == 20 * p / 4 + 12 * b  # sharded + 2 gathered blocks + 1 unsharded grad


def test_bench_train_prints_the_plan(tmp_path, capsys):
    path = write_uvit_config(tmp_path)
    assert cli(["bench", "train", "--config", str(path), "--vram", "1", "--gpus", "1", "8", "--probe-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "| DDP | off | 1 |" in out and "| FSDP2 | on | 2 |" in out and "8 GPUs" in out
    assert cli(["bench", "train", "--config", str(path), "--probe-size", "10"]) == 2
    assert "--probe-size: expected a multiple of the network's stride 4" in capsys.readouterr().err
