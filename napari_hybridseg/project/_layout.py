"""The zarr layout of a project: format checks, creation, and mask revisions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from ._fs import check_writable, fsync_tree, remove_tree, writing
from ._records import jsonable, node_name, now_iso

FORMAT_NAME = "napari-hybridseg-project"
FORMAT_VERSION = 1
PROJECT_SUBDIR = ".hybridseg"
STORE_NAME = "store.zarr"
REVISION_FIELD = {"accepted": "accepted", "predictions": "prediction"}  # zarr folder -> record field
_CHUNK = 1024
_SOURCES = {"folder": "a folder of image files", "arrays": "images held in the store (napari layers)"}


def chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(s, _CHUNK) for s in shape[:2]) + tuple(shape[2:])


def store_exists(project_dir: Path) -> bool:
    return (project_dir / STORE_NAME / "zarr.json").is_file()


def open_root(project_dir: Path, source: str, images_folder: Path | None) -> zarr.Group:
    """Open (checking format and kind) or create the project's zarr group; fails early when read-only."""
    store_path = project_dir / STORE_NAME
    check_writable(project_dir)
    if not store_exists(project_dir):
        return _create(store_path, source, images_folder)
    check_writable(store_path)
    try:
        root = zarr.open_group(store=LocalStore(store_path), mode="r+")
        attrs = root.attrs.asdict()
    except Exception as err:
        raise ValueError(f"{store_path} is not a readable napari-hybridseg project store ({err})") from err
    if attrs.get("format") != FORMAT_NAME:
        raise ValueError(f"{store_path} is not a napari-hybridseg project store; pick another project folder")
    if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{store_path} was written by a newer napari-hybridseg (project format {attrs['format_version']}; "
            f"this version reads up to {FORMAT_VERSION}); update napari-hybridseg to open it"
        )
    if attrs.get("source") != source:
        raise ValueError(
            f"the project at {project_dir} is for {_SOURCES.get(attrs.get('source'), 'something else')}, "
            f"not for {_SOURCES[source]}; pick another project folder"
        )
    if images_folder is not None and attrs.get("images_folder") != str(images_folder):
        with writing(project_dir):  # the folder was moved (or renamed) with its project
            root.update_attributes({"images_folder": str(images_folder)})
    return root


def _create(store_path: Path, source: str, images_folder: Path | None) -> zarr.Group:
    from .. import __version__

    with writing(store_path.parent):
        root = zarr.open_group(store=LocalStore(store_path), mode="w", zarr_format=3)
        for name, attrs in [
            ("state", {"images": {}}),
            ("session", {"position": None, "settings": {}}),
            ("model_versions", {"versions": [], "active": None}),
            ("training_log", {"runs": []}),
        ]:
            root.create_group(name, attributes=attrs)
        # the root attributes last: a store without them is not a project yet
        root.attrs.put(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "source": source,
                "images_folder": str(images_folder) if images_folder is not None else None,
                "created": now_iso(),
                "created_by": f"napari-hybridseg {__version__}",
            }
        )
    fsync_tree(store_path)
    return root


def write_revision(
    root: zarr.Group, kind: str, key: str, data: np.ndarray, attributes: dict[str, Any]
) -> tuple[int, list[Path]]:
    """Write ``data`` as a new revision ``<kind>/<node>/r<n>``; returns n and the older revisions' folders."""
    node_dir = Path(root.store.root) / kind / node_name(key)
    old = [Path(e.path) for e in os.scandir(node_dir) if e.is_dir() and e.name[:1] == "r"] if node_dir.is_dir() else []
    revision = max((int(p.name[1:]) for p in old if p.name[1:].isdigit()), default=0) + 1
    array = root.create_array(
        name=revision_name(kind, key, revision),
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks(data.shape),
        attributes=jsonable(attributes),
        overwrite=True,
    )
    array[...] = data
    return revision, old


def revision_name(kind: str, key: str, revision: int) -> str:
    return f"{kind}/{node_name(key)}/r{revision}"


def sweep_orphans(store_path: Path, images: dict[str, dict[str, Any]]) -> None:
    """Remove mask revisions that the state dict does not point to (left by a crash)."""
    for kind, field in REVISION_FIELD.items():
        base = store_path / kind
        if not base.is_dir():
            continue
        keep = {node_name(k): f"r{(r.get(field) or {}).get('revision')}" for k, r in images.items()}
        for node in os.scandir(base):
            if node.is_dir() and node.name in keep:
                for rev in os.scandir(node.path):
                    if rev.is_dir() and rev.name != keep[node.name]:
                        remove_tree(Path(rev.path))
