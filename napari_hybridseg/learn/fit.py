"""Generative fit: how well a hybrid model knows a set of images, from its denoising loss on them.

A hybrid model is a denoiser. Its EDM-weighted denoising loss, over a fixed set of noise levels, is low on
images like the ones it was pretrained on and high on others. Raw losses of different models do not compare
(a model of smooth images, or one at full resolution, denoises everything well), so a model's loss on the user's
images is divided by a reference loss measured the same way and kept in its metadata (``fit_reference``): its
mean loss over a fixed panel of images of every kind the zoo covers (a relative fit of 0.5: these images are
twice as easy for it as the average image of the panel), or its loss on its own source validation images.

Every candidate sees the same crops and the same noise, drawn from a fixed seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.prepare import SIGMA_MIN, expand_channels, prepare_image
from ..model.precond import HybridSegModel


@dataclass(frozen=True)
class FitProbe:
    """Which crops and noise levels a fit is measured on."""

    sigmas: tuple[float, ...] = (0.05, 0.2, 0.8)
    crop: int = 64
    max_images: int = 24
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fit:
    loss: float  # EDM-weighted denoising loss, mean over crops and noise levels
    confidence: float  # mean top-class probability of the mask head on the clean crops


def spread(n: int, k: int) -> np.ndarray:
    """Indices of at most ``k`` of ``n`` items, evenly spread over them (the images a fit is measured on)."""
    return np.linspace(0, n - 1, min(n, k)).round().astype(int) if n else np.zeros(0, int)


def read_spread(items: Sequence[Any], read: Callable[[Any], np.ndarray], probe: FitProbe = FitProbe()) -> list[np.ndarray]:
    """The images a fit reads of ``items`` (files, keys): evenly spread, as many as the probe uses, read with
    ``read``; an item that cannot be read is left out."""
    images = []
    for index in spread(len(items), probe.max_images):
        try:
            images.append(read(items[index]))
        except (OSError, ValueError):  # ImageReadError is a ValueError
            continue
    return images


class ProbeCrops:
    """Fixed crops of a set of images and fixed noise for them, shared by every model scored on them."""

    def __init__(self, images: Sequence[np.ndarray], probe: FitProbe = FitProbe(), sigma_data: float = 0.5):
        if not images:
            raise ValueError("no images to measure the fit on")
        self.probe = probe
        rng = np.random.default_rng(probe.seed)
        crops = []
        for index in spread(len(images), probe.max_images):
            image = prepare_image(images[index], 3, sigma_data)  # 1 or 3 channels; expanded below
            crops.append(_random_crop(expand_channels(image, 3), probe.crop, rng))
        self.crops = torch.from_numpy(np.stack(crops).astype(np.float32))
        generator = torch.Generator().manual_seed(probe.seed)
        self.noise = torch.randn((len(probe.sigmas), *self.crops.shape), generator=generator)

    def __len__(self) -> int:
        return len(self.crops)


def _random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size``² crop (reflect-padded where the image is smaller)."""
    _, h, w = image.shape
    if h < size or w < size:
        image = np.pad(image, ((0, 0), (0, max(0, size - h)), (0, max(0, size - w))), mode="reflect")
        _, h, w = image.shape
    y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return image[:, y : y + size, x : x + size]


def _channels(x: torch.Tensor, model_channels: int) -> torch.Tensor:
    return x if model_channels == 3 else x.mean(dim=1, keepdim=True)


@torch.inference_mode()
def generative_fit(model: HybridSegModel, crops: ProbeCrops, batch_size: int = 64) -> Fit:
    """``model``'s denoising loss and mask confidence on ``crops`` (CPU or the model's device)."""
    device = next(model.parameters()).device
    model.eval()
    clean = _channels(crops.crops, model.image_channels).to(device)
    sd = model.sigma_data
    losses = []
    for level, sigma in enumerate(crops.probe.sigmas):
        noise = _channels(crops.noise[level], model.image_channels).to(device)
        weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
        for start in range(0, len(clean), batch_size):
            x = clean[start : start + batch_size]
            denoised, _ = model(x + sigma * noise[start : start + batch_size], sigma)
            losses.append((weight * (denoised - x) ** 2).mean(dim=(1, 2, 3)).cpu())
    confidence = []
    for start in range(0, len(clean), batch_size):
        _, logits = model(clean[start : start + batch_size], SIGMA_MIN)
        confidence.append(logits.softmax(1).amax(1).mean(dim=(1, 2)).cpu())
    return Fit(float(torch.cat(losses).mean()), float(torch.cat(confidence).mean()))


def fit_reference(model: HybridSegModel, images: Sequence[np.ndarray], description: str,
                  probe: FitProbe = FitProbe()) -> dict[str, Any]:
    """The metadata entry that makes ``model``'s fit on other images comparable with other models':
    its loss on its own source validation ``images``."""
    fit = generative_fit(model, ProbeCrops(images, probe, model.sigma_data))
    return {"loss": fit.loss, "confidence": fit.confidence, "images": description, "probe": probe.to_dict()}


REFERENCES = ("panel", "own")


def reference_loss(metadata: dict[str, Any], reference: str = "panel") -> float | None:
    """A model's denoising loss on the images its fit is compared with: the mean over a fixed panel of images of
    every kind the zoo covers (``panel``; the same panel for every model), or its own source validation images
    (``own``); None for a model with no such reference (the other one where only that is recorded)."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    recorded = metadata.get("fit_reference") or {}
    panel = recorded.get("panel")
    if reference == "panel" and panel:
        return sum(panel.values()) / len(panel)
    return float(recorded["loss"]) if recorded.get("loss") else None


def relative_fit(fit: Fit, metadata: dict[str, Any], reference: str = "panel") -> float | None:
    """``fit``'s loss over the model's :func:`reference_loss`; None for a model with no reference."""
    loss = reference_loss(metadata, reference)
    return None if loss is None else fit.loss / loss
