"""EDM preconditioning around the raw U-Net, with an extra mask head.

``HybridSegModel(x_noisy, sigma)`` returns the denoised image (EDM's ``D``)
and K mask logits, both from the same forward pass of one network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data.prepare import SIGMA_MIN
from .unet import UNet, UNetConfig

__all__ = ["SIGMA_MAX", "SIGMA_MIN", "HybridSegModel"]
SIGMA_MAX = 80.0


class HybridSegModel(nn.Module):
    def __init__(self, image_channels: int, n_classes: int, sigma_data: float = 0.5, **unet_kwargs):
        super().__init__()
        self.image_channels = image_channels
        self.n_classes = n_classes
        self.sigma_data = sigma_data
        self.net = UNet(
            UNetConfig(in_channels=image_channels, out_channels=image_channels + n_classes, **unet_kwargs)
        )

    @property
    def unet_config(self) -> UNetConfig:
        return self.net.config

    def preconditioning(self, sigma: torch.Tensor) -> dict[str, torch.Tensor]:
        """EDM's c_skip, c_out, c_in (shaped for broadcasting) and c_noise."""
        sd2 = self.sigma_data**2
        s = sigma.reshape(-1, 1, 1, 1)
        return {
            "c_skip": sd2 / (s**2 + sd2),
            "c_out": s * self.sigma_data / (s**2 + sd2).sqrt(),
            "c_in": 1 / (s**2 + sd2).sqrt(),
            "c_noise": sigma.reshape(-1).log() / 4,
        }

    def _conditioning(self, x_noisy: torch.Tensor, sigma: torch.Tensor | float) -> dict[str, torch.Tensor]:
        sigma = torch.as_tensor(sigma, dtype=x_noisy.dtype, device=x_noisy.device)
        return self.preconditioning(sigma.expand(x_noisy.shape[0]) if sigma.ndim == 0 else sigma)

    def forward(self, x_noisy: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._conditioning(x_noisy, sigma)
        out = self.net(c["c_in"] * x_noisy, c["c_noise"]).float()  # under bfloat16 autocast the losses stay float32
        denoised = c["c_skip"] * x_noisy + c["c_out"] * out[:, : self.image_channels]
        logits = out[:, self.image_channels :]
        return denoised, logits

    def bottleneck(self, x_noisy: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The U-Net's bottleneck activations (B, C, h, w) for the input at ``sigma``: the model's own features."""
        c = self._conditioning(x_noisy, sigma)
        return self.net.encode(c["c_in"] * x_noisy, c["c_noise"])[0]

    def reset_mask_head(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the output weights of the mask logits (a new head), as nn.Conv2d would."""
        conv = self.net.output_conv
        c = self.image_channels * self.net.output_conv_repeats
        bound = 1 / math.sqrt(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
        with torch.no_grad():
            for param in (conv.weight, conv.bias):
                fresh = torch.rand(param[c:].shape, generator=generator, device="cpu") * 2 - 1
                param[c:] = (fresh * bound).to(param)
