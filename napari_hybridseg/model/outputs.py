"""What a model's mask logits mean: its kind of output, as the checkpoint's metadata records it.

* ``semantic`` (the default, and every checkpoint that names no output): one class per kind of tissue or
  object, background first. A binary model's mask is split into objects by connected components.
* ``instances``: three classes, background / interior / boundary, where *boundary* is the rim of each
  object, ``boundary_width`` pixels wide, along the background and along every object it touches. The
  interior's connected components seed a watershed that floods the foreground (interior and boundary),
  so touching objects come out as separate objects (see :mod:`.split`).

Nothing here needs torch: the viewer reads a checkpoint's output kind before any model is loaded.
"""

from __future__ import annotations

from typing import Any, Mapping

SEMANTIC, INSTANCES = "semantic", "instances"
OUTPUTS = (SEMANTIC, INSTANCES)
INSTANCE_CLASS_NAMES = ("background", "interior", "boundary")
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
#: Pixels of an object within this distance (4-connected steps) of another object or of the background are
#: its boundary: two touching objects are then parted by a line four pixels wide, which a model that works at
#: half resolution (patch size 2) can draw. The ceiling it costs: the true targets of DSB 2018, split back into
#: objects, match the true nuclei with F1 0.990 (fluorescence val) and 0.965 (histology test) at width 2,
#: against 0.995 and 0.986 at width 1 (and 0.891 and 0.830 for connected components of the true masks).
DEFAULT_BOUNDARY_WIDTH = 2


def check_output(output: str, n_classes: int, boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> None:
    """Raise ValueError, saying why, for an output kind a model with ``n_classes`` classes cannot have."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    if output == INSTANCES and n_classes != len(INSTANCE_CLASS_NAMES):
        raise ValueError(f"an instances model has {len(INSTANCE_CLASS_NAMES)} classes "
                         f"({', '.join(INSTANCE_CLASS_NAMES)}), not {n_classes}")
    if output == INSTANCES and not (isinstance(boundary_width, int) and 1 <= boundary_width <= 16):
        raise ValueError(f"boundary_width must be a whole number of pixels from 1 to 16, not {boundary_width!r}")


def output_kind(metadata: Mapping[str, Any]) -> str:
    """``semantic`` or ``instances``; a checkpoint that names no output is semantic. Raises ValueError for
    metadata whose output does not fit its classes."""
    output = metadata.get("output", SEMANTIC)
    check_output(output, int(metadata.get("n_classes", 2)), boundary_width_of(metadata))
    return output


def boundary_width_of(metadata: Mapping[str, Any]) -> int:
    """The boundary width an instances model was trained with."""
    return metadata.get("boundary_width", DEFAULT_BOUNDARY_WIDTH)


def output_metadata(output: str, n_classes: int, boundary_width: int = DEFAULT_BOUNDARY_WIDTH) -> dict[str, Any]:
    """The metadata entries that describe a model's output (to add to a checkpoint's metadata): none for a
    semantic model, whose checkpoints stay as they always were."""
    check_output(output, n_classes, boundary_width)
    if output == SEMANTIC:
        return {}
    return {"output": INSTANCES, "class_names": list(INSTANCE_CLASS_NAMES), "boundary_width": boundary_width}
