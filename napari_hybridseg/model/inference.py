"""Prediction with a loaded model: raw image in, class map out."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..data.prepare import model_input
from .onnx_graph import ONE_PASS_SIZE
from .precond import SIGMA_MIN, HybridSegModel
from .tiling import pad_to_multiple, predict_logits_tiled

__all__ = ["Segmenter", "pad_to_multiple", "resolve_device"]

log = logging.getLogger(__name__)
Engine = Literal["auto", "torch", "onnx"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    return device


class Segmenter:
    """A model with the conventions its checkpoint records, ready to predict.

    Images larger than ``tile_size`` in either dimension are predicted tile
    by tile (overlap ``overlap``, ``batch_size`` tiles per forward pass, see
    :mod:`.tiling`) so memory stays bounded; smaller ones in one pass.
    ``tile_size=None`` always predicts the whole image in one pass.
    ``batch_size=None`` is 1 on the CPU (batching gains no speed there and
    costs memory) and 4 on a GPU.

    ``engine`` runs the forward pass: ``torch``, or ``onnx`` (ONNX Runtime, CPU
    only, faster there; see :mod:`.onnx_engine`) with ``threads`` threads;
    ``auto`` is ``onnx`` on the CPU when ONNX Runtime is installed and exports
    the model, else ``torch``. ``model`` stays the torch module either way.
    ``checkpoint``, the file the model came from, lets the ONNX export run in a
    child process rather than hold this one's GIL.
    """

    def __init__(
        self,
        model: HybridSegModel,
        metadata: dict[str, Any],
        device: str | torch.device = "cpu",
        tile_size: int | None = ONE_PASS_SIZE,
        overlap: int = 64,
        batch_size: int | None = None,
        engine: Engine = "auto",
        threads: int | None = None,
        checkpoint: str | os.PathLike | None = None,
    ):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.engine, self.checkpoint = engine, Path(checkpoint) if checkpoint is not None else None
        self.forward = self._forward(engine, threads, self.checkpoint)
        self.metadata = metadata
        self.tile_size = tile_size
        self.overlap = overlap
        self.batch_size = batch_size if batch_size is not None else (1 if self.device.type == "cpu" else 4)

    def _forward(self, engine: Engine, threads: int | None, checkpoint: Path | None):
        if engine not in ("auto", "torch", "onnx"):
            raise ValueError(f"unknown engine {engine!r}: use auto, torch or onnx")
        if engine == "torch" or (engine == "auto" and self.device.type != "cpu"):
            return self.model
        from .onnx_engine import OnnxModel, onnxruntime_available

        if engine == "onnx" and self.device.type != "cpu":
            raise ValueError("the onnx engine runs on the CPU only")
        if not onnxruntime_available():
            if engine == "onnx":
                raise RuntimeError("the onnx engine needs the onnx and onnxruntime packages")
            return self.model
        try:
            return OnnxModel(self.model, threads, checkpoint=checkpoint)
        except Exception as error:  # an architecture the exporter cannot take: torch still predicts
            if engine == "onnx":
                raise
            log.warning("ONNX export failed (%s); predicting with torch", error)
            return self.model

    def with_threads(self, threads: int) -> "Segmenter":
        """The same model predicting on ``threads`` CPU threads (another ONNX Runtime session over the
        same cached graph); on a GPU, or when the engine is torch, this segmenter itself."""
        if self.forward is self.model:
            return self
        return Segmenter(self.model, self.metadata, self.device, self.tile_size, self.overlap, self.batch_size,
                         self.engine, threads, self.checkpoint)

    @classmethod
    def from_checkpoint(cls, path, device: str | torch.device = "cpu", **options: Any) -> "Segmenter":
        """Load a checkpoint; ``options`` are those of the constructor after ``device``."""
        from .checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        return cls(model, meta, device, checkpoint=path, **options)

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        x = model_input(image, self.model.image_channels, self.model.sigma_data)
        return torch.from_numpy(x)

    @torch.inference_mode()
    def logits_batch(self, x: torch.Tensor, sigma: float = SIGMA_MIN) -> torch.Tensor:
        """(B, C, H, W) normalised input → (B, K, H, W) mask logits."""
        x, (h, w) = pad_to_multiple(x.to(self.device), self.model.unet_config.downsample_factor)
        _, logits = self.forward(x, sigma)
        return logits[..., :h, :w]

    def logits(self, image: np.ndarray, sigma: float = SIGMA_MIN) -> torch.Tensor:
        """(K, H, W) float32 mask logits of one raw image, tiled when it is larger than a tile."""
        x = self.prepare(image)
        h, w = x.shape[-2:]
        if self.tile_size is None or (h <= self.tile_size and w <= self.tile_size):
            return self.logits_batch(x[None], sigma)[0]
        return predict_logits_tiled(
            self.forward, x, self.tile_size, self.overlap, self.batch_size, sigma=sigma, device=self.device
        )

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (K, H, W) float32 for one raw image."""
        return self.logits(image).softmax(0).cpu().numpy()

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map (H, W) uint8 for one raw image."""
        return self.logits(image).argmax(0).to(torch.uint8).cpu().numpy()
