from pathlib import Path

import numpy as np
import pytest
import torch

from napari_hybridseg.learn.choose import Candidate, explain, rank_start_models
from napari_hybridseg.learn.fit import FitProbe, ProbeCrops, fit_reference, generative_fit, relative_fit
from napari_hybridseg.learn.pretrain import ModelConfig
from napari_hybridseg.model.checkpoint import model_metadata, save_checkpoint

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _images(kind: str, n: int = 6, side: int = 80) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "smooth":
        y, x = np.mgrid[:side, :side]
        return [(127 + 100 * np.sin(x / 9 + i) * np.cos(y / 7)).astype(np.uint8) for i in range(n)]
    return [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return ModelConfig(base_channels=8).build().eval()


def test_every_model_is_scored_on_the_same_crops_and_noise():
    images = _images("noise")
    first, second = ProbeCrops(images), ProbeCrops(images)
    assert torch.equal(first.crops, second.crops) and torch.equal(first.noise, second.noise)
    assert first.noise.shape == (len(FitProbe().sigmas), len(images), 3, 64, 64)
    assert generative_fit(_model(), first) == generative_fit(_model(), second)


def test_images_smaller_than_the_probe_crop_are_padded():
    crops = ProbeCrops([np.zeros((20, 30), np.uint8), np.ones((70, 10, 3), np.uint8)])
    assert crops.crops.shape == (2, 3, 64, 64)
    assert np.isfinite(generative_fit(_model(), crops).loss)


def test_a_model_is_as_familiar_with_its_reference_images_as_the_reference_says():
    model, images = _model(), _images("smooth")
    meta = {"fit_reference": fit_reference(model, images, "smooth val")}
    fit = generative_fit(model, ProbeCrops(images))
    assert relative_fit(fit, meta) == pytest.approx(1.0)
    assert relative_fit(fit, {}) is None
    with pytest.raises(ValueError, match="no images"):
        ProbeCrops([])


def _checkpoint(tmp_path, name: str, reference_images, seed: int) -> Path:
    model = _model(seed)
    meta = model_metadata(model, method="hybrid")
    if reference_images is not None:
        meta["fit_reference"] = fit_reference(model, reference_images, name)
    return save_checkpoint(tmp_path / f"{name}.safetensors", model, meta)


def test_ranking_puts_the_lowest_relative_fit_first_and_models_without_a_reference_last(tmp_path):
    smooth, noise = _images("smooth"), _images("noise")
    candidates = [Candidate("no-reference", _checkpoint(tmp_path, "no-reference", None, 0)),
                  Candidate("noise-model", _checkpoint(tmp_path, "noise-model", noise, 1)),
                  Candidate("smooth-model", _checkpoint(tmp_path, "smooth-model", smooth, 2))]
    progress = []
    ranking = rank_start_models(smooth, candidates, on_progress=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert ranking[-1].name == "no-reference" and ranking[-1].relative is None
    relatives = [s.relative for s in ranking[:-1]]
    assert relatives == sorted(relatives)
    assert dict((s.name, s.relative) for s in ranking)["smooth-model"] == pytest.approx(1.0)
    assert ranking[0].name in explain(ranking)


@pytest.mark.skipif(not (SHARED / "lungs").is_dir(), reason="the shared data sets are not beside the repository")
@pytest.mark.parametrize("dataset, domain, expected", [("lungs", "covid", "lungs"), ("retina", "chase", "vessels"),
                                                       ("dsb2018", "histology", "nuclei")])
def test_the_shipped_zoo_picks_the_model_of_the_kind_of_image(dataset, domain, expected):
    from napari_hybridseg.data.datasets import load_domain

    images = [s.image for s in load_domain(SHARED / dataset, domain, "pool", with_labels=False)]
    ranking = rank_start_models(images)
    assert ranking[0].name == expected, explain(ranking)
