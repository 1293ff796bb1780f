"""Gaussian diffusion math (Ho et al. 2020; Nichol & Dhariwal 2021): forward process, posterior, conversions
between parametrisations, losses and the variational bound. The denoiser is passed in, never owned.

Shapes: x0, x_t, noise are (B, C, H, W) in [-1, 1]; t is a (B,) long tensor of timesteps in [0, T-1]; a model
output is (B, C, H, W), or (B, 2C, H, W) with learned-range variance (second half: interpolation v in [-1, 1]).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.special import log_ndtr, ndtr

from rgbd_fusion_core.config import DiffusionConfig
from rgbd_fusion_core.diffusion.schedule import make_betas

LOG2 = math.log(2.0)


def gather(values: np.ndarray, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] as float32, shaped (B, 1, ..., 1) to broadcast against an ndim tensor."""
    out = torch.as_tensor(values, dtype=torch.float64, device=t.device)[t].float()
    return out.reshape(-1, *([1] * (ndim - 1)))


def normal_kl(mean1, log_var1, mean2, log_var2) -> torch.Tensor:
    """KL(N(mean1, e^log_var1) || N(mean2, e^log_var2)) in nats, elementwise."""
    return 0.5 * (
        -1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2) + (mean1 - mean2) ** 2 * torch.exp(-log_var2)
    )


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log p(x) in nats, elementwise, for a Gaussian discretised into 255 bins of width 2/255 over [-1, 1]; the
    edge bins extend to +-infinity. On float (non-quantised) depth this is a pseudo-likelihood."""
    inv_std = torch.exp(-0.5 * log_var)
    upper = inv_std * (x - mean + 1.0 / 255.0)
    lower = inv_std * (x - mean - 1.0 / 255.0)
    log_cdf_upper = log_ndtr(upper)
    log_survival_lower = log_ndtr(-lower)
    log_delta = torch.log((ndtr(upper) - ndtr(lower)).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_survival_lower, log_delta))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


class GaussianDiffusion:
    """Schedule-derived quantities (float64 numpy) and the math on top of them."""

    def __init__(self, config: DiffusionConfig):
        if config.prediction not in ("eps", "x0", "v"):
            raise ValueError(f"unknown prediction type {config.prediction!r}; choose eps, x0 or v")
        self.config = config
        self.betas = make_betas(config.schedule, config.timesteps)
        self.num_timesteps = len(self.betas)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        # Posterior q(x_{t-1} | x_t, x_0) (Ho et al. eq. 6-7).
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(1 - self.betas) / (1.0 - self.alphas_cumprod)
        )

    # ---- forward process -------------------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(a_bar) x0 + sqrt(1 - a_bar) eps (Ho et al. eq. 4)."""
        ab = gather(self.alphas_cumprod, t, x0.ndim)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0)."""
        mean = gather(self.posterior_mean_coef1, t, x0.ndim) * x0 + gather(self.posterior_mean_coef2, t, x0.ndim) * x_t
        return (
            mean,
            gather(self.posterior_variance, t, x0.ndim),
            gather(self.posterior_log_variance_clipped, t, x0.ndim),
        )

    # ---- parametrisations ------------------------------------------------------------------------------
    def split_output(self, model_output: torch.Tensor):
        """(prediction, variance interpolation or None)."""
        if self.config.learned_variance:
            return model_output.chunk(2, dim=1)
        return model_output, None

    def to_x0_eps(self, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """(x0, eps) from an eps, x0 or v prediction; v = sqrt(a_bar) eps - sqrt(1 - a_bar) x0 (Salimans & Ho)."""
        ab = gather(self.alphas_cumprod, t, x_t.ndim)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if self.config.prediction == "eps":
            return (x_t - s * prediction) / a, prediction
        if self.config.prediction == "x0":
            return prediction, (x_t - a * prediction) / s
        return a * x_t - s * prediction, s * x_t + a * prediction

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network regresses for the configured prediction type."""
        if self.config.prediction == "eps":
            return noise
        if self.config.prediction == "x0":
            return x0
        ab = gather(self.alphas_cumprod, t, x0.ndim)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def log_variance(self, var_interp: torch.Tensor | None, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """Learned range (Nichol & Dhariwal eq. 15): log var = f log beta + (1-f) log beta_tilde, f = (v+1)/2;
        fixed: the clipped posterior log-variance."""
        min_log = gather(self.posterior_log_variance_clipped, t, ndim)
        if var_interp is None:
            return min_log
        max_log = gather(np.log(self.betas), t, ndim)
        frac = (var_interp + 1) / 2
        return frac * max_log + (1 - frac) * min_log

    def p_mean_variance(self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, clip: bool = True):
        """Mean and log-variance of p(x_{t-1} | x_t) and the predicted x0."""
        prediction, var_interp = self.split_output(model_output)
        x0, _ = self.to_x0_eps(prediction, x_t, t)
        if clip:
            x0 = x0.clamp(-1, 1)
        mean, _, _ = self.q_posterior(x0, x_t, t)
        return mean, self.log_variance(var_interp, t, x_t.ndim), x0

    # ---- losses ----------------------------------------------------------------------------------------
    def vb_terms_bpd(self, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Per-sample VLB term L_t in bits/dim: KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0 and the
        discretised-Gaussian decoder NLL -log p(x0|x1) for t = 0. (B,)"""
        true_mean, _, true_log_var = self.q_posterior(x0, x_t, t)
        mean, log_var, _ = self.p_mean_variance(model_output, x_t, t, clip=False)
        kl = mean_flat(normal_kl(true_mean, true_log_var, mean, log_var)) / LOG2
        nll = -mean_flat(discretized_gaussian_log_likelihood(x0, mean, log_var)) / LOG2
        return torch.where(t == 0, nll, kl)

    def prior_bpd(self, x0: torch.Tensor) -> torch.Tensor:
        """KL(q(x_T | x0) || N(0, I)) in bits/dim, (B,)."""
        t = torch.full((x0.shape[0],), self.num_timesteps - 1, dtype=torch.long, device=x0.device)
        ab = gather(self.alphas_cumprod, t, x0.ndim)
        kl = normal_kl(ab.sqrt() * x0, torch.log(1 - ab).expand_as(x0), torch.zeros_like(x0), torch.zeros_like(x0))
        return mean_flat(kl) / LOG2

    def training_losses(self, denoiser, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, noise=None) -> dict:
        """Simple loss on the configured target (optionally P2-weighted, Choi et al. 2022: 1 / (k + SNR)^gamma),
        plus lambda * T * L_t with a stop-gradient on the mean when the variance is learned (the hybrid loss).
        Returns per-sample (B,) tensors: loss, mse, and vb when learned."""
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        output = denoiser(x_t, t.float(), cond)
        prediction, var_interp = self.split_output(output)
        mse = mean_flat((prediction - self.target(x0, noise, t)) ** 2)
        if self.config.p2_gamma > 0:
            ab = gather(self.alphas_cumprod, t, 1)
            mse_weighted = mse / (self.config.p2_k + ab / (1 - ab)) ** self.config.p2_gamma
        else:
            mse_weighted = mse
        terms = {"mse": mse, "loss": mse_weighted}
        if var_interp is not None:
            frozen = torch.cat([prediction.detach(), var_interp], dim=1)
            vb = self.vb_terms_bpd(frozen, x0, x_t, t)
            terms["vb"] = vb
            terms["loss"] = mse_weighted + self.config.hybrid_lambda * self.num_timesteps * vb
        return terms

    @torch.no_grad()
    def bits_per_dim(self, denoiser, x0: torch.Tensor, cond: torch.Tensor, generator=None) -> torch.Tensor:
        """The full variational bound in bits/dim, (B,): prior + sum over all T terms (one noise draw each)."""
        total = self.prior_bpd(x0)
        for step in reversed(range(self.num_timesteps)):
            t = torch.full((x0.shape[0],), step, dtype=torch.long, device=x0.device)
            noise = torch.randn(x0.shape, generator=generator, device=x0.device)
            x_t = self.q_sample(x0, t, noise)
            total = total + self.vb_terms_bpd(denoiser(x_t, t.float(), cond), x0, x_t, t)
        return total
