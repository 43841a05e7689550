"""Checkpoints: one safetensors file, its JSON metadata in the safetensors header.

Loading never unpickles: the file is parsed as safetensors (a JSON header and
raw tensor bytes) and anything else is refused with a message that says why.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import safe_open

from ..atomic import atomic_path
from .outputs import output_kind

if TYPE_CHECKING:  # torch is imported where a model is built, so that reading a header does not need it
    import torch

    from .precond import HybridSegModel

FORMAT_NAME = "napari-hybridseg"
FORMAT_VERSION = 1
METADATA_KEY = "napari_hybridseg"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that is not a usable napari-hybridseg checkpoint."""


def build_model(metadata: dict[str, Any]) -> HybridSegModel:
    from .precond import HybridSegModel

    arch = metadata["architecture"]
    if arch.get("name") != "unet":
        raise CheckpointError(f"unknown architecture {arch.get('name')!r}")
    unet = {k: v for k, v in arch.items() if k not in ("name", "in_channels", "out_channels")}
    if int(unet.get("base_channels", 16)) * max(unet.get("channel_mults", [1])) > 4096:
        raise CheckpointError("the architecture in this checkpoint is implausibly large")
    output_kind(metadata)  # an output that does not fit the classes: ValueError, said as unusable metadata
    if "channel_mults" in unet:
        unet["channel_mults"] = tuple(unet["channel_mults"])
    return HybridSegModel(
        image_channels=int(metadata["image_channels"]),
        n_classes=int(metadata["n_classes"]),
        sigma_data=float(metadata["normalisation"]["sigma_data"]),
        **unet,
    )


def model_metadata(model: HybridSegModel, **extra: Any) -> dict[str, Any]:
    """The metadata that describes ``model``; ``extra`` adds training facts."""
    from .. import __version__

    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "architecture": {"name": "unet", **model.unet_config.to_dict()},
        "image_channels": model.image_channels,
        "channel_convention": "grey images are replicated to 3 channels, RGBA loses alpha"
        if model.image_channels == 3
        else "RGB images are converted to luminance, RGBA loses alpha",
        "n_classes": model.n_classes,
        "class_names": ["background", "foreground"] if model.n_classes == 2 else [f"class {i}" for i in range(model.n_classes)],
        "normalisation": {"kind": "per_image_zscore", "sigma_data": model.sigma_data},
    }
    meta.update(extra)
    return meta


def _sniff(path: Path) -> None:
    """Refuse files that are plainly not safetensors, before any parsing."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len <= min(size - 8, _MAX_HEADER_BYTES) and head[8:9] == b"{":
            return  # a plausible safetensors header
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path.name} is a pickled PyTorch file (.pt/.pth), not a safetensors checkpoint. "
            "Pickles can run arbitrary code when loaded, so napari-hybridseg refuses them."
        )
    if len(head) < 9:
        raise CheckpointError(f"{path.name} is too short to be a checkpoint ({size} bytes)")
    raise CheckpointError(f"{path.name} is not a safetensors checkpoint (or it is truncated)")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    _sniff(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path.name} is damaged or truncated: {err}") from None
    if raw is None:
        raise CheckpointError(f"{path.name} is a safetensors file but not a napari-hybridseg checkpoint (no metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name} has unreadable metadata")
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path.name} has format {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path.name} was written by a newer napari-hybridseg (format {meta['format_version']})")
    return meta


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[HybridSegModel, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`; raises CheckpointError."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        model = build_model(meta)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path.name} has unusable metadata: {err}") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise CheckpointError(f"{path.name} is damaged or truncated: {err}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{path.name} does not match its declared architecture: {first}") from None
    return model.to(device).eval(), meta


def save_checkpoint(path: str | os.PathLike, model: HybridSegModel, metadata: dict[str, Any]) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, rename."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path, fsync=True) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(metadata)})
    return path
