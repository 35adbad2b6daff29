"""Training: the loss falls, resume equals an uninterrupted run, kill -9 loses at most one checkpoint
interval, and a 2-process torchrun (gloo) run keeps its replicas identical."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.training.checkpoints import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME, load_checkpoint
from syn2seq_core.training.config import load_config
from syn2seq_core.training.loop import train

TINY = """
name = "tiny"
stage = "{stage}"
seed = 3
max_steps = {steps}
checkpoint_every = {every}
log_every = 1
bf16 = false
noise_shift = 1.0
[model]
preset = "tiny"
height = 16
width = 16
patch_size = 4
dim = 48
depth = 2
heads = 2
max_frames = 8
[data]
size = 16
supersample = 1
exo_frames = 3
ego_frames = 3
transition_frames = 2
interpolator = "blend"
clip_frames = 6
[optim]
batch_size = 2
lr = 2e-3
warmup_steps = 2
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def write_config(tmp_path, stage="finetune", steps=4, every=2, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(TINY.format(stage=stage, steps=steps, every=every))
    return path


def read_log(out):
    return [json.loads(line) for line in (Path(out) / LOG_NAME).read_text().splitlines()]


def with_model_table(text, table=""):
    """A config text with its [model] table replaced by ``table`` ("" = no [model] table)."""
    return text[:text.index("[model]")] + table + text[text.index("[data]"):]


def fixed_batch_loss(cfg):
    """(batch, eval_loss): 4 fixed sequences of the config's data and a network's loss on them (eval mode,
    the same noise every time)."""
    from syn2seq_core.training.batches import batch_source
    from syn2seq_core.dfot.schedule import NoiseSchedule
    from syn2seq_core.generation.pipeline import training_step_loss

    batch = batch_source(cfg)(torch.Generator().manual_seed(12345), 4)
    sched = NoiseSchedule(shift=cfg.noise_shift)

    def eval_loss(net):
        net.eval()
        with torch.no_grad():
            return float(training_step_loss(net, batch, torch.Generator().manual_seed(0), sched)[0])

    return batch, eval_loss


def perturbed(net):
    """``net`` moved off its zero-initialised outputs, so that every block has a gradient."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net


def torchrun(cfg_path, out, procs=2, check=True, extra=()):
    """``torchrun --standalone --nproc_per_node=procs -m syn2seq_core train`` (gloo on this CPU)."""
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if exe is None:
        pytest.skip("torchrun not found next to the test interpreter")
    r = subprocess.run([exe, "--standalone", f"--nproc_per_node={procs}", "-m", "syn2seq_core", "train",
                        "--config", str(cfg_path), "--out", str(out), "--no-progress", *extra], env=ENV,
                       capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_stage_runs_and_writes_model_and_log(tmp_path, stage):
    cfg = load_config(write_config(tmp_path, stage, steps=3))
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["step"] == 3
    assert (tmp_path / "run" / MODEL_NAME).exists() and (tmp_path / "run" / CHECKPOINT_NAME).exists()
    log = read_log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["loss"] > 0 for r in log)


def test_loss_falls_on_a_tiny_config(tmp_path):
    """Training on the synthetic world lowers the per-frame diffusion loss (fixed eval batch, same noise)."""
    from syn2seq_core.generation.pipeline import build_network

    cfg = load_config(write_config(tmp_path, "finetune", steps=60, every=60))
    _, eval_loss = fixed_batch_loss(cfg)
    torch.manual_seed(cfg.seed)
    before = build_network(cfg.model)
    train(cfg, tmp_path / "run", progress=False)
    after = build_network(cfg.model)
    after.load_state_dict(load_checkpoint(tmp_path / "run")["model"])  # raw weights (EMA lags at 60 steps)
    # Zero-initialised outputs predict v = 0 at first; 60 steps must cut the loss substantially.
    assert eval_loss(after) < 0.7 * eval_loss(before)


def test_resume_reaches_the_same_state_as_an_uninterrupted_run(tmp_path):
    cfg = load_config(write_config(tmp_path, steps=4, every=1))
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", max_steps=2, progress=False)  # "interrupted" after step 2
    assert load_checkpoint(tmp_path / "resumed")["step"] == 2
    train(cfg, tmp_path / "resumed", progress=False)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4
    # Batches, noise and dropout are functions of (seed, step, rank) and the optimiser state is restored,
    # so the runs do the same arithmetic; 1e-6 allows only float reduction-order noise.
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0)
        torch.testing.assert_close(a["ema"][key], b["ema"][key], atol=1e-6, rtol=0)


def test_procedural_scenes_rendered_by_loader_workers_train_the_same_weights(tmp_path):
    # [data] loader_workers renders the procedural world in DataLoader processes (what keeps a GPU fed); it is
    # how batches are computed, not what they are: a run interrupted at step 2 resumes with 2 workers.
    cfg = load_config(write_config(tmp_path, steps=4, every=1))
    train(cfg, tmp_path / "inline", progress=False)
    workers = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, loader_workers=2))
    train(cfg, tmp_path / "loaded", max_steps=2, progress=False)
    train(workers, tmp_path / "loaded", progress=False)
    a, b = load_checkpoint(tmp_path / "inline"), load_checkpoint(tmp_path / "loaded")
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0)


def test_resume_refuses_a_different_config(tmp_path):
    cfg = load_config(write_config(tmp_path, steps=2, every=1))
    train(cfg, tmp_path / "run", max_steps=1, progress=False)
    other = load_config(write_config(tmp_path, steps=9, every=1, name="other.toml"))
    with pytest.raises(Syn2SeqInputError, match="different config.*only activation_checkpointing, compile, "
                       "parallel, checkpoint_every, .*preview_steps may change"):
        train(other, tmp_path / "run", progress=False)
    # How a step is computed and what is logged may change (e.g. activation checkpointing after running out
    # of memory).
    path = write_config(tmp_path, steps=2, every=1, name="ckpt.toml")
    path.write_text(path.read_text().replace("bf16 = false", "bf16 = false\nactivation_checkpointing = true\n"
                                                             "preview_every = 7").replace("log_every = 1",
                                                                                          "log_every = 2"))
    assert train(load_config(path), tmp_path / "run", progress=False)["step"] == 2


def test_resume_accepts_a_run_saved_before_a_config_field_existed(tmp_path):
    # A later version adds a config field (e.g. snapshot_every): a run saved without it, resumed with the
    # field at its default, is the same run.
    cfg = load_config(write_config(tmp_path, steps=2, every=1))
    train(cfg, tmp_path / "run", max_steps=1, progress=False)
    state = load_checkpoint(tmp_path / "run")
    old = json.loads(state["config"])
    del old["snapshot_every"]
    state["config"] = json.dumps(old)
    torch.save(state, tmp_path / "run" / CHECKPOINT_NAME)
    assert train(cfg, tmp_path / "run", progress=False)["step"] == 2


def logged_steps(out):
    """Steps of the whole records of a metrics log that may be mid-write (a torn last line is skipped)."""
    path = Path(out) / LOG_NAME
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines(keepends=True):
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            pass
    return steps


def test_kill_9_then_restart_continues_from_the_last_checkpoint(tmp_path):
    # Checkpoints every 2 steps, a log record every step: killed while the log is ahead of the checkpoint,
    # the resumed run redoes those steps, and the log must still hold each step once.
    steps = 20
    cfg_path = write_config(tmp_path, steps=steps, every=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "syn2seq_core", "train", "--config", str(cfg_path), "--out", str(out),
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        state = load_checkpoint(out) if (out / CHECKPOINT_NAME).exists() else None
        if state is not None and state["step"] >= 3 and max(logged_steps(out), default=0) > state["step"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(out)["step"]  # the verified checkpoint is always complete
    assert 3 <= killed_at < steps
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming {out} at step {killed_at}" in r.stderr
    assert load_checkpoint(out)["step"] == steps
    # Each step logged once, in order, none missing (the records after the checkpoint were dropped on resume).
    assert [rec["step"] for rec in read_log(out)] == list(range(1, steps + 1))
    assert not list(out.glob(".*")), "a killed write leaves no hidden temporary file after the resume"


def test_torchrun_two_processes_agree_on_weights(tmp_path):
    cfg_path = write_config(tmp_path, steps=3, every=3)
    out = tmp_path / "ddp"
    torchrun(cfg_path, out)
    last = read_log(out)[-1]
    assert last["ranks"] == 2 and last["ranks_agree"] is True
    assert last["weight_digests"][0] == last["weight_digests"][1]
    assert load_checkpoint(out)["step"] == 3


def test_snapshots_keep_the_ema_model_of_every_nth_step(tmp_path):
    from syn2seq_core.generation.pipeline import load_model
    from syn2seq_core.training.checkpoints import snapshot_path

    path = write_config(tmp_path, steps=4, every=4)
    path.write_text(path.read_text().replace("checkpoint_every = 4", "checkpoint_every = 4\nsnapshot_every = 2"))
    out = tmp_path / "run"
    train(load_config(path), out, progress=False)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [snapshot_path(out, s).name for s in (2, 4)]
    first, last, final = (load_model(p) for p in (snapshot_path(out, 2), snapshot_path(out, 4), out / MODEL_NAME))
    assert first.info["step"] == 2 and last.info["step"] == 4
    for key, value in final.network.state_dict().items():
        assert torch.equal(value, last.network.state_dict()[key])
    assert not all(torch.equal(v, first.network.state_dict()[k]) for k, v in final.network.state_dict().items())


def test_bad_config_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nstage = "warmup"\n')
    with pytest.raises(Syn2SeqInputError, match="stage"):
        load_config(bad)
    bad.write_text('name = "x"\n[data]\nsize = 16\ncolour = 3\n')
    with pytest.raises(Syn2SeqInputError, match=r"\[data\].*colour"):
        load_config(bad)
    bad.write_text('name = "x"\n[data]\nfull_noise_prob = 30\n')  # a percentage where a probability goes
    with pytest.raises(Syn2SeqInputError, match=r"\[data\] full_noise_prob: expected a probability in \[0, 1\]"):
        load_config(bad)


@pytest.mark.parametrize("old, new, message", [
    ("batch_size = 2", "batch_size = 0", r"\[optim\] batch_size: expected an integer in \[1, 4096\], got 0"),
    ("batch_size = 2", "batch_size = 2.5", r"\[optim\] batch_size: expected an integer in \[1, 4096\], got 2.5"),
    ("max_steps = 4", "max_steps = 0", r"max_steps: expected an integer in \[1, 1000000000\], got 0"),
    ("checkpoint_every = 2", "checkpoint_every = -1", r"checkpoint_every: expected an integer in \[1, "),
    ("log_every = 1", 'log_every = "1"', r"log_every: expected an integer in \[1, 1000000000\], got '1'"),
    ("seed = 3", "seed = 99999999999", r"seed: expected an integer in \[0, 4294967295\], got 99999999999"),
    ("size = 16", "size = 4", r"\[data\] size: expected an integer in \[8, 4096\], got 4"),
    ("exo_frames = 3", "exo_frames = 100000", r"\[data\] exo_frames: expected an integer in \[1, 1024\]"),
    ("supersample = 1", "supersample = 0", r"\[data\] supersample: expected an integer in \[1, 16\], got 0"),
    ("warmup_steps = 2", "warmup_steps = -5", r"\[optim\] warmup_steps: expected an integer in \[0, "),
    ("depth = 2", "depth = 0", r"\[model\] depth: expected an integer in \[1, 1024\], got 0"),
    ("depth = 2", "depth = true", r"\[model\] depth: expected an integer in \[1, 1024\], got True"),
    # the model must fit the data
    ("width = 16", "width = 18", r"\[model\] height, width: expected multiples of patch_size 4"),
    ("size = 16", "size = 24", r"\[data\] size: expected the model's frame size \(\[model\] height x width = 16 x 16"),
    ("max_frames = 8", "max_frames = 6", (r"\[data\] exo_frames \+ transition_frames \+ ego_frames: expected at "
                                          r"most the model's window \(\[model\] max_frames = 6\) .*got 8")),
    ("depth = 2", "depht = 2", r"\[model\]: expected keys among \[.*\], got \['depht'\]"),
])
def test_counts_in_a_config_are_checked_naming_key_range_and_value(tmp_path, old, new, message):
    path = write_config(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(Syn2SeqInputError, match=message):
        load_config(path)


def test_every_shipped_config_is_in_range():
    configs = sorted((Path(__file__).parents[2] / "configs").rglob("*.toml"))
    assert configs
    for path in configs:
        load_config(path)


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_training(tmp_path, monkeypatch):
    from syn2seq_core.base import limits

    cfg = load_config(write_config(tmp_path))
    monkeypatch.setattr(limits, "available_memory_bytes", lambda device=None: 100_000)
    with pytest.raises(Syn2SeqInputError, match=r"tiny: one training batch: expected at most 100 kB \(the memory "
                                                r"available on this machine now\), got an estimated .*lower \[optim\] "
                                                r"batch_size"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_finetune_starts_from_a_pretrain_run(tmp_path):
    from syn2seq_core.training.checkpoints import initial_weights

    pre = load_config(write_config(tmp_path, "pretrain", steps=2, every=2))
    train(pre, tmp_path / "pre", progress=False)
    raw = load_checkpoint(tmp_path / "pre")["model"]
    for key, value in initial_weights(tmp_path / "pre").items():
        assert torch.equal(value, raw[key])
    ema = initial_weights(tmp_path / "pre" / MODEL_NAME)
    assert set(ema) == set(raw)
    with pytest.raises(Syn2SeqInputError, match="init_from"):
        initial_weights(tmp_path / "nowhere")


def test_sigterm_writes_a_checkpoint_of_the_current_step(tmp_path):
    cfg_path = write_config(tmp_path, steps=400, every=1000)  # no periodic checkpoint before the signal
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "syn2seq_core", "train", "--config", str(cfg_path), "--out",
                             str(out), "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / LOG_NAME).exists() and len(read_log(out)) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    logged = read_log(out)[-1]["step"]
    assert load_checkpoint(out)["step"] >= logged >= 3


def test_shared_noise_levels():
    from syn2seq_core.training.batches import draw_noise_levels

    g = torch.Generator().manual_seed(0)
    t = draw_noise_levels(g, (4000, 6), 0.5)
    shared = (t == t[:, :1]).all(dim=1)
    assert 0.45 < float(shared.float().mean()) < 0.55  # about half the sequences share one level
    assert float(t[shared, 0].mean()) == pytest.approx(0.5, abs=0.03)  # and that level is uniform
    assert (t >= 0).all() and (t < 1).all()
    # Without sharing, the draws are exactly the plain uniform ones (old configs keep their batches).
    plain = torch.rand(4000, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draw_noise_levels(torch.Generator().manual_seed(0), (4000, 6), 0.0), plain)


def test_full_noise_sequences_generate_everything_from_context_alone(tmp_path):
    from dataclasses import replace

    from syn2seq_core.training.batches import batch_source

    cfg = load_config(write_config(tmp_path))
    cfg = replace(cfg, data=replace(cfg.data, clean_context_prob=1.0, full_noise_prob=1.0))
    batch = batch_source(cfg)(torch.Generator().manual_seed(0), 3)
    exo = batch.roles == 0
    assert torch.equal(batch.noise_t[exo], torch.zeros(int(exo.sum())))  # clean context, as at inference
    assert torch.equal(batch.noise_t[~exo], torch.ones(int((~exo).sum())))  # the rest at pure noise
    assert (batch.loss_mask[~exo] > 0).all()
    # Without context there is nothing to regress from: those sequences keep their drawn levels.
    cfg = replace(cfg, data=replace(cfg.data, clean_context_prob=0.0))
    batch = batch_source(cfg)(torch.Generator().manual_seed(0), 3)
    assert (batch.noise_t < 1).all()


def test_finetune_with_full_attention_starts_from_a_factorized_run(tmp_path):
    from syn2seq_core.generation.pipeline import load_model

    pre = load_config(write_config(tmp_path, "pretrain", steps=2, every=2))
    train(pre, tmp_path / "pre", progress=False)
    text = TINY.format(stage="finetune", steps=1, every=1).replace('heads = 2', 'heads = 2\nattention = "full"')
    path = tmp_path / "full.toml"
    path.write_text(text.replace('name = "tiny"', f'name = "tiny"\ninit_from = "{(tmp_path / "pre").as_posix()}"'))
    train(load_config(path), tmp_path / "full", progress=False)
    assert load_model(tmp_path / "full" / MODEL_NAME).config.attention == "full"


UVIT_MODEL = """[model]
arch = "uvit3d_pose"
preset = "base"
height = 16
width = 16
patch_size = 2
channels = [32, 64]
emb_channels = 32
block_types = ["ResBlock", "TransformerBlock"]
block_dropouts = [0.0, 0.0]
num_updown_blocks = [1]
num_mid_blocks = 1
num_heads = 2
noise_features = 32
max_frames = 8
"""


def write_uvit_config(tmp_path, steps=4, every=2, stage="finetune"):
    text = with_model_table(TINY.format(stage=stage, steps=steps, every=every), UVIT_MODEL)
    path = tmp_path / "uvit.toml"
    path.write_text(text)
    return path


def test_uvit3d_pose_trains_from_a_config_and_samples(tmp_path):
    """A [model] table with arch = "uvit3d_pose" trains DFoT's network (DFoT's 180-channel ray encoding in the
    batches), its loss falls on a fixed batch, and the written model loads and generates like a DiT3D."""
    from syn2seq_core.dfot.uvit3d import UViT3DPose
    from syn2seq_core.generation.pipeline import build_network, load_model

    cfg = load_config(write_uvit_config(tmp_path, steps=40, every=40))
    batch, eval_loss = fixed_batch_loss(cfg)
    assert batch.rays.shape[-1] == 180
    torch.manual_seed(cfg.seed)
    before = build_network(cfg.model)
    assert isinstance(before, UViT3DPose)
    train(cfg, tmp_path / "run", progress=False)
    after = build_network(cfg.model)
    after.load_state_dict(load_checkpoint(tmp_path / "run")["model"])
    assert eval_loss(after) < 0.8 * eval_loss(before)
    model = load_model(tmp_path / "run" / MODEL_NAME)
    assert isinstance(model.network, UViT3DPose) and model.config.channels == (32, 64)
    assert model.camera_convention == "pack"  # trained on the pack's cameras, not DFoT's RE10K intrinsics
    assert model.schedule.shift == cfg.noise_shift


def test_pretrain_stage_of_a_uvit_uses_its_window(tmp_path):
    path = write_uvit_config(tmp_path, steps=1, every=1, stage="pretrain")
    path.write_text(path.read_text().replace("clip_frames = 6\n", ""))  # clips as long as the model window
    cfg = load_config(path)
    from syn2seq_core.training.batches import batch_source

    assert batch_source(cfg)(torch.Generator().manual_seed(0), 1).frames.shape[1] == 8
    assert train(cfg, tmp_path / "run", progress=False)["step"] == 1


@pytest.mark.parametrize("old, new, message", [
    ('arch = "uvit3d_pose"', 'arch = "unet"', r"\[model\] arch: expected one of \['dit3d', 'uvit3d_pose'\], got 'unet'"),
    ("num_heads = 2", "num_heads = 3", r"\[model\] channels\[1\]: expected a multiple of num_heads 3"),
    ("num_mid_blocks = 1", "depth = 1", r"\[model\]: expected keys among .*, got \['depth'\].*arch 'uvit3d_pose'"),
    ("width = 16", "width = 18", r"\[model\] height, width: expected multiples of patch_size \* 2\^\(levels - 1\) = 4"),
    ("num_heads = 2", "num_heads = 0", r"\[model\] num_heads: expected an integer in \[1, 1024\], got 0"),
])
def test_uvit_config_errors_name_the_key(tmp_path, old, new, message):
    path = write_uvit_config(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(Syn2SeqInputError, match=message):
        load_config(path)


def _final_weights(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    train(load_config(path), tmp_path / name, progress=False)
    return load_checkpoint(tmp_path / name)["model"], read_log(tmp_path / name)


NO_POSE_DROPOUT = "max_frames = 8\npose_dropout = 0.0\n"


@pytest.mark.parametrize("model", ["dit3d", "uvit3d_pose"])
def test_accumulating_micro_batches_equals_the_whole_batch(tmp_path, model):
    """[optim] accumulate = 2 splits each step's batch in two: the same data, noise and weights after 3 steps as
    the whole batch at once (float summation order aside). Pose dropout off: it draws per micro-batch."""
    text = TINY.format(stage="finetune", steps=3, every=3)
    if model == "uvit3d_pose":
        text = with_model_table(text, UVIT_MODEL)
    text = text.replace("max_frames = 8\n", NO_POSE_DROPOUT).replace("batch_size = 2", "batch_size = 4")
    whole, log_whole = _final_weights(tmp_path, "whole", text)
    parts, log_parts = _final_weights(tmp_path, "parts", text.replace("batch_size = 4", "batch_size = 4\naccumulate = 2"))
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], atol=2e-5, rtol=1e-4, msg=key)
    for a, b in zip(log_whole, log_parts):
        assert abs(a["loss"] - b["loss"]) < 1e-5 * max(1.0, a["loss"])
        assert abs(a.get("loss_ego", 0) - b.get("loss_ego", 0)) < 1e-5


def test_accumulate_must_divide_the_batch(tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("batch_size = 2", "batch_size = 2\naccumulate = 3"))
    with pytest.raises(Syn2SeqInputError, match=r"\[optim\] accumulate: expected a divisor of \[optim\] batch_size = 2"):
        load_config(path)


@pytest.mark.parametrize("model", ["dit3d", "uvit3d_pose"])
def test_activation_checkpointing_gives_the_same_gradients(tmp_path, model):
    from syn2seq_core.training.batches import batch_source
    from syn2seq_core.dfot.schedule import NoiseSchedule
    from syn2seq_core.generation.pipeline import build_network, training_step_loss

    path = write_uvit_config(tmp_path) if model == "uvit3d_pose" else write_config(tmp_path)
    path.write_text(path.read_text().replace("max_frames = 8\n", NO_POSE_DROPOUT))
    cfg = load_config(path)
    batch = batch_source(cfg)(torch.Generator().manual_seed(5), 2)
    torch.manual_seed(0)
    net = perturbed(build_network(cfg.model))
    grads = []
    for on in (False, True):
        net.checkpoint_blocks = on
        net.zero_grad()
        loss, _ = training_step_loss(net.train(), batch, torch.Generator().manual_seed(1), NoiseSchedule(shift=1.0))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert sum(float(g.abs().sum() > 0) for g in grads[0].values()) > 0.9 * len(grads[0])
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-6, rtol=1e-5, msg=n)
    # and in the loop: the same weights after 2 steps with and without it
    text = path.read_text().replace("max_steps = 4", "max_steps = 2")
    plain, _ = _final_weights(tmp_path, "plain", text)
    ckpt, _ = _final_weights(tmp_path, "ckpt", text.replace("bf16 = false", "bf16 = false\nactivation_checkpointing = true"))
    for key in plain:
        torch.testing.assert_close(ckpt[key], plain[key], atol=1e-6, rtol=1e-5, msg=key)


def test_accumulated_backward_gives_the_gradients_of_the_whole_batch(tmp_path):
    """The gradient itself (AdamW would hide a scale error): unequal loss weights per micro-batch included."""
    from syn2seq_core.training.batches import batch_source
    from syn2seq_core.dfot.schedule import NoiseSchedule
    from syn2seq_core.generation.pipeline import accumulated_backward, build_network

    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("max_frames = 8\n", NO_POSE_DROPOUT))
    cfg = load_config(path)
    batch = batch_source(cfg)(torch.Generator().manual_seed(5), 4)
    batch.loss_mask[0] = 0.0  # the first micro-batch carries less of the loss than the second
    torch.manual_seed(0)
    net = perturbed(build_network(cfg.model)).train()
    grads, losses = [], []
    for k in (1, 2, 4):
        net.zero_grad()
        loss, _ = accumulated_backward(net, batch, torch.Generator().manual_seed(1), NoiseSchedule(shift=1.0), "v", k)
        losses.append(float(loss))
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert losses[1] == pytest.approx(losses[0], rel=1e-5) and losses[2] == pytest.approx(losses[0], rel=1e-5)
    for g in grads[1:]:
        for n in g:
            torch.testing.assert_close(g[n], grads[0][n], atol=1e-6, rtol=1e-4, msg=n)


def test_a_converted_dfot_checkpoint_finetunes_and_its_loss_falls(tmp_path):
    """init_from a DFoT checkpoint in DFoT's own layout (Lightning, random weights of a small U-ViT3D-Pose),
    converted by `syn2seq convert-dfot`, with no [model] table: the network is the file's, with DFoT's
    conventions (180-channel ray encoding, its noise-level embedding scale, its dropouts); a few steps lower the
    loss on a fixed batch, and the result loads as a model of the same network."""
    from syn2seq_core.cli import main as cli
    from syn2seq_core.dfot.checkpoint import read_config
    from syn2seq_core.generation.pipeline import load_model
    from syn2seq_core.training.config import network_config

    from .test_convert_dfot import make_dfot_ckpt

    make_dfot_ckpt(tmp_path / "dfot.ckpt")
    base = tmp_path / "dfot.safetensors"
    assert cli(["convert-dfot", str(tmp_path / "dfot.ckpt"), str(base), "--size", "16"]) == 0
    text = with_model_table(TINY.format(stage="finetune", steps=30, every=30))  # no [model]: the file's network
    text = text.replace('name = "tiny"', f'name = "tiny"\ninit_from = "{base.as_posix()}"')
    path = tmp_path / "from_dfot.toml"
    path.write_text(text.replace("noise_shift = 1.0", "noise_shift = 0.5"))
    cfg = load_config(path)
    assert network_config(cfg) == read_config(base)
    batch, eval_loss = fixed_batch_loss(cfg)
    assert batch.rays.shape[-1] == 180
    before = load_model(base).network
    train(cfg, tmp_path / "run", progress=False)
    after = load_model(base).network
    after.load_state_dict(load_checkpoint(tmp_path / "run")["model"])
    assert eval_loss(after) < 0.8 * eval_loss(before)
    assert load_model(tmp_path / "run" / MODEL_NAME).config == read_config(base)


def test_no_model_table_needs_a_model_file_to_start_from(tmp_path):
    text = with_model_table(TINY.format(stage="finetune", steps=1, every=1))
    path = tmp_path / "c.toml"
    path.write_text(text.replace('name = "tiny"', 'name = "tiny"\ninit_from = "missing.safetensors"'))
    with pytest.raises(Syn2SeqInputError, match="init_from: expected an existing model file"):
        load_config(path)


def test_tensorboard_logs_losses_per_role_and_held_out_previews(tmp_path):
    """<out>/tensorboard/ holds the JSONL log's numbers per role, LR, grad norm, speed and memory, and every
    preview_every steps the EMA model on held-out scenes: its x0 error there and an image."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_config(tmp_path, "finetune", steps=40, every=40)
    path.write_text(path.read_text().replace("log_every = 1", "log_every = 1\npreview_every = 10"))
    train(load_config(path), tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    for tag in ("loss/total", "loss/ego", "loss/transition", "optim/lr", "optim/grad_norm",
                "speed/sequences_per_s", "memory/peak_rss_gb", "heldout/x0_mse", "heldout/x0_mse_ego"):
        assert tag in tags["scalars"], tag
    log = read_log(tmp_path / "run")
    assert [e.value for e in events.Scalars("loss/total")] == pytest.approx([r["loss"] for r in log], rel=1e-6)
    heldout = events.Scalars("heldout/x0_mse")
    assert [e.step for e in heldout] == [10, 20, 30, 40]
    # the last preview is the saved EMA model's x0 error on held-out scenes, recomputed here
    from syn2seq_core.dfot.objective import diffusion_loss
    from syn2seq_core.generation.pipeline import load_model, to_model_space
    from syn2seq_core.training.board import Board

    cfg = load_config(path)
    batch = Board(tmp_path / "unused", cfg, torch.device("cpu"), enabled=False)._preview_batch()
    assert batch.noise_t.max() == 1.0 and batch.noise_t.min() == 0.0
    model = load_model(tmp_path / "run" / MODEL_NAME)
    with torch.no_grad():
        mse, _ = diffusion_loss(model.network, to_model_space(batch.frames, model.config), rays=batch.rays,
                                noise_t=batch.noise_t, loss_mask=batch.loss_mask, schedule=model.schedule,
                                generator=torch.Generator().manual_seed(0), weighting="v")
    assert heldout[-1].value == pytest.approx(float(mse), rel=1e-5)
    image = events.Images("heldout/x0")[-1]
    assert image.height == 4 * 2 * 16 and image.width == 8 * 16  # 4 sequences x (truth, estimate) x 8 frames
    # and a real sample of those scenes: its PSNR is the saved EMA model's, sampled again here ...
    from syn2seq_core.metrics.frames import psnr

    samples = Board(tmp_path / "unused", cfg, torch.device("cpu"), enabled=False).sample(
        model.network, model.schedule, cfg.preview_steps)
    generated = batch.noise_t >= 1
    assert torch.equal(samples[~generated], batch.frames[~generated])  # the source view is context
    scores = psnr(samples, batch.frames)
    sample_psnr = events.Scalars("heldout/sample_psnr")
    assert [e.step for e in sample_psnr] == [10, 20, 30, 40]
    assert sample_psnr[-1].value == pytest.approx(float(scores[generated].mean()), rel=1e-5)
    ego = generated & (batch.roles == 2)
    assert events.Scalars("heldout/sample_psnr_ego")[-1].value == pytest.approx(float(scores[ego].mean()), rel=1e-5)
    # ... and a video: one GIF frame per sequence frame, ground truth above the sample, sequences side by side
    import io

    import numpy as np
    from PIL import Image, ImageSequence

    video = events.Images("heldout/sample")[-1]
    assert (video.height, video.width) == (2 * 16, 4 * 16)
    frames = [torch.from_numpy(np.array(f.convert("RGB"))).float() / 255
              for f in ImageSequence.Iterator(Image.open(io.BytesIO(video.encoded_image_string)))]
    assert len(frames) == 8
    expected = torch.cat(list(torch.cat([batch.frames, samples], -2)), -1).permute(0, 2, 3, 1)  # [T, H, W, 3]
    # GIF stores 256 colours per frame: equal up to the palette's quantisation
    assert (torch.stack(frames) - expected).abs().mean() < 0.02


def test_tensorboard_off_writes_no_event_files(tmp_path):
    path = write_config(tmp_path, "finetune", steps=2, every=2)
    path.write_text(path.read_text().replace("log_every = 1", "log_every = 1\ntensorboard = false"))
    train(load_config(path), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_two_processes_train_the_weights_of_one_and_a_run_resumes_on_more_processes(tmp_path):
    """[optim] batch_size is the global batch: each sequence is drawn from its own seed whichever process
    draws it, and the loss is weighted across processes, so 2 DDP processes (gloo) reach the weights of 1
    process, and a run started on 1 process continues on 2 with the same loss curve."""
    cfg_path = write_config(tmp_path, steps=4, every=2)
    cfg_path.write_text(cfg_path.read_text().replace("batch_size = 2", "batch_size = 4"))
    train(load_config(cfg_path), tmp_path / "one", progress=False)
    torchrun(cfg_path, tmp_path / "two", 2)
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    for key in one["model"]:
        torch.testing.assert_close(two["model"][key], one["model"][key], atol=2e-5, rtol=1e-4, msg=key)
    log_one = read_log(tmp_path / "one")
    losses = [r["loss"] for r in read_log(tmp_path / "two") if "loss" in r]  # (and one record of the ranks' weights)
    assert losses == pytest.approx([r["loss"] for r in log_one], rel=1e-4)

    train(load_config(cfg_path), tmp_path / "resumed", max_steps=2, progress=False)  # 2 steps on 1 process
    torchrun(cfg_path, tmp_path / "resumed", 2)  # then 2 more on 2
    resumed = [r for r in read_log(tmp_path / "resumed") if "loss" in r]
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in log_one], rel=1e-4)
    for key, value in load_checkpoint(tmp_path / "resumed")["model"].items():
        torch.testing.assert_close(value, one["model"][key], atol=2e-5, rtol=1e-4, msg=key)


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    cfg_path = write_config(tmp_path, steps=1, every=1)
    cfg_path.write_text(cfg_path.read_text().replace("batch_size = 2", "batch_size = 3"))
    r = torchrun(cfg_path, tmp_path / "x", 2, check=False)
    assert r.returncode != 0
    assert "[optim] batch_size: expected a multiple of 2 processes x 1 micro-batches" in r.stderr


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_trains_the_same_weights(tmp_path, backend):
    """compile = "<backend>" runs the training forward and backward through torch.compile (aot_eager: graph
    capture and AOT autograd; inductor: generated C++ kernels, ~1 min to compile here): the same weights as
    eager after 2 steps."""
    if backend == "inductor" and shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("inductor on the CPU needs a C++ compiler (g++)")
    path = write_config(tmp_path, steps=2, every=2)
    text = path.read_text()
    eager, _ = _final_weights(tmp_path, "eager", text)
    compiled, _ = _final_weights(tmp_path, "compiled", text.replace("bf16 = false", f'bf16 = false\ncompile = "{backend}"'))
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], atol=1e-5, rtol=1e-4, msg=key)
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("bf16 = false", 'bf16 = false\ncompile = "fast"'))
    with pytest.raises(Syn2SeqInputError, match=r"compile: expected one of .*'inductor'.*got 'fast'"):
        load_config(bad)


def test_bf16_autocast_keeps_float32_master_weights(tmp_path):
    """bf16 = true runs forward and backward under bfloat16 autocast (on a GPU; on a CPU too, where it may be
    emulated): weights, EMA and optimizer state stay float32, and the losses stay close to float32 ones."""
    path = write_config(tmp_path, steps=3, every=3)
    text = path.read_text()
    fp32, log_fp32 = _final_weights(tmp_path, "fp32", text)
    _, log_bf16 = _final_weights(tmp_path, "bf16", text.replace("bf16 = false", "bf16 = true"))
    state = load_checkpoint(tmp_path / "bf16")
    for part in ("model", "ema"):
        assert {v.dtype for v in state[part].values() if v.is_floating_point()} == {torch.float32}, part
    moments = [v for s in state["optimizer"]["state"].values() for v in s.values() if v.ndim > 0]
    assert moments and {v.dtype for v in moments} == {torch.float32}
    bf16 = state["model"]
    moved = sum(float((bf16[k] - fp32[k]).abs().sum()) for k in fp32)
    assert moved > 0  # autocast did run in bf16 ...
    # ... and the losses follow float32's (bf16 has 8 bits of mantissa: ~0.4% per rounding)
    assert [r["loss"] for r in log_bf16] == pytest.approx([r["loss"] for r in log_fp32], rel=3e-2)


def test_fsdp_two_processes_train_the_weights_of_one_and_resume_across_engines(tmp_path):
    """parallel = "fsdp" shards the network, its EMA and the optimizer state over 2 gloo processes (FSDP2):
    after 4 steps (2 micro-batches each: gradients reduce-scattered once per step) the weights, the EMA and
    the losses are those of one process at the same global batch. Its checkpoints are full state dicts in
    the one-process format: a 1-process run resumes under FSDP on 2, and an FSDP run resumes on 1."""
    from syn2seq_core.dfot.checkpoint import build_model
    from syn2seq_core.parallel.fsdp import shard_units
    from syn2seq_core.training.config import network_config

    path = write_config(tmp_path, steps=4, every=2)
    text = path.read_text().replace("batch_size = 2", "batch_size = 4\naccumulate = 2")
    path.write_text(text)
    fsdp_path = tmp_path / "fsdp.toml"
    fsdp_path.write_text(text.replace("bf16 = false", 'bf16 = false\nparallel = "fsdp"'))
    cfg = load_config(path)
    train(cfg, tmp_path / "one", progress=False)
    torchrun(fsdp_path, tmp_path / "fsdp", 2)
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "fsdp")
    for part in ("model", "ema"):
        assert list(two[part]) == list(one[part])
        for key in one[part]:
            torch.testing.assert_close(two[part][key], one[part][key], atol=2e-5, rtol=1e-4, msg=f"{part} {key}")
    assert set(two["optimizer"]["state"]) == set(one["optimizer"]["state"])
    for i, state in one["optimizer"]["state"].items():
        torch.testing.assert_close(two["optimizer"]["state"][i]["exp_avg_sq"], state["exp_avg_sq"],
                                   atol=1e-8, rtol=1e-3)
    log_one = [r["loss"] for r in read_log(tmp_path / "one")]
    log_two = read_log(tmp_path / "fsdp")
    assert [r["loss"] for r in log_two] == pytest.approx(log_one, rel=1e-4)
    assert not any("weight_digests" in r for r in log_two)  # no replicas to compare

    train(cfg, tmp_path / "resumed", max_steps=2, progress=False)  # 1 process (DDP config) ...
    torchrun(fsdp_path, tmp_path / "resumed", 2, extra=("--max-steps", "3"))  # ... 1 more step under FSDP on 2 ...
    train(cfg, tmp_path / "resumed", progress=False)  # ... and the last on 1 again
    assert [r["loss"] for r in read_log(tmp_path / "resumed")] == pytest.approx(log_one, rel=1e-4)
    for key, value in load_checkpoint(tmp_path / "resumed")["model"].items():
        torch.testing.assert_close(value, one["model"][key], atol=2e-5, rtol=1e-4, msg=key)

    assert len(shard_units(build_model(network_config(cfg)))) == 2  # the 2 DiT blocks, not lists inside them
