"""The diffusion-forcing sampler: oracle recovery, context handling, guidance, seeding, callback, rollout."""

import math

import pytest
import torch
from einops import repeat

from syn2seq_core.dfot.guidance import HISTORY_GUIDANCE, HistoryGuidance, history_guidance
from syn2seq_core.dfot.sampler import active_steps, plan_windows, rollout, sample
from syn2seq_core.dfot.schedule import NoiseSchedule, alpha_sigma, expand_like, v_from_x0
from syn2seq_core.dfot.scheduling import scheduling_matrix
from syn2seq_core.base.errors import Syn2SeqInputError

B, T, C, H, W = 2, 5, 3, 4, 4
SHAPE = (B, T, C, H, W)
# Sample 0: given context, two frames to generate, generated context, one more to generate.
# Sample 1: two given context frames, two to generate, one padding frame.
MASK = torch.tensor([[1, 0, 0, 2, 0], [1, 1, 0, 0, -1]])


def clean(seed=0, shape=SHAPE):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Oracle:
    """Knows the clean sequence: returns the exact v for x_t and logSNR (in float64). Records every call.

    With ``by_rays``, the global index of each frame is read from ``rays[b, t, 0, 0, 0]`` (rollout windows).
    """

    def __init__(self, x0, by_rays=False):
        self.x0 = x0
        self.by_rays = by_rays
        self.calls = []

    def __call__(self, x_t, logsnr, rays):
        self.calls.append({"x_t": x_t.clone(), "logsnr": logsnr.clone(), "rays": rays})
        n = self.x0.shape[0]
        if self.by_rays:
            idx = rays[:, :, 0, 0, 0].long()
            target = torch.stack([self.x0[b % n, idx[b]] for b in range(x_t.shape[0])])
        else:
            target = repeat(self.x0, "b ... -> (k b) ...", k=x_t.shape[0] // n)
        a, s = (expand_like(c, x_t) for c in alpha_sigma(logsnr.double()))
        return v_from_x0(x_t.double(), target.double(), a, s).to(x_t.dtype)


def mixing(x_t, logsnr, rays):
    """Not an oracle: every frame's prediction depends on every other frame and on the noise level."""
    return 0.4 * x_t + 0.2 * x_t.mean(dim=1, keepdim=True) + 0.01 * expand_like(logsnr, x_t)


def context_from(x0, mask=MASK):
    """What a caller passes: the clean frames where the mask is >= 1, garbage elsewhere."""
    garbage = torch.full_like(x0, 7.0)
    return torch.where(expand_like(mask >= 1, x0), x0, garbage)


def check_result(out, x0, context, mask=MASK, atol=2e-5):
    gen = mask == 0
    torch.testing.assert_close(out[gen], x0[gen], atol=atol, rtol=0)
    assert torch.equal(out[mask >= 1], context[mask >= 1]), "context frames must come back bit-identical"
    assert torch.equal(out[mask == -1], torch.zeros_like(out[mask == -1]))


MATRICES = [("full_sequence", {}), ("pyramid", {"uncertainty": 1.5}), ("autoregressive", {})]
GUIDANCE = [
    HistoryGuidance(),
    HistoryGuidance("vanilla", scale=1.0),
    HistoryGuidance("fractional", scale=1.0, fractional_level=0.3),
    HistoryGuidance("vanilla", scale=3.0),
    HistoryGuidance("fractional", scale=2.5, fractional_level=0.3),
    HistoryGuidance("vanilla", scale=2.0, stabilization=0.05),
]


@pytest.mark.parametrize("name,options", MATRICES)
@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("guidance", GUIDANCE, ids=lambda g: f"{g.name}-{g.scale}")
def test_oracle_recovers_clean_sequence(name, options, eta, guidance):
    x0 = clean()
    context = context_from(x0)
    rays = torch.randn(B, T, H, W, 6)
    matrix = scheduling_matrix(name, 6, T, **options)
    out = sample(Oracle(x0), SHAPE, matrix, context=context, context_mask=MASK, rays=rays, guidance=guidance,
                 eta=eta, generator=torch.Generator().manual_seed(0))
    check_result(out, x0, context)


def test_oracle_with_per_sample_float_matrix_and_given_noise():
    x0 = clean(1)
    context = context_from(x0)
    times = torch.stack([scheduling_matrix("full_sequence", 8, T), scheduling_matrix("pyramid", 4, T)[:9]], 1)
    times = times.double() / times.amax(dim=(0, 2), keepdim=True)
    times[-1] = 0  # per-sample matrices: sample 1 is cut short and jumps to clean at the last row
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    out = sample(Oracle(x0), noise, times, context=context, context_mask=MASK)
    check_result(out, x0, context)


def test_context_bit_identical_with_any_denoiser():
    x0 = clean(2)
    context = context_from(x0)
    out = sample(mixing, SHAPE, scheduling_matrix("pyramid", 5, T), context=context, context_mask=MASK,
                 guidance=HistoryGuidance("fractional", scale=2.0), eta=1.0,
                 generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[MASK >= 1], x0[MASK >= 1])


def test_padding_content_is_ignored():
    """Whatever the caller puts at padding (or generate) positions of ``context`` never reaches the output."""
    x0 = clean(3)
    a = context_from(x0)
    b = a.clone()
    b[MASK == -1] = -9.0
    b[MASK == 0] = 3.0
    kw = dict(context_mask=MASK, guidance=HistoryGuidance("vanilla", scale=2.0))
    out_a = sample(mixing, SHAPE, scheduling_matrix("full_sequence", 4, T), context=a,
                   generator=torch.Generator().manual_seed(1), **kw)
    out_b = sample(mixing, SHAPE, scheduling_matrix("full_sequence", 4, T), context=b,
                   generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(out_a, out_b)


def test_what_the_denoiser_sees():
    """Context at the cleanest level; padding as pure noise; the unconditional branch drops history and rays."""
    x0 = clean(4)
    context = context_from(x0)
    rays = torch.randn(B, T, H, W, 6)
    oracle = Oracle(x0)
    sched = NoiseSchedule()
    steps = 4
    sample(oracle, SHAPE, scheduling_matrix("full_sequence", steps, T), context=context, context_mask=MASK,
           rays=rays, guidance=HistoryGuidance("vanilla", scale=2.0), generator=torch.Generator().manual_seed(0))
    assert len(oracle.calls) == 2 * steps  # per step: one call with rays, one without
    hist, pad = MASK >= 1, MASK == -1
    for call in oracle.calls:
        assert call["x_t"].shape == SHAPE  # one branch per call here
        lam = call["logsnr"]
        assert torch.allclose(lam[pad], torch.full_like(lam[pad], sched.min_logsnr))
        if call["rays"] is not None:
            assert torch.equal(call["rays"], rays)
            assert torch.equal(call["x_t"][hist], context[hist])
            assert torch.allclose(lam[hist], torch.full_like(lam[hist], sched.max_logsnr))
        else:
            assert not torch.allclose(call["x_t"][hist], context[hist], atol=0.1)
            assert torch.allclose(lam[hist], torch.full_like(lam[hist], sched.min_logsnr))
    first = oracle.calls[0]["logsnr"]
    assert torch.allclose(first[MASK == 0], torch.full_like(first[MASK == 0], sched.min_logsnr))


def test_branches_are_batched_into_one_call_per_pose_group():
    x0 = clean(5)
    oracle = Oracle(x0)
    sample(oracle, SHAPE, scheduling_matrix("full_sequence", 3, T), context=context_from(x0), context_mask=MASK,
           rays=torch.randn(B, T, H, W, 6), guidance=HistoryGuidance("fractional", scale=2.0))
    # fractional: clean history + noised history share the rays (one call of 2B), the dropped branch has none.
    assert [c["x_t"].shape[0] for c in oracle.calls] == [2 * B, B] * 3
    oracle = Oracle(x0)
    sample(oracle, SHAPE, scheduling_matrix("full_sequence", 3, T), context=context_from(x0), context_mask=MASK,
           guidance=HistoryGuidance("fractional", scale=2.0))
    assert [c["x_t"].shape[0] for c in oracle.calls] == [3 * B] * 3  # no rays at all: a single call


class PoseMaskOracle(Oracle):
    """An oracle with the model's optional ``pose_mask`` keyword ([B] bool, True = no pose)."""

    def __call__(self, x_t, logsnr, rays, pose_mask=None):
        v = super().__call__(x_t, logsnr, rays)
        self.calls[-1]["pose_mask"] = pose_mask
        return v


def test_pose_mask_denoiser_gets_one_call_per_step():
    x0 = clean(14)
    context = context_from(x0)
    oracle = PoseMaskOracle(x0)
    rays = torch.randn(B, T, H, W, 6)
    out = sample(oracle, SHAPE, scheduling_matrix("full_sequence", 3, T), context=context, context_mask=MASK,
                 rays=rays, guidance=HistoryGuidance("vanilla", scale=2.0))
    check_result(out, x0, context)
    assert len(oracle.calls) == 3
    for call in oracle.calls:
        assert call["x_t"].shape[0] == 2 * B and torch.equal(call["rays"], torch.cat([rays, rays]))
        assert call["pose_mask"].tolist() == [False] * B + [True] * B
        hist = torch.cat([MASK, MASK]) >= 1
        lam = call["logsnr"][hist].view(2, -1)  # conditional branch first: history clean, then dropped
        assert bool((lam[0] > 10).all()) and bool((lam[1] < -19).all())
    oracle = PoseMaskOracle(x0)
    sample(oracle, SHAPE, scheduling_matrix("full_sequence", 3, T), context=context, context_mask=MASK,
           rays=rays, guidance="conditional")
    assert all(c["pose_mask"] is None and c["x_t"].shape[0] == B for c in oracle.calls)


def test_stabilization_noises_generated_history_only():
    x0 = clean(15)
    context = context_from(x0)
    oracle = Oracle(x0)
    sample(oracle, SHAPE, scheduling_matrix("full_sequence", 2, T), context=context, context_mask=MASK,
           guidance=HistoryGuidance(stabilization=0.1), generator=torch.Generator().manual_seed(0))
    sched = NoiseSchedule()
    lam = oracle.calls[0]["logsnr"]
    given, generated = MASK == 1, MASK == 2
    assert torch.allclose(lam[given], torch.full_like(lam[given], sched.max_logsnr))
    want = float(sched.logsnr(torch.tensor(0.1, dtype=torch.float64)))
    assert torch.allclose(lam[generated], torch.full_like(lam[generated], want))
    assert torch.equal(oracle.calls[0]["x_t"][given], context[given])
    assert not torch.allclose(oracle.calls[0]["x_t"][generated], context[generated])


def test_vanilla_w1_equals_conditional_exactly():
    kw = dict(context=context_from(clean(6)), context_mask=MASK, rays=torch.randn(B, T, H, W, 6), eta=0.5)
    m = scheduling_matrix("pyramid", 5, T)
    a = sample(mixing, SHAPE, m, guidance=HistoryGuidance(), generator=torch.Generator().manual_seed(2), **kw)
    b = sample(mixing, SHAPE, m, guidance=HistoryGuidance("vanilla", scale=1.0),
               generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a, b)
    assert HistoryGuidance("vanilla", scale=1.0).nfe == 1 and HistoryGuidance("vanilla", scale=2.0).nfe == 2
    assert HistoryGuidance("fractional", scale=1.0).nfe == 1 and HistoryGuidance("fractional", scale=2.0).nfe == 3


def test_unknown_guidance_names_known_ones():
    with pytest.raises(ValueError) as e:
        history_guidance("temporal")
    assert isinstance(e.value, Syn2SeqInputError)
    for name in ("conditional", "vanilla", "fractional"):
        assert name in str(e.value) and name in HISTORY_GUIDANCE
    with pytest.raises(Syn2SeqInputError):
        HistoryGuidance("fractional", scale=2.0, fractional_level=0.0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_seeded(eta):
    m = scheduling_matrix("full_sequence", 5, T)
    kw = dict(context=context_from(clean(7)), context_mask=MASK, eta=eta)
    a = sample(mixing, SHAPE, m, generator=torch.Generator().manual_seed(11), **kw)
    b = sample(mixing, SHAPE, m, generator=torch.Generator().manual_seed(11), **kw)
    c = sample(mixing, SHAPE, m, generator=torch.Generator().manual_seed(12), **kw)
    assert torch.equal(a, b)
    assert not torch.allclose(a[MASK == 0], c[MASK == 0])


MU, STD = 0.3, 0.5


def gaussian_denoiser(x_t, logsnr, rays):
    """Exact denoiser for data x0 ~ N(MU, STD^2): E[x0 | x_t] in closed form, returned as v."""
    a, sig = (expand_like(c, x_t) for c in alpha_sigma(logsnr.double()))
    x = x_t.double()
    x0_hat = MU + a * STD**2 * (x - a * MU) / (a**2 * STD**2 + sig**2)
    return v_from_x0(x, x0_hat, a, sig).to(x_t.dtype)


def ddim_mean_step(x, a_s, a_t, noise_sd):
    """Deterministic part of one DDIM step from alpha-bar a_s to a_t, for N(MU, STD^2) data: x_s -> x_t."""
    x0_hat = MU + math.sqrt(a_s) * STD**2 * (x - math.sqrt(a_s) * MU) / (a_s * STD**2 + 1 - a_s)
    eps = (x - math.sqrt(a_s) * x0_hat) / math.sqrt(1 - a_s)
    return math.sqrt(a_t) * x0_hat + math.sqrt(max(1 - a_t - noise_sd**2, 0)) * eps


def ddim_gaussian_moments(steps, eta, sched):
    """Mean and std that DDIM (written with alpha-bar as in Song et al. 2021) gives for N(MU, STD^2) data."""
    abar = [1.0] + [1 / (1 + math.exp(-float(sched.logsnr(torch.tensor(m / steps, dtype=torch.float64)))))
                    for m in range(1, steps + 1)]
    mean, var = 0.0, 1.0  # pure noise
    for m in range(steps, 0, -1):
        a_s, a_t = abar[m], abar[m - 1]
        noise_sd = eta * math.sqrt((1 - a_t) / (1 - a_s) * (1 - a_s / a_t))
        b = ddim_mean_step(0.0, a_s, a_t, noise_sd)
        slope = ddim_mean_step(1.0, a_s, a_t, noise_sd) - b
        mean, var = slope * mean + b, slope**2 * var + noise_sd**2
    return mean, math.sqrt(var)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps,shift", [(12, 0.125), (100, 0.125), (400, 1.0)])
def test_ddim_steps_follow_ddim_on_gaussian_data(eta, steps, shift):
    """With an exact denoiser for Gaussian data, every DDIM step is linear, so the moments of the result are
    known in closed form for any number of steps. The oracle tests only pin the last step; this one fails if
    any intermediate coefficient is wrong."""
    sched = NoiseSchedule(shift=shift)
    out = sample(gaussian_denoiser, (4, 2, 1, 32, 32), scheduling_matrix("full_sequence", steps, 2), eta=eta,
                 schedule=sched, generator=torch.Generator().manual_seed(steps))
    mean, std = ddim_gaussian_moments(steps, eta, sched)
    assert float(out.mean()) == pytest.approx(mean, abs=0.02)
    assert float(out.std()) == pytest.approx(std, rel=0.03)
    if steps >= 400:  # enough steps: DDIM reproduces the data distribution itself
        assert float(out.std()) == pytest.approx(STD, rel=0.03)


def test_callback_once_per_step_and_cancellation():
    x0 = clean(8)
    seen = []
    steps = 6
    sample(Oracle(x0), SHAPE, scheduling_matrix("full_sequence", steps, T), context=context_from(x0),
           context_mask=MASK, callback=seen.append)
    assert [i["step"] for i in seen] == list(range(1, steps + 1))
    assert all(i["total"] == steps and i["x0"].shape == SHAPE for i in seen)
    torch.testing.assert_close(seen[0]["x0"][MASK == 0], x0[MASK == 0], atol=1e-4, rtol=0)  # oracle's estimate

    class Cancelled(Exception):
        pass

    def cancel(info):
        if info["step"] == 3:
            raise Cancelled()

    oracle = Oracle(x0)
    with pytest.raises(Cancelled):
        sample(oracle, SHAPE, scheduling_matrix("full_sequence", steps, T), context=context_from(x0),
               context_mask=MASK, callback=cancel)
    assert len(oracle.calls) == 3


def test_steps_where_nothing_moves_are_skipped():
    x0 = clean(9)
    mask = torch.tensor([[1, 1, 0, 0, 0]] * B)
    oracle = Oracle(x0)
    seen = []
    matrix = scheduling_matrix("autoregressive", 3, T)  # frames 0-1 are context: their 6 rows are no-ops
    out = sample(oracle, SHAPE, matrix, context=context_from(x0, mask), context_mask=mask, callback=seen.append)
    assert len(oracle.calls) == 9 and seen[-1]["total"] == 9
    check_result(out, x0, context_from(x0, mask), mask)


def test_bad_inputs_are_named():
    x0 = clean(10)
    m = scheduling_matrix("full_sequence", 3, T)
    with pytest.raises(Syn2SeqInputError, match="context"):
        sample(mixing, SHAPE, m, context_mask=MASK)
    with pytest.raises(Syn2SeqInputError, match="context_mask"):
        sample(mixing, SHAPE, m, context=x0, context_mask=torch.full((B, T), 3))
    with pytest.raises(Syn2SeqInputError, match="scheduling_matrix"):
        sample(mixing, SHAPE, scheduling_matrix("full_sequence", 3, T + 1))
    with pytest.raises(Syn2SeqInputError, match="never rise"):
        sample(mixing, SHAPE, m.flip(0))
    with pytest.raises(Syn2SeqInputError, match="denoiser output"):
        sample(lambda x, lam, r: x[:, :1], SHAPE, m)


# --- rollout -----------------------------------------------------------------------------------------------


def index_rays(length, batch=B):
    """Rays whose first channel holds the frame's global index, so the oracle knows where a window sits."""
    rays = torch.randn(batch, length, H, W, 6)
    rays[:, :, 0, 0, 0] = torch.arange(length, dtype=rays.dtype)
    return rays


@pytest.mark.parametrize("name,guidance", [("full_sequence", HistoryGuidance()),
                                           ("pyramid", HistoryGuidance()),
                                           ("full_sequence", HistoryGuidance("fractional", scale=2.0, drop_pose=False))])
def test_rollout_recovers_long_sequence(name, guidance):
    window = 4
    length = 3 * window
    x0 = clean(11, (B, length, C, H, W))
    mask = torch.zeros(length, dtype=torch.long)
    mask[:2] = 1
    mask[9] = 1  # a known frame further on (e.g. a keyframe) stays context
    context = context_from(x0, mask.expand(B, -1))
    oracle = Oracle(x0, by_rays=True)
    seen = []
    out = rollout(oracle, context, mask, window=window, steps=5, scheduling=name, context_frames=2,
                  rays=index_rays(length), guidance=guidance, generator=torch.Generator().manual_seed(0),
                  callback=seen.append)
    gen = (mask == 0).expand(B, -1)
    torch.testing.assert_close(out[gen], x0[gen], atol=2e-5, rtol=0)
    assert torch.equal(out[:, mask == 1], context[:, mask == 1])
    assert max(c["x_t"].shape[1] for c in oracle.calls) <= window
    assert [i["step"] for i in seen] == list(range(1, seen[-1]["total"] + 1))
    assert seen[-1]["window"] == seen[-1]["windows"] - 1


def test_rollout_rays_function_and_plan():
    window, length = 5, 13
    x0 = clean(12, (1, length, C, H, W))
    mask = torch.zeros(length, dtype=torch.long)
    mask[:3] = 1
    full = index_rays(length, 1)
    asked = []

    def rays_fn(start, end):
        asked.append((start, end))
        return full[:, start:end]

    out = rollout(Oracle(x0, by_rays=True), context_from(x0, mask[None]), mask, window=window, steps=3,
                  rays=rays_fn)
    torch.testing.assert_close(out[:, 3:], x0[:, 3:], atol=2e-5, rtol=0)
    plan = plan_windows((mask == 1).tolist(), window, window // 2)
    assert asked == [(s, e) for s, e, _ in plan]
    generated = [i for _, _, g in plan for i in g]
    assert sorted(generated) == list(range(3, length)) and len(set(generated)) == len(generated)
    assert all(e - s == window for s, e, _ in plan)


def test_rollout_validates():
    x0 = clean(13, (B, 8, C, H, W))
    with pytest.raises(Syn2SeqInputError, match="same mask"):
        rollout(mixing, x0, torch.tensor([[1] + [0] * 7, [1, 1] + [0] * 6]), window=4)
    with pytest.raises(Syn2SeqInputError, match="context_frames"):
        rollout(mixing, x0, torch.tensor([1] + [0] * 7), window=4, context_frames=4)


def test_active_steps():
    m = torch.tensor([[3, 3], [3, 3], [2, 3], [2, 3], [0, 0]]).double()
    assert active_steps(m) == [1, 3]
    assert math.isclose(len(active_steps(scheduling_matrix("full_sequence", 7, 3))), 7)
