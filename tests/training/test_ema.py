"""The EMA of model weights and the learned-range variance, each checked against its formula by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rgbd_fusion_core.config import DiffusionConfig, SamplerConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.diffusion.samplers import make_sampler
from rgbd_fusion_core.training.ema import EMA


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # not floating: copied, not averaged


def test_ema_update_follows_its_formula_with_the_warm_up():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, decay=0.9)
    shadow = {k: v.detach().clone().double() for k, v in model.state_dict().items()}
    for n in range(1, 31):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.steps += 1
        ema.update(model)
        decay = min(0.9, (1 + n) / (10 + n))  # warm-up: 0.18, 0.25, ... until it reaches 0.9
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                shadow[k] = decay * shadow[k] + (1 - decay) * v.double()
            else:
                shadow[k] = v.clone().double()
        for k in shadow:
            torch.testing.assert_close(ema.shadow[k].double(), shadow[k], rtol=1e-5, atol=1e-5, msg=f"{k} at {n}")
    assert ema.updates == 30 and int(ema.shadow["steps"]) == 30


def test_ema_with_a_high_decay_stays_near_its_start():
    """One update with decay 0.99 moves the shadow 1% of the way towards the new weights (after the warm-up)."""
    model = Tiny()
    ema = EMA(model, decay=0.99)
    ema.updates = 10_000  # past the warm-up
    start = ema.shadow["linear.weight"].clone()
    with torch.no_grad():
        model.linear.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["linear.weight"], start + 0.01)


def test_ema_state_round_trips():
    model = Tiny()
    ema = EMA(model, decay=0.95)
    ema.update(model)
    other = EMA(Tiny(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert (other.decay, other.updates) == (0.95, 1)
    for k in ema.shadow:
        torch.testing.assert_close(other.shadow[k], ema.shadow[k])


def test_learned_range_log_variance_interpolates_between_beta_and_beta_tilde():
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=50, learned_variance=True))
    t = torch.tensor([1, 10, 25, 49])
    v = torch.tensor([-1.0, -0.2, 0.5, 1.0]).view(4, 1, 1, 1)
    log_var = diffusion.log_variance(v, t, 4).view(4)
    for i, (step, interp) in enumerate(zip(t.tolist(), v.view(4).tolist())):
        beta = diffusion.betas[step]
        ab, ab_prev = diffusion.alphas_cumprod[step], diffusion.alphas_cumprod_prev[step]
        beta_tilde = beta * (1 - ab_prev) / (1 - ab)
        frac = (interp + 1) / 2
        expected = frac * math.log(beta) + (1 - frac) * math.log(beta_tilde)
        assert log_var[i].item() == pytest.approx(expected, rel=1e-6), step
    fixed = GaussianDiffusion(DiffusionConfig(timesteps=50)).log_variance(None, t, 4).view(4)
    np.testing.assert_allclose(fixed.numpy(), diffusion.posterior_log_variance_clipped[t.numpy()], rtol=1e-6)


def test_ddpm_step_uses_the_learned_variance():
    """A DDPM step's spread around its mean is exp(0.5 log var) with the learned range at v = 1 (beta')."""
    diffusion = GaussianDiffusion(DiffusionConfig(timesteps=20, learned_variance=True, prediction="x0"))
    sampler = make_sampler(SamplerConfig(name="ddpm", steps=20), diffusion, clip_x0=False)
    t = sampler.timesteps[5]
    x_t = torch.zeros(1, 1, 64, 64)
    draws = []
    for v in (-1.0, 1.0):
        output = torch.cat([torch.zeros_like(x_t), torch.full_like(x_t, v)], dim=1)  # x0 = 0: the mean is 0
        x_prev, _ = sampler.step(output, t, x_t, torch.Generator().manual_seed(0))
        draws.append(x_prev.std().item())
    ab_t, ab_prev = sampler.alpha_bars(t)
    beta = 1 - ab_t / ab_prev
    beta_tilde = beta * (1 - ab_prev) / (1 - ab_t)
    assert draws[0] == pytest.approx(beta_tilde**0.5, rel=0.05)
    assert draws[1] == pytest.approx(beta**0.5, rel=0.05)
