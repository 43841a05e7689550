"""What one model version says of each image, for choosing which to label next.

* **disagreement**: BALD across the diffusion samples, as :class:`~.acquisition.DisagreementScorer` scores it
  (its score and map);
* **surprise**: the model's EDM-weighted denoising loss on the image, from the same noisy forward passes
  (:func:`~.acquisition.samples_and_surprise`): high where the image is unlike anything the model knows, which is
  where a confidently wrong mask hides;
* **features**: the U-Net's bottleneck activations on the clean image, their mean and spread per channel: the
  image in the model's own feature space, for typicality and coverage (:mod:`.selection`).

Pure torch/numpy; knows nothing of Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..model.inference import pad_to_multiple
from ..model.precond import SIGMA_MIN, HybridSegModel
from .acquisition import DisagreementScorer, ImageScore, bald, image_score, samples_and_surprise


@dataclass(frozen=True)
class ImageSignals(ImageScore):
    """An image's disagreement (``score``, ``map``), its generative surprise and its feature vector."""

    surprise: float = float("nan")
    features: np.ndarray = None  # type: ignore[assignment]


@torch.inference_mode()
def bottleneck_features(model: HybridSegModel, x: torch.Tensor) -> np.ndarray:
    """A (C, H, W) normalised image's bottleneck activations at σ_min, mean and standard deviation per channel."""
    padded, _ = pad_to_multiple(x[None].float(), model.unet_config.downsample_factor)
    h = model.bottleneck(padded, SIGMA_MIN)[0].float()
    return torch.cat([h.mean(dim=(1, 2)), h.std(dim=(1, 2), correction=0)]).cpu().numpy()


class SignalScorer(DisagreementScorer):
    """A :class:`DisagreementScorer` (BALD across noise samples) whose results are :class:`ImageSignals`.

    ``model`` runs the noisy passes (a :class:`HybridSegModel` or its ONNX graph); ``feature_model`` is the same
    weights as a :class:`HybridSegModel`, whose encoder gives the features. Both see the same part of the image
    (the scorer's crop where ``max_pixels`` is set).
    """

    def __init__(self, model: Any, feature_model: HybridSegModel, model_version: str | None = None, **options: Any):
        if options.get("metric", "bald") != "bald" or options.get("mode", "noise") != "noise":
            raise ValueError("the signals come from BALD over noise samples (metric 'bald', mode 'noise')")
        super().__init__(model, model_version, **options)
        self.feature_model = feature_model.to(self.device).eval()

    def compute(self, image_raw: np.ndarray, digest: str | None = None) -> ImageSignals:
        image_raw = np.asarray(image_raw)
        x, generator, region = self._input(image_raw, digest or self.digest(image_raw))
        probs, surprise = samples_and_surprise(self.model, x, self.sigmas, self.samples // len(self.sigmas), generator,
                                               self.batch_size)
        pixel_map = bald(probs)
        return ImageSignals(image_score(pixel_map, probs, self.reduce), self._full_map(image_raw, region, pixel_map),
                            surprise, bottleneck_features(self.feature_model, x))

    def signals(self, keys) -> dict:
        """``{key: ImageSignals}`` of the cached ``keys`` for the current model version."""
        return {key: hit for key in keys if isinstance(hit := self.cached(key), ImageSignals)}
