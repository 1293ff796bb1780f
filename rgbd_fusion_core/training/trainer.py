"""Training one stage, top to bottom: data, model, AdamW with warm-up and cosine decay, EMA, gradient clipping,
optional mixed precision, DDP under torchrun, atomic checkpoints with exact resume.

A run folder holds: ``config.yaml`` (the StageConfig), ``checkpoint.pt`` (model, EMA, optimiser, RNG and data
position; loaded with weights_only=True), ``model.safetensors`` (EMA weights + config: what inference loads),
``log.jsonl`` (one line per logged step) and TensorBoard event files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from rgbd_fusion_core.config import StageConfig, stage_config_from_dict, to_dict
from rgbd_fusion_core.diffusion.gaussian import GaussianDiffusion
from rgbd_fusion_core.models import build_denoiser, count_parameters
from rgbd_fusion_core.models.checkpoint import (
    RUN_MODEL,
    TRAINING_STATE,
    CheckpointError,
    load_state_checked,
    load_training_state,
    save_stage_model,
    save_training_state,
)
from rgbd_fusion_core.runtime.device import resolve_device
from rgbd_fusion_core.training.batches import epoch_batches, training_pair
from rgbd_fusion_core.training.distributed import init_distributed
from rgbd_fusion_core.training.ema import EMA


def learning_rate(step: int, config: StageConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to 10% of it at ``train.steps``."""
    train = config.train
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = min(1.0, (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps))
    return train.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """'auto': bf16 on a CUDA GPU that supports it, otherwise full fp32 (bf16 on CPU was not faster here)."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def open_tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard not installed (pip install 'rgbd-fusion[train]'); logging to log.jsonl only")
        return None
    return SummaryWriter(str(run_dir))


def train(
    config: StageConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    steps: int | None = None,
    resume: bool = False,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train one stage into ``run_dir``; returns a summary dict. ``stop_at`` ends this process early after that
    step's checkpoint (to emulate a killed run in tests); ``resume`` continues exactly from ``checkpoint.pt``."""
    from rgbd_fusion_core.data.dataset import RGBDDataset

    run_dir = Path(run_dir)
    if threads:
        torch.set_num_threads(threads)
    state = None
    if resume:
        state = load_training_state(run_dir / TRAINING_STATE)
        config = stage_config_from_dict(json.loads(state["config"]), f"{run_dir / TRAINING_STATE}:config")
    elif (run_dir / TRAINING_STATE).exists():
        raise FileExistsError(
            f"{run_dir} already holds a training run; pass --resume to continue it or pick a new --out"
        )
    if steps is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    train_cfg = config.train

    dev = resolve_device(device)
    dist = init_distributed(dev)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device(f"cuda:{dist.local_rank}")
        torch.cuda.set_device(dev)

    dataset = RGBDDataset(data_dir, split="train", depth_space=config.depth_space)
    if len(dataset) < train_cfg.batch_size * dist.world_size:
        raise ValueError(
            f"{data_dir}: {len(dataset)} training samples, fewer than one batch "
            f"({train_cfg.batch_size} x {dist.world_size} processes)"
        )
    torch.manual_seed(train_cfg.seed + dist.rank)
    model = build_denoiser(config.model).to(dev)
    diffusion = GaussianDiffusion(config.diffusion)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    ema = EMA(model, train_cfg.ema_decay)
    generator = torch.Generator().manual_seed(train_cfg.seed * 7919 + dist.rank)
    step, epoch, batch_in_epoch = 0, 0, 0
    if state is not None:
        load_state_checked(model, state["model"], str(run_dir / TRAINING_STATE))
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        generator.set_state(state["generators"][dist.rank])
        torch.set_rng_state(state["torch_rng"][dist.rank])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        if state["world_size"] != dist.world_size:
            raise CheckpointError(f"checkpoint was written by {state['world_size']} processes, now {dist.world_size}")
    net = DistributedDataParallel(model) if dist.enabled else model
    amp_dtype = autocast_dtype(train_cfg.mixed_precision, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    writer = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        writer = open_tensorboard(run_dir)
        print(
            f"stage {config.stage}: {config.model.architecture}, {count_parameters(model) / 1e6:.2f}M parameters, "
            f"{len(dataset)} training samples, {dist.world_size} process(es) on {dev}"
        )

    def checkpoint():
        generators = [generator.get_state()]
        rngs = [torch.get_rng_state()]
        if dist.enabled:
            generators, rngs = [None] * dist.world_size, [None] * dist.world_size
            torch.distributed.all_gather_object(generators, generator.get_state())
            torch.distributed.all_gather_object(rngs, torch.get_rng_state())
        if not dist.is_main:
            return
        save_training_state(
            run_dir / TRAINING_STATE,
            {
                "config": json.dumps(to_dict(config)),
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "world_size": dist.world_size,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict(),
                "generators": generators,
                "torch_rng": rngs,
            },
        )
        save_stage_model(run_dir / RUN_MODEL, config, ema.shadow)

    bar = tqdm(total=train_cfg.steps, initial=step, disable=not (progress and dist.is_main), unit="step")
    log_file = open(run_dir / "log.jsonl", "a") if dist.is_main else None
    started, window_loss, window_n = time.time(), 0.0, 0
    model.train()
    while step < train_cfg.steps:
        batches = epoch_batches(len(dataset), train_cfg.batch_size, epoch, train_cfg.seed, dist.rank, dist.world_size)
        loader = DataLoader(dataset, batch_sampler=batches[batch_in_epoch:], num_workers=train_cfg.num_workers)
        for batch in loader:
            x0, cond = training_pair(batch, config, generator)
            t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            x0, cond, t, noise = x0.to(dev), cond.to(dev), t.to(dev), noise.to(dev)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                losses = diffusion.training_losses(net, x0, cond, t, noise)
            loss = losses["loss"].mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            ema.update(model)
            step, batch_in_epoch = step + 1, batch_in_epoch + 1
            window_loss, window_n = window_loss + loss.item(), window_n + 1
            bar.update(1)
            if dist.is_main and (step % train_cfg.log_every == 0 or step == train_cfg.steps):
                record = {
                    "step": step,
                    "loss": window_loss / window_n,
                    "lr": learning_rate(step - 1, config),
                    "grad_norm": float(grad_norm),
                    "elapsed_s": round(time.time() - started, 2),
                }
                if "vb" in losses:
                    record["vb"] = losses["vb"].mean().item()
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if writer:
                    for key in ("loss", "lr", "grad_norm"):
                        writer.add_scalar(f"train/{key}", record[key], step)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                window_loss, window_n = 0.0, 0
            if step % train_cfg.checkpoint_every == 0 or step == train_cfg.steps:
                checkpoint()
            if step >= train_cfg.steps or (stop_at is not None and step >= stop_at):
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
            continue
        break
    bar.close()
    if log_file:
        log_file.close()
    if writer:
        writer.close()
    elapsed = time.time() - started
    return {"steps": step, "seconds": elapsed, "run_dir": str(run_dir)}
