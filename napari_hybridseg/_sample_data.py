"""napari sample data: one image of the bundled synthetic histology set, with its true mask."""

from __future__ import annotations

from .data.io import read_image, read_mask
from .resources import SAMPLE_DOMAIN, sample_data_root


def synthetic_histology() -> list[tuple]:
    root = sample_data_root() / SAMPLE_DOMAIN
    image_path = sorted((root / "images").glob("*.png"))[0]
    image = read_image(image_path)
    labels = read_mask(root / "labels" / image_path.name)
    return [
        (image, {"name": f"{image_path.stem}", "rgb": True}, "image"),
        (labels.astype("uint16"), {"name": f"{image_path.stem} true nuclei"}, "labels"),
    ]
