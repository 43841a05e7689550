"""Tiled inference: the tile grid, the blending windows, agreement with whole-image prediction."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from napari_hybridseg.data.prepare import model_input
from napari_hybridseg.model import tiling
from napari_hybridseg.model.checkpoint import model_metadata
from napari_hybridseg.model.inference import Segmenter
from napari_hybridseg.model.precond import HybridSegModel
from napari_hybridseg.model.tiling import (
    axis_spans,
    axis_windows,
    pad_to_multiple,
    predict_logits_tiled,
    tile_grid,
)


def tiny_model(seed: int = 0) -> HybridSegModel:
    torch.manual_seed(seed)
    return HybridSegModel(3, 2, base_channels=8, channel_mults=(1, 2)).eval()


class BlockLocal(nn.Module):
    """A stand-in with the model's interface whose output at a pixel depends only on that
    pixel and its aligned factor×factor block: tiling must reproduce it exactly, but only
    if tiles are aligned to the factor and padded at the border as the whole image is."""

    def __init__(self, image_channels: int = 3, n_classes: int = 2, factor: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.image_channels, self.n_classes, self.sigma_data = image_channels, n_classes, 0.5
        self.unet_config = SimpleNamespace(downsample_factor=factor)
        self.pixel = nn.Conv2d(image_channels, n_classes, 1)
        self.block = nn.Conv2d(image_channels, n_classes, 1)
        self.largest_batch: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.unet_config.downsample_factor
        assert x.shape[-2] % f == 0 and x.shape[-1] % f == 0
        if x.numel() > int(np.prod(self.largest_batch or (0,))):
            self.largest_batch = tuple(x.shape)
        coarse = F.interpolate(F.avg_pool2d(self.block(x), f), scale_factor=f, mode="nearest")
        return x, self.pixel(x) + torch.tanh(coarse) * 3


def whole_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    with torch.inference_mode():
        padded, _ = pad_to_multiple(x[None], model.unet_config.downsample_factor)
        return model(padded, 0.002)[1][0, :, :h, :w]


def textured(shape: tuple[int, ...], seed: int = 0, gradient: float = 0.3) -> np.ndarray:
    """Blobs on a brightness gradient (grey levels per row) plus noise, uint8."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[:h, :w]
    base = (np.sin(xx / 9.0) * np.cos(yy / 13.0) > 0.3) * 120 + yy * gradient + rng.normal(20, 8, (h, w))
    if len(shape) == 3:
        base = np.stack([np.roll(base, 7 * c, axis=1) for c in range(shape[2])], axis=-1)
    return base.clip(0, 255).astype(np.uint8)


# --- the grid ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height,width,tile,overlap,multiple",
    [(300, 260, 128, 32, 8), (2048, 2048, 512, 64, 8), (1100, 700, 512, 64, 8), (1, 5000, 512, 64, 8),
     (129, 129, 128, 32, 8), (513, 1000, 512, 60, 8), (97, 1031, 64, 16, 2), (50, 40, 16, 0, 1)],
)
def test_grid_covers_every_pixel_within_bounds(height, width, tile, overlap, multiple):
    grid = tile_grid(height, width, tile, overlap, multiple)
    count = np.zeros((height, width), int)
    for rows, cols in grid:
        assert 0 <= rows.start < rows.stop <= height and 0 <= cols.start < cols.stop <= width
        assert rows.stop - rows.start <= tile and cols.stop - cols.start <= tile
        assert rows.start % multiple == 0 and cols.start % multiple == 0
        count[rows, cols] += 1
    assert count.min() >= 1
    for length in (height, width):
        spans = axis_spans(length, tile, overlap, multiple)
        assert spans[0][0] == 0 and spans[-1][1] == length  # the last tile ends at the border
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a0 < b0 and a1 < b1 and a1 - b0 >= overlap  # ordered, overlapping enough
        # every tile pads to the same shape: tiles can be batched
        assert len({-(-(b - a) // multiple) * multiple for a, b in spans}) == 1


def test_grid_counts():
    assert len(tile_grid(300, 260, 128, 32, 8)) == 9
    assert axis_spans(300, 128, 32, 8) == [(0, 128), (88, 216), (176, 300)]
    assert len(tile_grid(2048, 2048, 512, 64, 8)) == 25  # 5 × 5 tiles of 464 px
    assert len(tile_grid(1, 5000, 512, 64, 8)) == 12
    assert tile_grid(100, 80, 128, 32, 8) == [(slice(0, 100), slice(0, 80))]
    assert tile_grid(128, 128, 128, 32, 8) == [(slice(0, 128), slice(0, 128))]


def test_grid_refuses_bad_sizes():
    with pytest.raises(ValueError):
        tile_grid(300, 300, 100, 32, 8)  # not a multiple of the factor
    with pytest.raises(ValueError):
        tile_grid(300, 300, 128, 128, 8)  # overlap as big as a tile
    with pytest.raises(ValueError):
        tile_grid(0, 300, 128, 32, 8)


def test_windows_are_positive_and_cross_fade():
    spans = axis_spans(1000, 256, 64, 8)
    windows, total = axis_windows(spans, 1000)
    assert all(float(w.min()) > 0 and float(w.max()) <= 1 for w in windows)
    assert windows[0][0] == 1 and windows[-1][-1] == 1  # image borders are not tapered
    torch.testing.assert_close(total, torch.ones(1000))  # two tiles' windows add up to 1


# --- agreement with whole-image prediction ----------------------------------------------------


@pytest.mark.parametrize("shape", [(300, 260), (203, 517, 3)], ids=["grey", "rgb"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_tiled_equals_whole_for_a_block_local_model(shape, batch_size):
    """Coverage, alignment, border padding and weight normalisation are exact."""
    model = BlockLocal().eval()
    x = torch.from_numpy(model_input(textured(shape), 3))
    tiled = predict_logits_tiled(model, x, tile=128, overlap=32, batch_size=batch_size)
    assert model.largest_batch[0] <= batch_size and max(model.largest_batch[-2:]) <= 128  # bounded memory
    assert tiled.shape == (2, *shape[:2]) and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, whole_logits(model, x), atol=1e-5, rtol=1e-5)


def test_normalisation_is_global_not_per_tile():
    """Through the Segmenter, tiles are cut from the image normalised as a whole."""
    model = BlockLocal()
    image = textured((300, 260, 3))
    tiled = Segmenter(model, {}, "cpu", tile_size=128, overlap=32, engine="torch").probabilities(image)
    whole = Segmenter(model, {}, "cpu", tile_size=None, engine="torch").probabilities(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def standalone_tiles(model: nn.Module, x: torch.Tensor, tile: int, overlap: int) -> list:
    """Each tile's logits from its own forward pass, with where it lies."""
    out = []
    for rows, cols in tile_grid(*x.shape[-2:], tile, overlap, model.unet_config.downsample_factor):
        out.append((rows, cols, whole_logits(model, x[:, rows, cols])))
    return out


@pytest.mark.parametrize("shape", [(300, 260), (300, 260, 3)], ids=["grey", "rgb"])
def test_blend_is_a_convex_combination_of_the_tiles(shape):
    """With the real network, each output pixel is a weighted mean of the logits the tiles
    covering it give on their own, and equals that tile's logits where only one covers it."""
    model = tiny_model()
    x = torch.from_numpy(model_input(textured(shape), 3))
    tiled = predict_logits_tiled(model, x, tile=128, overlap=32, batch_size=4)
    low = torch.full_like(tiled, float("inf"))
    high = torch.full_like(tiled, float("-inf"))
    count = torch.zeros(shape[:2])
    for rows, cols, logits in standalone_tiles(model, x, 128, 32):
        low[:, rows, cols] = torch.minimum(low[:, rows, cols], logits)
        high[:, rows, cols] = torch.maximum(high[:, rows, cols], logits)
        count[rows, cols] += 1
    assert bool((tiled >= low - 1e-5).all() and (tiled <= high + 1e-5).all())
    single = count == 1
    assert single.float().mean() > 0.3
    torch.testing.assert_close(tiled[:, single], low[:, single], atol=1e-5, rtol=1e-5)
    # and the blend is smooth: no jump at tile borders larger than the jumps between neighbours elsewhere
    step = (tiled[:, 1:] - tiled[:, :-1]).abs().amax(dim=(0, 2))
    assert float(step.max()) < 3 * float(step.median()) + 0.5


@pytest.mark.parametrize("shape", [(300, 260), (300, 260, 3)], ids=["grey", "rgb"])
def test_tiled_agrees_with_whole_for_the_network(shape):
    """The real network is not local (GroupNorm statistics are per tile, the receptive field
    is wide), so tiles cannot match a whole-image pass exactly; on a texture without an
    illumination gradient (tile statistics close to the image's) they must stay close.
    A broken blend (unnormalised weights, shifted tiles) fails these by far."""
    model = tiny_model()
    x = torch.from_numpy(model_input(textured(shape, gradient=0.0), 3))
    whole = whole_logits(model, x)
    tiled = predict_logits_tiled(model, x, tile=128, overlap=32, batch_size=4)
    diff = (tiled - whole).abs()
    scale = float(whole.std())
    assert float(diff.mean()) < 0.1 * scale
    assert float(diff.max()) < 2 * scale
    assert float((tiled.argmax(0) == whole.argmax(0)).float().mean()) >= 0.95


def test_image_within_a_tile_is_predicted_whole(monkeypatch):
    calls = []
    monkeypatch.setattr("napari_hybridseg.model.inference.predict_logits_tiled",
                        lambda *a, **k: calls.append(1) or tiling.predict_logits_tiled(*a, **k))
    model = tiny_model()
    segmenter = Segmenter(model, model_metadata(model), "cpu", tile_size=128, engine="torch")
    image = textured((128, 100, 3))
    x = torch.from_numpy(model_input(image, 3))
    torch.testing.assert_close(segmenter.logits(image), whole_logits(model, x))
    assert calls == []
    # the tiled function itself also uses one tile (= the whole image) for a small image
    torch.testing.assert_close(predict_logits_tiled(model, x, tile=128), whole_logits(model, x))
    segmenter.predict(textured((129, 100, 3)))
    assert calls == [1]


# --- the Segmenter on awkward sizes ------------------------------------------------------------


def test_segmenter_predicts_a_large_image():
    model = tiny_model()
    segmenter = Segmenter(model, model_metadata(model), "cpu")
    image = textured((1100, 700, 3))
    labels = segmenter.predict(image)
    assert labels.shape == (1100, 700) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    probs = segmenter.probabilities(image[:600, :530])
    assert probs.shape == (2, 600, 530) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 5000), (5000, 1), (3, 700)])
def test_tiny_and_strip_images(shape):
    model = tiny_model()
    segmenter = Segmenter(model, model_metadata(model), "cpu", tile_size=256, overlap=32)
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    labels = segmenter.predict(image)
    assert labels.shape == shape[:2] and labels.dtype == np.uint8
    probs = segmenter.probabilities(image)
    assert probs.shape == (2, *shape[:2]) and np.isfinite(probs).all()
