"""Predicting from a checkpoint's cached graph without torch: the same class maps as the torch path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from napari_hybridseg.model import onnx_engine
from napari_hybridseg.model.checkpoint import model_metadata, save_checkpoint
from napari_hybridseg.model.inference import Segmenter
from napari_hybridseg.model.onnx_graph import ONE_PASS_SIZE, GraphSegmenter, padding
from napari_hybridseg.model.precond import HybridSegModel

pytestmark = pytest.mark.skipif(not onnx_engine.onnxruntime_available(), reason="onnxruntime is not installed")


@pytest.fixture(scope="module", params=[{}, {"patch_size": 2, "full_res_channels": 4}], ids=["full", "half+full-res-head"])
def checkpoint(tmp_path_factory, request):
    torch.manual_seed(0)
    model = HybridSegModel(3, 2, base_channels=8, channel_mults=(1, 2, 2), **request.param).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.safetensors", model, model_metadata(model))
    cache = tmp_path_factory.mktemp("graphs")
    onnx_engine.cache_graph(model, cache)
    return path, cache, model


@pytest.mark.parametrize("shape", [(96, 80, 3), (1, 1), (37, 91), (8, 8), (200, 120, 4), (50, 60)])
def test_the_graph_segmenter_predicts_what_the_torch_path_predicts(checkpoint, shape):
    path, cache, model = checkpoint
    graph_segmenter = GraphSegmenter.from_checkpoint(path, threads=1, cache_dir=cache)
    segmenter = Segmenter(model, model_metadata(model), "cpu", engine="torch")
    image = np.random.default_rng(1).integers(0, 255, shape).astype(np.uint8)
    logits = segmenter.logits(image)
    decided = (logits[1] - logits[0]).abs().numpy() > 1e-3  # ties may fall either way
    got = graph_segmenter.predict(image)
    assert got.dtype == np.uint8 and got.shape == shape[:2]
    np.testing.assert_array_equal(got[decided], segmenter.predict(image)[decided])


def test_padding_reflects_and_replicates_where_too_small():
    assert padding(256, 256, 8) == (0, 0, "reflect")
    assert padding(37, 91, 8) == (3, 5, "reflect")
    assert padding(8, 8, 8) == (0, 8, "replicate")  # one block: two blocks wide
    assert padding(1, 1, 8) == (7, 15, "replicate")


def test_images_that_need_tiling_and_checkpoints_without_a_graph_take_the_torch_path(checkpoint, tmp_path):
    path, cache, _ = checkpoint
    assert GraphSegmenter.from_checkpoint(path, threads=1, cache_dir=tmp_path) is None  # nothing cached there
    graph_segmenter = GraphSegmenter.from_checkpoint(path, threads=1, cache_dir=cache)
    assert graph_segmenter.predict(np.zeros((ONE_PASS_SIZE + 1, 16), np.uint8)) is None
    damaged = shutil.copytree(cache, tmp_path / "damaged")
    next(damaged.glob("*.onnx")).write_bytes(b"not a graph")
    assert GraphSegmenter.from_checkpoint(path, threads=1, cache_dir=damaged) is None  # torch exports it again


def test_the_shipped_models_first_prediction_imports_no_torch(tmp_path):
    """The viewer's first mask comes from the bundled graph: importing torch would cost over a second."""
    images = tmp_path / "images"
    images.mkdir()
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from skimage.io import imsave
        imsave({str(images / 'a.png')!r}, (np.random.default_rng(0).random((64, 96)) * 255).astype(np.uint8))
        from napari_hybridseg._qt import dock  # the plugin's own imports too
        from napari_hybridseg.annotation import AnnotationSession
        from napari_hybridseg.project import ProjectStore
        session = AnnotationSession(ProjectStore.open({str(images)!r}))
        mask, origin = session.mask_for("a.png")
        assert origin == "predicted" and mask.shape == (64, 96), (origin, mask.shape)
        print("torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"
