"""A converted DFoT checkpoint is sampled and fed cameras the way DFoT's reference code does it.

The oracle below is a slow, explicit loop over the reference's own formulas (DFoT's discrete diffusion at commit
a3a0e70 of its public code: the Simple-Diffusion cosine table of 1,000 levels shifted by 0.125, made into betas
and back, the DDIM noise levels ``long(linspace(-1, 999, S + 1))``, the network fed ``logsnr[max(k, 0)]``, the
DDIM step ``x0 sqrt(a_next) + eps sqrt(1 - a_next)``), written here from those definitions, not from our code.
"""

from __future__ import annotations

import math

import pytest
import torch

from syn2seq_core.dfot.convert import convert_dfot_checkpoint
from syn2seq_core.dfot.embeddings import dfot_ray_encoding
from syn2seq_core.geometry.cameras import Cameras, look_at
from syn2seq_core.generation.pipeline import load_model
from syn2seq_core.generation.sequence import build_sequence

from .test_convert_dfot import make_dfot_ckpt
from .test_pipeline import DATA, MODEL, write_random_model

F64 = torch.float64


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfot")
    make_dfot_ckpt(root / "dfot.ckpt")
    convert_dfot_checkpoint(root / "dfot.ckpt", root / "dfot.safetensors", height=16, width=16, max_frames=4)
    return load_model(root / "dfot.safetensors")


def reference_table(timesteps=1000, shift=0.125, logsnr_min=-15.0, logsnr_max=15.0):
    """(alphas_cumprod, logsnr) float32 [timesteps], as the reference's discrete diffusion builds them."""
    t_min = math.atan(math.exp(-0.5 * logsnr_max))
    t_max = math.atan(math.exp(-0.5 * logsnr_min))
    t = torch.linspace(0, 1, timesteps, dtype=F64)
    logsnr = -2 * torch.log(torch.tan(t_min + t * (t_max - t_min))) + 2 * math.log(shift)
    ac = 1 / (1 + torch.exp(-logsnr))
    alphas = torch.cat([ac[:1], ac[1:] / ac[:-1]])
    betas = torch.clip(1 - alphas, 1e-9, 1.0)
    ac = torch.cumprod(1 - betas, dim=0)
    return ac.to(torch.float32), torch.log(ac / (1 - ac)).to(torch.float32)


def reference_sample(net, x_noise, context, context_mask, rays, steps, timesteps=1000):
    """DDIM (eta 0) over the full-sequence matrix, context frames kept clean, one frame at a time in loops."""
    ac, logsnr = reference_table(timesteps)
    real_steps = torch.linspace(-1, timesteps - 1, steps + 1).long()
    x = torch.where(context_mask[:, :, None, None, None] >= 1, context, x_noise)
    for m in range(steps, 0, -1):  # rows S, S-1, ..., 1 -> the next row
        k_cur = torch.where(context_mask >= 1, -1, real_steps[m])
        k_next = torch.where(context_mask >= 1, -1, real_steps[m - 1])
        k_in = k_cur.clamp(min=0)
        with torch.no_grad():
            v = net(x, logsnr[k_in], rays)
        out = x.clone()
        for b in range(x.shape[0]):
            for f in range(x.shape[1]):
                if int(k_cur[b, f]) == int(k_next[b, f]):
                    continue  # only frames whose level changes move (context frames never do)
                a = ac[k_in[b, f]]
                a_next = 1.0 if int(k_next[b, f]) < 0 else ac[k_next[b, f]]
                x0 = a.sqrt() * x[b, f] - (1 - a).sqrt() * v[b, f]
                eps = a.sqrt() * v[b, f] + (1 - a).sqrt() * x[b, f]
                out[b, f] = x0 * math.sqrt(float(a_next)) + eps * math.sqrt(1 - float(a_next))
        x = out
    return x


def cameras(n: int, width: int = 16, height: int = 16) -> Cameras:
    eye = torch.stack([torch.tensor([0.3 * i, -2.0, 1.0]) for i in range(n)]).double()
    return Cameras(look_at(eye, torch.zeros(n, 3).double()), torch.tensor([0.9, 0.9, 0.5, 0.5]), width, height)


def test_a_converted_model_samples_on_the_reference_grid_by_default(converted):
    assert converted.default_steps == 50 and converted.schedule.grid == "dfot_ddim"
    assert converted.camera_convention == "re10k"
    seq = build_sequence(cameras(2), cameras(2), exo_frames=torch.rand(2, 3, 16, 16), n_transition=0)
    steps = []
    # No steps given: the model's 50. float32 (a CPU with native bf16 would otherwise autocast).
    ours = converted.generate(seq, seed=3, callback=steps.append, dtype=torch.float32)
    assert steps[-1]["total"] == 50
    # The same noise, then the reference's loop.
    g = torch.Generator().manual_seed(3)
    x_noise = torch.randn((1, 4, 3, 16, 16), generator=g).clamp(-20, 20)
    context = ((seq.frames - torch.tensor(converted.config.data_mean)[:, None, None])
               / torch.tensor(converted.config.data_std)[:, None, None])[None].float()
    rays = converted._rays(seq)[None]
    ref = reference_sample(converted.network, x_noise, context, seq.context_mask[None], rays, steps=50)
    ref = (ref[0] * torch.tensor(converted.config.data_std)[:, None, None]
           + torch.tensor(converted.config.data_mean)[:, None, None]).clamp(0, 1)
    generated = seq.context_mask == 0
    assert torch.allclose(ours.frames[generated], ref[generated], atol=2e-5), \
        float((ours.frames[generated] - ref[generated]).abs().max())


def test_the_reference_grid_levels(converted):
    times = converted.schedule.level_times(torch.arange(51))
    k = torch.linspace(-1, 999, 51).long()  # float32 linspace truncated, as the reference computes it
    assert times[0] == 0 and k[0] == -1  # level 0 is clean
    assert torch.allclose(times[1:], k[1:].double() / 999)
    # logSNR at each level equals the reference's table there (float32 rounding).
    _, logsnr = reference_table()
    assert torch.allclose(converted.schedule.logsnr(times[1:]).float(), logsnr[k[1:]], rtol=1e-5, atol=1e-4)


def test_pack_models_keep_their_own_grid_and_convention(tmp_path):
    model = load_model(write_random_model(tmp_path / "m.safetensors", MODEL, DATA))
    assert model.default_steps == 25 and model.schedule.grid == "uniform" and model.camera_convention == "pack"
    assert torch.equal(model.schedule.level_times(torch.tensor([0, 5, 25])), torch.tensor([0, 0.2, 1.0], dtype=F64))


def test_rays_of_a_re10k_model_use_the_uncropped_intrinsics_of_a_16x9_crop(converted, tmp_path):
    wide = cameras(3, width=64, height=36)  # 16:9
    square = wide.resize_and_center_crop((16, 16))  # what the pipeline does to fit a 256x256-style model
    # The pack renormalises (64x36 resized to 28x16, then 16 of its 28 columns kept): the pixels' true rays.
    assert torch.allclose(square.K[:, 0], wide.K[:, 0] * 28 / 16)
    assert torch.allclose(square.source_K, wide.K)  # the intrinsics before the crop are kept
    seq = build_sequence(square[:1], square[1:], exo_frames=torch.rand(1, 3, 16, 16), n_transition=1)
    # RE10K convention: DFoT's ray encoding of the uncropped normalised intrinsics on the square crop.
    cams = seq.cameras.with_uncropped_intrinsics().relative_to(seq.cameras.c2w[0])
    expected = dfot_ray_encoding(cams.K[None].float(), cams.c2w[None].float(), 16, 16)[0]
    assert torch.allclose(converted._rays(seq), expected, atol=1e-6)
    assert torch.allclose(cams.K[1], wide.K[0])  # the transition camera interpolates the uncropped ones too
    # The pack's convention would have given other rays (fx 1.78x larger).
    true = seq.cameras.relative_to(seq.cameras.c2w[0])
    pack_rays = dfot_ray_encoding(true.K[None].float(), true.c2w[None].float(), 16, 16)[0]
    assert not torch.allclose(pack_rays, expected, atol=1e-3)
    converted.camera_convention = "pack"
    try:
        assert torch.allclose(converted._rays(seq), pack_rays, atol=1e-6)
    finally:
        converted.camera_convention = "re10k"
