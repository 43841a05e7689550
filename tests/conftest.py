from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory):
    """Exported ONNX graphs go to a folder of this test session, not the user's cache."""
    import os

    from napari_hybridseg.model.onnx_graph import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("onnx_cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def tiny_sample_root(tmp_path_factory) -> Path:
    """A small synthetic data set in the shared layout (4 pool + 2 test images of 64²)."""
    from napari_hybridseg.data.synthetic import write_sample_set

    root = tmp_path_factory.mktemp("tiny_sample")
    write_sample_set(root, n_pool=4, n_test=2, shape=(64, 64), domain="synth")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_sample_root, tmp_path_factory) -> Path:
    """A small hybrid model pretrained for a few steps through the CLI."""
    from napari_hybridseg.cli import main

    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    rc = main(["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool",
               "--steps", "4", "--batch-size", "2", "--crop", "32", "--base-channels", "8",
               "--device", "cpu", "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and tests must not oversubscribe a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_session(tiny_sample_root, tiny_checkpoint, tmp_path):
    """An AnnotationSession on a copy of the tiny sample's six 64² images, the tiny checkpoint active (v0001)."""
    import shutil

    from napari_hybridseg.annotation import AnnotationSession
    from napari_hybridseg.project import ProjectStore

    folder = tmp_path / "images"
    shutil.copytree(tiny_sample_root / "synth" / "images", folder)
    session = AnnotationSession(ProjectStore.open(folder, tmp_path / "project"), "cpu")
    assert session.import_checkpoint(tiny_checkpoint) == "v0001"
    return session
