"""DiT3D and U-ViT3D-Pose: shapes, zero init, pose handling, frame locality, operations injection, bf16."""

import math

import pytest
import torch
from torch import nn

from syn2seq_core.dfot.embeddings import (apply_rope, dfot_ray_encoding, rope_3d_axis_dims, rope_3d_tables,
                                          rope_reference)
from syn2seq_core.dfot.model import DiT3D, DiT3DConfig, count_parameters, dit3d_preset, full_attention_weights
from syn2seq_core.dfot.uvit3d import UViT3DPose, UViT3DPoseConfig, uvit3d_preset
from syn2seq_core.base.errors import Syn2SeqInputError

MICRO = DiT3DConfig(height=16, width=16, patch_size=4, dim=48, depth=2, heads=2, max_frames=6, noise_features=32)
MICRO_UVIT = UViT3DPoseConfig(height=16, width=16, channels=(32, 32, 48, 48), emb_channels=32, num_heads=2,
                              num_updown_blocks=(1, 1, 1), num_mid_blocks=2, noise_features=16, max_frames=4)


def randomize(model: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Give every parameter (zero-initialised ones included) random values, so all paths carry signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            gain = "norm" in name and p.ndim == 1 and not name.endswith("bias")  # norm gains stay near 1
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if gain else 0.0))
    return model


def inputs(config, B=2, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, config.in_channels, config.height, config.width, generator=g)
    logsnr = torch.randn(B, T, generator=g) * 4
    rays = torch.randn(B, T, config.height, config.width, config.cond_channels, generator=g)  # rays (+ cue)
    return x, logsnr, rays


@pytest.mark.parametrize("attention", ["full", "factorized"])
@pytest.mark.parametrize("pos_emb", ["rope3d", "learned"])
def test_dit3d_shapes_any_window_and_zero_output_at_init(attention, pos_emb):
    model = DiT3D(MICRO.replace(attention=attention, pos_emb=pos_emb)).eval()
    for T in (1, 4, MICRO.max_frames):
        x, logsnr, rays = inputs(MICRO, T=T)
        with torch.no_grad():
            v = model(x, logsnr, rays)
        assert v.shape == x.shape
        assert torch.equal(v, torch.zeros_like(v))  # zero-initialised output layer


def test_dit3d_refuses_bad_shapes_naming_the_input():
    model = DiT3D(MICRO).eval()
    x, logsnr, rays = inputs(MICRO, T=MICRO.max_frames + 1)
    with pytest.raises(Syn2SeqInputError, match="x_t"):
        model(x, logsnr, rays)
    x, logsnr, rays = inputs(MICRO, T=2)
    with pytest.raises(Syn2SeqInputError, match="rays"):
        model(x, logsnr, rays[..., :3])
    with pytest.raises(Syn2SeqInputError, match="logsnr"):
        model(x, logsnr[:, :1], rays)


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_no_rays_is_exactly_pose_dropout(attention):
    model = randomize(DiT3D(MICRO.replace(attention=attention))).eval()
    x, logsnr, rays = inputs(MICRO)
    with torch.no_grad():
        none = model(x, logsnr, None)
        masked = model(x, logsnr, rays, pose_mask=torch.tensor([True, True]))
        posed = model(x, logsnr, rays)
        mixed = model(x, logsnr, rays, pose_mask=torch.tensor([False, True]))
    assert torch.equal(none, masked)
    assert not torch.allclose(none, posed)
    torch.testing.assert_close(mixed[0], posed[0])
    torch.testing.assert_close(mixed[1], none[1])


def test_pose_dropout_in_training_drops_whole_videos_and_follows_the_generator():
    x, logsnr, rays = inputs(MICRO, B=4)
    always = randomize(DiT3D(MICRO.replace(pose_dropout=1.0))).train()
    never = randomize(DiT3D(MICRO.replace(pose_dropout=0.0))).train()
    with torch.no_grad():
        assert torch.equal(always(x, logsnr, rays), always.eval()(x, logsnr, None))
        assert torch.equal(never(x, logsnr, rays), never.eval()(x, logsnr, rays))
        half = randomize(DiT3D(MICRO.replace(pose_dropout=0.5))).train()
        a = half(x, logsnr, rays, generator=torch.Generator().manual_seed(3))
        b = half(x, logsnr, rays, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        half.eval()
        posed, unposed = half(x, logsnr, rays), half(x, logsnr, None)
    for i in range(4):  # each video either keeps its whole pose or loses it entirely
        assert torch.allclose(a[i], posed[i]) or torch.allclose(a[i], unposed[i])


def _frame_local(model: DiT3D) -> DiT3D:
    """Zero the attention gates: tokens then only see their own frame's noise level and their own rays."""
    with torch.no_grad():
        for block in model.blocks:
            dim = model.config.dim
            gates = (2, 5) if block.factorized else (2,)
            for g in gates:
                block.modulation.weight[g * dim:(g + 1) * dim] = 0
                block.modulation.bias[g * dim:(g + 1) * dim] = 0
    return model


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_noise_level_and_rays_condition_their_own_frame_and_patch(attention):
    model = _frame_local(randomize(DiT3D(MICRO.replace(attention=attention)))).eval()
    x, logsnr, rays = inputs(MICRO, B=1, T=4)
    with torch.no_grad():
        base = model(x, logsnr, rays)
        other_noise = logsnr.clone()
        other_noise[0, 2] += 3.0
        changed = (model(x, other_noise, rays) - base).abs().amax(dim=(2, 3, 4))[0]
        assert changed[2] > 1e-4 and torch.all(changed[[0, 1, 3]] == 0)
        other_rays = rays.clone()
        other_rays[0, 1, :4, :4] += 1.0  # the top-left 4x4 patch of frame 1
        diff = (model(x, logsnr, other_rays) - base).abs()[0]
        assert diff[1, :, :4, :4].max() > 1e-4
        diff[1, :, :4, :4] = 0
        assert diff.max() == 0
    # With attention on, every frame sees the others.
    model = randomize(DiT3D(MICRO.replace(attention=attention))).eval()
    with torch.no_grad():
        changed = (model(x, other_noise, rays) - model(x, logsnr, rays)).abs().amax(dim=(2, 3, 4))[0]
    assert torch.all(changed > 1e-5)


def test_full_and_factorized_attention_are_different_networks():
    full = DiT3D(MICRO.replace(attention="full"))
    factorized = DiT3D(MICRO.replace(attention="factorized"))
    assert count_parameters(factorized) > count_parameters(full)
    assert any(name.startswith("blocks.0.temporal_attn") for name, _ in factorized.named_parameters())


def test_full_attention_weights_keep_the_spatial_attention_and_mlp_of_a_factorized_model():
    factorized = randomize(DiT3D(MICRO.replace(attention="factorized"))).eval()
    dim = MICRO.dim
    with torch.no_grad():  # close the temporal attention's gate (modulation rows 5 of 9)
        for block in factorized.blocks:
            block.modulation.weight[5 * dim: 6 * dim] = 0
            block.modulation.bias[5 * dim: 6 * dim] = 0
    full = DiT3D(MICRO.replace(attention="full")).eval()
    full.load_state_dict(full_attention_weights(factorized.state_dict(), dim))  # strict: every key fits
    # On one frame, full attention is the spatial attention: the same network, the same output.
    x, logsnr, rays = inputs(MICRO, T=1)
    with torch.no_grad():
        torch.testing.assert_close(full(x, logsnr, rays), factorized(x, logsnr, rays))
        # On more frames, the full model's attention also reaches the other frames.
        x, logsnr, rays = inputs(MICRO, T=3)
        assert not torch.allclose(full(x, logsnr, rays), factorized(x, logsnr, rays), atol=1e-4)
    # Full-attention weights pass through unchanged.
    same = full_attention_weights(full.state_dict(), dim)
    assert all(torch.equal(same[k], v) for k, v in full.state_dict().items())


def test_operations_namespace_is_used_for_weight_layers():
    calls = []

    class CountingLinear(nn.Linear):
        def forward(self, x):
            calls.append(self.out_features)
            return super().forward(x)

    class Ops:
        Linear = CountingLinear

    model = DiT3D(MICRO, operations=Ops).eval()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(isinstance(m, CountingLinear) for m in linears)
    with torch.no_grad():
        model(*inputs(MICRO))
    assert len(calls) >= 4 * MICRO.depth

    uvit = UViT3DPose(MICRO_UVIT, operations=Ops)
    assert all(isinstance(m, CountingLinear) for m in uvit.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_bf16_autocast_is_close_to_fp32(attention):
    model = randomize(DiT3D(MICRO.replace(attention=attention)), std=0.1).eval()
    x, logsnr, rays = inputs(MICRO)
    with torch.no_grad():
        ref = model(x, logsnr, rays)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, logsnr, rays)
    assert low.dtype == torch.float32
    rel = (low - ref).norm() / ref.norm()
    assert rel < 0.05


def test_rope_tables_match_the_slow_reference():
    head_dim, T, h, w = 24, 3, 2, 4
    assert sum(rope_3d_axis_dims(head_dim)) == head_dim
    assert rope_3d_axis_dims(128) == (44, 42, 42) and rope_3d_axis_dims(64) == (20, 22, 22)  # DFoT's splits
    x = torch.randn(T * h * w, head_dim, dtype=torch.float64)
    cos, sin = rope_3d_tables(head_dim, T, h, w, dtype=torch.float64)
    fast = apply_rope(x, cos.flatten(0, 2), sin.flatten(0, 2))
    positions = torch.tensor([(t, i, j) for t in range(T) for i in range(h) for j in range(w)])
    torch.testing.assert_close(fast, rope_reference(x, positions, head_dim), rtol=1e-6, atol=1e-6)


def test_a_few_adamw_steps_lower_the_diffusion_loss_on_a_fixed_batch():
    from syn2seq_core.dfot.objective import diffusion_loss

    torch.manual_seed(0)
    model = DiT3D(MICRO.replace(pose_dropout=0.0)).train()
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    frames = torch.stack([torch.stack([torch.sin(3 * xx + t), torch.cos(2 * yy - t), xx * yy]) for t in range(4)])
    x0 = frames[None].repeat(2, 1, 1, 1, 1)
    noise = torch.randn(x0.shape, generator=g)
    noise_t = torch.rand(2, 4, generator=g) * 0.8 + 0.1
    rays = torch.randn(2, 4, 16, 16, 6, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, _ = diffusion_loss(model, x0, rays=rays, noise_t=noise_t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert math.isfinite(losses[-1])
    assert losses[-1] < 0.7 * losses[0]


# --- U-ViT3D-Pose --------------------------------------------------------------------------------------
def test_uvit_re10k_preset_has_the_published_size():
    model = UViT3DPose(uvit3d_preset("re10k"), device="meta")
    n = count_parameters(model)
    assert 458e6 < n < 459e6  # DFoT README: DFoT_RE10K, 458M parameters
    assert model.external_cond_embedding.patch_embedder.proj.weight.shape == (1024, 180, 2, 2)


def test_uvit_shapes_zero_init_and_pose_handling():
    model = UViT3DPose(MICRO_UVIT).eval()
    x, logsnr, rays = inputs(MICRO_UVIT, T=4)
    with torch.no_grad():
        assert torch.equal(model(x, logsnr, rays), torch.zeros_like(x))
    randomize(model)
    with torch.no_grad():
        posed = model(x, logsnr, rays)
        none = model(x, logsnr, None)
        masked = model(x, logsnr, rays, pose_mask=torch.tensor([True, True]))
        short = model(x[:, :2], logsnr[:, :2], rays[:, :2])
    assert posed.shape == x.shape and short.shape == x[:, :2].shape
    torch.testing.assert_close(none, masked, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(none, posed)
    with pytest.raises(Syn2SeqInputError, match="x_t"):
        model(torch.zeros(1, 5, 3, 16, 16), torch.zeros(1, 5))


def test_uvit_camera_rays_are_dfot_ray_encoding():
    model = UViT3DPose(MICRO_UVIT)
    K = torch.tensor([0.9, 0.8, 0.5, 0.45]).expand(1, 3, 4)
    c2w = torch.eye(4).repeat(1, 3, 1, 1)
    c2w[0, :, 0, 3] = torch.tensor([0.0, 0.3, 0.6])
    rays = model.camera_rays(K, c2w)
    assert rays.shape == (1, 3, 16, 16, 180)


def _dfot_ray_encoding_loop(K, c2w, H, W, F=15):
    """Slow reference following DFoT's geometry_utils: w2c poses normalised by the first, per pixel."""
    w2c = torch.linalg.inv(c2w.double())
    R0, T0 = w2c[0, :3, :3], w2c[0, :3, 3]
    out = torch.zeros(len(c2w), H, W, 12 * F, dtype=torch.float64)
    for t in range(len(c2w)):
        R = w2c[t, :3, :3] @ R0.T
        T = w2c[t, :3, 3] - R @ T0
        origin = -R.T @ T
        fx, fy, cx, cy = (float(K[t, 0]) * W, float(K[t, 1]) * H, float(K[t, 2]) * W, float(K[t, 3]) * H)
        for j in range(H):
            for i in range(W):
                d = R.T @ torch.tensor([(i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, 1.0], dtype=torch.float64)
                feats = []
                for vec in (origin, d):
                    enc = [float(vec[a]) * (2 ** k) * math.pi for a in range(3) for k in range(F)]
                    feats += [math.sin(e) for e in enc] + [math.sin(e + math.pi / 2) for e in enc]
                out[t, j, i] = torch.tensor(feats, dtype=torch.float64)
    return out


def test_dfot_ray_encoding_matches_the_reference_loop():
    from syn2seq_core.geometry import look_at

    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.02, 0.03]])
    c2w = look_at(eyes, torch.tensor([[0.1, 0.0, 1.0], [0.2, 0.1, 1.0]])).float()
    K = torch.tensor([[0.9, 0.8, 0.5, 0.45], [1.0, 1.1, 0.52, 0.5]])
    fast = dfot_ray_encoding(K, c2w, 4, 6, num_freqs=3)
    ref = _dfot_ray_encoding_loop(K, c2w, 4, 6, F=3)
    torch.testing.assert_close(fast.double(), ref, rtol=1e-4, atol=1e-4)


def test_presets_build():
    assert count_parameters(DiT3D(dit3d_preset("tiny"), device="meta")) < 8e6
    assert count_parameters(DiT3D(dit3d_preset("large"), device="meta")) > 3e8
    with pytest.raises(Syn2SeqInputError, match="preset"):
        dit3d_preset("huge")


@pytest.mark.parametrize("attention", ["full", "factorized"])
def test_bench_flop_count_includes_attention_and_matches_the_analytic_count(attention):
    from syn2seq_core.benchmarks.sampler import step_flops
    from syn2seq_core.dfot.model import transformer_flops

    config = MICRO.replace(attention=attention)
    x, logsnr, rays = inputs(config, T=4)
    counted = step_flops(DiT3D(config).eval(), x, logsnr, rays)
    analytic = transformer_flops(config, frames=4, batch=2)
    assert abs(counted - analytic) / analytic < 0.1
