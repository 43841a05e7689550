"""Fine-tuning a pretrained model on a few labelled target images."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch

from ..data.crops import CropSampler
from ..data.datasets import Sample
from ..model.checkpoint import build_model, model_metadata
from ..model.loss import HybridLoss, LossConfig
from ..model.outputs import boundary_width_of, output_kind, output_metadata
from ..model.precond import HybridSegModel
from .pretrain import ModelConfig
from .train import StepLog, TrainConfig, train

FINETUNE_LOSSES = ("mask", "hybrid")


@dataclass
class FinetuneConfig:
    loss: str = "mask"  # "mask": CE + Dice on clean input; "hybrid": the pretraining loss
    unlabelled_share: float = 0.0  # part of each batch drawn from unlabelled images (denoising only)
    head_steps: int = 0  # of the fine-tuning steps, the first ones train the output convolution alone (LP-FT)
    # the returned weights are this share of the fine-tuned ones and the rest of the starting ones (WiSE-FT,
    # Wortsman et al., 2022): 1 keeps the fine-tuned model as it is
    finetuned_share: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.finetuned_share <= 1.0:
            raise ValueError(f"finetuned_share must lie in (0, 1], got {self.finetuned_share}")
        if self.head_steps < 0:
            raise ValueError("head_steps must not be negative")
        if not 0.0 <= self.unlabelled_share < 1.0:
            raise ValueError("unlabelled_share must lie in [0, 1): each batch needs labelled images")
        if self.loss not in FINETUNE_LOSSES:
            raise ValueError(f"fine-tuning loss must be one of {FINETUNE_LOSSES}, got {self.loss!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def scratch_model(architecture_of: dict[str, Any] | ModelConfig | None, seed: int) -> tuple[HybridSegModel, dict[str, Any]]:
    """A freshly initialised model (the architecture of ``architecture_of``: a checkpoint's metadata or a
    ``ModelConfig``; else the default) with metadata that says it was never pretrained."""
    torch.manual_seed(seed)
    if isinstance(architecture_of, dict):
        model = build_model(architecture_of)
        output = output_metadata(output_kind(architecture_of), model.n_classes, boundary_width_of(architecture_of))
    else:
        config = architecture_of or ModelConfig()
        model = config.build()
        output = output_metadata(config.output, model.n_classes, config.boundary_width)
    return model, model_metadata(model, method="scratch", loss={}, pretraining=None, finetuning=[], **output)


FINETUNE_LR = 1e-3


def default_finetune_train_config(**overrides: Any) -> TrainConfig:
    return TrainConfig(**{"steps": 200, "batch_size": 8, "crop_size": 128, "lr": FINETUNE_LR, "log_every": 10, **overrides})


def starting_model(model: HybridSegModel, metadata: dict[str, Any], seed: int,
                   device: torch.device = torch.device("cpu")) -> HybridSegModel:
    """The copy of ``model`` that fine-tuning starts from: a diffusion-pretrained one gets a new mask head."""
    tuned = copy.deepcopy(model).to(device)
    if metadata.get("method") == "diffusion" and not metadata.get("finetuning"):
        tuned.reset_mask_head(torch.Generator().manual_seed(seed))  # diffusion pretraining never trained the mask head
    return tuned


def finetune(
    model: HybridSegModel,
    metadata: dict[str, Any],
    labelled: list[Sample],
    train_config: TrainConfig,
    config: FinetuneConfig = FinetuneConfig(),
    unlabelled: list[Sample] | None = None,
    device: torch.device = torch.device("cpu"),
    on_log: Callable[[StepLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[HybridSegModel, dict[str, Any], list[StepLog]]:
    """Return a fine-tuned copy of ``model``; the original is left untouched."""
    if not labelled:
        raise ValueError("fine-tuning needs at least one labelled image")
    if config.head_steps and config.head_steps >= train_config.steps:
        raise ValueError(f"head_steps ({config.head_steps}) must be fewer than the {train_config.steps} fine-tuning steps")
    torch.manual_seed(train_config.seed)
    tuned = starting_model(model, metadata, train_config.seed, device)

    sampler_args = dict(
        model_channels=tuned.image_channels,
        n_classes=tuned.n_classes,
        crop_size=train_config.crop_size,
        sigma_data=tuned.sigma_data,
        invert_probability=train_config.invert_probability,
        foreground_share=train_config.foreground_share,
        even_coverage=train_config.even_coverage,
        output=output_kind(metadata),
        boundary_width=boundary_width_of(metadata),
    )
    labelled_crops = CropSampler(labelled, seed=train_config.seed, **sampler_args)
    n_unlabelled = int(round(config.unlabelled_share * train_config.batch_size)) if unlabelled else 0
    unlabelled_crops = CropSampler(unlabelled, seed=train_config.seed + 1, **sampler_args) if n_unlabelled else None

    def next_batch():
        images, masks = labelled_crops.batch(train_config.batch_size - n_unlabelled)
        if unlabelled_crops is not None:
            u_images, u_masks = unlabelled_crops.batch(n_unlabelled)
            images, masks = torch.cat([images, u_images]), torch.cat([masks, u_masks])
        return images, masks

    pretrain_loss = metadata.get("loss", {})
    if config.loss == "mask":
        loss_config = LossConfig(method="supervised")
    else:
        # a diffusion checkpoint's clean share fed only its denoising term; the mask term needs hybrid's own
        inherited = ("lambda_image", "lambda_mask", "p_mean", "p_std") + (
            ("clean_fraction",) if pretrain_loss.get("method") != "diffusion" else ())
        loss_config = LossConfig(method="hybrid", **{k: pretrain_loss[k] for k in inherited if k in pretrain_loss})
    if n_unlabelled and config.loss == "mask":
        # unlabelled images only help through the denoising term. The batch's first crops are the labelled ones
        # and its clean share is exactly theirs, so the mask loss still sees clean input only, as without them
        labelled_share = (train_config.batch_size - n_unlabelled) / train_config.batch_size
        loss_config = LossConfig(method="hybrid", clean_fraction=labelled_share)
    start_state = copy.deepcopy(tuned.state_dict()) if config.finetuned_share < 1 else None
    history = train_head_first(tuned, HybridLoss(loss_config, tuned.sigma_data), next_batch, train_config,
                               config.head_steps, device, on_log, should_stop)
    if start_state is not None:
        blend_toward(tuned, start_state, 1.0 - config.finetuned_share)
    new_meta = copy.deepcopy(metadata)
    new_meta.setdefault("finetuning", []).append(
        {
            "labelled_ids": [s.id for s in labelled],
            "n_unlabelled": len(unlabelled or []),
            "config": config.to_dict(),
            "loss": loss_config.to_dict(),
            "train": train_config.to_dict(),
            "final_loss": history[-1].loss if history else None,
        }
    )
    return tuned.eval(), new_meta, history


def blend_toward(model: torch.nn.Module, state: dict[str, torch.Tensor], weight: float) -> None:
    """Move each floating-point weight and buffer of ``model`` the fraction ``weight`` of the way to ``state``'s."""
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value.lerp_(state[name].to(value.device), weight)


def train_head_first(
    model: HybridSegModel,
    loss_fn: HybridLoss,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    train_config: TrainConfig,
    head_steps: int,
    device: torch.device,
    on_log: Callable[[StepLog], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[StepLog]:
    """``train_config.steps`` steps in all, the first ``head_steps`` on the output convolution alone.

    Linear probing, then fine-tuning (Kumar et al., 2022): a new head's first, large gradients cannot
    distort the pretrained features. Each phase has its own warm-up and decay; the log counts steps
    and seconds over both.
    """
    if head_steps == 0:
        return train(model, loss_fn, next_batch, train_config, device, on_log=on_log, should_stop=should_stop)
    head = {id(p) for p in model.net.output_conv.parameters()}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    for p in body:
        p.requires_grad_(False)
    try:
        first = train(model, loss_fn, next_batch, replace(train_config, steps=head_steps), device,
                      on_log=on_log, should_stop=should_stop)
    finally:
        for p in body:
            p.requires_grad_(True)
    done_seconds = first[-1].seconds  # train logs its last step, and there is at least one

    def shifted(entry: StepLog) -> StepLog:
        return replace(entry, step=entry.step + head_steps, seconds=entry.seconds + done_seconds)

    rest = train(model, loss_fn, next_batch, replace(train_config, steps=train_config.steps - head_steps), device,
                 on_log=None if on_log is None else (lambda entry: on_log(shifted(entry))), should_stop=should_stop)
    return first + [shifted(entry) for entry in rest]
