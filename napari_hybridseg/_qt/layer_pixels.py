"""Showing the next image and mask in the same napari layers, without napari rebuilding them.

Assigning ``layer.data`` makes napari recompute the dimensions of every layer
and, for a Labels layer, rebuild its colormap shader: under software OpenGL
that costs 10–15 ms of each navigation on the GUI thread (measured with
``training/bench_ui_latency.py``'s navigating user). When the new array has
the layer's shape and dtype, :func:`show_pixels` copies it into the layer's own
array and refreshes the layer instead.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels


def _copy_into(layer: Image | Labels, data: np.ndarray) -> bool:
    current = layer.data
    if not (isinstance(current, np.ndarray) and current.flags.writeable
            and current.shape == data.shape and current.dtype == data.dtype):
        return False
    if isinstance(layer, Labels):
        reset_history = getattr(layer, "_reset_history", None)
        if reset_history is None:  # a napari without it: assigning .data resets the undo history instead
            return False
        reset_history()  # an undo must never replay the previous image's strokes onto this one
    np.copyto(current, data)
    layer.refresh()
    if isinstance(layer, Image) and getattr(layer, "auto_contrast", False):
        layer.reset_contrast_limits()  # as assigning .data does
    return True


def show_pixels(layer: Image | Labels, data: np.ndarray) -> None:
    """Make ``layer`` show ``data``: copied into its array when shapes and dtypes match, else assigned
    as a writable copy that the layer owns (so that the next one can be copied in)."""
    if not _copy_into(layer, data):
        layer.data = np.array(data)
