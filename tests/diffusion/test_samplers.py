"""Samplers against each other and against Gaussian data, where the optimal denoiser is known in closed form."""

import torch

from rgbd_fusion_core.config import DiffusionConfig, SamplerConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    make_sampler,
    sample,
    spaced_timesteps,
)

MU, STD = 0.3, 0.2


def gaussian_oracle(diffusion):
    """E[x0 | x_t] for x0 ~ N(MU, STD^2): MU + sqrt(ab) STD^2 / (ab STD^2 + 1 - ab) (x_t - sqrt(ab) MU)."""

    def denoiser(x_t, t, cond):
        ab = torch.as_tensor(diffusion.alphas_cumprod, dtype=torch.float64)[t.long()].float().view(-1, 1, 1, 1)
        return MU + ab.sqrt() * STD**2 / (ab * STD**2 + 1 - ab) * (x_t - ab.sqrt() * MU)

    return denoiser


def run(name, steps, n=4000, T=1000, seed=0, noise=None):
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=T, prediction="x0"))
    sampler = make_sampler(SamplerConfig(name=name, steps=steps), diffusion, clip_x0=False)
    g = torch.Generator().manual_seed(seed)
    shape = noise.shape if noise is not None else (n, 1, 1, 1)
    return sample(gaussian_oracle(diffusion), sampler, torch.zeros(1), shape, generator=g, noise=noise)


def test_spacings():
    assert spaced_timesteps(1000, 4, "trailing") == [999, 749, 499, 249]
    assert spaced_timesteps(1000, 4, "leading") == [750, 500, 250, 0]
    assert spaced_timesteps(10, 10, "linspace") == list(range(9, -1, -1))


def test_full_chain_samplers_recover_gaussian_data():
    """DDPM ancestral and DDIM (eta 0, the probability-flow ODE) over all T steps sample N(MU, STD^2).
    (Few-step samplers end on the posterior mean E[x0 | x_t] and so under-disperse on such data by design.)"""
    for name in ("ddpm", "ddim"):
        x = run(name, 1000)
        assert abs(x.mean().item() - MU) < 0.01, (name, x.mean().item())
        assert abs(x.std().item() - STD) < 0.01, (name, x.std().item())


def test_dpm_solver_is_a_better_ode_solver_than_ddim():
    """From the same noise, DPM-Solver++(2M) lands closer to the converged ODE solution (DDIM, 1000 steps)
    than DDIM with the same number of steps, and its error shrinks as steps grow."""
    noise = torch.randn(512, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    reference = run("ddim", 1000, noise=noise.clone())

    def error(name, steps):
        return (run(name, steps, noise=noise.clone()) - reference).abs().mean().item()

    assert error("dpmpp2m", 25) < error("ddim", 25)
    assert error("dpmpp2m", 50) < error("dpmpp2m", 25) < error("dpmpp2m", 10)
    assert error("dpmpp2m", 50) < 0.01


def test_ddim_eta_one_over_all_steps_equals_ddpm():
    """DDIM with eta=1 and every timestep is ancestral DDPM with the posterior variance: same noise, same path."""
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=50, prediction="x0"))
    oracle = gaussian_oracle(diffusion)
    ddim, ddpm = DDIMSampler(diffusion, eta=1.0, clip_x0=False), DDPMSampler(diffusion, clip_x0=False)
    ddim.set_timesteps(50)
    ddpm.set_timesteps(50)
    shape = (64, 1, 1, 1)
    x_a = sample(oracle, ddim, torch.zeros(1), shape, generator=torch.Generator().manual_seed(3))
    x_b = sample(oracle, ddpm, torch.zeros(1), shape, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(x_a, x_b, atol=1e-4)


def test_respaced_ddpm_betas_are_recomputed():
    """A respaced DDPM step's transition variance equals 1 - ab_t / ab_prev of the subsequence, so its marginals
    follow the original chain: one step from t to prev with x0 known gives N(sqrt(ab_prev) x0, 1 - ab_prev)."""
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=100, prediction="x0"))
    sampler = DDPMSampler(diffusion, clip_x0=False)
    sampler.set_timesteps(5)
    t = sampler.timesteps[1]
    ab_t, ab_prev = sampler.alpha_bars(t)
    n, x0 = 40000, 0.4
    x_t = ab_t**0.5 * x0 + (1 - ab_t) ** 0.5 * torch.randn(n, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    x_prev, _ = sampler.step(torch.full_like(x_t, x0), t, x_t, torch.Generator().manual_seed(6))
    assert abs(x_prev.mean().item() - ab_prev**0.5 * x0) < 0.01
    assert abs(x_prev.var().item() - (1 - ab_prev)) < 0.01
