"""The ray cache of a sampling run (issue 34): what depends only on the rays is computed once per window.

The networks keep it in a dict the caller passes (``forward(..., cache=...)``); the sampler keeps one dict per
``sample`` call and passes the same rays tensor at every step; the eval batcher keeps one per group of takes.
Cached outputs must equal the uncached ones up to float rounding, and a cache must never serve other rays.
"""

from __future__ import annotations

import threading

import pytest
import torch

from syn2seq_core.evaluation.batching import Batcher
from syn2seq_core.dfot.guidance import history_guidance
from syn2seq_core.dfot.model import DiT3D
from syn2seq_core.dfot.sampler import rollout, sample
from syn2seq_core.dfot.scheduling import scheduling_matrix
from syn2seq_core.dfot.uvit3d import UViT3DPose

from .test_dfot_model import MICRO, MICRO_UVIT, inputs, randomize

NETWORKS = {
    "dit3d_factorized": (DiT3D, MICRO),
    "dit3d_full": (DiT3D, MICRO.replace(attention="full")),
    "uvit": (UViT3DPose, MICRO_UVIT),
    "uvit_cue": (UViT3DPose, MICRO_UVIT.replace(cue="depth_warp")),
}
POSE_MASKS = {"posed": None, "mixed": torch.tensor([False, True]), "dropped": torch.tensor([True, True])}


def make(name: str):
    cls, config = NETWORKS[name]
    return randomize(cls(config), seed=1).eval(), config


class Counter:
    """Counts the calls of the module that embeds the rays (the work the cache saves)."""

    def __init__(self, model):
        self.calls = 0
        layer = model.ray_embed if isinstance(model, DiT3D) else model.external_cond_embedding
        layer.register_forward_hook(lambda *_: self._count())

    def _count(self):
        self.calls += 1


@pytest.mark.parametrize("mask", POSE_MASKS, ids=str)
@pytest.mark.parametrize("name", NETWORKS)
def test_cached_steps_equal_uncached_ones(name, mask):
    model, config = make(name)
    x, logsnr, rays = inputs(config)
    pose_mask = POSE_MASKS[mask]
    cache = {}
    with torch.no_grad():
        for step in range(3):  # the state and the noise levels change every step, the rays do not
            x_s, logsnr_s = x * (1 - 0.2 * step), logsnr - step
            plain = model(x_s, logsnr_s, rays, pose_mask=pose_mask)
            cached = model(x_s, logsnr_s, rays, pose_mask=pose_mask, cache=cache)
            torch.testing.assert_close(cached, plain, atol=2e-6, rtol=1e-5)
        assert torch.equal(model(x, logsnr, None, cache=cache), model(x, logsnr, None))


@pytest.mark.parametrize("name", ["dit3d_factorized", "uvit"])
def test_the_rays_are_embedded_once_per_run_and_again_for_anything_else(name):
    model, config = make(name)
    x, logsnr, rays = inputs(config)
    counter = Counter(model)
    cache = {}
    with torch.no_grad():
        for step in range(4):
            model(x, logsnr - step, rays, cache=cache)
        assert counter.calls == 1
        model(x, logsnr, rays.clone(), cache=cache)  # equal values, another tensor: the cache does not look inside
        assert counter.calls == 2
        same = cache.copy()
        model(x, logsnr, rays, cache=cache)  # back to the first rays: the entry was replaced, so again
        assert counter.calls == 3
        rays.mul_(1.0)  # modified in place (same object, new version)
        model(x, logsnr, rays, cache=cache)
        assert counter.calls == 4
        model(x, logsnr, rays, pose_mask=torch.tensor([False, True]), cache=cache)  # other poses kept
        assert counter.calls == 5
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x, logsnr, rays, pose_mask=torch.tensor([False, True]), cache=cache)  # other dtype
        assert counter.calls == 6
        other = make(name)[0]
        Counter(other)
        other(x, logsnr, rays, cache=cache)  # another network: its own entries
        assert len({key[1] for key in cache}) == 2 and same.keys() <= cache.keys()
        model.train()
        model(x, logsnr, rays, cache=cache)  # training (random pose dropout): never cached
        model(x, logsnr, rays, cache=cache)
        assert counter.calls == 8


def test_uvit_ray_cache_bytes_counts_the_cached_tensors():
    model, config = make("uvit")
    x, logsnr, rays = inputs(config, B=2, T=3)
    cache = {}
    with torch.no_grad():
        model(x, logsnr, rays, cache=cache)
    maps = cache[("ray_cache", id(model))][-1]
    assert len(maps) == sum(len(blocks) for _, blocks in model._level_blocks())
    assert sum(t.numel() * t.element_size() for t in maps.values()) == model.ray_cache_bytes(3, batch=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x, logsnr, rays, cache=cache)
    maps = cache[("ray_cache", id(model))][-1]
    assert sum(t.numel() * t.element_size() for t in maps.values()) == model.ray_cache_bytes(3, 2, itemsize=2)


class Recorder:
    """A denoiser that takes ``pose_mask`` and ``cache`` and records what it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, x_t, logsnr, rays, *, pose_mask=None, cache=None):
        self.calls.append({"rays": rays, "cache": cache, "pose_mask": pose_mask, "batch": x_t.shape[0]})
        return 0.5 * x_t


@pytest.mark.parametrize("guidance", ["conditional", "vanilla", "fractional"])
def test_the_sampler_passes_one_cache_and_the_same_rays_every_step(guidance):
    B, T = 1, 4
    rays = torch.randn(B, T, 8, 8, 6)
    mask = torch.tensor([[1, 0, 0, 0]])
    context = torch.randn(B, T, 3, 8, 8)
    guide = history_guidance(guidance, scale=2.0)
    runs = []
    for _ in range(2):
        recorder = Recorder()
        sample(recorder, (B, T, 3, 8, 8), scheduling_matrix("full_sequence", 5, T), context=context, context_mask=mask,
               rays=rays, guidance=guide, generator=torch.Generator().manual_seed(0))
        calls = recorder.calls
        assert len(calls) == 5  # one call per step: the branches share it (pose_mask)
        assert all(c["cache"] is calls[0]["cache"] and c["rays"] is calls[0]["rays"] for c in calls)
        assert all(c["pose_mask"] is calls[0]["pose_mask"] for c in calls)
        assert calls[0]["batch"] == guide.nfe * B and calls[0]["rays"].shape[0] == guide.nfe * B
        if guide.nfe == 1:
            assert calls[0]["rays"] is rays
        runs.append(calls[0]["cache"])
    assert runs[0] is not runs[1]  # a fresh cache per sampling run


def test_rollout_windows_get_a_cache_each():
    recorder = Recorder()
    L = 7
    rollout(recorder, torch.randn(1, L, 3, 8, 8), torch.tensor([1, 1, 0, 0, 0, 0, 0]), window=4, steps=3,
            rays=torch.randn(1, L, 8, 8, 6), generator=torch.Generator().manual_seed(0))
    caches = {id(c["cache"]) for c in recorder.calls}
    rays = {id(c["rays"]) for c in recorder.calls}
    assert len(recorder.calls) == 3 * len(caches) and len(caches) == len(rays) > 1


@pytest.mark.parametrize("name", ["dit3d_factorized", "uvit"])
@pytest.mark.parametrize("guidance", ["conditional", "vanilla"])
def test_samples_with_the_cache_equal_samples_without(name, guidance):
    model, config = make(name)
    B, T = 1, 3
    _, _, rays = inputs(config, B=B, T=T)
    context = torch.randn(B, T, config.in_channels, config.height, config.width)
    mask = torch.tensor([[1, 0, 0]])
    guide = history_guidance(guidance, scale=1.5)
    counter = Counter(model)

    def run(denoiser):
        return sample(denoiser, (B, T, config.in_channels, config.height, config.width),
                      scheduling_matrix("full_sequence", 4, T), context=context, context_mask=mask, rays=rays,
                      guidance=guide, generator=torch.Generator().manual_seed(2))

    cached = run(model)
    assert counter.calls == 1
    plain = run(lambda x, logsnr, r, *, pose_mask=None: model(x, logsnr, r, pose_mask=pose_mask))
    assert counter.calls == 1 + 4
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)


def test_the_batcher_keeps_one_ray_cache_while_the_same_takes_meet():
    seen = []

    def network(x, logsnr, rays, *, pose_mask=None, cache=None):
        seen.append((rays, cache))
        return 2 * x

    batcher = Batcher(network)
    rays = [torch.full((1, 2, 2, 2, 6), float(k)) for k in range(2)]
    barrier = threading.Barrier(2)

    def take(k, out):
        with batcher.generating():
            barrier.wait()
            out[k] = [batcher(torch.full((1, 2, 2), float(k)), torch.zeros(1, 2), rays[k]) for _ in range(3)]
            barrier.wait()
            fresh = rays[k].clone()  # a new window: new rays
            out[k] += [batcher(torch.full((1, 2, 2), float(k)), torch.zeros(1, 2), fresh) for _ in range(2)]

    out = {}
    threads = [threading.Thread(target=take, args=(k, out)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(r, torch.full((1, 2, 2), 2.0 * k)) for k in range(2) for r in out[k])
    assert batcher.calls == 5 and len(seen) == 5
    first, second = seen[:3], seen[3:]
    assert all(r is first[0][0] and c is first[0][1] for r, c in first)
    assert all(r is second[0][0] and c is second[0][1] for r, c in second)
    assert second[0][1] is not first[0][1]
    assert sorted(float(v) for v in first[0][0][:, 0, 0, 0, 0]) == [0.0, 1.0]  # both takes' rays, concatenated


@pytest.mark.parametrize("name", ["dit3d_factorized", "uvit"])
def test_the_cache_works_on_inference_tensors_as_comfyui_makes_them(name):
    """ComfyUI runs every node under ``torch.inference_mode``: its tensors carry no version counter, which the
    cache's signature must not ask for ("Inference tensors do not track version counter")."""
    model, config = make(name)
    _, _, rays = inputs(config, B=1, T=3)
    shape = (1, 3, config.in_channels, config.height, config.width)
    with torch.inference_mode():
        context, rays = torch.randn(shape), rays.clone()
        assert rays.is_inference()

        def run(denoiser):
            return sample(denoiser, shape, scheduling_matrix("full_sequence", 3, 3), context=context,
                          context_mask=torch.tensor([[1, 0, 0]]), rays=rays, generator=torch.Generator().manual_seed(2))

        torch.testing.assert_close(run(model), run(lambda x, logsnr, r, *, pose_mask=None: model(x, logsnr, r)),
                                   atol=1e-5, rtol=1e-5)
