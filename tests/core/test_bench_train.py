"""The memory planner (`syn2seq bench train`): its counts come from the network, its activation model predicts
a measurement it was not fitted on, and the command prints the plan."""

import pytest

from syn2seq_core.benchmarks.train import make_plan, measure_activations
from syn2seq_core.cli import main as cli
from syn2seq_core.dfot.checkpoint import build_model
from syn2seq_core.training.config import load_config, network_config

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
    """--measure: what a GPU session runs to check the plan; here on the CPU, at another --size. The plan is
    compared with the peak of live tensor bytes (what it counts, on any device); the process's RSS, which adds
    the interpreter, libraries and the allocator's free memory, is a column of its own (issue 29.6)."""
    monkeypatch.chdir(tmp_path)
    path = write_uvit_config(tmp_path)
    assert cli(["bench", "train", "--config", str(path), "--probe-size", "16", "--gpus", "1", "--size", "32",
                "--measure", "--measure-steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "measured on CPU: tiny, 32x32, 8 frames" in out
    assert "| plan GB (1 process, no overhead) | live tensors peak GB (cpu) | live / plan | peak RSS GB" in out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "GB" not in line
            and len(line.split("|")) == 10]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("1", "off"), ("1", "on"), ("2", "off"), ("2", "on")]
    for row in rows:
        plan, live, ratio, rss, step = (float(row[i]) for i in (2, 3, 4, 5, 6))
        assert plan > 0 and live > 0 and step > 0 and ratio == pytest.approx(live / plan, rel=0.05, abs=0.01)
        assert rss > live  # the interpreter and the allocator come on top of the tensors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uvit.toml"]  # measuring keeps nothing
    assert cli(["bench", "train", "--config", str(path), "--size", "30"]) == 2
    assert "--size: expected a multiple of the network's stride 4" in capsys.readouterr().err


def test_live_tensor_counter_counts_each_storage_once_while_it_lives():
    """LiveTensors: views share their storage's bytes, a storage counts until its last view goes, the peak is
    of bytes alive at once, and a training step's count matches the tensors it keeps (autograd's saved tensors
    are freed by backward)."""
    import torch

    from syn2seq_core.benchmarks.memory import LiveTensors

    with LiveTensors() as live:
        a = torch.zeros(1000)
        b = torch.ones(2000)
        view = b[5:]
        del b
        c = a + view[:1000]
        assert live.live["cpu"] == 4 * (1000 + 2000 + 1000)
        del a, c
        assert live.live["cpu"] == 4 * 2000  # the view keeps b's storage
        del view
        assert live.live["cpu"] == 0
        kept_storage = torch.zeros(1000).untyped_storage()
        kept_storage.resize_(0)  # how FSDP2 frees a gathered weight in place
        assert live.live["cpu"] == 0
        kept_storage.resize_(400)
        assert live.live["cpu"] == 400
        del kept_storage
        w = torch.randn(256, 256, requires_grad=True)
        loss = (w @ w).square().sum()
        kept = live.live["cpu"]
        loss.backward()
        del loss
    assert live.peak["cpu"] >= max(4 * 4000, kept)
    assert kept >= 2 * 4 * 256 * 256  # w and w @ w (saved for the square's backward)


def test_bench_train_measure_ranks_prints_fsdp2_per_process_states_beside_ddp(tmp_path, capsys, monkeypatch):
    """--measure-ranks 2 (gloo on this CPU): each process's parameters, gradients, optimizer state and EMA under
    DDP and FSDP2, side by side; FSDP2 holds half of DDP's (what it exists for), and under bf16 its blocks
    compute with the bfloat16 weights of its MixedPrecisionPolicy while DDP's autocast keeps float32 weights
    (issue 29.7). Reference DFoT trains with Lightning DDP and 16-mixed precision
    (configurations/experiment/base_pytorch_exp.yaml:11,54): float32 weights, no sharding."""
    monkeypatch.chdir(tmp_path)
    path = write_uvit_config(tmp_path)
    path.write_text(path.read_text().replace("bf16 = false", "bf16 = true"))
    assert cli(["bench", "train", "--config", str(path), "--probe-size", "16", "--gpus", "2",
                "--measure-ranks", "2"]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| DDP |") or line.startswith("| FSDP2 |")]
    rows = [r for r in rows if len(r) == 10]
    assert [(r[0], r[1]) for r in rows] == [("DDP", "0"), ("DDP", "1"), ("FSDP2", "0"), ("FSDP2", "1")]
    ddp, fsdp = [float(r[6]) for r in rows[:2]], [float(r[6]) for r in rows[2:]]
    for a, b in zip(ddp, fsdp):
        assert b == pytest.approx(a / 2, rel=0.05)
    assert [r[9] for r in rows] == ["float32", "float32", "bfloat16", "bfloat16"]
    assert "FSDP2 / DDP per process: states (parameters + gradients + optimizer + EMA) x0.5" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uvit.toml"]  # measuring keeps nothing
