"""The optimisation loop shared by pretraining and fine-tuning."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, ContextManager

import torch
from torch import nn

from ..model.loss import HybridLoss

BatchSource = Callable[[], tuple[torch.Tensor, torch.Tensor | None]]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the weights are not to be trusted."""


class TrainingCancelled(RuntimeError):
    """Stopped on request before the last step."""


PRECISIONS = ("float32", "bfloat16")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes convolutions in bfloat16 natively (AVX-512 BF16 / AMX on a CPU), so that
    mixed precision is faster there rather than emulated and slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_for(precision: str, device: torch.device) -> ContextManager:
    """The forward pass's context: bfloat16 autocast (weights, optimiser and losses stay float32) or nothing."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    invert_probability: float = 0.0  # share of training crops with inverted intensities (see CropSampler)
    foreground_share: float = 0.0  # share of training crops placed around a foreground pixel (see CropSampler)
    even_coverage: bool = False  # crops cover border and corner pixels as often as the rest (see CropSampler)
    # each step also pulls every weight toward its value at the start by lr × start_decay: decoupled L2-SP
    # (Li et al., 2018), so that fine-tuning on one or two images cannot wander far from the pretrained model
    start_decay: float = 0.0
    # "bfloat16": convolutions in bfloat16 under autocast (1.3–1.4× a fine-tuning step on an AVX-512 BF16 CPU; see
    # BENCHMARKS.md, label_efficiency_time), weights, optimiser and losses float32
    precision: str = "float32"

    def __post_init__(self):
        if self.start_decay < 0 or self.start_decay * self.lr > 1:
            raise ValueError(f"start_decay × lr must lie in [0, 1], got {self.start_decay} × {self.lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepLog:
    step: int
    loss: float
    image_loss: float
    mask_loss: float
    lr: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    warmup = max(1, int(config.warmup_fraction * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: nn.Module,
    loss_fn: HybridLoss,
    next_batch: BatchSource,
    config: TrainConfig,
    device: torch.device,
    on_log: Callable[[StepLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[StepLog]:
    """Run ``config.steps`` optimiser steps; ``model`` may be DDP-wrapped.

    Raises TrainingDiverged on a non-finite loss and TrainingCancelled when
    ``should_stop`` returns True; the caller decides what to keep.
    """
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    start_weights = [p.detach().clone() for p in params] if config.start_decay else None
    history: list[StepLog] = []
    running = {"loss": 0.0, "image": 0.0, "mask": 0.0, "n": 0}
    start = time.perf_counter()
    for step in range(config.steps):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled at step {step} of {config.steps}")
        lr = lr_at(step, config)
        for group in optimiser.param_groups:
            group["lr"] = lr
        images, masks = next_batch()
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True) if masks is not None else None
        with autocast_for(config.precision, device):
            terms = loss_fn(model, images, masks)
        if not torch.isfinite(terms.total):
            raise TrainingDiverged(f"the loss became {terms.total.item()} at step {step + 1}")
        optimiser.zero_grad(set_to_none=True)
        terms.total.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimiser.step()
        if start_weights is not None:
            with torch.no_grad():
                torch._foreach_lerp_(params, start_weights, lr * config.start_decay)

        running["loss"] += terms.total.item()
        running["image"] += terms.image.item()
        running["mask"] += terms.mask.item()
        running["n"] += 1
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            n = running["n"]
            entry = StepLog(
                step=step + 1,
                loss=running["loss"] / n,
                image_loss=running["image"] / n,
                mask_loss=running["mask"] / n,
                lr=lr,
                seconds=time.perf_counter() - start,
            )
            history.append(entry)
            running = {"loss": 0.0, "image": 0.0, "mask": 0.0, "n": 0}
            if on_log is not None:
                on_log(entry)
    model.eval()
    return history
