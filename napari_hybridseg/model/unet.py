"""A small noise-conditioned U-Net: the raw network F of the EDM formulation.

The noise level enters as ``c_noise`` through Fourier features and an MLP, and
modulates every residual block (scale and shift after its first norm).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 5
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    blocks_per_level: int = 1
    embedding_dim: int = 64
    # Pixels folded into channels before the stem and unfolded after the head
    # (pixel unshuffle / shuffle): 2 runs the whole network at half resolution,
    # about a quarter of the arithmetic per pixel.
    patch_size: int = 1
    # With a patch size above 1: channels of a small full-resolution head that sees the
    # unshuffled features beside the input image (0: none), for sharp object boundaries.
    full_res_channels: int = 0

    @property
    def downsample_factor(self) -> int:
        """Input sizes must be multiples of this (``Segmenter`` pads to it)."""
        return self.patch_size * 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "channel_mults" in known:
            known["channel_mults"] = tuple(int(m) for m in known["channel_mults"])
        return cls(**known)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=math.gcd(8, channels), num_channels=channels)


class FourierEmbedding(nn.Module):
    """Random Fourier features of a scalar, as in EDM's ``FourierEmbedding``."""

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale, persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = x[:, None].float() * (2 * math.pi * self.freqs[None, :])
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        h = self.conv2(h)
        return (h + self.skip(x)) / math.sqrt(2)


class UNet(nn.Module):
    """Encoder-decoder with skip connections, conditioned on ``c_noise``."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        emb = config.embedding_dim
        self.embed = nn.Sequential(
            FourierEmbedding(emb), nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        widths = [config.base_channels * m for m in config.channel_mults]
        patch_pixels = config.patch_size**2
        self.stem = nn.Conv2d(config.in_channels * patch_pixels, widths[0], 3, padding=1)

        self.down = nn.ModuleList()
        ch = widths[0]
        skip_widths = []
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(config.blocks_per_level):
                blocks.append(ResBlock(ch, width, emb))
                ch = width
            self.down.append(blocks)
            skip_widths.append(ch)
        self.middle = ResBlock(ch, ch, emb)

        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            blocks = nn.ModuleList()
            for i in range(config.blocks_per_level):
                in_ch = ch + skip_widths[level] if i == 0 else ch
                blocks.append(ResBlock(in_ch, widths[level], emb))
                ch = widths[level]
            self.up.append(blocks)
        full = config.full_res_channels if config.patch_size > 1 else 0
        head_out = (full or config.out_channels) * patch_pixels
        self.head = nn.Sequential(_group_norm(ch), nn.SiLU(), nn.Conv2d(ch, head_out, 3, padding=1))
        self.full_res_head = (
            nn.Sequential(nn.Conv2d(full + config.in_channels, full, 3, padding=1), nn.SiLU(),
                          nn.Conv2d(full, config.out_channels, 3, padding=1))
            if full else None
        )

    @property
    def output_conv(self) -> nn.Conv2d:
        """The last convolution; its output channels are the network's, each repeated patch_size² times
        in a row when a pixel shuffle follows it."""
        return self.full_res_head[-1] if self.full_res_head is not None else self.head[-1]

    @property
    def output_conv_repeats(self) -> int:
        return 1 if self.full_res_head is not None else self.config.patch_size**2

    def encode(self, x: torch.Tensor, c_noise: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The encoder's half: the bottleneck's activations, the skips and the noise embedding."""
        emb = F.silu(self.embed(c_noise))
        patch = self.config.patch_size
        h = self.stem(F.pixel_unshuffle(x, patch) if patch > 1 else x)
        skips = []
        n_levels = len(self.down)
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < n_levels - 1:
                h = F.avg_pool2d(h, 2)
        return self.middle(h, emb), skips, emb

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        h, skips, emb = self.encode(x, c_noise)
        patch = self.config.patch_size
        for i, blocks in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([h, skips.pop()], dim=1)
            for j, block in enumerate(blocks):
                h = block(h, emb)
        out = self.head(h)
        if patch == 1:
            return out
        out = F.pixel_shuffle(out, patch)
        if self.full_res_head is not None:
            out = self.full_res_head(torch.cat([F.silu(out), x], dim=1))
        return out
