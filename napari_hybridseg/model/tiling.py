"""Tiled inference: mask logits for images larger than a tile, in bounded memory.

The image is covered by overlapping tiles (``tile_grid``); each tile goes
through the model on its own, and the tiles' logits are blended with a
separable window that is 1 inside a tile and falls off as a raised cosine
(``sin²``) across each overlap with a neighbouring tile, never reaching zero.
In an overlap shared by two tiles the two windows add up to exactly 1, so the
result is a smooth cross-fade from one tile's logits to the other's; image
borders are not tapered (no tile is down-weighted where nothing else covers).

Logits, not probabilities, are blended: a class map is their argmax and
probabilities are their softmax, and the whole-image path returns logits too.

Tiles start at multiples of the network's downsample factor, so pooling sees
the same pixel grid as in a whole-image pass; a tile that ends at the image
border is padded to that factor exactly as the whole image would be
(:func:`pad_to_multiple`). Normalisation is not done here: tiles are cut from
an image already normalised as a whole (``model_input``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..data.prepare import SIGMA_MIN
from .onnx_graph import padding

Span = tuple[int, int]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of (B, C, H, W) at the bottom/right up to a multiple.

    How much and how: :func:`.onnx_graph.padding`. Returns the padded tensor and the original (H, W).
    """
    h, w = x.shape[-2:]
    ph, pw, mode = padding(h, w, multiple)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


def axis_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[Span]:
    """(start, stop) of the tiles along one axis of ``length`` pixels.

    One tile when ``length <= tile``. Otherwise the fewest tiles of at most
    ``tile`` pixels that overlap by at least ``overlap``, shrunk to equal
    sizes where that covers the axis; starts are multiples of ``multiple``
    and the last tile ends at the border (it may be up to ``multiple - 1``
    pixels shorter than the others, never longer).
    """
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if multiple < 1 or tile < multiple or tile % multiple:
        raise ValueError(f"tile size {tile} must be a positive multiple of {multiple}")
    overlap = _ceil_to(max(int(overlap), 0), multiple)
    if overlap >= tile:
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile}")
    if length <= tile:
        return [(0, length)]
    n = 1 + math.ceil((length - tile) / (tile - overlap))
    size = _ceil_to(math.ceil((length + (n - 1) * overlap) / n), multiple)  # <= tile
    last = _ceil_to(length - size, multiple)  # aligned, so the last tile is <= size
    starts = sorted({(i * last // (n - 1)) // multiple * multiple for i in range(n)})
    return [(s, min(s + size, length)) for s in starts]


def tile_grid(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[slice, slice]]:
    """Row-major (rows, cols) slices of overlapping tiles covering a height×width image.

    ``tile`` must be a multiple of ``multiple`` (the model's downsample factor);
    see :func:`axis_spans` for the layout along each axis.
    """
    rows = axis_spans(height, tile, overlap, multiple)
    cols = axis_spans(width, tile, overlap, multiple)
    return [(slice(*r), slice(*c)) for r in rows for c in cols]


def _ramp(n: int) -> torch.Tensor:
    """sin² rising over ``n`` pixels, sampled at pixel centres: in (0, 1), never 0."""
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.sin(t * (math.pi / 2)) ** 2


def axis_windows(spans: Sequence[Span], length: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Blending weights of each tile along one axis, and their sum over tiles (float32).

    A tile tapers only across its overlap with the previous/next tile; two
    overlapping tiles' weights then sum to 1 there (sin² + cos²).
    """
    windows = []
    total = torch.zeros(length, dtype=torch.float64)
    for i, (a, b) in enumerate(spans):
        n = b - a
        w = torch.ones(n, dtype=torch.float64)
        left = min(max(spans[i - 1][1] - a, 0), n) if i > 0 else 0
        right = min(max(b - spans[i + 1][0], 0), n) if i + 1 < len(spans) else 0
        if left:
            w[:left] = torch.minimum(w[:left], _ramp(left))
        if right:
            w[n - right :] = torch.minimum(w[n - right :], _ramp(right).flip(0))
        windows.append(w.float())
        total[a:b] += w
    return windows, total.float()


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@torch.inference_mode()
def predict_logits_tiled(
    model: nn.Module | Callable[..., tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    sigma: float = SIGMA_MIN,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Blended mask logits (K, H, W) float32 of a normalised (C, H, W) image.

    ``model`` is a :class:`HybridSegModel` in eval mode, or anything called like
    one (an ``OnnxModel``); ``device`` defaults to the model's (the CPU for a
    model without parameters). ``tile`` is rounded down to the model's downsample factor.
    Memory: the (K, H, W) result plus one batch of ``batch_size`` tiles
    through the network; ``x`` itself may stay on the CPU.
    """
    if x.ndim != 3:
        raise ValueError(f"expected a (C, H, W) image, got shape {tuple(x.shape)}")
    param = next(model.parameters()) if isinstance(model, nn.Module) else torch.zeros(())
    device = param.device if device is None else torch.device(device)
    factor = model.unet_config.downsample_factor
    tile = max(factor, tile // factor * factor)
    _, h, w = x.shape
    rows, cols = axis_spans(h, tile, overlap, factor), axis_spans(w, tile, overlap, factor)
    row_w, row_sum = axis_windows(rows, h)
    col_w, col_sum = axis_windows(cols, w)
    row_w, col_w = [t.to(device) for t in row_w], [t.to(device) for t in col_w]

    out = torch.zeros((model.n_classes, h, w), dtype=torch.float32, device=device)
    jobs = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    for chunk in _batches(jobs, max(1, int(batch_size))):
        tiles = []
        for i, j in chunk:
            (y0, y1), (x0, x1) = rows[i], cols[j]
            t = x[None, :, y0:y1, x0:x1].to(device=device, dtype=param.dtype)
            tiles.append(pad_to_multiple(t, factor)[0])
        _, logits = model(torch.cat(tiles), sigma)
        for (i, j), tile_logits in zip(chunk, logits):
            (y0, y1), (x0, x1) = rows[i], cols[j]
            weight = row_w[i][:, None] * col_w[j][None, :]
            out[:, y0:y1, x0:x1].addcmul_(tile_logits[:, : y1 - y0, : x1 - x0].float(), weight)
        del logits, tiles
    out /= row_sum.to(device)[:, None]
    out /= col_sum.to(device)
    return out
