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
    load_stage_model,
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


@dataclasses.dataclass
class Run:
    """What a training process holds: the model and its optimiser, EMA, random state and data position."""

    config: StageConfig
    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: EMA
    generator: torch.Generator
    dist: object
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


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
    init_from: str | Path | None = None,
) -> dict:
    """Train one stage into ``run_dir``; returns a summary dict. ``stop_at`` ends this process early after that
    step's checkpoint (to emulate a killed run in tests); ``resume`` continues exactly from ``checkpoint.pt``;
    ``init_from`` (a stage model file or run folder of the same network) starts a new run from its weights
    (fine-tuning: fresh optimiser, warm-up and schedule)."""
    from rgbd_fusion_core.data.dataset import RGBDDataset

    # 1. The config (a resumed run's own), the device and the process group.
    run_dir = Path(run_dir)
    if threads:
        torch.set_num_threads(threads)
    if init_from is not None and resume:
        raise ValueError("--init-from starts a new run from a model's weights; it cannot be combined with --resume")
    config, state = run_config(config, run_dir, steps, resume)
    dev = resolve_device(device)
    dist = init_distributed(dev)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device(f"cuda:{dist.local_rank}")
        torch.cuda.set_device(dev)

    # 2. Data, model, optimiser, EMA, random state; restored from the checkpoint when resuming.
    dataset = RGBDDataset(data_dir, split="train", depth_space=config.depth_space)
    if len(dataset) < config.train.batch_size * dist.world_size:
        raise ValueError(
            f"{data_dir}: {len(dataset)} training samples, fewer than one batch "
            f"({config.train.batch_size} x {dist.world_size} processes)"
        )
    run = start_run(config, run_dir, dev, dist, state, init_from)
    diffusion = GaussianDiffusion(config.diffusion)
    net = DistributedDataParallel(run.model) if dist.enabled else run.model
    amp_dtype = autocast_dtype(config.train.mixed_precision, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    writer = None
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        writer = open_tensorboard(run_dir)
        print(
            f"stage {config.stage}: {config.model.architecture}, {count_parameters(run.model) / 1e6:.2f}M "
            f"parameters, {len(dataset)} training samples, {dist.world_size} process(es) on {dev}"
        )

    # 3. The loop: one optimiser step per batch, logs every log_every, a checkpoint every checkpoint_every.
    train_cfg = config.train
    bar = tqdm(total=train_cfg.steps, initial=run.step, disable=not (progress and dist.is_main), unit="step")
    log_file = open(run_dir / "log.jsonl", "a") if dist.is_main else None
    started, window = time.time(), []
    run.model.train()
    while run.step < train_cfg.steps and not (stop_at is not None and run.step >= stop_at):
        batches = epoch_batches(
            len(dataset), train_cfg.batch_size, run.epoch, train_cfg.seed, dist.rank, dist.world_size
        )
        loader = DataLoader(dataset, batch_sampler=batches[run.batch_in_epoch :], num_workers=train_cfg.num_workers)
        for batch in loader:
            losses, grad_norm = optimiser_step(run, net, diffusion, batch, dev, amp_dtype, scaler)
            window.append(losses["loss"].mean().item())
            bar.update(1)
            if dist.is_main and (run.step % train_cfg.log_every == 0 or run.step == train_cfg.steps):
                record = log_record(run, window, losses, grad_norm, time.time() - started)
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if writer:
                    for key in ("loss", "lr", "grad_norm"):
                        writer.add_scalar(f"train/{key}", record[key], run.step)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                window = []
            if run.step % train_cfg.checkpoint_every == 0 or run.step == train_cfg.steps:
                save_checkpoint(run)
            if run.step >= train_cfg.steps or (stop_at is not None and run.step >= stop_at):
                break
        else:
            run.epoch, run.batch_in_epoch = run.epoch + 1, 0
    bar.close()
    if log_file:
        log_file.close()
    if writer:
        writer.close()
    return {"steps": run.step, "seconds": time.time() - started, "run_dir": str(run_dir)}


def run_config(config: StageConfig, run_dir: Path, steps: int | None, resume: bool) -> tuple[StageConfig, dict | None]:
    """(the config to train, the training state to resume or None). A resumed run keeps its own config; a new
    run refuses a folder that already holds one."""
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
    return config, state


def start_run(
    config: StageConfig, run_dir: Path, dev: torch.device, dist, state: dict | None, init_from: str | Path | None = None
) -> Run:
    """A fresh Run (seeded per rank; its weights and EMA from ``init_from`` when given), or the one saved in
    ``state``, exactly."""
    train_cfg = config.train
    torch.manual_seed(train_cfg.seed + dist.rank)
    model = build_denoiser(config.model).to(dev)
    if init_from is not None:
        model.load_state_dict(initial_weights(init_from, config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    generator = torch.Generator().manual_seed(train_cfg.seed * 7919 + dist.rank)
    run = Run(config, run_dir, model, optimizer, EMA(model, train_cfg.ema_decay), generator, dist)
    if state is None:
        return run
    if state["world_size"] != dist.world_size:
        raise CheckpointError(f"checkpoint was written by {state['world_size']} processes, now {dist.world_size}")
    load_state_checked(model, state["model"], str(run_dir / TRAINING_STATE))
    optimizer.load_state_dict(state["optimizer"])
    run.ema.load_state_dict(state["ema"])
    generator.set_state(state["generators"][dist.rank])
    torch.set_rng_state(state["torch_rng"][dist.rank])
    run.step, run.epoch, run.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
    return run


def initial_weights(path: str | Path, config: StageConfig) -> dict:
    """The weights of the stage model at ``path``, refused unless it is the same stage, conditioning and network."""
    init_config, init_model = load_stage_model(path)
    for field in ("stage", "conditioning", "model"):
        have, want = getattr(init_config, field), getattr(config, field)
        if have != want:
            raise CheckpointError(
                f"{path}: cannot start from this model: its {field} is {have!r}, the config being trained has {want!r}"
            )
    return init_model.state_dict()


def optimiser_step(run: Run, net, diffusion, batch: dict, dev, amp_dtype, scaler) -> tuple[dict, torch.Tensor]:
    """One step on one batch: (x0, cond) pair, random t and noise, loss, clipped gradient, AdamW, EMA.
    Returns the per-sample losses and the gradient norm before clipping."""
    x0, cond = training_pair(batch, run.config, run.generator)
    t = torch.randint(0, diffusion.num_timesteps, (x0.shape[0],), generator=run.generator)
    noise = torch.randn(x0.shape, generator=run.generator)
    x0, cond, t, noise = x0.to(dev), cond.to(dev), t.to(dev), noise.to(dev)
    for group in run.optimizer.param_groups:
        group["lr"] = learning_rate(run.step, run.config)
    with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        losses = diffusion.training_losses(net, x0, cond, t, noise)
    run.optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["loss"].mean()).backward()
    scaler.unscale_(run.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.train.grad_clip)
    scaler.step(run.optimizer)
    scaler.update()
    run.ema.update(run.model)
    run.step, run.batch_in_epoch = run.step + 1, run.batch_in_epoch + 1
    return losses, grad_norm


def log_record(run: Run, window: list[float], losses: dict, grad_norm, elapsed_s: float) -> dict:
    """One log.jsonl line: mean loss over the steps since the last line, lr, gradient norm, time (and the VLB)."""
    record = {
        "step": run.step,
        "loss": sum(window) / len(window),
        "lr": learning_rate(run.step - 1, run.config),
        "grad_norm": float(grad_norm),
        "elapsed_s": round(elapsed_s, 2),
    }
    if "vb" in losses:
        record["vb"] = losses["vb"].mean().item()
    return record


def save_checkpoint(run: Run) -> None:
    """checkpoint.pt (everything to resume exactly, all ranks' random states) and model.safetensors (EMA)."""
    dist = run.dist
    generators, rngs = [run.generator.get_state()], [torch.get_rng_state()]
    if dist.enabled:
        generators, rngs = [None] * dist.world_size, [None] * dist.world_size
        torch.distributed.all_gather_object(generators, run.generator.get_state())
        torch.distributed.all_gather_object(rngs, torch.get_rng_state())
    if not dist.is_main:
        return
    save_training_state(
        run.run_dir / TRAINING_STATE,
        {
            "config": json.dumps(to_dict(run.config)),
            "step": run.step,
            "epoch": run.epoch,
            "batch_in_epoch": run.batch_in_epoch,
            "world_size": dist.world_size,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "ema": run.ema.state_dict(),
            "generators": generators,
            "torch_rng": rngs,
        },
    )
    save_stage_model(run.run_dir / RUN_MODEL, run.config, run.ema.shadow)
