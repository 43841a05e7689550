"""The ONNX Runtime engine: the same numbers as torch, a cache that survives damage, a torch fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_hybridseg.learn.acquisition import DisagreementScorer
from napari_hybridseg.model import onnx_engine
from napari_hybridseg.model.checkpoint import model_metadata
from napari_hybridseg.model.inference import Segmenter
from napari_hybridseg.model.onnx_engine import OnnxModel, weights_key
from napari_hybridseg.model.precond import HybridSegModel

pytestmark = pytest.mark.skipif(not onnx_engine.onnxruntime_available(), reason="onnxruntime is not installed")


def small_model(seed: int = 0, **architecture) -> HybridSegModel:
    torch.manual_seed(seed)
    return HybridSegModel(3, 2, base_channels=8, channel_mults=(1, 2, 2), **architecture).eval()


def image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape).astype(np.uint8)


def assert_mask_logits_match_torch(engine, model, size: int = 32) -> None:
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        torch.testing.assert_close(engine(x, 0.002)[1], model(x, 0.002)[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("architecture", [{}, {"patch_size": 2}, {"patch_size": 2, "full_res_channels": 4}])
def test_onnx_forward_matches_torch_for_any_size_batch_and_sigma(tmp_path, architecture):
    model = small_model(**architecture)
    engine = OnnxModel(model, threads=1, cache_dir=tmp_path)
    x = torch.randn(3, 3, 48, 80)  # a multiple of every architecture's downsampling
    sigma = torch.tensor([0.002, 0.5, 3.0])
    with torch.inference_mode():
        expected = model(x, sigma)
    for got, want in zip(engine(x, sigma), expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # a scalar σ applies to the whole batch, as with the torch model
    with torch.inference_mode():
        torch.testing.assert_close(engine(x, 0.5)[1], model(x, 0.5)[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(96, 80, 3), (1100, 700, 3), (1, 1), (37, 91)])
def test_segmenter_on_onnx_predicts_as_torch(shape):
    model = small_model()
    onnx_seg = Segmenter(model, model_metadata(model), "cpu")
    torch_seg = Segmenter(model, model_metadata(model), "cpu", engine="torch")
    assert isinstance(onnx_seg.forward, OnnxModel) and torch_seg.forward is torch_seg.model
    img = image(shape)
    logits = torch_seg.logits(img)
    torch.testing.assert_close(onnx_seg.logits(img), logits, atol=1e-3, rtol=1e-3)  # a 1-pixel image: GroupNorm of ~constant values
    decided = (logits[1] - logits[0]).abs().numpy() > 1e-3  # ties may fall either way
    np.testing.assert_array_equal(onnx_seg.predict(img)[decided], torch_seg.predict(img)[decided])


def test_export_is_cached_per_weights(tmp_path, monkeypatch):
    model = small_model()
    OnnxModel(model, cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{weights_key(model)}.onnx"]
    monkeypatch.setattr(onnx_engine, "export_onnx", lambda m: pytest.fail("exported although cached"))
    OnnxModel(model, cache_dir=tmp_path)
    assert weights_key(small_model(seed=1)) != weights_key(model)  # other weights, another graph


def test_a_damaged_cache_file_is_exported_again(tmp_path):
    model = small_model()
    path = tmp_path / f"{weights_key(model)}.onnx"
    path.write_bytes(b"not an onnx graph")
    assert_mask_logits_match_torch(OnnxModel(model, cache_dir=tmp_path), model)
    assert path.read_bytes() != b"not an onnx graph"


def test_an_unwritable_cache_costs_only_the_export(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    engine = OnnxModel(small_model(), cache_dir=blocker / "cache")
    assert engine(torch.randn(1, 3, 32, 32), 0.002)[1].shape == (1, 2, 32, 32)


def test_without_onnxruntime_auto_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(onnx_engine, "onnxruntime_available", lambda: False)
    model = small_model()
    segmenter = Segmenter(model, model_metadata(model), "cpu")
    assert segmenter.forward is segmenter.model
    with pytest.raises(RuntimeError, match="onnxruntime"):
        Segmenter(model, model_metadata(model), "cpu", engine="onnx")


def test_a_failing_export_falls_back_to_torch(monkeypatch, caplog):
    def broken(model):
        raise RuntimeError("exporter cannot take this")

    monkeypatch.setattr(onnx_engine, "export_onnx", broken)
    monkeypatch.setattr(onnx_engine, "default_cache_dir", lambda: None)
    model = small_model(seed=3)
    segmenter = Segmenter(model, model_metadata(model), "cpu")
    assert segmenter.forward is segmenter.model and "predicting with torch" in caplog.text
    assert segmenter.predict(image((40, 40, 3))).shape == (40, 40)
    with pytest.raises(ValueError, match="unknown engine"):
        Segmenter(model, model_metadata(model), "cpu", engine="tensorrt")


def test_disagreement_scores_agree_across_engines():
    model = small_model()
    img = image((64, 64, 3))
    on_torch = DisagreementScorer(model, "v1", samples=4, sigmas=(0.3, 1.0)).score("a", img)
    on_onnx = DisagreementScorer(OnnxModel(model), "v1", samples=4, sigmas=(0.3, 1.0)).score("a", img)
    assert on_onnx.score == pytest.approx(on_torch.score, rel=1e-3, abs=1e-5)
    np.testing.assert_allclose(on_onnx.map, on_torch.map, atol=1e-4)


def test_the_shipped_model_ships_its_graph_so_a_first_launch_exports_nothing(tmp_path, monkeypatch):
    from napari_hybridseg.resources import default_model_path

    segmenter = Segmenter.from_checkpoint(default_model_path(), engine="torch")
    model = segmenter.model
    bundled = sorted(onnx_engine.BUNDLED_GRAPHS.glob("*.onnx"))
    assert [p.name for p in bundled] == [f"{weights_key(model)}.onnx"], (
        "re-export the shipped model's graph: python -m napari_hybridseg.model.onnx_engine "
        "napari_hybridseg/models/nuclei_hybrid.safetensors napari_hybridseg/models (and delete the old one)")
    monkeypatch.setattr(onnx_engine, "export_onnx", lambda m: pytest.fail("exported although bundled"))
    monkeypatch.setattr(onnx_engine, "export_in_child_process", lambda *a: pytest.fail("exported although bundled"))
    assert_mask_logits_match_torch(OnnxModel(model, threads=1, cache_dir=tmp_path / "empty cache"), model, 64)


def test_a_checkpoints_graph_is_exported_by_a_child_process(tmp_path, monkeypatch):
    from napari_hybridseg.model.checkpoint import save_checkpoint

    model = small_model(seed=4)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, model_metadata(model))
    monkeypatch.setattr(onnx_engine, "export_onnx", lambda m: pytest.fail("exported in the viewer's process"))
    engine = OnnxModel(model, threads=1, cache_dir=tmp_path / "cache", checkpoint=path)
    assert (tmp_path / "cache" / f"{weights_key(model)}.onnx").is_file()
    assert_mask_logits_match_torch(engine, model)


def test_a_failing_export_process_falls_back_to_exporting_here(tmp_path, caplog):
    model = small_model(seed=5)
    not_a_checkpoint = tmp_path / "m.safetensors"
    not_a_checkpoint.write_bytes(b"garbage")
    engine = OnnxModel(model, threads=1, cache_dir=tmp_path / "cache", checkpoint=not_a_checkpoint)
    assert engine(torch.randn(1, 3, 32, 32), 0.002)[1].shape == (1, 2, 32, 32)
    assert (tmp_path / "cache" / f"{weights_key(model)}.onnx").is_file()


def test_checking_for_onnx_runtime_does_not_import_the_exporter():
    """Importing onnx holds Python's lock for about a second: a stall of the viewer, even from a worker."""
    import subprocess
    import sys

    code = ("import sys; from napari_hybridseg.model.onnx_engine import onnxruntime_available; "
            "assert onnxruntime_available(); print('onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
