"""Samplers behind one small contract, separate from networks and from the training math.

    sampler.set_timesteps(steps)          # choose the subsequence of the T training timesteps
    for t in sampler.timesteps:           # descending ints in [0, T-1]
        out = denoiser(x, t, cond)
        x, x0 = sampler.step(out, t, x, generator)

The last step always lands on clean data (alpha_bar = 1), so ``steps`` network evaluations give a sample.

Timestep spacing for K of T steps (documented because the paper's code got it wrong):
- ``trailing`` (default): t_i = round(T - i T / K) - 1, i = 0..K-1; starts at T-1, the pure-noise end;
- ``leading``: t_i = (K - 1 - i) * (T // K); never visits the noisiest steps when K is small;
- ``linspace``: K values evenly spaced over [0, T-1], rounded, descending.
"""

from __future__ import annotations

import numpy as np
import torch

from rgbd_fusion_core.config import SamplerConfig
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion

SPACINGS = ("trailing", "leading", "linspace")


def spaced_timesteps(num_timesteps: int, steps: int, spacing: str) -> list[int]:
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    if spacing == "trailing":
        ts = np.round(num_timesteps - np.arange(steps) * num_timesteps / steps).astype(int) - 1
    elif spacing == "leading":
        ts = (np.arange(steps)[::-1] * (num_timesteps // steps)).astype(int)
    elif spacing == "linspace":
        ts = np.round(np.linspace(0, num_timesteps - 1, steps)).astype(int)[::-1]
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose from {SPACINGS}")
    return [int(t) for t in ts]


class Sampler:
    """Shared state: the diffusion, the chosen timesteps and a map t -> next (less noisy) alpha_bar."""

    def __init__(self, diffusion: GaussianDiffusion, spacing: str = "trailing", clip_x0: bool = True):
        self.diffusion = diffusion
        self.spacing = spacing
        self.clip_x0 = clip_x0
        self.timesteps: list[int] = []
        self._prev: dict[int, int] = {}

    def set_timesteps(self, steps: int) -> None:
        self.timesteps = spaced_timesteps(self.diffusion.num_timesteps, steps, self.spacing)
        self._prev = {
            t: (self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1) for i, t in enumerate(self.timesteps)
        }
        self.reset()

    def reset(self) -> None:
        """Forget per-trajectory state (multistep history) before a new sampling run."""

    def alpha_bars(self, t: int) -> tuple[float, float]:
        """alpha_bar at t and at the next timestep of the subsequence (1.0 after the last)."""
        prev = self._prev[t]
        ab = self.diffusion.alphas_cumprod
        return float(ab[t]), (1.0 if prev < 0 else float(ab[prev]))

    def predict(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor):
        """(x0, eps, variance interpolation or None); x0 clipped to [-1, 1] and eps made consistent with it."""
        prediction, var_interp = self.diffusion.split_output(model_output)
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        x0, eps = self.diffusion.to_x0_eps(prediction, x_t, tt)
        if self.clip_x0:
            x0 = x0.clamp(-1, 1)
            ab = float(self.diffusion.alphas_cumprod[t])
            eps = (x_t - ab**0.5 * x0) / (1 - ab) ** 0.5
        return x0, eps, var_interp

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor, generator=None):
        raise NotImplementedError


class DDPMSampler(Sampler):
    """Ancestral sampling; over a subsequence the betas are recomputed for it (Nichol & Dhariwal sec. 4):
    beta'_t = 1 - a_bar_t / a_bar_prev, with the posterior q(x_prev | x_t, x0) of that respaced chain.
    Variance: posterior beta-tilde, or the learned range between beta' and beta-tilde'."""

    def step(self, model_output, t, x_t, generator=None):
        x0, _, var_interp = self.predict(model_output, t, x_t)
        ab_t, ab_prev = self.alpha_bars(t)
        beta = 1 - ab_t / ab_prev
        coef_x0 = ab_prev**0.5 * beta / (1 - ab_t)
        coef_xt = (1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab_t)
        mean = coef_x0 * x0 + coef_xt * x_t
        if self._prev[t] < 0:
            return mean, x0
        beta_tilde = beta * (1 - ab_prev) / (1 - ab_t)
        if var_interp is None:
            log_var = torch.full_like(x_t, float(np.log(beta_tilde)))
        else:
            frac = (var_interp + 1) / 2
            log_var = frac * float(np.log(beta)) + (1 - frac) * float(np.log(beta_tilde))
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + torch.exp(0.5 * log_var) * noise, x0


class DDIMSampler(Sampler):
    """Song et al. (2021) eq. 12: x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - s^2) eps + s z,
    s = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev). eta = 0 is deterministic; eta = 1 over
    all steps is DDPM with the posterior variance."""

    def __init__(self, diffusion, spacing="trailing", clip_x0=True, eta: float = 0.0):
        super().__init__(diffusion, spacing, clip_x0)
        if eta < 0:
            raise ValueError(f"DDIM eta must be >= 0, got {eta}")
        self.eta = eta

    def step(self, model_output, t, x_t, generator=None):
        x0, eps, _ = self.predict(model_output, t, x_t)
        ab_t, ab_prev = self.alpha_bars(t)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)) ** 0.5
        x_prev = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return x_prev, x0


class DPMSolverPP2MSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), data prediction, multistep, first order on the first step
    and on the final step to clean data. With lambda = log(alpha / sigma) and h = lambda_next - lambda_t:
    x_next = (sigma_next / sigma_t) x_t - alpha_next (e^{-h} - 1) D, D = (1 + 1/(2r)) x0_t - x0_prev / (2r),
    r = h_prev / h."""

    def reset(self) -> None:
        self._history: tuple[float, torch.Tensor] | None = None  # (h of the previous step, its x0)

    def step(self, model_output, t, x_t, generator=None):
        x0, _, _ = self.predict(model_output, t, x_t)
        ab_t, ab_next = self.alpha_bars(t)
        if self._prev[t] < 0:
            self.reset()
            return x0, x0  # sigma_next = 0: the solution is the data prediction itself
        alpha_t, sigma_t = ab_t**0.5, (1 - ab_t) ** 0.5
        alpha_n, sigma_n = ab_next**0.5, (1 - ab_next) ** 0.5
        h = np.log(alpha_n / sigma_n) - np.log(alpha_t / sigma_t)
        d = x0
        if self._history is not None:
            h_prev, x0_prev = self._history
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - x0_prev / (2 * r)
        self._history = (h, x0)
        return (sigma_n / sigma_t) * x_t - alpha_n * np.expm1(-h) * d, x0


SAMPLERS = {"ddpm": DDPMSampler, "ddim": DDIMSampler, "dpmpp2m": DPMSolverPP2MSampler}


def make_sampler(config: SamplerConfig, diffusion: GaussianDiffusion, clip_x0: bool = True) -> Sampler:
    if config.name not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.name!r}; choose from {sorted(SAMPLERS)}")
    if config.name == "ddim":
        sampler = DDIMSampler(diffusion, config.spacing, clip_x0, eta=config.eta)
    else:
        sampler = SAMPLERS[config.name](diffusion, config.spacing, clip_x0)
    sampler.set_timesteps(config.steps)
    return sampler


@torch.no_grad()
def sample(denoiser, sampler: Sampler, cond: torch.Tensor, shape: tuple, generator=None, noise=None) -> torch.Tensor:
    """Run the sampler from x_T ~ N(0, I) (or the given ``noise``) to a clean sample of ``shape`` (B, C, H, W).
    ``denoiser(x_t, t (B,) float, cond)`` is a torch module or any backend with the same call."""
    device = cond.device
    x = noise if noise is not None else torch.randn(shape, generator=generator, device=device)
    sampler.reset()
    for t in sampler.timesteps:
        tt = torch.full((shape[0],), float(t), device=device)
        x, _ = sampler.step(denoiser(x, tt, cond), t, x, generator)
    return x
