"""The on-disk project store: images, their states and masks, model versions, session.

Layout of a project folder (default ``<images_folder>/.hybridseg/``)::

    store.zarr/                 zarr v3 group; root attributes: format, format_version, source, ...
      state/                    attributes {"images": {key: record}}  (ONE dict for all images)
      session/                  attributes {"position": key, "settings": {...}}
      model_versions/           attributes {"versions": [...], "active": id}
      training_log/             attributes {"runs": [...]}; training_log/<run>/ {"run", "entries"}
      images/<node>             pixels of images that are not files (from_arrays), chunked
      predictions/<node>/r<n>   latest prediction of an image
      accepted/<node>/r<n>      the accepted mask of an image (one revision kept)
    models/vNNNN.safetensors    fine-tuned checkpoints

``<node>`` is a file-system-safe name derived from the image key (``node_name``).
A mask is written as a new revision first and the state dict is switched to it
afterwards (zarr's LocalStore writes each key atomically: temporary file + rename),
so a crash leaves the previous mask or the new one visible, never a mix.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import zarr

from ..data.io import as_2d_image, list_images
from ..data.io import read_image as _read_image_file
from ._pixel_cache import ArrayCache, PixelCache
from ._probe import probe_image_file
from ._fs import fsync_path, fsync_tree, remove_tree, writing
from ._layout import (
    PROJECT_SUBDIR,
    STORE_NAME,
    chunks,
    open_root,
    revision_name,
    store_exists,
    sweep_orphans,
    write_revision,
)
from ._records import ImageRecord, new_record, node_name, now_iso, record_from_json, validate_mask
from ._registry import ModelRegistry
from ._session import Session, TrainingLog


class ProjectStore:
    """A labelling project; create or resume one with :meth:`open` or :meth:`from_arrays`.

    Methods are thread-safe (one lock), so a background worker may save
    predictions, model versions or training logs while the viewer accepts masks.
    ``problems`` lists what was found wrong on opening (unusable model versions, ...).
    """

    def __init__(self, project_dir: Path, root: zarr.Group, images_folder: Path | None):
        self.project_dir = project_dir
        self.store_path = project_dir / STORE_NAME
        self.models_dir = project_dir / "models"
        self.images_folder = images_folder
        self.problems: list[str] = []
        self._root = root
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Any]] = dict(root["state"].attrs.asdict()["images"])
        self._session = Session(root["session"], project_dir)
        self._log = TrainingLog(root, project_dir, self._lock)
        metadata_file = self.store_path / "model_versions" / "zarr.json"
        self._registry = ModelRegistry(root["model_versions"], self.models_dir, metadata_file, self._lock)
        self._batch_depth = 0
        self._dirty = False
        self._pending_cleanup: list[Path] = []
        self._pixels = PixelCache()
        self._masks = ArrayCache()  # the latest revisions read or written, so showing one reads no zarr

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, images_folder: str | os.PathLike, project_dir: str | os.PathLike | None = None) -> ProjectStore:
        """Create or resume the project for a folder of PNG/TIFF/JPEG images (pixels are not read)."""
        folder = Path(images_folder).expanduser().absolute()
        if not folder.is_dir():
            raise FileNotFoundError(f"the image folder {folder} does not exist (or is not a folder)")
        files = [p.name for p in list_images(folder)]
        project = Path(project_dir).expanduser().absolute() if project_dir is not None else folder / PROJECT_SUBDIR
        if not files and not store_exists(project):
            raise FileNotFoundError(f"no PNG, TIFF or JPEG images in {folder}; pick a folder that holds images")
        store = cls._load(project, "folder", folder)
        store._sync_folder(files)
        if not files:
            store.problems.append(f"no images are left in {folder}; their accepted masks are kept in the project")
        return store

    @classmethod
    def from_arrays(cls, named_images: Mapping[str, np.ndarray], project_dir: str | os.PathLike) -> ProjectStore:
        """Create or resume a project for in-memory images (e.g. napari layers); pixels go into the store."""
        if not named_images:
            raise ValueError("no images given: from_arrays needs at least one named image")
        arrays = {}
        for name, array in named_images.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"image names must be non-empty strings, got {name!r}")
            arrays[name] = as_2d_image(np.asarray(array), name)
        store = cls._load(Path(project_dir).expanduser().absolute(), "arrays", None)
        store._add_arrays(arrays)
        return store

    @classmethod
    def _load(cls, project_dir: Path, source: str, images_folder: Path | None) -> ProjectStore:
        store = cls(project_dir, open_root(project_dir, source, images_folder), images_folder)
        with writing(project_dir):
            sweep_orphans(store.store_path, store._images)
            store.problems.extend(store._registry.check())
        return store

    def _sync_folder(self, files: list[str]) -> None:
        with self._lock:
            present = set(files)
            images = dict(self._images)
            for name in files:
                images.setdefault(name, new_record(name))
            for key, rec in images.items():
                missing = rec["file"] is not None and rec["file"] not in present
                if bool(rec.get("missing")) != missing:
                    images[key] = {**rec, "missing": missing}
            images = dict(sorted(images.items()))
            if images != self._images or list(images) != list(self._images):
                self._commit(images)

    def rescan(self) -> list[str]:
        """Re-read the images folder; returns the keys of newly found images."""
        if self.images_folder is None:
            return []
        before = set(self._images)
        self._sync_folder([p.name for p in list_images(self.images_folder)])
        return [k for k in self._images if k not in before]

    def _add_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with self._lock, self.batch():
            for key, array in arrays.items():
                name = f"images/{node_name(key)}"
                if key in self._images:
                    stored = self._root[name]
                    if stored.shape != array.shape or not np.array_equal(stored[...], array):
                        raise ValueError(
                            f"the project at {self.project_dir} already holds a different image named {key!r}; "
                            "rename the layer or pick another project folder"
                        )
                    continue
                with writing(self.project_dir):
                    target = self._root.create_array(
                        name=name, shape=array.shape, dtype=array.dtype, chunks=chunks(array.shape), overwrite=True
                    )
                    target[...] = array
                self._commit({**self._images, key: new_record(None, array.shape)})

    # -- state writes ------------------------------------------------------------------
    def _write_images_state(self, images: dict[str, dict[str, Any]]) -> None:
        """Replace the state dict on disk (one atomic zarr metadata write)."""
        with writing(self.project_dir):
            self._root["state"].attrs.put({"images": images})

    def _commit(self, images: dict[str, dict[str, Any]], cleanup: list[Path] = (), durable: bool = False) -> None:
        """Make ``images`` the state; inside a batch only durable commits write at once."""
        if self._batch_depth and not durable:
            self._images, self._dirty = images, True
            self._pending_cleanup.extend(cleanup)
            return
        self._write_images_state(images)
        if durable:
            fsync_path(self.store_path / "state" / "zarr.json")
            fsync_path(self.store_path / "state")
        self._images, self._dirty = images, False
        cleanup, self._pending_cleanup = [*self._pending_cleanup, *cleanup], []
        for path in cleanup:  # old revisions, no longer pointed to
            remove_tree(path)

    @contextmanager
    def batch(self) -> Iterator[ProjectStore]:
        """Write the state dict once at the end (e.g. around predicting many images).

        Other threads are not blocked meanwhile; an accept (from any thread) is still
        written at once, together with whatever the batch staged so far.
        """
        with self._lock:
            self._batch_depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._batch_depth -= 1
                if not self._batch_depth and self._dirty:
                    self._commit(self._images)

    def _save_revision(
        self, kind: str, key: str, mask: np.ndarray, attributes: dict[str, Any]
    ) -> tuple[int, list[Path]]:
        data = validate_mask(mask, self._image_shape(key), key)
        with writing(self.project_dir):
            revision, old = write_revision(self._root, kind, key, data, attributes)
        # kept read-only and shared: a copy where it is still the caller's array, which the caller may change
        self._masks.put((kind, key), revision, data.copy() if np.may_share_memory(data, mask) else data)
        return revision, old

    def _read_revision(self, kind: str, key: str, revision: int) -> np.ndarray:
        """A stored mask, read-only (shared with every other reader of it)."""
        cached = self._masks.get((kind, key), revision)
        if cached is not None:
            return cached
        return self._masks.put((kind, key), revision, self._root[revision_name(kind, key, revision)][...])

    # -- images ------------------------------------------------------------------------
    def _raw(self, key: str) -> dict[str, Any]:
        try:
            return self._images[key]
        except KeyError:
            raise KeyError(f"no image {key!r} in this project") from None

    def keys(self) -> list[str]:
        """Image keys (file names for folder projects), in file-name order."""
        return list(self._images)

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, key: object) -> bool:
        return key in self._images

    def record(self, key: str) -> ImageRecord:
        return record_from_json(key, self._raw(key))

    def records(self) -> list[ImageRecord]:
        return [record_from_json(k, r) for k, r in self._images.items()]

    def read_image(self, key: str) -> np.ndarray:
        """The raw pixels, from the file or the store; records the shape the first time. A file's pixels are
        decoded outside the store's lock, at most once while the file is unchanged, and shared read-only
        (see PixelCache)."""
        with self._lock:
            rec = self._raw(key)
            if rec["file"] is None:
                return self._root[f"images/{node_name(key)}"][...]
        try:
            image = self._pixels.read(self.images_folder / rec["file"], _read_image_file)
        except FileNotFoundError:
            if not rec.get("missing"):
                self._update_record(key, missing=True)
            raise FileNotFoundError(
                f"{rec['file']} is no longer in {self.images_folder}; its masks are kept in the project"
            ) from None
        if rec.get("shape") != list(image.shape) or rec.get("missing"):
            self._update_record(key, shape=list(image.shape), missing=False)
        return image

    def check_file(self, key: str) -> str | None:
        """Why ``key``'s file cannot be used (from its header and size; no pixels decoded), or None."""
        rec = self._raw(key)
        if rec["file"] is None:
            return None
        return probe_image_file(self.images_folder / rec["file"])

    def _update_record(self, key: str, **fields: Any) -> None:
        with self._lock:
            self._commit({**self._images, key: {**self._raw(key), **fields}})

    def _image_shape(self, key: str) -> tuple[int, ...]:
        shape = self._raw(key).get("shape")
        return tuple(shape) if shape else self.read_image(key).shape

    # -- predictions and accepted masks ------------------------------------------------
    def save_prediction(self, key: str, mask: np.ndarray, model_version: str | None,
                        edited_from: str | None = None) -> None:
        """Store the latest prediction of ``model_version`` (None: shipped default); accepted stays accepted.
        An unaccepted edit is stored here too, with ``edited_from`` the version whose prediction was edited."""
        with self._lock:
            revision, old = self._save_revision("predictions", key, mask, {"key": key, "model_version": model_version})
            info = {"revision": revision, "model": model_version, "at": now_iso()}
            if edited_from is not None:
                info["edited_from"] = edited_from
            self._commit({**self._images, key: {**self._raw(key), "prediction": info}}, cleanup=old)

    def prediction(self, key: str) -> tuple[np.ndarray, str | None] | None:
        with self._lock:
            info = self._raw(key).get("prediction")
            if not info:
                return None
            return self._read_revision("predictions", key, info["revision"]), info["model"]

    def accept(self, key: str, mask: np.ndarray, from_model: str | None) -> None:
        """Save a corrected mask; it is on disk (fsynced) and visible atomically when this returns."""
        with self._lock:
            at = now_iso()
            attributes = {"key": key, "from_model": from_model, "accepted_at": at}
            revision, old = self._save_revision("accepted", key, mask, attributes)
            fsync_tree(self.store_path / revision_name("accepted", key, revision))
            info = {"revision": revision, "from_model": from_model, "at": at}
            self._commit({**self._images, key: {**self._raw(key), "accepted": info}}, cleanup=old, durable=True)

    def accepted_mask(self, key: str) -> np.ndarray | None:
        with self._lock:
            info = self._raw(key).get("accepted")
            return self._read_revision("accepted", key, info["revision"]) if info else None

    def accepted_keys(self) -> list[str]:
        return [k for k, r in self._images.items() if r.get("accepted")]

    def unaccept(self, key: str) -> None:
        """Drop the accepted mask; the image goes back to predicted (or unlabelled)."""
        with self._lock:
            rec = self._raw(key)
            if rec.get("accepted"):
                node_dir = self.store_path / "accepted" / node_name(key)
                self._masks.forget(("accepted", key))
                self._commit({**self._images, key: {**rec, "accepted": None}}, cleanup=[node_dir], durable=True)

    # -- model versions ----------------------------------------------------------------
    def add_model_version(
        self, model, metadata: dict[str, Any], parent: str | None, note: str = "", *, activate: bool = False
    ) -> str:
        """Save ``models/vNNNN.safetensors`` (atomic), then register it; returns the version id."""
        return self._registry.add(model, metadata, parent, note, activate)

    def model_versions(self) -> list[dict[str, Any]]:
        """Registered versions, oldest first: id, parent, created, note, n_accepted, file, usable."""
        return self._registry.versions()

    @property
    def active_model(self) -> str | None:
        """The active version id, or None for the shipped default model."""
        return self._registry.active

    def set_active_model(self, version: str | None) -> None:
        """Make ``version`` (any registered, usable one) or None (shipped default) active."""
        self._registry.set_active(version)

    def model_path(self, version: str | None) -> Path:
        """The checkpoint file of ``version``; None gives the shipped default model."""
        if version is None:
            from ..resources import default_model_path

            return default_model_path()
        return self._registry.path(version)

    # -- training log ------------------------------------------------------------------
    def append_training_log(self, run_id: str, entries: list[dict[str, Any]]) -> None:
        """Add entries (e.g. ``{"step": 10, "loss": 0.3}``) to a run; each call rewrites that run, so batch them."""
        self._log.append(run_id, entries)

    def training_log(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """All entries in the order written, each with its ``run``; or only ``run_id``'s."""
        return self._log.entries(run_id)

    # -- session -----------------------------------------------------------------------
    @property
    def position(self) -> str | None:
        """The image the user was on (persisted)."""
        return self._session.position

    @position.setter
    def position(self, key: str | None) -> None:
        with self._lock:
            if key is not None:
                self._raw(key)
            if key != self._session.position:
                self._session.update(position=key)

    @property
    def settings(self) -> Mapping[str, Any]:
        """Read-only view of the settings, defaults included; change them with :meth:`update_settings`."""
        return self._session.settings

    def update_settings(self, **changes: Any) -> None:
        with self._lock:
            self._session.update_settings(changes)

    def __repr__(self) -> str:
        return (
            f"ProjectStore({str(self.project_dir)!r}, {len(self)} images, "
            f"{len(self.accepted_keys())} accepted, active model {self.active_model})"
        )
