import pytest
import torch

from syn2seq_core.dfot.objective import diffusion_loss
from syn2seq_core.dfot.schedule import NoiseSchedule, alpha_sigma, expand_like
from syn2seq_core.base.errors import Syn2SeqInputError


def test_v_weighting_is_plain_v_mse_and_keeps_weight_at_high_noise():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 3, 4, 4, generator=g)
    noise = torch.randn(2, 3, 3, 4, 4, generator=g)
    t = torch.tensor([[0.1, 0.5, 0.99], [0.2, 0.7, 1.0]])
    sched = NoiseSchedule(shift=0.5)
    zero = lambda x_t, logsnr, rays: torch.zeros_like(x_t)  # noqa: E731
    loss_v, info_v = diffusion_loss(zero, x0, noise_t=t, noise=noise, schedule=sched, weighting="v")
    a, s = (expand_like(c, x0) for c in alpha_sigma(sched.logsnr(t)))
    v = a * noise - s * x0
    torch.testing.assert_close(info_v["frame_loss"], v.pow(2).flatten(2).mean(2))
    _, info_s = diffusion_loss(zero, x0, noise_t=t, noise=noise, schedule=sched, weighting="sigmoid")
    # At t = 1 the sigmoid weighting gives a zero predictor (x0 estimate 0) almost no loss; v-MSE does not.
    assert info_s["frame_loss"][1, 2] < 1e-4 < 0.1 < info_v["frame_loss"][1, 2]
    with pytest.raises(Syn2SeqInputError, match="loss weighting"):
        diffusion_loss(zero, x0, noise_t=t, noise=noise, weighting="snr")
