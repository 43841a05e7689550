"""Labelled image sets on disk.

Two layouts are understood:

* the shared layout: ``<root>/<domain>/{images,labels}/<id>.png`` with fixed
  splits in ``<root>/splits.json`` (``{domain: {split: [ids]}}``);
* a plain pair of folders: images, and masks with matching file names (stems).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import ImageReadError, list_images, read_image, read_mask


@dataclass
class Sample:
    id: str
    image: np.ndarray
    labels: np.ndarray | None = None


def read_splits(root: str | os.PathLike) -> dict[str, dict[str, list[str]]]:
    path = Path(root) / "splits.json"
    if not path.is_file():
        raise FileNotFoundError(f"no splits.json in {root}: expected <root>/<domain>/images and <root>/splits.json")
    return json.loads(path.read_text())


def split_ids(root: str | os.PathLike, domain: str, split: str) -> list[str]:
    splits = read_splits(root)
    if domain not in splits:
        raise KeyError(f"domain {domain!r} is not in {root}/splits.json (has: {', '.join(splits)})")
    if split not in splits[domain]:
        raise KeyError(f"split {split!r} is not defined for {domain!r} (has: {', '.join(splits[domain])})")
    return list(splits[domain][split])


def _find(folder: Path, stem: str) -> Path | None:
    for p in list_images(folder) if folder.is_dir() else []:
        if p.stem == stem:
            return p
    return None


def load_domain(
    root: str | os.PathLike,
    domain: str,
    split: str | None = None,
    ids: list[str] | None = None,
    with_labels: bool = True,
) -> list[Sample]:
    """Samples of one domain of the shared layout, by split or by explicit ids."""
    root = Path(root)
    base = root / domain
    if not (base / "images").is_dir():
        raise FileNotFoundError(f"{base}/images does not exist")
    if ids is None:
        ids = split_ids(root, domain, split) if split else [p.stem for p in list_images(base / "images")]
    samples = []
    for sample_id in ids:
        image_path = base / "images" / f"{sample_id}.png"
        if not image_path.exists():
            image_path = _find(base / "images", sample_id)
            if image_path is None:
                raise FileNotFoundError(f"image {sample_id!r} not found in {base / 'images'}")
        labels = None
        if with_labels:
            label_path = base / "labels" / image_path.name
            if not label_path.exists():
                raise FileNotFoundError(f"no label image for {sample_id!r} in {base / 'labels'}")
            labels = read_mask(label_path)
        samples.append(Sample(sample_id, read_image(image_path), labels))
    _check_shapes(samples)
    return samples


def load_folder_pair(images_dir: str | os.PathLike, masks_dir: str | os.PathLike | None = None) -> list[Sample]:
    """Images from one folder and (optionally) masks with the same stems from another."""
    samples = []
    for image_path in list_images(images_dir):
        labels = None
        if masks_dir is not None:
            mask_path = _find(Path(masks_dir), image_path.stem)
            if mask_path is None:
                raise FileNotFoundError(f"no mask for {image_path.name} in {masks_dir}")
            labels = read_mask(mask_path)
        samples.append(Sample(image_path.stem, read_image(image_path), labels))
    if not samples:
        raise FileNotFoundError(f"no PNG, TIFF or JPEG images in {images_dir}")
    _check_shapes(samples)
    return samples


def _check_shapes(samples: list[Sample]) -> None:
    for s in samples:
        if s.labels is not None and s.labels.shape != s.image.shape[:2]:
            raise ImageReadError(f"mask of {s.id!r} has shape {s.labels.shape}, image has {s.image.shape[:2]}")


def choose_subset(ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` ids drawn without replacement; the same (ids, n, seed) gives the same subset,
    and a larger n with the same seed extends the smaller one."""
    if n > len(ids):
        raise ValueError(f"asked for {n} labelled images but only {len(ids)} are available")
    order = np.random.default_rng(seed).permutation(len(ids))
    return [ids[i] for i in order[:n]]
