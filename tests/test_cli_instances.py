"""The command line with an instances model: pretrain from instance labels, fine-tune, predict objects,
evaluate with object scores, simulate; and the clear refusals."""

import json

import numpy as np
import pytest

from napari_hybridseg.cli import main
from napari_hybridseg.data.io import read_mask
from napari_hybridseg.model.checkpoint import read_metadata

TRAIN = ["--steps", "3", "--batch-size", "2", "--crop", "32", "--device", "cpu"]
TINY = [*TRAIN, "--base-channels", "8"]


@pytest.fixture(scope="module")
def instances_checkpoint(tiny_sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("instances") / "instances.safetensors"
    rc = main(["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool",
               "--output", "instances", *TINY, "--out", str(out)])
    assert rc == 0
    return out


def test_pretraining_an_instances_model_records_its_output(instances_checkpoint):
    meta = read_metadata(instances_checkpoint)
    assert (meta["output"], meta["n_classes"], meta["boundary_width"]) == ("instances", 3, 2)
    assert meta["class_names"] == ["background", "interior", "boundary"]


def test_a_semantic_checkpoint_names_no_output(tiny_checkpoint):
    meta = read_metadata(tiny_checkpoint)
    assert "output" not in meta and meta["class_names"] == ["background", "foreground"]


def test_bad_output_options_are_refused_with_the_reason(tiny_sample_root, tmp_path, capsys):
    base = ["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool", *TINY,
            "--out", str(tmp_path / "x.safetensors")]
    assert main([*base, "--output", "instances", "--classes", "2"]) == 2
    assert "an instances model has 3 classes" in capsys.readouterr().err
    assert main([*base, "--output", "instances", "--boundary-width", "0"]) == 2
    assert "boundary_width" in capsys.readouterr().err


def test_finetune_predict_and_evaluate_keep_to_objects(instances_checkpoint, tiny_sample_root, tmp_path, capsys):
    tuned = tmp_path / "tuned.safetensors"
    assert main(["finetune", "--checkpoint", str(instances_checkpoint), "--data", str(tiny_sample_root),
                 "--domain", "synth", "--n-labels", "2", *TRAIN, "--out", str(tuned)]) == 0
    assert read_metadata(tuned)["output"] == "instances"
    out = tmp_path / "masks"
    images = tiny_sample_root / "synth" / "images"
    assert main(["predict", "--checkpoint", str(tuned), str(images), "--output", str(out), "--device", "cpu"]) == 0
    masks = [read_mask(p) for p in sorted(out.glob("*.png"))]
    assert len(masks) == 6 and all(m.shape == (64, 64) for m in masks)
    scores_path = tmp_path / "scores.json"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tuned), "--data", str(tiny_sample_root), "--domain", "synth",
                 "--device", "cpu", "--out", str(scores_path)]) == 0
    scores = json.loads(scores_path.read_text())
    assert {"mean_f1", "mean_aji", "mean_abs_count_error"} <= set(scores)
    row = scores["per_image"][0]
    assert 0 <= row["f1"] <= 1 and 0 <= row["aji"] <= 1 and row["count_error"] == row["n_pred"] - row["n_true"]
    assert row["n_true"] > 1  # the synthetic labels are instance labels
    assert "aji" in capsys.readouterr().out


def test_simulate_reports_object_scores_each_round(instances_checkpoint, tiny_sample_root, tmp_path):
    out = tmp_path / "rounds.json"
    assert main(["simulate", "--checkpoint", str(instances_checkpoint), "--data", str(tiny_sample_root),
                 "--domain", "synth", "--round-size", "2", "--rounds", "1", "--steps", "2",
                 "--device", "cpu", "--out", str(out)]) == 0
    rounds = json.loads(out.read_text())
    assert [r["n_labels"] for r in rounds] == [0, 2]
    assert all(np.isfinite(r["f1"]) and np.isfinite(r["aji"]) for r in rounds)
