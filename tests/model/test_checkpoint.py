"""Checkpoint round trips, atomic saves, and refusals of unusable or unsafe files."""

from __future__ import annotations

import json
import os
import pickle
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_hybridseg.model import checkpoint as ckpt
from napari_hybridseg.model.checkpoint import (
    FORMAT_VERSION,
    METADATA_KEY,
    CheckpointError,
    load_checkpoint,
    model_metadata,
    read_metadata,
    save_checkpoint,
)
from napari_hybridseg.model.precond import HybridSegModel

SMALL = dict(base_channels=8, channel_mults=(1, 2), embedding_dim=16)


def tiny(image_channels: int = 3, n_classes: int = 2, seed: int = 0) -> HybridSegModel:
    torch.manual_seed(seed)
    return HybridSegModel(image_channels, n_classes, **SMALL).eval()


@pytest.fixture
def saved(tmp_path):
    model = tiny()
    meta = model_metadata(model, method="hybrid", loss={"lambda_image": 1.0, "lambda_mask": 2.0}, steps=7)
    path = tmp_path / "model.safetensors"
    meta = save(path, model, meta)
    return model, meta, path


def state_of(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _write(path, write, meta: dict) -> dict:
    write(meta)
    return meta


def write_with_metadata(path, state, meta) -> dict:
    return _write(path, lambda m: save_file(state, str(path), metadata={METADATA_KEY: json.dumps(m)}), meta)


def save(path, model, meta) -> dict:
    """save_checkpoint; returns the metadata written."""
    return _write(path, lambda m: save_checkpoint(path, model, m), meta)


# --- round trip ----------------------------------------------------------------------


@pytest.mark.parametrize("channels,n_classes", [(3, 2), (1, 4)])
def test_round_trip_gives_identical_outputs_and_metadata(tmp_path, channels, n_classes):
    model = tiny(channels, n_classes, seed=3)
    meta = model_metadata(model, method="supervised", training={"ids": ["a", "b"], "seed": 4})
    path = tmp_path / "sub" / "m.safetensors"  # the folder does not exist yet
    meta = save(path, model, meta)
    assert path.is_file()
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == json.loads(json.dumps(meta))
    assert loaded_meta["method"] == "supervised" and loaded_meta["training"]["ids"] == ["a", "b"]
    assert loaded_meta["n_classes"] == n_classes and loaded_meta["image_channels"] == channels
    assert loaded.image_channels == channels and loaded.n_classes == n_classes
    assert loaded.unet_config == model.unet_config
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(2, channels, 16, 16)
    with torch.no_grad():
        d0, l0 = model(x, torch.tensor([0.01, 2.0]))
        d1, l1 = loaded(x, torch.tensor([0.01, 2.0]))
    assert torch.equal(d0, d1) and torch.equal(l0, l1)


def test_round_trip_keeps_the_fourier_frequencies(saved):
    # The embedding's random frequencies are a buffer: a fresh model would draw others.
    model, _, path = saved
    torch.manual_seed(999)
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded.net.embed[0].freqs, model.net.embed[0].freqs)


def test_metadata_records_architecture_and_normalisation(saved):
    model, _, path = saved
    meta = read_metadata(path)
    assert meta["format"] == "napari-hybridseg" and meta["format_version"] == FORMAT_VERSION
    assert meta["architecture"]["name"] == "unet"
    assert meta["architecture"]["base_channels"] == 8
    assert meta["architecture"]["channel_mults"] == [1, 2]
    assert meta["normalisation"]["sigma_data"] == model.sigma_data
    assert meta["steps"] == 7 and meta["loss"]["lambda_mask"] == 2.0


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model = tiny()
    path = tmp_path / "m.safetensors"
    assert save_checkpoint(path, model, model_metadata(model)) == path
    save(path, tiny(seed=1), model_metadata(model, note="second"))  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert read_metadata(path)["note"] == "second"


def test_failed_save_keeps_the_old_checkpoint_and_no_temporary_files(tmp_path, monkeypatch):
    model = tiny()
    path = tmp_path / "m.safetensors"
    save(path, model, model_metadata(model, note="old"))
    before = path.read_bytes()

    def broken_save_file(state, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny(seed=5), model_metadata(model, note="new"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    assert read_metadata(path)["note"] == "old"


def test_read_metadata_does_not_build_the_model(saved, monkeypatch):
    _, meta, path = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("read_metadata must not build a model")

    monkeypatch.setattr(ckpt, "build_model", forbidden)
    assert read_metadata(path) == json.loads(json.dumps(meta))


def test_read_metadata_of_a_checkpoint_whose_model_cannot_be_built(tmp_path, saved):
    _, meta, path = saved
    meta = {**meta, "architecture": {**meta["architecture"], "name": "transformer"}}
    other = tmp_path / "other.safetensors"
    write_with_metadata(other, state_of(path), meta)
    assert read_metadata(other)["architecture"]["name"] == "transformer"
    with pytest.raises(CheckpointError, match="unknown architecture 'transformer'"):
        load_checkpoint(other)


# --- refusals: pickles ---------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``open(marker, 'w')``: it creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_pickle_payload_is_live(tmp_path):
    # Control: the payload really does create its marker when unpickled.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(control))).close()
    assert control.exists()


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors"])
def test_plain_pickle_is_refused_and_never_unpickled(tmp_path, protocol, name):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Payload(marker)}, f, protocol=protocol)
    for loader in (load_checkpoint, read_metadata):
        with pytest.raises(CheckpointError) as err:
            loader(path)
        assert name in str(err.value)
        assert not marker.exists()
    if protocol >= 2:
        assert "pickle" in str(err.value).lower()


def test_torch_save_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil2.pth"
    torch.save({"weights": torch.zeros(2), "payload": _Payload(marker)}, path)
    assert path.read_bytes()[:2] == b"PK"
    with pytest.raises(CheckpointError, match=r"evil2\.pth.*pickle"):
        load_checkpoint(path)
    assert not marker.exists()


def test_legacy_torch_save_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    torch.save({"payload": _Payload(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert not marker.exists()


def test_os_system_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned_by_system"

    class Shell:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil3.pt"
    path.write_bytes(pickle.dumps(Shell()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


# --- refusals: damaged or foreign files ----------------------------------------------


@pytest.mark.parametrize("keep", ["half", 5, 0])
def test_truncated_checkpoint_is_refused(saved, keep):
    _, _, path = saved
    data = path.read_bytes()
    n = len(data) // 2 if keep == "half" else keep
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*(truncated|short)"):
        load_checkpoint(path)


def test_checkpoint_cut_inside_its_header_is_refused(saved):
    _, _, path = saved
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_checkpoint_missing_its_last_byte_is_refused(saved):
    _, _, path = saved
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.safetensors"
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    path.write_bytes(b"\x11" + bytes(noise.tolist()))
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(path)


def test_safetensors_without_our_metadata_is_refused(tmp_path, saved):
    _, _, path = saved
    foreign = tmp_path / "foreign.safetensors"
    save_file(state_of(path), str(foreign))
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors.*not a napari-hybridseg checkpoint"):
        load_checkpoint(foreign)
    other_meta = tmp_path / "other_meta.safetensors"
    save_file({"w": torch.zeros(3)}, str(other_meta), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="no metadata"):
        read_metadata(other_meta)


def test_other_format_name_is_refused(tmp_path, saved):
    _, meta, path = saved
    other = tmp_path / "other.safetensors"
    write_with_metadata(other, state_of(path), {**meta, "format": "someone-else"})
    with pytest.raises(CheckpointError, match="format 'someone-else'"):
        load_checkpoint(other)


@pytest.mark.parametrize(
    "change",
    [
        {"base_channels": 16},
        {"channel_mults": [1, 2, 2]},
        {"embedding_dim": 32},
        {"patch_size": 2},
        {"patch_size": 2, "full_res_channels": 4},
    ],
)
def test_metadata_that_disagrees_with_the_weights_is_refused(tmp_path, saved, change):
    _, meta, path = saved
    lying = tmp_path / "lying.safetensors"
    write_with_metadata(lying, state_of(path), {**meta, "architecture": {**meta["architecture"], **change}})
    with pytest.raises(CheckpointError, match=r"lying\.safetensors does not match its declared architecture"):
        load_checkpoint(lying)


@pytest.mark.parametrize("change", [{"n_classes": 4}, {"image_channels": 1}])
def test_metadata_with_other_channels_or_classes_is_refused(tmp_path, saved, change):
    _, meta, path = saved
    lying = tmp_path / "lying.safetensors"
    write_with_metadata(lying, state_of(path), {**meta, **change})
    with pytest.raises(CheckpointError, match="does not match its declared architecture"):
        load_checkpoint(lying)


def test_weights_with_a_missing_tensor_are_refused(tmp_path, saved):
    _, meta, path = saved
    state = state_of(path)
    state.pop("net.stem.bias")
    partial = tmp_path / "partial.safetensors"
    write_with_metadata(partial, state, meta)
    with pytest.raises(CheckpointError, match="does not match its declared architecture"):
        load_checkpoint(partial)


def test_metadata_missing_a_field_is_refused(tmp_path, saved):
    _, meta, path = saved
    meta = {k: v for k, v in meta.items() if k != "normalisation"}
    broken = tmp_path / "broken.safetensors"
    write_with_metadata(broken, state_of(path), meta)
    with pytest.raises(CheckpointError, match="unusable metadata"):
        load_checkpoint(broken)


def test_future_format_version_is_refused(tmp_path, saved):
    _, meta, path = saved
    future = tmp_path / "future.safetensors"
    write_with_metadata(future, state_of(path), {**meta, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match=r"future\.safetensors.*newer napari-hybridseg"):
        read_metadata(future)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(future)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*absent.safetensors"):
        load_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_metadata(tmp_path / "absent.safetensors")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_metadata(tmp_path)  # a folder is not a checkpoint


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# --- regressions -------------------------------------------------------------------


def test_valid_checkpoint_whose_header_length_starts_with_0x80_loads(tmp_path):
    model = tiny()
    path = tmp_path / "m.safetensors"
    for extra in range(0, 264, 8):
        save_checkpoint(path, model, model_metadata(model, note="x" * extra))
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("could not make a header of the wanted length")
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert header_len % 256 == 0x80
    loaded, meta = load_checkpoint(path)  # written by save_checkpoint itself
    assert meta["note"].startswith("x")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_malformed_metadata_is_a_checkpoint_error(tmp_path, raw):
    path = tmp_path / "bad_meta.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={METADATA_KEY: raw})
    with pytest.raises(CheckpointError, match="bad_meta"):
        read_metadata(path)
