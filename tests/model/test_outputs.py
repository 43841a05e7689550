"""A checkpoint says what its mask means; old checkpoints, which say nothing, are semantic."""

import json

import pytest
from safetensors.torch import load_file, save_file

from napari_hybridseg.learn.finetune import scratch_model
from napari_hybridseg.learn.pretrain import ModelConfig
from napari_hybridseg.model.checkpoint import (
    METADATA_KEY,
    CheckpointError,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from napari_hybridseg.model.outputs import output_kind

TINY = dict(base_channels=8, channel_mults=(1, 2))


def test_the_shipped_nuclei_model_splits_objects_and_the_others_are_semantic():
    from napari_hybridseg.zoo import zoo_models

    kinds = {model.name: output_kind(read_metadata(model.path)) for model in zoo_models()}
    assert kinds.pop("nuclei") == "instances"
    assert set(kinds.values()) == {"semantic"}  # lungs, polyps, vessels and general mark regions, not objects


def test_an_instances_checkpoint_loads_with_its_output_and_a_scratch_copy_keeps_it(tmp_path):
    model, meta = scratch_model(ModelConfig(n_classes=3, output="instances", boundary_width=1, **TINY), seed=0)
    path = save_checkpoint(tmp_path / "i.safetensors", model, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded.n_classes == 3 and (loaded_meta["output"], loaded_meta["boundary_width"]) == ("instances", 1)
    _, copy_meta = scratch_model(loaded_meta, seed=1)
    assert (copy_meta["output"], copy_meta["boundary_width"], copy_meta["method"]) == ("instances", 1, "scratch")


def test_an_output_that_does_not_fit_the_classes_is_refused_on_loading(tmp_path):
    model, meta = scratch_model(ModelConfig(**TINY), seed=0)
    path = save_checkpoint(tmp_path / "s.safetensors", model, meta)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={METADATA_KEY: json.dumps({**meta, "output": "instances"})})
    with pytest.raises(CheckpointError, match="unusable metadata: an instances model has 3 classes"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="unknown output 'cells'"):
        ModelConfig(output="cells")
