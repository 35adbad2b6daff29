"""Sampling work that does not change between steps or is not read (issue 34): the U-ViT3D-Pose's per-frame levels
and per-frame FiLM.

The ResBlock levels below the first transformer level work on each frame alone (convolutions, GroupNorm, FiLM), so
during sampling:
- their down path is kept in the sampling run's ``cache`` for every frame whose input and noise level are the same
  as in the last call (clean context frames, the same every step) and computed only for the others;
- their up path runs only for the frames whose output the caller reads (``needed``: the sampler passes the frames
  it is still denoising), the others come back as zeros.
- the per-frame part of every block's FiLM (``emb_layer`` of the noise-level embedding) is mapped once per run for
  every level the sampler announces (``cache["noise_levels"]``) and looked up at each step.
Outputs of the read frames must equal the plain network's up to float rounding.
"""

from __future__ import annotations

import pytest
import torch

from syn2seq_core.base.errors import Syn2SeqInputError
from syn2seq_core.dfot.guidance import history_guidance
from syn2seq_core.dfot.model import DiT3D
from syn2seq_core.dfot.sampler import rollout, sample
from syn2seq_core.dfot.scheduling import scheduling_matrix
from syn2seq_core.dfot.uvit3d import UViT3DPose
from syn2seq_core.generation.pipeline import Syn2SeqModel

from .test_dfot_model import MICRO, MICRO_UVIT, inputs, randomize

B, T = 2, 4


def make(config=MICRO_UVIT):
    return randomize(UViT3DPose(config), seed=3).eval()


class Rows:
    """Counts the frames each call of a layer computes (the batch rows of its input)."""

    def __init__(self, layer):
        self.rows = []
        layer.register_forward_hook(lambda module, args, out: self.rows.append(args[0].shape[0]))


def next_step(x, logsnr, context=2, shift=0.3):
    """The state one step later: the frames after ``context`` move on (new values, lower noise), the context stays."""
    x, logsnr = x.clone(), logsnr.clone()
    x[:, context:] = x[:, context:] * 0.9 + shift
    logsnr[:, context:] += 0.5
    return x, logsnr


def test_the_per_frame_levels_are_the_resblock_levels_below_the_first_transformer():
    assert make().per_frame_levels == 2
    assert make(MICRO_UVIT.replace(block_types=("ResBlock", "TransformerBlock", "TransformerBlock",
                                                "TransformerBlock"))).per_frame_levels == 1
    all_res = MICRO_UVIT.replace(block_types=("ResBlock",) * 4, channels=(32, 32, 64, 64))
    assert make(all_res).per_frame_levels == 3  # the mid level is never cached: it is where the steps differ


def test_unchanged_frames_reuse_their_down_path_and_changed_ones_are_computed():
    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    rows = Rows(model.embed_input)
    cache = {}
    with torch.no_grad():
        for step in range(3):
            cached = model(x, logsnr, rays, cache=cache)
            torch.testing.assert_close(cached, model(x, logsnr, rays), atol=2e-6, rtol=1e-5)
            x, logsnr = next_step(x, logsnr)
        # step 0 computes all 8 frames, then only the 2 x 2 that moved (each followed by one plain call of 8)
        assert rows.rows == [8, 8, 4, 8, 4, 8]
        rows.rows.clear()
        x2 = x.clone()
        x2[1, 0] += 1e-3  # one context frame changes by a little: that frame is computed again
        torch.testing.assert_close(model(x2, logsnr, rays, cache=cache), model(x2, logsnr, rays), atol=2e-6, rtol=1e-5)
        l2 = logsnr.clone()
        l2[0, 1] -= 1.0  # a context frame at another noise level (history guidance noises history): again
        torch.testing.assert_close(model(x2, l2, rays, cache=cache), model(x2, l2, rays), atol=2e-6, rtol=1e-5)
        assert rows.rows == [5, 8, 1, 8]
        rows.rows.clear()
        model(x2, l2, rays, cache=cache)  # nothing changed: no frame goes through the per-frame levels
        model(x2, l2, rays.clone(), cache=cache)  # other rays (a new window): the whole cache is rebuilt
        model(x2, l2, rays, pose_mask=torch.tensor([False, True]), cache=cache)  # other kept poses: rebuilt
        model.cache_frames = False
        model(x2, l2, rays, cache=cache)
        model(x2, l2, rays, cache=cache)
        assert rows.rows == [8, 8, 8, 8]


def test_the_frame_cache_is_never_used_when_gradients_are_recorded():
    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    rows = Rows(model.embed_input)
    cache = {}
    model(x, logsnr, rays, cache=cache).square().mean().backward()
    model(x, logsnr, rays, cache=cache).square().mean().backward()
    assert rows.rows == [8, 8]
    assert not cache  # nor the ray cache: a kept graph could be backpropagated only once
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("cached", [False, True])
def test_only_the_needed_frames_run_the_per_frame_up_path(cached):
    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    rows = Rows(model.project_output)
    needed = torch.tensor([[False, False, True, True], [False, True, False, True]])
    extra = {"cache": {}} if cached else {}
    with torch.no_grad():
        full = model(x, logsnr, rays)
        some = model(x, logsnr, rays, needed=needed, **extra)
        assert rows.rows == [8, 4]
        torch.testing.assert_close(some[needed], full[needed], atol=2e-6, rtol=1e-5)
        assert torch.equal(some[~needed], torch.zeros_like(some[~needed]))
        assert torch.equal(model(x, logsnr, rays, needed=torch.ones(B, T, dtype=torch.bool)), full)
        nothing = model(x, logsnr, rays, needed=torch.zeros(B, T, dtype=torch.bool), **extra)
        assert torch.equal(nothing, torch.zeros_like(x)) and rows.rows == [8, 4, 8]


@pytest.mark.parametrize("cached", [False, True])
def test_the_last_transformer_block_before_the_per_frame_levels_computes_only_the_frames_a_video_needs(cached):
    """Its output feeds only the per-frame up path, which runs for the needed frames: there every frame is still a
    key and value, only the frames some video needs are queries (the union over the batch), and the read frames
    equal the plain network's. The blocks before it, and training, compute every frame."""
    config = MICRO_UVIT.replace(num_updown_blocks=(1, 1, 2))
    model = make(config)
    x, logsnr, rays = inputs(config, B=B, T=T)
    frames = {}
    for name, blk in (("first", model.up_blocks[0][1]), ("last", model.up_blocks[0][-1]),
                      ("mid", model.mid_blocks[-1])):
        blk.register_forward_hook(lambda module, args, out, name=name: frames.setdefault(name, []).append(out.shape[1]))
    needed = torch.tensor([[False, False, False, True], [False, True, False, True]])
    extra = {"cache": {}} if cached else {}
    with torch.no_grad():
        full = model(x, logsnr, rays)
        some = model(x, logsnr, rays, needed=needed, **extra)
        torch.testing.assert_close(some[needed], full[needed], atol=2e-6, rtol=1e-5)
        assert torch.equal(some[~needed], torch.zeros_like(some[~needed]))
        assert frames == {"first": [T, T], "last": [T, 2], "mid": [T, T]}
        union = torch.tensor([[True, False, False, True], [False, True, False, True]])  # frames 0, 1, 3
        torch.testing.assert_close(model(x, logsnr, rays, needed=union, **extra)[union], full[union], atol=2e-6,
                                   rtol=1e-5)
        assert frames["last"][-1] == 3
        every = torch.tensor([[True, True, False, False], [False, False, True, True]])  # all frames: no trim
        model(x, logsnr, rays, needed=every, **extra)
        assert frames["last"][-1] == T
    model.train()
    model(x, logsnr, rays, needed=needed)
    assert frames["last"][-1] == T


@pytest.mark.parametrize("network", ["uvit", "dit3d"])
@pytest.mark.parametrize("bad", [torch.ones(B, T + 1, dtype=torch.bool), torch.ones(B, T)])
def test_a_needed_mask_of_the_wrong_shape_or_type_is_refused(network, bad):
    config = MICRO_UVIT if network == "uvit" else MICRO
    model = make() if network == "uvit" else randomize(DiT3D(MICRO)).eval()
    x, logsnr, rays = inputs(config, B=B, T=T)
    with pytest.raises(Syn2SeqInputError, match="needed"):
        model(x, logsnr, rays, needed=bad)


class Recorder:
    """A denoiser that takes ``needed`` and records it."""

    def __init__(self):
        self.needed = []

    def __call__(self, x_t, logsnr, rays, *, pose_mask=None, cache=None, needed=None):
        self.needed.append(needed)
        return 0.5 * x_t


@pytest.mark.parametrize("guidance", ["conditional", "vanilla"])
def test_the_sampler_says_which_frames_it_is_denoising(guidance):
    recorder = Recorder()
    mask = torch.tensor([[1, 0, 0, -1]])
    levels = torch.tensor([[0, 3, 3, 0], [0, 2, 3, 0], [0, 1, 3, 0], [0, 0, 2, 0], [0, 0, 0, 0]])  # frame 2 waits
    guide = history_guidance(guidance, scale=2.0)
    sample(recorder, (1, 4, 3, 8, 8), levels, context=torch.randn(1, 4, 3, 8, 8), context_mask=mask,
           rays=torch.randn(1, 4, 8, 8, 6), guidance=guide, generator=torch.Generator().manual_seed(0))
    want = [[False, True, True, False]] * 3 + [[False, False, True, False]]
    assert [n.tolist() for n in recorder.needed] == [[row] * guide.nfe for row in want]


def test_the_sampler_tells_nothing_to_a_denoiser_without_the_keyword_or_when_all_frames_are_read():
    seen = []
    sample(lambda x, logsnr, rays, **kw: seen.append(kw) or x, (1, 3, 3, 8, 8), scheduling_matrix("full_sequence", 3, 3),
           context=torch.randn(1, 3, 3, 8, 8), context_mask=torch.tensor([[1, 0, 0]]))
    assert seen == [{}] * 3
    recorder = Recorder()
    sample(recorder, (1, 3, 3, 8, 8), scheduling_matrix("full_sequence", 3, 3))
    assert recorder.needed == [None] * 3


@pytest.mark.parametrize("guidance", ["conditional", "fractional"])
def test_a_rollout_with_both_equals_one_without(guidance):
    """Windows with context (given and generated) under history guidance: the read frames equal the plain
    network's. Fractional guidance noises the history of one branch afresh every step: only the clean branch's
    history is kept."""
    model = make()
    L = 6
    _, _, rays = inputs(MICRO_UVIT, B=1, T=L)
    context = torch.randn(1, L, 3, 16, 16)
    rows = Rows(model.embed_input)

    def run(denoiser):
        return rollout(denoiser, context, torch.tensor([1, 1, 0, 0, 0, 0]), window=4, steps=4, rays=rays,
                       guidance=history_guidance(guidance, scale=1.5), generator=torch.Generator().manual_seed(1))

    fast = run(model)
    computed = sum(rows.rows)
    plain = run(lambda x, logsnr, r, *, pose_mask=None: model(x, logsnr, r, pose_mask=pose_mask))
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    plain_rows = sum(rows.rows) - computed
    assert computed < (0.7 if guidance == "conditional" else 0.95) * plain_rows, (computed, plain_rows)


def test_the_pipeline_passes_needed_to_networks_that_take_it():
    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    needed = torch.tensor([[False, True, True, True]] * B)
    pipe = Syn2SeqModel(model)
    with torch.no_grad():
        out = pipe.denoiser(x, logsnr, rays, needed=needed)
    assert torch.equal(out[~needed], torch.zeros_like(out[~needed]))

    def plain(x_t, logsnr, rays, pose_mask=None):
        return x_t

    pipe.network = plain  # a network without the keyword is called without it
    assert pipe.denoiser(x, logsnr, rays, needed=needed) is x


@pytest.mark.parametrize("guidance", ["conditional", "vanilla", "fractional"])
def test_the_sampler_announces_every_noise_level_it_feeds(guidance):
    fed, announced = [], []

    def denoiser(x_t, logsnr, rays, *, pose_mask=None, cache=None):
        fed.append(logsnr)
        announced.append(cache["noise_levels"])
        return 0.5 * x_t

    guide = history_guidance(guidance, scale=2.0, stabilization=0.02)
    rollout(denoiser, torch.randn(1, 6, 3, 8, 8), torch.tensor([1, 1, 0, 0, 0, 0]), window=4, steps=5,
            scheduling="pyramid", rays=torch.randn(1, 6, 8, 8, 6), guidance=guide,
            generator=torch.Generator().manual_seed(0))
    for logsnr, levels in zip(fed, announced):
        assert levels.dtype == torch.float32 and bool(torch.isin(logsnr, levels).all()), (logsnr, levels)


def test_the_per_frame_films_are_mapped_once_per_run_when_the_levels_are_announced():
    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    layer = model.mid_blocks[0].norm.emb_layer
    rows = Rows(layer)
    steps = [next_step(x, logsnr + k, shift=0.1 * k) for k in range(3)]
    cache = {"noise_levels": torch.cat([step[1].flatten() for step in steps]).unique()}
    with torch.no_grad():
        for step in steps:
            torch.testing.assert_close(model(*step, rays, cache=cache), model(*step, rays), atol=2e-6, rtol=1e-5)
        # The pose part (once, the ray cache) and the table (once), then only the plain calls ([B, T, S, E] each).
        assert rows.rows == [B, len(cache["noise_levels"])] + [B] * 3
        rows.rows.clear()
        other = logsnr - 0.25  # levels the sampler did not announce: mapped by the call
        torch.testing.assert_close(model(x, other, rays, cache=cache), model(x, other, rays), atol=2e-6, rtol=1e-5)
        assert rows.rows == [B, B]


def test_the_eval_batcher_passes_the_frames_each_take_reads_and_the_levels_they_announce():
    """``syn2seq eval --batch-size``: two takes' calls meet in one network call (``evaluation.batching.Batcher``);
    it passes their ``needed`` masks (all frames for a take that gives none) and the union of the levels their
    runs announce, so batched takes skip what unbatched ones skip and each gets the plain network's frames."""
    import threading

    from syn2seq_core.evaluation.batching import Batcher

    model = make()
    x, logsnr, rays = inputs(MICRO_UVIT, B=B, T=T)
    out_rows, film_rows = Rows(model.project_output), Rows(model.mid_blocks[0].norm.emb_layer)
    needed = [torch.tensor([[False, False, True, True]]), None]
    batcher = Batcher(model)
    barrier = threading.Barrier(2)
    results = {}

    def take(k):
        cache = {"noise_levels": logsnr[k].unique()}  # what the take's sampler announces for its run
        own_rays = rays[k:k + 1]  # one tensor for the run's every step, as the sampler passes it
        with batcher.generating(), torch.no_grad():  # as inside the take's sampler (no_grad is per thread)
            barrier.wait()
            results[k] = [batcher(x[k:k + 1], logsnr[k:k + 1], own_rays, needed=needed[k], cache=cache)
                          for _ in range(2)]

    with torch.no_grad():
        threads = [threading.Thread(target=take, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        plain = model(x, logsnr, rays)
    assert batcher.calls == 2 and batcher.served == 4
    for k in range(2):
        read = needed[k][0] if needed[k] is not None else torch.ones(T, dtype=torch.bool)
        for out in results[k]:
            torch.testing.assert_close(out[0, read], plain[k, read], atol=2e-6, rtol=1e-5)
            assert torch.equal(out[0, ~read], torch.zeros_like(out[0, ~read]))
    assert out_rows.rows == [2 + T] * 2 + [B * T]  # the read frames only, then the plain call
    # The pose part once, the table of the union of the announced levels once, then the plain call maps its own.
    assert film_rows.rows == [B, len(logsnr.unique()), B]
