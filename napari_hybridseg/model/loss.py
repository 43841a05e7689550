"""The hybrid pretext loss: EDM-weighted denoising plus CE + soft Dice on the mask.

``method`` picks which terms are active and how noise levels are drawn:

* ``hybrid``: denoising + mask; a share ``clean_fraction`` of the batch at σ_min
* ``supervised``: mask only, clean input (σ_min)
* ``diffusion``: denoising only; a share ``clean_fraction`` at σ_min too (default none), so that
  the network also sees the noise level it is fine-tuned and used at
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch.nn import functional as F

from .precond import SIGMA_MIN, HybridSegModel

METHODS = ("hybrid", "supervised", "diffusion")
IGNORE_INDEX = -1
#: A target pixel known to be foreground but not which foreground class (an instances model's interior or
#: boundary, from a binary mask): cross-entropy scores the summed probability of the foreground classes.
FOREGROUND_INDEX = -2
# The share of a batch at σ_min when a LossConfig does not say. Supervised draws every sample there whatever
# its value; 0.25 is what its checkpoints have always recorded, and what a hybrid fine-tune of one copies.
DEFAULT_CLEAN_FRACTION = {"hybrid": 0.25, "supervised": 0.25, "diffusion": 0.0}


@dataclass(frozen=True)
class LossConfig:
    method: str = "hybrid"
    lambda_image: float = 1.0
    lambda_mask: float = 1.0
    p_mean: float = -1.2
    p_std: float = 1.2
    clean_fraction: float | None = None  # None: DEFAULT_CLEAN_FRACTION of the method

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.clean_fraction is None:
            object.__setattr__(self, "clean_fraction", DEFAULT_CLEAN_FRACTION[self.method])
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ValueError("clean_fraction must lie in [0, 1]")
        if not self.p_std > 0:
            raise ValueError("p_std, the spread of log σ, must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


class LossTerms(NamedTuple):
    total: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean soft Dice over the foreground classes, ignoring IGNORE_INDEX and FOREGROUND_INDEX pixels."""
    probs = logits.softmax(dim=1)
    valid = (target >= 0).unsqueeze(1)
    one_hot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2)
    probs, one_hot = probs * valid, one_hot * valid
    dims = (0, 2, 3)
    inter = (probs * one_hot).sum(dims)
    denom = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return 1 - dice[1:].mean()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled pixels; at a FOREGROUND_INDEX pixel, −log of the summed probability
    of the foreground classes."""
    foreground = target == FOREGROUND_INDEX
    if not foreground.any():
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    log_probs = logits.log_softmax(dim=1)
    picked = log_probs.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
    either = torch.logsumexp(log_probs[:, 1:], dim=1)
    return -torch.where(foreground, either, picked)[target != IGNORE_INDEX].mean()


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice; zero when no pixel is labelled."""
    if not (target != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return cross_entropy(logits, target) + soft_dice_loss(logits, target)


class HybridLoss:
    def __init__(self, config: LossConfig, sigma_data: float = 0.5):
        self.config = config
        self.sigma_data = sigma_data

    def sample_sigma(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.config
        if cfg.method == "supervised":
            return torch.full((batch,), SIGMA_MIN, device=device)
        z = torch.randn(batch, generator=generator, device="cpu").to(device)
        sigma = (z * cfg.p_std + cfg.p_mean).exp()
        if cfg.clean_fraction > 0:
            n_clean = int(round(cfg.clean_fraction * batch))
            sigma[:n_clean] = SIGMA_MIN
        return sigma

    def __call__(
        self,
        model: HybridSegModel,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> LossTerms:
        cfg = self.config
        sigma = self.sample_sigma(images.shape[0], images.device, generator)
        noise = torch.randn(images.shape, generator=generator, device="cpu").to(images.device)
        noisy = images + sigma.reshape(-1, 1, 1, 1) * noise
        denoised, logits = model(noisy, sigma)

        zero = images.new_zeros(())
        image_term = zero
        if cfg.method in ("hybrid", "diffusion") and cfg.lambda_image > 0:
            sd2 = self.sigma_data**2
            weight = ((sigma**2 + sd2) / (sigma * self.sigma_data) ** 2).reshape(-1, 1, 1, 1)
            image_term = (weight * (denoised - images) ** 2).mean()
        mask_term = zero
        if cfg.method in ("hybrid", "supervised") and masks is not None and cfg.lambda_mask > 0:
            mask_term = mask_loss(logits, masks)
        total = cfg.lambda_image * image_term + cfg.lambda_mask * mask_term
        return LossTerms(total, image_term.detach(), mask_term.detach())
