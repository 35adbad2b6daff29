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


def test_bench_train_measure_trains_each_setting_and_prints_its_peak_beside_the_plan(tmp_path, capsys, monkeypatch):
    # --measure: what a GPU session runs to check the plan; here on the CPU (peak RSS), at another --size.
    monkeypatch.chdir(tmp_path)
    path = write_uvit_config(tmp_path)
    assert cli(["bench", "train", "--config", str(path), "--probe-size", "16", "--gpus", "1", "--size", "32",
                "--measure", "--measure-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "measured on CPU: tiny, 32x32, 8 frames" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "GB" not in line
            and len(line.split("|")) == 9]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("1", "off"), ("1", "on"), ("2", "off"), ("2", "on")]
    for row in rows:
        plan, peak, ratio, step = (float(row[i]) for i in (2, 3, 4, 5))
        assert plan > 0 and peak > 0 and step > 0 and ratio == pytest.approx(peak / plan, rel=0.05, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uvit.toml"]  # measuring keeps nothing
    assert cli(["bench", "train", "--config", str(path), "--size", "30"]) == 2
    assert "--size: expected a multiple of the network's stride 4" in capsys.readouterr().err
