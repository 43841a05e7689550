"""Predicting from a checkpoint's cached ONNX graph without importing torch.

Importing torch takes over a second, so the viewer's first prediction (the
shipped model's graph ships with the package) goes through here: the
checkpoint's header and tensors are read with numpy, the graph is looked up
by :func:`graph_key`, and ONNX Runtime runs it. :class:`GraphSegmenter`
predicts exactly what ``Segmenter.predict`` does for an image that fits in one
tile; larger images, GPUs and graphs not yet exported take the torch path.

The key hashes everything the graph depends on (architecture, weights in name
order, the exporting torch's version, the opset), read from a checkpoint file
here and from a live model in :mod:`.onnx_engine`, so both find the same file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..data.prepare import SIGMA_MIN, model_input
from ..resources import DEFAULT_MODEL

OPSET = 17
CACHE_ENV = "HYBRIDSEG_CACHE"
#: Graphs that ship with the package (the default model's), so a first launch exports nothing.
BUNDLED_GRAPHS = DEFAULT_MODEL.parent
#: Images up to this size (both sides) are predicted in one pass; larger ones are tiled (``Segmenter``).
ONE_PASS_SIZE = 1024


def default_cache_dir() -> Path:
    """``$HYBRIDSEG_CACHE``, else ``$XDG_CACHE_HOME/napari-hybridseg`` (``~/.cache/napari-hybridseg``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-hybridseg"


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def graph_key(architecture: dict[str, Any], image_channels: int, n_classes: int, sigma_data: float,
              tensors: Iterable[tuple[str, np.ndarray]]) -> str:
    """The cache key of the graph exported from a model with these properties and named weights."""
    # the defaults of options newer than the first checkpoints are left out, so those keep their keys
    later_defaults = {"patch_size": 1, "full_res_channels": 0}
    architecture = {k: v for k, v in architecture.items() if later_defaults.get(k, object()) != v}
    digest = hashlib.sha256()
    digest.update(json.dumps([architecture, int(image_channels), int(n_classes), float(sigma_data),
                              _torch_version(), OPSET], sort_keys=True).encode())
    for name, array in sorted(tensors, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


def find_graph(key: str, cache_dir: Path | None) -> Path | None:
    """The cached or bundled graph file of ``key``, if there is one."""
    name = f"{key}.onnx"
    for folder in (cache_dir, BUNDLED_GRAPHS):
        if folder is not None and (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def inference_session(graph: bytes | str, threads: int):
    """An ONNX Runtime CPU session on ``threads`` threads that sleep rather than spin when idle."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def padding(height: int, width: int, multiple: int) -> tuple[int, int, str]:
    """Bottom and right padding up to a multiple of ``multiple``, and the mode (``reflect`` or
    ``replicate``, where the image is too small to reflect). An image of one multiple×multiple block
    is padded to two blocks wide, so the coarsest level holds more than one pixel (GroupNorm needs
    more than one value per group)."""
    ph, pw = (-height) % multiple, (-width) % multiple
    if height + ph == multiple and width + pw == multiple:
        pw += multiple
    mode = "reflect" if min(height, width) > max(ph, pw) else "replicate"
    return ph, pw, mode


class GraphSegmenter:
    """The class map of an image from a checkpoint's ONNX graph, on the CPU, with numpy only.

    Made by :meth:`from_checkpoint`, which returns None where this path does not apply
    (no graph cached for the checkpoint, or ONNX Runtime missing); :meth:`predict`
    returns None for an image larger than :data:`ONE_PASS_SIZE`.
    """

    def __init__(self, session, metadata: dict[str, Any]):
        self.session = session
        self.metadata = metadata
        self.n_classes = int(metadata["n_classes"])
        self.image_channels = int(metadata["image_channels"])
        self.sigma_data = float(metadata["normalisation"]["sigma_data"])
        architecture = metadata["architecture"]
        self.factor = int(architecture.get("patch_size", 1)) * 2 ** (len(architecture["channel_mults"]) - 1)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, threads: int,
                        cache_dir: Path | None = ...) -> "GraphSegmenter | None":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
        stat = os.stat(path)
        known = _checkpoint_graph_key(str(path), stat.st_size, stat.st_mtime_ns)
        if known is None:
            return None
        metadata, key = known
        graph = find_graph(key, default_cache_dir() if cache_dir is ... else cache_dir)
        if graph is None:
            return None
        try:
            return cls(inference_session(str(graph), threads), metadata)
        except Exception:  # a damaged cache file: the torch path exports it again
            return None

    def predict(self, image: np.ndarray) -> np.ndarray | None:
        """Class map (H, W) uint8 of one raw image, or None when it needs tiling."""
        x = model_input(image, self.image_channels, self.sigma_data)
        h, w = x.shape[-2:]
        if h > ONE_PASS_SIZE or w > ONE_PASS_SIZE:
            return None
        ph, pw, mode = padding(h, w, self.factor)
        if ph or pw:
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect" if mode == "reflect" else "edge")
        sigma = np.full((1,), SIGMA_MIN, dtype=np.float32)
        _, logits = self.session.run(None, {"x": np.ascontiguousarray(x[None], dtype=np.float32), "sigma": sigma})
        return logits[0, :, :h, :w].argmax(0).astype(np.uint8)


@functools.lru_cache(maxsize=8)  # the foreground and background segmenters of a version read the file once
def _checkpoint_graph_key(path: str, size: int, mtime_ns: int) -> tuple[dict[str, Any], str] | None:
    """A checkpoint's metadata and graph key (``size`` and ``mtime_ns`` tell a rewritten file); None if damaged."""
    from safetensors.numpy import load_file

    from .checkpoint import read_metadata

    metadata = read_metadata(path)  # raises CheckpointError for a file that is not a checkpoint
    try:
        tensors = load_file(path)
        architecture = {k: v for k, v in metadata["architecture"].items() if k != "name"}  # as UNetConfig's
        key = graph_key(architecture, metadata["image_channels"], metadata["n_classes"],
                        metadata["normalisation"]["sigma_data"], tensors.items())
    except Exception:  # damaged: loading it through torch says why
        return None
    return metadata, key
