"""The viewer's session with an instances model: its predictions are split into objects, and a refinement
learns from instance corrections (each object its own id) and from binary ones."""

import numpy as np
import pytest

from napari_hybridseg.annotation import AnnotationSession
from napari_hybridseg.data.datasets import Sample
from napari_hybridseg.learn.finetune import FinetuneConfig, finetune, scratch_model
from napari_hybridseg.learn.pretrain import ModelConfig
from napari_hybridseg.learn.train import TrainConfig
from napari_hybridseg.model.checkpoint import read_metadata, save_checkpoint
from napari_hybridseg.model.outputs import BOUNDARY, INTERIOR
from napari_hybridseg.model.split import count_objects
from napari_hybridseg.project import ProjectStore
from tests._qt.driving import sample_folder

TINY = ModelConfig(n_classes=3, output="instances", base_channels=8, channel_mults=(1, 2))


@pytest.fixture
def instances_checkpoint(tmp_path):
    model, meta = scratch_model(TINY, seed=0)
    return save_checkpoint(tmp_path / "instances.safetensors", model, meta)


def test_a_prediction_of_an_instances_model_shows_touching_objects_apart(tmp_path, instances_checkpoint,
                                                                         monkeypatch):
    session = AnnotationSession(ProjectStore.open(sample_folder(tmp_path / "images", 2)), "cpu")
    session.import_checkpoint(instances_checkpoint)
    key = session.keys()[0]
    shape = session.read_image(key).shape[:2]
    classes = np.zeros(shape, dtype=np.uint8)
    classes[10:30, 10:50] = BOUNDARY  # two objects side by side, one boundary between them
    classes[12:28, 12:28] = INTERIOR
    classes[12:28, 32:48] = INTERIOR
    seen = {}
    original = AnnotationSession._class_map

    def class_map(self, image, version, foreground):
        _, metadata = original(self, image, version, foreground)
        seen.update(metadata)
        return classes, metadata

    monkeypatch.setattr(AnnotationSession, "_class_map", class_map)
    mask = session.predict(key)
    assert seen["output"] == "instances"
    assert mask.dtype == np.uint16 and count_objects(mask) == 2
    assert ((mask > 0) == (classes > 0)).all()


@pytest.mark.parametrize("binary", [False, True])
def test_fine_tuning_an_instances_model_takes_instance_and_binary_corrections(instances_checkpoint, binary):
    from napari_hybridseg.model.checkpoint import load_checkpoint

    model, meta = load_checkpoint(instances_checkpoint)
    labels = np.zeros((48, 48), dtype=np.uint16)
    labels[8:24, 8:24], labels[8:24, 24:40] = 1, 2  # two touching objects
    if binary:
        labels = (labels > 0).astype(np.uint16)
    image = np.where(labels > 0, 200, 30).astype(np.uint8)
    tuned, tuned_meta, history = finetune(model, meta, [Sample("a", image, labels)],
                                          TrainConfig(steps=2, batch_size=2, crop_size=32, log_every=1),
                                          FinetuneConfig())
    assert tuned_meta["output"] == "instances" and read_metadata(instances_checkpoint)["n_classes"] == 3
    assert len(history) == 2 and all(np.isfinite(h.loss) for h in history)
