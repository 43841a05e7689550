"""A model's own fine-tuning recipe: steps, crop, batch, learning rate, chosen on validation data for the
kind of image it was pretrained on and kept in its metadata. One crop does not fit all: lesions that fill
most of an image need crops that hold them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .finetune import FINETUNE_LR
from .train import TrainConfig


@dataclass(frozen=True)
class FinetuneRecipe:
    steps: int = 100
    crop_size: int = 96
    batch_size: int = 8
    lr: float = FINETUNE_LR
    even_coverage: bool = False  # crops reach image borders and corners as often as the middle

    def __post_init__(self):
        if self.steps < 1 or self.crop_size < 16 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"not a usable fine-tuning recipe: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "FinetuneRecipe":
        """The recipe a checkpoint carries (the fields it names; defaults for the rest)."""
        given = metadata.get("finetune_recipe") or {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in given.items() if k in known})

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The training settings of this recipe; ``overrides`` (those not None) win."""
        settings = {"steps": self.steps, "crop_size": self.crop_size, "batch_size": self.batch_size, "lr": self.lr,
                    "even_coverage": self.even_coverage, "log_every": 10}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig(**settings)
