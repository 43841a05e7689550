"""Source-domain pretraining with one of the three pretext methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..data.crops import CropSampler
from ..data.datasets import Sample
from ..model.checkpoint import model_metadata
from ..model.loss import HybridLoss, LossConfig
from ..model.outputs import DEFAULT_BOUNDARY_WIDTH, SEMANTIC, check_output, output_metadata
from ..model.precond import HybridSegModel
from .train import StepLog, TrainConfig, train


@dataclass
class ModelConfig:
    image_channels: int = 3
    n_classes: int = 2
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    blocks_per_level: int = 1
    patch_size: int = 1
    full_res_channels: int = 0
    sigma_data: float = 0.5
    output: str = SEMANTIC  # or "instances": 3 classes, background / interior / boundary (see model.outputs)
    boundary_width: int = DEFAULT_BOUNDARY_WIDTH  # of an instances model's boundary class, in pixels

    def __post_init__(self):
        check_output(self.output, self.n_classes, self.boundary_width)

    def build(self) -> HybridSegModel:
        return HybridSegModel(
            image_channels=self.image_channels,
            n_classes=self.n_classes,
            sigma_data=self.sigma_data,
            base_channels=self.base_channels,
            channel_mults=tuple(self.channel_mults),
            blocks_per_level=self.blocks_per_level,
            patch_size=self.patch_size,
            full_res_channels=self.full_res_channels,
        )


@dataclass
class PretrainResult:
    model: HybridSegModel
    metadata: dict[str, Any]
    history: list[StepLog] = field(default_factory=list)


def pretrain(
    samples: list[Sample],
    loss_config: LossConfig,
    train_config: TrainConfig,
    model_config: ModelConfig,
    device: torch.device,
    data_description: dict[str, Any],
    rank: int = 0,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    on_log: Callable[[StepLog], None] | None = None,
    groups: list[str] | None = None,
) -> PretrainResult:
    """Train a fresh model on labelled source samples.

    ``groups``: each sample's source data set, for a model pretrained on several
    sources at once; each source is then drawn equally often.

    ``wrap`` lets a caller put the model in DistributedDataParallel; each
    rank draws its own crops (seeded by rank) from the same samples.
    """
    torch.manual_seed(train_config.seed)
    model = model_config.build().to(device)
    torch.manual_seed(train_config.seed + 7919 * rank)
    sampler = CropSampler(
        samples,
        model_channels=model_config.image_channels,
        n_classes=model_config.n_classes,
        crop_size=train_config.crop_size,
        sigma_data=model_config.sigma_data,
        seed=train_config.seed + 7919 * rank,
        invert_probability=train_config.invert_probability,
        foreground_share=train_config.foreground_share,
        even_coverage=train_config.even_coverage,
        groups=groups,
        output=model_config.output,
        boundary_width=model_config.boundary_width,
    )
    trained = wrap(model) if wrap is not None else model
    loss = HybridLoss(loss_config, sigma_data=model_config.sigma_data)
    history = train(trained, loss, lambda: sampler.batch(train_config.batch_size), train_config, device, on_log=on_log)
    metadata = model_metadata(
        model,
        method=loss_config.method,
        loss=loss_config.to_dict(),
        pretraining={"data": data_description, "train": train_config.to_dict(), "final_loss": history[-1].loss if history else None},
        finetuning=[],
        **output_metadata(model_config.output, model_config.n_classes, model_config.boundary_width),
    )
    return PretrainResult(model.eval(), metadata, history)

