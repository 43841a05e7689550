"""Choosing a new project's start model from its own images."""

import numpy as np
import pytest
from imageio.v3 import imwrite

from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.project import ProjectStore
from napari_hybridseg.zoo import zoo_models


def test_a_new_project_needs_a_start_model_and_gets_the_best_ranked_one(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        imwrite(folder / f"im{i}.png", rng.integers(0, 255, (64, 64), dtype=np.uint8))
    session = AnnotationSession(ProjectStore.open(folder), "cpu")
    assert session.needs_start_model()
    ranking = session.rank_start_models()
    assert {s.name for s in ranking} == {m.name for m in zoo_models()}
    assert session.start_from(ranking[0]) == "v0001"
    assert not session.needs_start_model()
    assert session.store.model_versions()[0]["note"].startswith(f"{ranking[0].name} (shipped), chosen automatically")


def test_no_readable_image_to_choose_from_is_a_clear_error(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    session = AnnotationSession(ProjectStore.open(folder), "cpu")
    with pytest.raises(ValueError, match="none of the images could be read"):
        session.rank_start_models()


def test_refinement_follows_the_start_models_recipe_unless_the_project_sets_one(tmp_path):
    from napari_hybridseg.learn.recipe import FinetuneRecipe
    from napari_hybridseg.model.checkpoint import read_metadata
    from napari_hybridseg.zoo import zoo_model

    folder = tmp_path / "images"
    folder.mkdir()
    imwrite(folder / "a.png", np.zeros((32, 32), np.uint8))
    session = AnnotationSession(ProjectStore.open(folder), "cpu")
    lungs = zoo_model("lungs")
    session.import_checkpoint(lungs.path)
    recipe = FinetuneRecipe.from_metadata(read_metadata(lungs.path))
    assert recipe.crop_size == 192 and session.refine_recipe() == recipe
    session.store.update_settings(refine_steps=7)
    assert session.refine_recipe().steps == 7 and session.refine_recipe().crop_size == 192
