"""Training from shards: the loader gives the same batches for a seed with 0 or 2 DataLoader workers and
from any resume step, mixing weights are respected, a run resumes exactly, and two torchrun processes read
disjoint samples and train the weights of one."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from syn2seq_core.cli import main as cli
from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.training.checkpoints import LOG_NAME, load_checkpoint
from syn2seq_core.training.loop import SAMPLE_LOG_ENV, train
from syn2seq_core.training.config import load_config
from syn2seq_core.training.seeds import sequence_seed

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

CONFIG = """
name = "tiny_shards"
stage = "finetune"
seed = 3
max_steps = {steps}
checkpoint_every = {every}
log_every = 1
bf16 = false
noise_shift = 1.0
tensorboard = false
[model]
preset = "tiny"
height = 16
width = 16
patch_size = 4
dim = 48
depth = 2
heads = 2
max_frames = 8
pose_dropout = 0.1
[data]
size = 16
exo_frames = 3
ego_frames = 3
transition_frames = 2
window = 6
ego2exo_prob = {e2e}
shared_noise_prob = 0.5
shards = {shards}
{extra}
[optim]
batch_size = {batch}
lr = 2e-3
warmup_steps = 2
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """Two shard folders of 3 tiny procedural takes, 2 clips each (6 samples): blend and ideal transitions."""
    base = tmp_path_factory.mktemp("shards")
    assert cli(["render-synthetic", "--out", str(base / "takes"), "--takes", "3", "--size", "16", "--exo-frames", "5",
                "--ego-frames", "5", "--supersample", "1"]) == 0
    out = {}
    for transition in ("blend", "ideal"):
        extra = ["--both-directions"] if transition == "blend" else []
        assert cli(["prepare", "--takes", str(base / "takes"), "--out", str(base / transition), "--size", "16",
                    "--exo-frames", "3", "--ego-frames", "3", "--transition-frames", "2", "--transition", transition,
                    "--clips", "2", "--takes-per-shard", "2", "--no-progress", *extra]) == 0
        out[transition] = base / transition / "manifest.json"
    return out


def write_config(tmp_path, shards, steps=4, every=2, batch=2, extra="", name="c.toml", e2e=0.0):
    path = tmp_path / name
    path.write_text(CONFIG.format(steps=steps, every=every, batch=batch, extra=extra, e2e=e2e,
                                  shards=json.dumps([str(s) for s in shards])))
    return path


def items(cfg, start, stop, workers, **kw):
    from syn2seq_core.training.batches import batch_source, step_loader

    return list(step_loader(cfg, batch_source(cfg), start, stop, workers=workers, pose_rate=0.1, **kw))


def assert_items_equal(a, b):
    assert len(a) == len(b)
    for (sa, ba, na, pa, ia), (sb, bb, nb, pb, ib) in zip(a, b):
        assert sa == sb and ia == ib
        for f in ("frames", "rays", "noise_t", "loss_mask", "roles"):
            assert torch.equal(getattr(ba, f), getattr(bb, f)), f
        assert torch.equal(na, nb) and torch.equal(pa, pb)


def test_loader_batches_are_a_function_of_seed_and_step(tmp_path, manifests):
    cfg = load_config(write_config(tmp_path, [manifests["blend"]], batch=2, e2e=0.5))
    inline = items(cfg, 0, 4, workers=0)
    assert_items_equal(items(cfg, 0, 4, workers=2), inline)  # decoded in 2 worker processes: the same
    assert_items_equal(items(cfg, 2, 4, workers=0), inline[2:])  # resumed at step 2: the same steps 2 and 3
    _, batch, noise, pose_drop, _ = inline[0]
    assert batch.frames.shape == (2, 6, 3, 16, 16) and batch.rays.shape == (2, 6, 16, 16, 6)
    assert noise.shape == batch.frames.shape and pose_drop.shape == (2,)
    # 6 samples, 2 per step: steps 0-2 are one pass over the shards, each sample once
    seen = [i for item in inline[:3] for i in item[4]]
    assert len(set(seen)) == 6
    cfg2 = dataclasses.replace(cfg, seed=4)
    assert [i for item in items(cfg2, 0, 3, workers=0) for i in item[4]] != seen  # another seed, another order
    # a different process count draws the same global batch: rank 1 of 2 holds sequence 1 of the step
    half = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, batch_size=2))
    r1 = items(half, 0, 2, workers=0, rank=1, world=2)
    for (s, b, n, p, ids), (_, full, fn, fp, fids) in zip(r1, inline[:2]):
        assert ids == fids[1:] and torch.equal(b.frames, full.frames[1:]) and torch.equal(n, fn[1:])


def test_mixing_weights_are_respected(tmp_path, manifests):
    from syn2seq_core.training.batches import batch_source

    shards = [manifests["blend"], manifests["ideal"]]
    counts = {}
    for weights in ([3, 1], [1, 0]):
        cfg = load_config(write_config(tmp_path, shards, extra=f"weights = {weights}"))
        source = batch_source(cfg)
        picks = [source.choose(torch.Generator().manual_seed(sequence_seed(cfg.seed, p // 2, p % 2)), p)[0]
                 for p in range(4000)]
        counts[tuple(weights)] = sum(k == 0 for k in picks) / len(picks)
    assert counts[(3, 1)] == pytest.approx(0.75, abs=0.03)
    assert counts[(1, 0)] == 1.0
    # default: in proportion to the sample counts (6 and 6)
    source = batch_source(load_config(write_config(tmp_path, shards)))
    assert source.cumulative.tolist() == pytest.approx([0.5, 1.0])
    batch = source([torch.Generator().manual_seed(i) for i in range(4)], [0, 1, 2, 3])
    assert batch.frames.shape[0] == 4 and all(":" in i for i in source.last_ids)


def test_training_from_shards_resumes_exactly_with_any_loader_workers(tmp_path, manifests):
    shards = [manifests["blend"], manifests["ideal"]]
    straight = load_config(write_config(tmp_path, shards, steps=4, every=1, name="a.toml"))
    train(straight, tmp_path / "straight", progress=False)
    # interrupted after step 2, resumed with 2 loader workers (an execution setting: the same run)
    train(straight, tmp_path / "resumed", max_steps=2, progress=False)
    workers = load_config(write_config(tmp_path, shards, steps=4, every=1, extra="loader_workers = 2", name="b.toml"))
    train(workers, tmp_path / "resumed", progress=False)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-6, rtol=0)
    log = [json.loads(line) for line in (tmp_path / "straight" / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(r["loss"] > 0 for r in log)


def test_a_short_training_run_from_shards_through_the_cli(tmp_path, manifests):
    path = write_config(tmp_path, [manifests["blend"]], steps=3, every=3, extra="loader_workers = 1")
    r = subprocess.run([sys.executable, "-m", "syn2seq_core", "train", "--config", str(path), "--out",
                        str(tmp_path / "run"), "--no-progress"], env={**ENV, SAMPLE_LOG_ENV: str(tmp_path / "ids")},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run")["step"] == 3
    from syn2seq_core.generation.pipeline import load_model

    model = load_model(tmp_path / "run" / "model.safetensors")
    assert model.info["config"]["data"]["shards"] == [str(manifests["blend"])]
    ids = [json.loads(line) for line in (tmp_path / "ids" / "samples.rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ids] == [0, 1, 2] and all(len(r["ids"]) == 2 for r in ids)


def test_two_torchrun_processes_read_disjoint_samples_and_train_the_weights_of_one(tmp_path, manifests):
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if exe is None:
        pytest.skip("torchrun not found next to the test interpreter")
    path = write_config(tmp_path, [manifests["blend"], manifests["ideal"]], steps=3, every=3, batch=4,
                        extra="loader_workers = 1")
    r = subprocess.run([exe, "--standalone", "--nproc_per_node=2", "-m", "syn2seq_core", "train", "--config",
                        str(path), "--out", str(tmp_path / "two"), "--no-progress"],
                       env={**ENV, SAMPLE_LOG_ENV: str(tmp_path / "ids")}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    logs = {rank: [json.loads(line) for line in (tmp_path / "ids" / f"samples.rank{rank}.jsonl").read_text()
                   .splitlines()] for rank in (0, 1)}
    for a, b in zip(logs[0], logs[1]):
        assert a["step"] == b["step"] and len(a["ids"]) == len(b["ids"]) == 2
        assert not set(a["ids"]) & set(b["ids"]), "the two processes read disjoint samples"
    records = [json.loads(line) for line in (tmp_path / "two" / LOG_NAME).read_text().splitlines()]
    assert records[-1]["ranks"] == 2 and records[-1]["ranks_agree"] is True
    # one process reads the same global batches (its ids are the two ranks' ids, in order) and trains the same
    cfg = load_config(path)
    train(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, loader_workers=0)), tmp_path / "one",
          progress=False)
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    for key in one["model"]:
        torch.testing.assert_close(two["model"][key], one["model"][key], atol=2e-5, rtol=1e-4, msg=key)
    from syn2seq_core.training.batches import batch_source, draw_share

    source = batch_source(cfg)
    for step in range(3):
        draw_share(cfg, source, step, 0, 4, 0.1)
        assert source.last_ids == logs[0][step]["ids"] + logs[1][step]["ids"]


def test_shard_configs_are_checked(tmp_path, manifests):
    with pytest.raises(Syn2SeqInputError, match=r"\[data\] weights: expected one weight per manifest \(1\)"):
        load_config(write_config(tmp_path, [manifests["blend"]], extra="weights = [1, 2]"))
    with pytest.raises(Syn2SeqInputError, match=r"\[data\] weights: expected at least one weight > 0"):
        load_config(write_config(tmp_path, [manifests["blend"]], extra="weights = [0]"))
    path = write_config(tmp_path, [manifests["blend"]])
    path.write_text(path.read_text().replace('stage = "finetune"', 'stage = "pretrain"'))
    with pytest.raises(Syn2SeqInputError, match=r"stage: expected \"finetune\" with \[data\] shards"):
        load_config(path)
    from syn2seq_core.training.batches import batch_source

    path = write_config(tmp_path, [manifests["blend"]])
    path.write_text(path.read_text().replace("exo_frames = 3", "exo_frames = 2"))
    with pytest.raises(Syn2SeqInputError, match=r"expected samples with exo_frames = 2 .*got exo_frames = 3"):
        batch_source(load_config(path))
    # ideal shards hold no ego -> exo transitions
    with pytest.raises(Syn2SeqInputError, match=r"ego -> exo transitions.*--both-directions"):
        batch_source(load_config(write_config(tmp_path, [manifests["ideal"]], e2e=0.3)))
    with pytest.raises(Syn2SeqInputError, match=r"shards manifest"):
        batch_source(load_config(write_config(tmp_path, [tmp_path / "nowhere" / "manifest.json"])))


def test_a_manifest_cannot_name_a_file_outside_its_folder(tmp_path, manifests):
    from syn2seq_core.data.shards import read_manifest
    from syn2seq_core.io.safe_paths import OutsideFolderError

    folder = tmp_path / "copy"
    shutil.copytree(manifests["blend"].parent, folder)
    doc = json.loads((folder / "manifest.json").read_text())
    outside = tmp_path / "elsewhere.tar"
    shutil.copy(folder / doc["shards"][0]["file"], outside)
    (folder / "link.tar").symlink_to(outside)
    for name in ("../elsewhere.tar", "link.tar", str(outside)):
        doc["shards"][0]["file"] = name
        (folder / "manifest.json").write_text(json.dumps(doc))
        with pytest.raises(OutsideFolderError):
            read_manifest(folder / "manifest.json")
