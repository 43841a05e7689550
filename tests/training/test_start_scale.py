"""The start-of-fine-tuning diagnostic measures each model as fine-tuning would start from it."""

from __future__ import annotations

import json

import pytest
import torch

from napari_hybridseg.model.checkpoint import load_checkpoint, save_checkpoint
from training import start_scale


@pytest.fixture
def diffusion_checkpoint(tiny_checkpoint, tmp_path):
    model, meta = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        model.net.output_conv.weight.mul_(100)  # a head that, were it kept, would give huge logits
    out = tmp_path / "diffusion.safetensors"
    save_checkpoint(out, model, {**meta, "method": "diffusion"})
    return out


def test_each_model_is_measured_as_fine_tuning_starts_from_it(tiny_sample_root, tiny_checkpoint, diffusion_checkpoint,
                                                             tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    assert start_scale.main(["--data", str(tiny_sample_root), "--target", "synth", "--model", f"hybrid={tiny_checkpoint}",
                             "--model", f"diffusion={diffusion_checkpoint}", "--batches", "2", "--crop", "32",
                             "--results-dir", str(tmp_path), "--benchmarks-md", str(md)]) == 0
    models = json.loads((tmp_path / "start_scale.json").read_text())["models"]
    assert list(models) == ["hybrid", "diffusion", "random weights"]
    assert models["random weights"]["method"] == "scratch"
    for stats in models.values():
        assert all(stats[key] > 0 for key, _ in start_scale.ROWS)
    # the diffusion checkpoint's mask head is replaced, so its logits are on a random head's scale, not 100×
    assert models["diffusion"]["logit_std"] < 10 * models["random weights"]["logit_std"]
    assert "std of the mask logits" in md.read_text()


def test_a_missing_checkpoint_is_a_usage_error(tiny_sample_root, tmp_path):
    with pytest.raises(SystemExit):
        start_scale.main(["--data", str(tiny_sample_root), "--target", "synth", "--model", f"x={tmp_path / 'none'}"])
