"""Prediction with a loaded model: raw image in, class map out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..data.prepare import model_input
from .precond import SIGMA_MIN, HybridSegModel


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    return device


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class Segmenter:
    """A model with the conventions its checkpoint records, ready to predict."""

    def __init__(self, model: HybridSegModel, metadata: dict[str, Any], device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.metadata = metadata

    @classmethod
    def from_checkpoint(cls, path, device: str | torch.device = "cpu") -> "Segmenter":
        from .checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        return cls(model, meta, device)

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        x = model_input(image, self.model.image_channels, self.model.sigma_data)
        return torch.from_numpy(x)

    @torch.inference_mode()
    def logits_batch(self, x: torch.Tensor, sigma: float = SIGMA_MIN) -> torch.Tensor:
        """(B, C, H, W) normalised input → (B, K, H, W) mask logits."""
        x, (h, w) = pad_to_multiple(x.to(self.device), self.model.unet_config.downsample_factor)
        _, logits = self.model(x, sigma)
        return logits[..., :h, :w]

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        return self.logits_batch(self.prepare(image)[None]).softmax(1)[0].cpu().numpy()

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map (H, W) uint8 for one raw image."""
        logits = self.logits_batch(self.prepare(image)[None])[0]
        return logits.argmax(0).to(torch.uint8).cpu().numpy()
