"""The project store: resume, masks, crash safety, model versions, errors."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_hybridseg.project import FORMAT_VERSION, ProjectStore
from napari_hybridseg.project import _fs
from napari_hybridseg.project import store as store_module

H, W = 12, 16


def write_png(path: Path, shape=(H, W), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        write_png(images / f"img{i}.png", seed=i)
    return images


def a_mask(value=1, shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, np.int64)
    mask[2:6, 3:9] = value
    return mask


def revisions(store: ProjectStore, key: str) -> list[str]:
    from napari_hybridseg.project._records import node_name

    node = store.store_path / "accepted" / node_name(key)
    return sorted(p.name for p in node.iterdir() if p.is_dir()) if node.is_dir() else []


def tiny_model():
    from napari_hybridseg.model.checkpoint import model_metadata
    from napari_hybridseg.model.precond import HybridSegModel

    model = HybridSegModel(3, 2, base_channels=8, channel_mults=(1, 2))
    return model, model_metadata(model)


def test_create_accept_reopen(folder):
    store = ProjectStore.open(folder)
    assert store.project_dir == folder / ".hybridseg"
    assert store.keys() == ["img0.png", "img1.png", "img2.png"]
    assert all(store.record(k).state == "unlabelled" for k in store.keys())
    assert store.settings["refine_every"] == 5

    store.accept("img1.png", a_mask(3), from_model=None)
    store.position = "img1.png"
    store.update_settings(refine_every=3, colour="red")

    again = ProjectStore.open(folder)
    rec = again.record("img1.png")
    assert (rec.state, rec.file, rec.missing, rec.mask_model) == ("accepted", "img1.png", False, None)
    assert rec.shape == (H, W)
    assert rec.accepted_at
    mask = again.accepted_mask("img1.png")
    np.testing.assert_array_equal(mask, a_mask(3))
    assert mask.dtype == np.uint8
    assert again.accepted_keys() == ["img1.png"]
    assert again.accepted_mask("img0.png") is None
    assert again.position == "img1.png"
    assert dict(again.settings) == {"refine_every": 3, "after_accept": "next", "suggest_by": "auto", "colour": "red"}
    assert again.problems == []
    root_attrs = json.loads((folder / ".hybridseg" / "store.zarr" / "zarr.json").read_text())["attributes"]
    assert root_attrs["format"] == "napari-hybridseg-project" and root_attrs["format_version"] == FORMAT_VERSION


def test_new_and_vanished_files(folder):
    store = ProjectStore.open(folder)
    store.accept("img0.png", a_mask(), from_model=None)
    write_png(folder / "img3.png", seed=3)
    (folder / "img0.png").unlink()

    again = ProjectStore.open(folder)
    assert again.keys() == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert again.record("img3.png").state == "unlabelled"
    gone = again.record("img0.png")
    assert gone.missing and gone.state == "accepted"
    np.testing.assert_array_equal(again.accepted_mask("img0.png"), a_mask())
    with pytest.raises(FileNotFoundError, match="img0.png"):
        again.read_image("img0.png")

    write_png(folder / "img0.png", seed=0)  # it comes back
    assert not ProjectStore.open(folder).record("img0.png").missing


def test_predictions_never_demote_accepted(folder):
    store = ProjectStore.open(folder)
    store.save_prediction("img0.png", a_mask(), model_version=None)
    assert store.record("img0.png").state == "predicted"
    mask, version = store.prediction("img0.png")
    assert version is None and mask.dtype == np.uint8
    assert store.prediction("img1.png") is None

    store.accept("img0.png", a_mask(2), from_model=None)
    store.save_prediction("img0.png", a_mask(5), model_version="v0001")
    rec = store.record("img0.png")
    assert rec.state == "accepted" and rec.prediction_model == "v0001"
    np.testing.assert_array_equal(store.accepted_mask("img0.png"), a_mask(2))

    store.unaccept("img0.png")
    assert store.record("img0.png").state == "predicted"
    assert store.accepted_mask("img0.png") is None and revisions(store, "img0.png") == []
    assert ProjectStore.open(folder).record("img0.png").state == "predicted"


def test_reaccept_replaces_and_leaves_no_old_revision(folder):
    store = ProjectStore.open(folder)
    store.accept("img2.png", a_mask(1), from_model=None)
    store.accept("img2.png", a_mask(300), from_model="v0002")
    assert revisions(store, "img2.png") == ["r2"]
    again = ProjectStore.open(folder)
    mask = again.accepted_mask("img2.png")
    np.testing.assert_array_equal(mask, a_mask(300))
    assert mask.dtype == np.uint16
    assert again.record("img2.png").mask_model == "v0002"
    store.accept("img2.png", a_mask(70000), from_model=None)
    assert store.accepted_mask("img2.png").dtype == np.uint32


def test_crash_between_revision_and_state_keeps_previous_mask(folder, monkeypatch):
    store = ProjectStore.open(folder)
    store.accept("img1.png", a_mask(1), from_model=None)

    def crash(self, images):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(store_module.ProjectStore, "_write_images_state", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.accept("img1.png", a_mask(9), from_model="v0001")
    assert revisions(store, "img1.png") == ["r1", "r2"]  # the new revision was written ...
    np.testing.assert_array_equal(store.accepted_mask("img1.png"), a_mask(1))  # ... but is not visible
    monkeypatch.undo()

    again = ProjectStore.open(folder)
    np.testing.assert_array_equal(again.accepted_mask("img1.png"), a_mask(1))
    assert again.record("img1.png").mask_model is None
    assert revisions(again, "img1.png") == ["r1"]  # the orphan is swept on open

    monkeypatch.setattr(store_module.ProjectStore, "_write_images_state", crash)
    with pytest.raises(RuntimeError):
        again.accept("img0.png", a_mask(4), from_model=None)  # first accept: none stays none
    monkeypatch.undo()
    assert ProjectStore.open(folder).accepted_mask("img0.png") is None


def test_model_versions_activate_rollback_reopen(folder):
    store = ProjectStore.open(folder)
    model, meta = tiny_model()
    assert store.active_model is None and store.model_versions() == []
    v1 = store.add_model_version(model, {**meta, "n_accepted": 5}, parent=None, note="first refine")
    v2 = store.add_model_version(model, meta, parent=v1)
    assert (v1, v2) == ("v0001", "v0002")
    assert store.active_model is None  # registering does not activate
    versions = store.model_versions()
    assert [v["id"] for v in versions] == [v1, v2]
    assert versions[0]["n_accepted"] == 5 and versions[0]["note"] == "first refine" and versions[1]["parent"] == v1
    assert all(v["usable"] for v in versions)
    assert store.model_path(v2) == folder / ".hybridseg" / "models" / "v0002.safetensors"

    from napari_hybridseg.model.checkpoint import load_checkpoint

    _, loaded_meta = load_checkpoint(store.model_path(v2))
    assert loaded_meta["project_version"] == v2 and loaded_meta["parent_version"] == v1

    store.set_active_model(v2)
    store.set_active_model(v1)  # rollback
    assert ProjectStore.open(folder).active_model == v1
    store.set_active_model(None)
    assert ProjectStore.open(folder).active_model is None
    with pytest.raises(KeyError, match="v0009"):
        store.set_active_model("v0009")
    with pytest.raises(KeyError):
        store.add_model_version(model, meta, parent="v0009")


def test_missing_model_file_reported_and_active_falls_back(folder):
    store = ProjectStore.open(folder)
    model, meta = tiny_model()
    v1 = store.add_model_version(model, meta, parent=None)
    v2 = store.add_model_version(model, meta, parent=v1, activate=True)
    assert store.active_model == v2
    store.model_path(v2).unlink()

    again = ProjectStore.open(folder)
    assert any(v2 in p and "cannot be used" in p for p in again.problems)
    assert again.active_model == v1
    assert [v["usable"] for v in again.model_versions()] == [True, False]
    with pytest.raises(ValueError, match=v2):
        again.set_active_model(v2)
    v3 = again.add_model_version(model, meta, parent=v1)
    assert v3 == "v0003"  # ids are never reused

    store.model_path(v1).write_bytes(b"not a checkpoint")  # damaged: fall back to the shipped default
    again.set_active_model(v3)
    again.model_path(v3).unlink()
    third = ProjectStore.open(folder)
    assert third.active_model is None  # v3 -> v1 (damaged) -> shipped default
    assert len([p for p in third.problems if "cannot be used" in p]) >= 3


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((H, W + 1), np.uint8), "shape"),
        (np.zeros((H, W, 1), np.uint8), "2-D"),
        (np.zeros((H, W), np.float32), "integer"),
        (np.full((H, W), -1, np.int32), "negative"),
    ],
)
def test_bad_masks_are_rejected(folder, mask, message):
    store = ProjectStore.open(folder)
    with pytest.raises(ValueError, match=message):
        store.accept("img0.png", mask, from_model=None)
    with pytest.raises(ValueError, match=message):
        store.save_prediction("img0.png", mask, model_version=None)
    assert store.record("img0.png").state == "unlabelled"


def test_bool_mask_and_unknown_key(folder):
    store = ProjectStore.open(folder)
    store.accept("img0.png", a_mask() > 0, from_model=None)
    assert store.accepted_mask("img0.png").dtype == np.uint8
    with pytest.raises(KeyError, match="nope.png"):
        store.record("nope.png")
    with pytest.raises(KeyError):
        store.position = "nope.png"
    with pytest.raises(ValueError, match="refine_every"):
        store.update_settings(refine_every=0)


def test_from_arrays_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (20, 24), dtype=np.uint8)
    rgb = rng.random((10, 8, 3)).astype(np.float32)
    project = tmp_path / "layers_project"
    store = ProjectStore.from_arrays({"cells [1]": grey, "rgb/layer": rgb}, project)
    assert store.keys() == ["cells [1]", "rgb/layer"]
    assert store.record("rgb/layer").file is None and store.record("rgb/layer").shape == (10, 8, 3)
    store.accept("rgb/layer", a_mask(shape=(10, 8)), from_model=None)

    again = ProjectStore.from_arrays({"cells [1]": grey, "rgb/layer": rgb}, project)
    np.testing.assert_array_equal(again.read_image("cells [1]"), grey)
    np.testing.assert_array_equal(again.read_image("rgb/layer"), rgb)
    np.testing.assert_array_equal(again.accepted_mask("rgb/layer"), a_mask(shape=(10, 8)))
    with pytest.raises(ValueError, match="different image"):
        ProjectStore.from_arrays({"cells [1]": grey + 1}, project)
    with pytest.raises(ValueError, match="napari layers"):
        ProjectStore.open(_folder_with_one_image(tmp_path), project)


def _folder_with_one_image(tmp_path: Path) -> Path:
    folder = tmp_path / "one"
    folder.mkdir()
    write_png(folder / "a.png")
    return folder


def test_opening_1000_images_reads_no_pixels(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    tiny = np.zeros((8, 8), np.uint8)
    write_png(folder / "img0000.png", shape=(8, 8))
    data = (folder / "img0000.png").read_bytes()
    for i in range(1, 1000):
        (folder / f"img{i:04d}.png").write_bytes(data)

    calls = []

    def counting_reader(path):
        calls.append(path)
        return tiny

    monkeypatch.setattr(store_module, "_read_image_file", counting_reader)
    import napari_hybridseg.data.io as io

    monkeypatch.setattr(io, "read_array", lambda path: calls.append(path) or tiny)
    started = time.perf_counter()
    store = ProjectStore.open(folder)
    created = time.perf_counter() - started
    store.accept("img0500.png", np.ones((8, 8), np.uint8), from_model=None)  # reads one image (its shape)
    started = time.perf_counter()
    again = ProjectStore.open(folder)
    resumed = time.perf_counter() - started
    print(f"\nopening 1000 images: create {created * 1000:.0f} ms, resume {resumed * 1000:.0f} ms")
    assert len(again) == 1000 and len(calls) == 1
    assert len(list((folder / ".hybridseg" / "store.zarr").rglob("zarr.json"))) < 20  # no node per image


def test_errors_for_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ProjectStore.open(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no PNG, TIFF or JPEG"):
        ProjectStore.open(empty)
    assert not (empty / ".hybridseg").exists()


def test_newer_format_is_refused(folder):
    ProjectStore.open(folder)
    meta_file = folder / ".hybridseg" / "store.zarr" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["format_version"] = FORMAT_VERSION + 1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="newer napari-hybridseg"):
        ProjectStore.open(folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_project_dir(folder, tmp_path):
    project = tmp_path / "locked"
    project.mkdir()
    project.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="pick another project folder") as info:
            ProjectStore.open(folder, project)
        assert str(project) in str(info.value)
    finally:
        project.chmod(0o755)


def test_permission_error_message(folder, tmp_path, monkeypatch):
    """The same check without relying on file modes (tests may run as root)."""

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_fs, "_touch", refuse)
    project = tmp_path / "elsewhere"
    with pytest.raises(PermissionError, match="pick another project folder") as info:
        ProjectStore.open(folder, project)
    assert str(project) in str(info.value)


def test_a_full_disk_says_so_and_keeps_the_store_intact(folder, monkeypatch):
    import errno

    import zarr.storage._local as zarr_local

    from napari_hybridseg.project import _registry

    store = ProjectStore.open(folder)
    store.accept("img1.png", a_mask(1), from_model=None)
    model, meta = tiny_model()
    first = store.add_model_version(model, meta, parent=None, activate=True)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr_local, "_put", no_space)
    with pytest.raises(OSError, match="is full; this change was not saved"):
        store.accept("img1.png", a_mask(7), from_model=first)
    monkeypatch.undo()
    monkeypatch.setattr(_registry, "save_checkpoint", no_space)
    with pytest.raises(OSError, match="is full"):
        store.add_model_version(model, meta, parent=first, activate=True)
    monkeypatch.undo()

    np.testing.assert_array_equal(store.accepted_mask("img1.png"), a_mask(1))
    again = ProjectStore.open(folder)
    assert again.problems == []
    np.testing.assert_array_equal(again.accepted_mask("img1.png"), a_mask(1))
    assert revisions(again, "img1.png") == ["r1"]
    assert [v["id"] for v in again.model_versions()] == [first] and again.active_model == first
    assert sorted(p.name for p in again.models_dir.iterdir()) == [f"{first}.safetensors"]


def test_an_unchanged_image_is_decoded_once_and_a_rewritten_one_again(folder, monkeypatch):
    decoded = []
    real_reader = store_module._read_image_file
    monkeypatch.setattr(store_module, "_read_image_file", lambda path: decoded.append(path) or real_reader(path))
    store = ProjectStore.open(folder)
    first = store.read_image("img1.png")
    assert store.read_image("img1.png") is first and len(decoded) == 1
    assert not first.flags.writeable, "shared pixels must not be changed by one of their readers"

    write_png(folder / "img1.png", seed=7)
    os.utime(folder / "img1.png", ns=(1, 1))  # a different modification time even on a coarse clock
    np.testing.assert_array_equal(store.read_image("img1.png"), np.asarray(Image.open(folder / "img1.png")))
    assert len(decoded) == 2


def test_masks_are_read_from_zarr_once_and_shared_read_only(folder, monkeypatch):
    store = ProjectStore.open(folder)
    mine = a_mask(3)
    store.save_prediction("img0.png", mine, model_version=None)
    mine[:] = 9  # the caller goes on changing its own array: the stored mask is a copy
    reads = []
    monkeypatch.setattr(store_module, "revision_name", lambda *a: reads.append(a) or _never_read(*a))
    first, _ = store.prediction("img0.png")  # kept from the write: no read of the store
    assert store.prediction("img0.png")[0] is first and not first.flags.writeable
    np.testing.assert_array_equal(first, a_mask(3))
    assert reads == []
    monkeypatch.undo()

    store.accept("img0.png", a_mask(2), from_model=None)
    assert store.accepted_mask("img0.png") is store.accepted_mask("img0.png")
    store.unaccept("img0.png")
    assert store.accepted_mask("img0.png") is None
    again = ProjectStore.open(folder)  # another session reads the same masks from disk
    np.testing.assert_array_equal(again.prediction("img0.png")[0], a_mask(3))


def _never_read(*args):
    raise AssertionError(f"read from the store: {args}")
