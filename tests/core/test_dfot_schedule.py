"""Noise schedule, v-parameterisation, scheduling matrices and the training objective of the DFoT core."""

import math

import pytest
import torch

from syn2seq_core.dfot.objective import diffusion_loss, sample_noise_times
from syn2seq_core.dfot.schedule import (NoiseSchedule, alpha_sigma, eps_from_v, eps_from_x0, expand_like,
                                        sigmoid_weight, v_from_eps, v_from_x0, v_from_x0_eps, x0_from_eps, x0_from_v)
from syn2seq_core.dfot.scheduling import (SCHEDULING_MATRICES, levels_to_times, scheduling_matrix,
                                          validate_scheduling_matrix)
from syn2seq_core.base.errors import Syn2SeqInputError

F64 = torch.float64


# --- schedule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [1.0, 0.125, 0.5])
def test_logsnr_endpoints_and_monotone(shift):
    s = NoiseSchedule(shift=shift)
    t = torch.linspace(0, 1, 1001, dtype=F64)
    lam = s.logsnr(t)
    assert bool((lam[1:] < lam[:-1]).all())
    assert float(lam[0]) == pytest.approx(15 + 2 * math.log(shift), abs=1e-9)
    assert float(lam[-1]) == pytest.approx(-15 + 2 * math.log(shift), abs=1e-9)
    assert s.max_logsnr == pytest.approx(float(lam[0])) and s.min_logsnr == pytest.approx(float(lam[-1]))
    # The shift moves the whole unshifted curve down by 2 log(1 / shift).
    torch.testing.assert_close(lam - NoiseSchedule(shift=1.0).logsnr(t), torch.full_like(t, 2 * math.log(shift)))


def test_logsnr_is_simple_diffusion_cosine_at_midpoint():
    # Unshifted, symmetric range: t = 1/2 is the angle pi/4, where tan = 1 and logSNR = 0.
    assert float(NoiseSchedule(shift=1.0).logsnr(torch.tensor(0.5, dtype=F64))) == pytest.approx(0.0, abs=1e-12)


def test_t_from_logsnr_inverts_logsnr():
    s = NoiseSchedule()
    t = torch.rand(257, dtype=F64)
    torch.testing.assert_close(s.t_from_logsnr(s.logsnr(t)), t)


def test_alpha_sigma_variance_preserving_and_snr():
    lam = torch.linspace(-20, 20, 401, dtype=F64)
    a, s = alpha_sigma(lam)
    torch.testing.assert_close(a**2 + s**2, torch.ones_like(lam))
    torch.testing.assert_close(torch.log(a**2 / s**2), lam)


def test_v_parameterisation_round_trips():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 3, 4, 4, generator=g, dtype=F64)
    eps = torch.randn(2, 3, 3, 4, 4, generator=g, dtype=F64)
    a, s = (expand_like(c, x0) for c in alpha_sigma(torch.empty(2, 3, dtype=F64).uniform_(-12, 12, generator=g)))
    x_t = a * x0 + s * eps
    v = v_from_x0_eps(x0, eps, a, s)
    torch.testing.assert_close(x0_from_v(x_t, v, a, s), x0)
    torch.testing.assert_close(eps_from_v(x_t, v, a, s), eps)
    torch.testing.assert_close(v_from_x0(x_t, x0, a, s), v)
    torch.testing.assert_close(v_from_eps(x_t, eps, a, s), v)
    torch.testing.assert_close(x0_from_eps(x_t, eps, a, s), x0)
    torch.testing.assert_close(eps_from_x0(x_t, x0, a, s), eps)


def test_sigmoid_weight():
    assert float(sigmoid_weight(torch.tensor(-1.0))) == pytest.approx(0.5)
    assert float(sigmoid_weight(torch.tensor(0.0), bias=0.0)) == pytest.approx(0.5)
    lam = torch.linspace(-20, 20, 50, dtype=F64)
    w = sigmoid_weight(lam)
    assert bool((w[1:] < w[:-1]).all())  # noisier frames weigh more


@pytest.mark.parametrize("kw", [{"shift": 0.0}, {"shift": -1.0}, {"logsnr_min": 5.0, "logsnr_max": -5.0}])
def test_schedule_rejects_bad_config(kw):
    with pytest.raises(Syn2SeqInputError):
        NoiseSchedule(**kw)


# --- scheduling matrices -------------------------------------------------------------------------------------


def full_sequence_loop(steps, frames):
    rows = []
    for m in range(steps + 1):
        rows.append([steps - m] * frames)
    return torch.tensor(rows)


def pyramid_loop(steps, frames, uncertainty):
    """Simulate: at step r (1-based), frame t loses one level if r > int(t * u) and it is not yet clean."""
    delays = [int(t * uncertainty) for t in range(frames)]
    levels = [steps] * frames
    rows = [list(levels)]
    r = 0
    while any(level > 0 for level in levels):
        r += 1
        for t in range(frames):
            if r > delays[t] and levels[t] > 0:
                levels[t] -= 1
        rows.append(list(levels))
    return torch.tensor(rows)


@pytest.mark.parametrize("steps,frames", [(1, 1), (3, 5), (10, 8), (7, 2)])
def test_matrices_match_reference_loops(steps, frames):
    assert torch.equal(scheduling_matrix("full_sequence", steps, frames), full_sequence_loop(steps, frames))
    assert torch.equal(scheduling_matrix("autoregressive", steps, frames), pyramid_loop(steps, frames, steps))
    for u in (0, 0.5, 1, 1.5, 3):
        assert torch.equal(scheduling_matrix("pyramid", steps, frames, uncertainty=u), pyramid_loop(steps, frames, u))


@pytest.mark.parametrize("name", sorted(SCHEDULING_MATRICES))
@pytest.mark.parametrize("steps,frames", [(1, 3), (4, 6), (12, 5)])
def test_matrix_invariants(name, steps, frames):
    m = scheduling_matrix(name, steps, frames)
    assert m.dtype == torch.long and m.shape[1] == frames
    assert bool((m[0] == steps).all()), "every frame starts as pure noise"
    assert bool((m[-1] == 0).all()), "every frame ends clean"
    assert bool((m[1:] <= m[:-1]).all()), "a frame's noise level never rises"
    assert bool(((m[1:] < m[:-1]).any(dim=1)).all()), "every step moves some frame"
    validate_scheduling_matrix(m, frames)


def test_autoregressive_finishes_each_frame_before_the_next():
    m = scheduling_matrix("autoregressive", 4, 3)
    for r in range(m.shape[0] - 1):
        moving = (m[r + 1] < m[r]).nonzero().flatten().tolist()
        assert len(moving) == 1
        assert bool((m[r, : moving[0]] == 0).all())


def test_unknown_matrix_names_known_ones():
    with pytest.raises(ValueError) as e:
        scheduling_matrix("spiral", 10, 4)
    assert isinstance(e.value, Syn2SeqInputError)
    for name in ("full_sequence", "pyramid", "autoregressive"):
        assert name in str(e.value)


def test_unknown_matrix_option_and_bad_sizes():
    with pytest.raises(Syn2SeqInputError, match="uncertainty"):
        scheduling_matrix("full_sequence", 10, 4, uncertainty=2)
    with pytest.raises(Syn2SeqInputError):
        scheduling_matrix("pyramid", 0, 4)
    with pytest.raises(Syn2SeqInputError):
        scheduling_matrix("pyramid", 4, 4, uncertainty=-1)


def test_levels_to_times_and_validation():
    m = scheduling_matrix("full_sequence", 4, 2)
    torch.testing.assert_close(levels_to_times(m)[:, 0], torch.tensor([1, 0.75, 0.5, 0.25, 0], dtype=F64))
    rising = m.clone()
    rising[2, 1] = 4
    with pytest.raises(Syn2SeqInputError, match="never rise"):
        validate_scheduling_matrix(rising)
    with pytest.raises(Syn2SeqInputError, match="last row"):
        validate_scheduling_matrix(m[:-1])


# --- training objective ------------------------------------------------------------------------------------


class OracleV:
    """Knows the clean frames: returns the exact v for the given x_t and logSNR."""

    def __init__(self, x0):
        self.x0 = x0

    def __call__(self, x_t, logsnr, rays):
        a, s = (expand_like(c, x_t) for c in alpha_sigma(logsnr))
        return v_from_x0(x_t, self.x0, a, s)


def _batch(seed=0, b=2, t=4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, 8, 8, generator=g) * 2 - 1


def test_loss_zero_for_oracle_positive_for_zero_predictor():
    x0 = _batch()
    loss, info = diffusion_loss(OracleV(x0), x0, generator=torch.Generator().manual_seed(1))
    assert float(loss) < 1e-8
    zero = lambda x_t, logsnr, rays: torch.zeros_like(x_t)
    loss0, info0 = diffusion_loss(zero, x0, generator=torch.Generator().manual_seed(1))
    assert float(loss0) > 1e-3
    assert info0["frame_loss"].shape == (2, 4) and info0["logsnr"].shape == (2, 4)
    torch.testing.assert_close(info["x0_pred"], x0, atol=1e-4, rtol=1e-4)


def test_loss_matches_v_space_reference():
    """eps-MSE weighted by sigmoid(b - logsnr) == v-MSE weighted by alpha^2 sigmoid(b - logsnr), masked mean."""
    x0 = _batch(3)
    t = sample_noise_times(2, 4, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.5], [1.0, 0.0, 1.0, 1.0]])
    half = lambda x_t, logsnr, rays: 0.5 * x_t
    loss, _ = diffusion_loss(half, x0, noise_t=t, noise=noise, loss_mask=mask)
    sched = NoiseSchedule()
    num = den = 0.0
    for b in range(2):
        for f in range(4):
            lam = float(sched.logsnr(t[b, f].double()))
            a, s = math.sqrt(1 / (1 + math.exp(-lam))), math.sqrt(1 / (1 + math.exp(lam)))
            x_t = a * x0[b, f].double() + s * noise[b, f].double()
            v_true = a * noise[b, f].double() - s * x0[b, f].double()
            mse = ((0.5 * x_t - v_true) ** 2).mean().item() * a * a / (1 + math.exp(lam + 1))
            num += float(mask[b, f]) * mse
            den += float(mask[b, f])
    assert float(loss) == pytest.approx(num / den, rel=1e-4)


def test_masked_frames_do_not_contribute():
    x0 = _batch(5)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    per_frame = lambda x_t, logsnr, rays: 0.3 * x_t + 0.1
    kw = dict(loss_mask=mask, noise_t=torch.full((2, 4), 0.4))
    a, _ = diffusion_loss(per_frame, x0, generator=torch.Generator().manual_seed(7), **kw)
    other = x0.clone()
    other[0, 0] = 5.0
    other[1, 2:] = -3.0
    b, _ = diffusion_loss(per_frame, other, generator=torch.Generator().manual_seed(7), **kw)
    assert float(a) == float(b)
    c, _ = diffusion_loss(per_frame, other, generator=torch.Generator().manual_seed(7), noise_t=kw["noise_t"])
    assert float(c) != float(a)


def test_loss_seeded_and_validated():
    x0 = _batch(6)
    f = lambda x_t, logsnr, rays: 0.2 * x_t
    a, _ = diffusion_loss(f, x0, generator=torch.Generator().manual_seed(3))
    b, _ = diffusion_loss(f, x0, generator=torch.Generator().manual_seed(3))
    c, _ = diffusion_loss(f, x0, generator=torch.Generator().manual_seed(4))
    assert float(a) == float(b) and float(a) != float(c)
    with pytest.raises(Syn2SeqInputError, match="loss_mask"):
        diffusion_loss(f, x0, loss_mask=torch.ones(2, 3))
    with pytest.raises(Syn2SeqInputError, match="noise_t"):
        diffusion_loss(f, x0, noise_t=torch.full((2, 4), 1.5))


def test_noise_times_are_independent_per_frame():
    t = sample_noise_times(64, 8, generator=torch.Generator().manual_seed(0))
    assert t.shape == (64, 8) and bool(((t >= 0) & (t < 1)).all())
    assert float(t.std(dim=1).mean()) > 0.2  # frames of one sample are not tied together
