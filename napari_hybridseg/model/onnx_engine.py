"""The model's forward pass run by ONNX Runtime: faster inference on the CPU.

On a small CPU, ONNX Runtime's convolutions run this U-Net 1.4–2× faster than
PyTorch's (``python -m training.bench_speed``). :class:`OnnxModel` is called
exactly like :class:`HybridSegModel` for inference, ``(x, σ) → (denoised,
logits)``, so tiling, prediction and scoring take either.

The model is exported once per set of weights and cached on disk (keyed by a
hash of the weights and the exporter's version), so opening a project again
does not pay for the export; the shipped model's graph ships with the package
(``python -m napari_hybridseg.model.onnx_engine MODEL napari_hybridseg/models``
writes it). When the weights come from a checkpoint file, the
export runs in a child process (``python -m napari_hybridseg.model.onnx_engine``):
the exporter holds Python's GIL for up to a few hundred milliseconds at a time,
which in the viewer's process would freeze the viewer. The cache holds ONNX graphs this package wrote
itself; ONNX is protobuf data, never pickled code, and a cached file that does
not load is exported again.
"""

from __future__ import annotations

import importlib.util

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from ..atomic import atomic_path
from .onnx_graph import BUNDLED_GRAPHS, CACHE_ENV, OPSET, default_cache_dir, find_graph, graph_key, inference_session
from .precond import HybridSegModel

__all__ = ["BUNDLED_GRAPHS", "CACHE_ENV", "OnnxModel", "cache_graph", "default_cache_dir", "export_in_child_process",
           "export_onnx", "onnxruntime_available", "weights_key"]

log = logging.getLogger(__name__)


def onnxruntime_available() -> bool:
    # onnx (the exporter's) is only looked up: importing it holds Python's lock for about a second, a stall of
    # the viewer even from a worker thread, and the export runs in a child process anyway
    if importlib.util.find_spec("onnx") is None:
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def weights_key(model: HybridSegModel) -> str:
    """A hash of everything the exported graph depends on (see :func:`.onnx_graph.graph_key`)."""
    tensors = ((name, t.detach().cpu().contiguous().numpy()) for name, t in model.state_dict().items())
    return graph_key(model.unet_config.to_dict(), model.image_channels, model.n_classes, model.sigma_data, tensors)


def export_onnx(model: HybridSegModel) -> bytes:
    """The inference graph: inputs ``x`` (B, C, H, W) and ``sigma`` (B,), outputs ``denoised`` and ``logits``."""
    model = model.eval()
    factor = model.unet_config.downsample_factor
    x = torch.zeros(1, model.image_channels, 2 * factor, 2 * factor)
    sigma = torch.ones(1)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(
            model, (x, sigma), buffer, dynamo=False, opset_version=OPSET,
            input_names=["x", "sigma"], output_names=["denoised", "logits"],
            dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}, "sigma": {0: "batch"}},
        )
    return buffer.getvalue()


EXPORT_TIMEOUT_S = 300


def cache_graph(model: HybridSegModel, cache_dir: Path) -> bytes:
    """Export ``model`` and store the graph in ``cache_dir`` (atomically); returns the graph."""
    graph = export_onnx(model)
    _store(graph, Path(cache_dir) / f"{weights_key(model)}.onnx")
    return graph


def _store(graph: bytes, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(graph)


def export_in_child_process(checkpoint: Path, cache_dir: Path) -> bool:
    """Export ``checkpoint``'s graph into ``cache_dir`` from a child process; False if that failed."""
    command = [sys.executable, "-m", __name__, str(checkpoint), str(cache_dir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.info("the ONNX export process did not run: %s", error)
        return False
    if done.returncode != 0:
        log.info("the ONNX export process failed: %s", done.stderr.strip()[-2000:])
    return done.returncode == 0


class OnnxModel:
    """A :class:`HybridSegModel` for inference on the CPU through ONNX Runtime.

    ``threads`` is ONNX Runtime's intra-op thread count (default: torch's current
    setting, which is per OS thread); its threads sleep rather than spin when idle,
    so a background prediction leaves the other core to the viewer. ``checkpoint``,
    the file ``model`` was loaded from, lets a missing graph be exported in a child
    process; without it the export runs here.
    """

    def __init__(self, model: HybridSegModel, threads: int | None = None, cache_dir: Path | None = ...,
                 checkpoint: Path | None = None):
        self.image_channels = model.image_channels
        self.n_classes = model.n_classes
        self.sigma_data = model.sigma_data
        self.unet_config = model.unet_config
        self.threads = max(1, threads or torch.get_num_threads())
        cache_dir = default_cache_dir() if cache_dir is ... else cache_dir
        graph = self._cached_graph(model, cache_dir, checkpoint=checkpoint)
        try:
            self.session = inference_session(graph, self.threads)
        except Exception as error:  # a damaged cache file: export afresh
            log.warning("cached ONNX graph does not load (%s); exporting again", error)
            graph = self._cached_graph(model, cache_dir, refresh=True)
            self.session = inference_session(graph, self.threads)

    @staticmethod
    def _cached_graph(model: HybridSegModel, cache_dir: Path | None, refresh: bool = False,
                      checkpoint: Path | None = None) -> bytes:
        if cache_dir is None:
            return export_onnx(model)
        key = weights_key(model)
        path = Path(cache_dir) / f"{key}.onnx"
        if not refresh:
            known = find_graph(key, Path(cache_dir))
            if known is not None:
                return known.read_bytes()
            if checkpoint is not None and export_in_child_process(checkpoint, Path(cache_dir)) and path.is_file():
                return path.read_bytes()
        graph = export_onnx(model)
        try:
            _store(graph, path)
        except OSError as error:  # a read-only or full cache only costs the export next time
            log.info("could not cache the ONNX graph in %s: %s", cache_dir, error)
        return graph

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        if x.device.type != "cpu":
            raise ValueError("OnnxModel runs on the CPU; use the torch model on a GPU")
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(x.shape[0])
        denoised, logits = self.session.run(
            None, {"x": x.detach().float().contiguous().numpy(), "sigma": sigma.contiguous().numpy()}
        )
        return torch.from_numpy(denoised), torch.from_numpy(logits)


def _export_checkpoint(checkpoint: str, cache_dir: str) -> None:
    """The child process of :func:`export_in_child_process`: one export into the cache, at low priority."""
    from .checkpoint import load_checkpoint

    if hasattr(os, "nice"):
        os.nice(10)
    torch.set_num_threads(1)
    model, _ = load_checkpoint(checkpoint)
    cache_graph(model, Path(cache_dir))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python -m {__spec__.name if __spec__ else 'onnx_engine'} CHECKPOINT CACHE_DIR")
    _export_checkpoint(sys.argv[1], sys.argv[2])
