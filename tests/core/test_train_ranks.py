"""Multi-process training where the ranks differ: one rank drops every pose while the other keeps them
(issue 29.1), and in-model randomness (the U-ViT's block dropout) drawn per sequence, not per rank, so 1 and
2 processes train the same weights (issue 29.2). Two gloo processes at tiny sizes.

Reference DFoT (fork ktncktnc/diffusion-forcing-transformer @ a3a0e70, the last upstream commit; the upstream
snapshot holds only a README): ``algorithms/dfot/backbones/modules/embeddings.py:356-369``
(``RandomDropoutPatchEmbed.forward``) always runs the pose patch embedding and zeroes dropped samples with
``torch.where`` (lines 297-301), so every rank touches the pose embedding's parameters every step, under
``DDPStrategy(find_unused_parameters=False)`` (``configurations/experiment/base_pytorch_exp.yaml:54``,
``experiments/base_exp.py:150``). Its dropout masks (``embeddings.py:298``, ``nn.Dropout`` in
``backbones/u_vit/u_vit_blocks.py:232``) come from each process's global RNG; we differ on purpose: ours come
from each sequence's own seed, so a run does not depend on its process count.
"""

import pytest
import torch

from syn2seq_core.training.checkpoints import load_checkpoint
from syn2seq_core.training.config import load_config
from syn2seq_core.training.loop import train

from .test_train import TINY, UVIT_MODEL, read_log, torchrun, with_model_table

pytestmark = pytest.mark.usefixtures("one_thread")


def uvit_text(seed=3, steps=2, pose_dropout=0.5, block_dropout=0.0, batch=2):
    model = UVIT_MODEL.replace("max_frames = 8\n", f"max_frames = 8\npose_dropout = {pose_dropout}\n")
    model = model.replace("block_dropouts = [0.0, 0.0]", f"block_dropouts = [0.0, {block_dropout}]")
    text = with_model_table(TINY.format(stage="finetune", steps=steps, every=steps), model)
    return text.replace("seed = 3", f"seed = {seed}").replace("batch_size = 2", f"batch_size = {batch}")


def first_step_pose_drops(path, batch=2):
    """The pose-dropout mask of the global batch of step 0, as the training loop draws it."""
    from syn2seq_core.training.batches import batch_source, draw_share

    cfg = load_config(path)
    return draw_share(cfg, batch_source(cfg), 0, 0, batch, cfg.model["pose_dropout"])[2].tolist()


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_one_rank_dropping_every_pose_keeps_the_processes_in_step(tmp_path, parallel):
    """Step 0 of a 2-process U-ViT run where rank 0's only sequence drops its pose and rank 1's keeps it (a seed
    picked for that): every rank runs the pose embedding every step (the dropped pose is zeroed, as
    RandomDropoutPatchEmbed does, embeddings.py:297-301 / 356-369 of the reference), so DDP's reductions line
    up; before, rank 0 skipped the embedding, its parameters got no gradient and gloo aborted on a collective
    mismatch (NCCL would hang). The run ends with the weights of one process, under DDP and FSDP2."""
    path = tmp_path / "uvit.toml"
    for seed in range(64):
        path.write_text(uvit_text(seed).replace("bf16 = false", f'bf16 = false\nparallel = "{parallel}"'))
        if first_step_pose_drops(path) == [True, False]:
            break
    else:
        pytest.fail("no seed below 64 drops exactly the first sequence's pose at step 0")
    r = torchrun(path, tmp_path / "two", 2, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    if parallel == "ddp":
        assert read_log(tmp_path / "two")[-1]["ranks_agree"] is True
    train(load_config(path), tmp_path / "one", progress=False)
    one, two = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    for key in one["model"]:
        torch.testing.assert_close(two["model"][key], one["model"][key], atol=2e-5, rtol=1e-4, msg=key)


def test_a_dropped_pose_still_reaches_every_pose_parameter_in_the_graph():
    """In training mode the U-ViT runs its pose embedding even when every pose of the batch is dropped: its
    parameters are in the autograd graph (a zero gradient, not none), as DDP with find_unused_parameters=False
    and FSDP2 need. In eval mode with no pose the embedding is skipped (sampling's unconditional branch) with
    the same output as a zeroed pose."""
    from syn2seq_core.dfot.uvit3d import UViT3DPose, UViT3DPoseConfig

    cfg = UViT3DPoseConfig(height=16, width=16, channels=(32, 64), emb_channels=32, num_updown_blocks=(1,),
                           num_mid_blocks=1, num_heads=2, noise_features=32,
                           block_types=("ResBlock", "TransformerBlock"), block_dropouts=(0.0, 0.0), max_frames=4)
    torch.manual_seed(0)
    net = UViT3DPose(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, logsnr = torch.randn(2, 3, 3, 16, 16), torch.randn(2, 3)
    rays = torch.randn(2, 3, 16, 16, 180)
    drop = torch.ones(2, dtype=torch.bool)
    net.train()
    net.random_pose_dropout = False
    net(x, logsnr, rays, pose_mask=drop).square().sum().backward()
    grads = [p.grad for p in net.external_cond_embedding.parameters()]
    assert all(g is not None for g in grads) and all(float(g.abs().sum()) == 0 for g in grads)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x, logsnr, rays, pose_mask=drop), net(x, logsnr, None), atol=1e-5, rtol=1e-5)


def _weights(tmp_path, name, text, procs=1):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    if procs == 1:
        train(load_config(path), tmp_path / name, progress=False)
    else:
        torchrun(path, tmp_path / name, procs)
    return load_checkpoint(tmp_path / name)["model"]


def test_block_dropout_is_drawn_per_sequence_so_two_processes_train_the_weights_of_one(tmp_path):
    """The U-ViT's block dropout (0.5 here, at its transformer level) is drawn from each sequence's own seed
    (train.sequence_seed, as its data, noise and pose dropout), not from a per-rank RNG: 2 DDP processes reach
    the weights of 1 process at the same global batch, to float noise. The reference draws it from each
    process's global RNG (``nn.Dropout``, backbones/u_vit/u_vit_blocks.py:232; ``RandomEmbeddingDropout``,
    embeddings.py:298), where the masks change with the process count; ours does not, on purpose. Dropout does
    act (the weights differ from a run without it), and activation checkpointing recomputes the same masks."""
    text = uvit_text(steps=2, pose_dropout=0.3, block_dropout=0.5, batch=4)
    one = _weights(tmp_path, "one", text)
    two = _weights(tmp_path, "two", text, procs=2)
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-5, rtol=1e-4, msg=key)
    ckpt = _weights(tmp_path, "ckpt", text.replace("bf16 = false", "bf16 = false\nactivation_checkpointing = true"))
    for key in one:
        torch.testing.assert_close(ckpt[key], one[key], atol=1e-6, rtol=1e-5, msg=key)
    off = _weights(tmp_path, "off", uvit_text(steps=2, pose_dropout=0.3, block_dropout=0.0, batch=4))
    assert max(float((off[k] - one[k]).abs().max()) for k in one) > 1e-4


def test_fsdp_under_bf16_trains_as_one_bf16_process(tmp_path):
    """parallel = "fsdp" with bf16 = true shards with a MixedPrecisionPolicy (bfloat16 weights gathered and
    computed with, float32 gradient reduction; syn2seq_core/parallel/fsdp.py): 2 gloo processes follow one process under
    bf16 autocast (float32 weights) to bf16's precision, and the checkpoint's weights stay float32."""
    text = uvit_text(steps=2, pose_dropout=0.3, block_dropout=0.5, batch=2).replace("bf16 = false", "bf16 = true")
    one = _weights(tmp_path, "one", text)
    two = _weights(tmp_path, "two", text.replace("bf16 = true", 'bf16 = true\nparallel = "fsdp"'), procs=2)
    assert {v.dtype for v in two.values() if v.is_floating_point()} == {torch.float32}
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-3, rtol=2e-2, msg=key)
    assert [r["loss"] for r in read_log(tmp_path / "two")] == pytest.approx(
        [r["loss"] for r in read_log(tmp_path / "one")], rel=3e-2)
