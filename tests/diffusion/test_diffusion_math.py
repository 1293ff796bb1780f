"""Diffusion math against closed forms."""

import math

import numpy as np
import torch

from rgbd_fusion_core.config import DiffusionConfig
from rgbd_fusion_core.diffusion.gaussian import (
    GaussianDiffusion,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from rgbd_fusion_core.diffusion.schedule import cosine_betas, linear_betas


def test_cosine_schedule_matches_closed_form_alpha_bar():
    T, s = 600, 0.008
    ab = np.cumprod(1 - cosine_betas(T))
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([f((t + 1) / T) / f(0) for t in range(T)])
    # equal until the beta clip at 0.999 kicks in at the very end
    assert np.allclose(ab[:-5], expected[:-5], rtol=1e-9)
    assert ab[-1] < 1e-4


def test_linear_schedule_endpoints():
    b = linear_betas(1000)
    assert b[0] == 1e-4 and abs(b[-1] - 0.02) < 1e-12


def test_q_sample_moments():
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=100))
    x0 = torch.full((20000, 1, 1, 1), 0.5)
    t = torch.full((20000,), 40, dtype=torch.long)
    x_t = diffusion.q_sample(x0, t, torch.randn_like(x0))
    ab = diffusion.alphas_cumprod[40]
    assert abs(x_t.mean().item() - math.sqrt(ab) * 0.5) < 0.02
    assert abs(x_t.var().item() - (1 - ab)) < 0.02


def test_posterior_is_product_of_gaussians():
    """q(x_{t-1}|x_t,x0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x0): check mean and variance by completing the square."""
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=50, schedule="linear"))
    t = 17
    beta, ab_prev = diffusion.betas[t], diffusion.alphas_cumprod_prev[t]
    x0, xt = 0.3, -0.7
    precision = (1 - beta) / beta + 1 / (1 - ab_prev)
    mean = ((1 - beta) ** 0.5 * xt / beta + ab_prev**0.5 * x0 / (1 - ab_prev)) / precision
    m, v, _ = diffusion.q_posterior(torch.tensor([[x0]]), torch.tensor([[xt]]), torch.tensor([t]))
    assert abs(m.item() - mean) < 1e-6
    assert abs(v.item() - 1 / precision) < 1e-6


def test_parametrisation_round_trips():
    for prediction in ("eps", "x0", "v"):
        diffusion = GaussianDiffusion(DiffusionConfig(timesteps=100, prediction=prediction))
        x0 = torch.rand(4, 1, 8, 8) * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.tensor([0, 10, 50, 99])
        x_t = diffusion.q_sample(x0, t, noise)
        x0_hat, eps_hat = diffusion.to_x0_eps(diffusion.target(x0, noise, t), x_t, t)
        assert torch.allclose(x0_hat, x0, atol=2e-3), prediction
        assert torch.allclose(eps_hat, noise, atol=2e-3), prediction


def test_normal_kl_known_value():
    kl = normal_kl(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0), torch.tensor(math.log(4.0)))
    expected = math.log(2.0) + (1 + 1) / (2 * 4) - 0.5
    assert abs(kl.item() - expected) < 1e-6


def test_discretized_likelihood_sums_to_one_over_bins():
    centres = torch.linspace(-1, 1, 256)
    logp = discretized_gaussian_log_likelihood(centres, torch.tensor(0.1), torch.tensor(math.log(0.3**2)))
    assert abs(logp.exp().sum().item() - 1.0) < 1e-4


def test_vlb_of_known_case_exact_posterior_model():
    """A model that predicts x0 exactly and uses the posterior variance makes every KL term 0; the bound is then
    the prior term plus the decoder NLL, which we compute independently."""
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=20, prediction="x0"))
    x0 = (torch.randint(0, 256, (2, 1, 4, 4)).float() / 255) * 2 - 1

    def oracle(x_t, t, cond):
        return x0

    bpd = diffusion.bits_per_dim(oracle, x0, None)
    # decoder term: p(x0 | x1) has the mean of q(x0 | x1, x0) = x0 and log variance clipped posterior[0]
    log_var = torch.tensor(diffusion.posterior_log_variance_clipped[0])
    nll = -discretized_gaussian_log_likelihood(x0, x0, log_var).mean(dim=(1, 2, 3)) / math.log(2)
    prior = diffusion.prior_bpd(x0)
    assert torch.allclose(bpd, nll + prior, atol=1e-4)

    # the KL terms are live: a model whose x0 is off by 0.2 pays for it in the bound
    def off(x_t, t, cond):
        return x0 + 0.2

    assert (diffusion.bits_per_dim(off, x0, None) > bpd + 4.0).all()  # about 13 vs 4.6 bits/dim
