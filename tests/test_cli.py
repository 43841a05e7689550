import json
import pickle

import numpy as np
import pytest
import zarr

from napari_hybridseg.cli import main
from napari_hybridseg.data.io import read_mask
from napari_hybridseg.model.checkpoint import read_metadata


def test_pretrain_logs_a_loss_and_records_its_method(tiny_sample_root, tmp_path, capsys):
    out = tmp_path / "sup.safetensors"
    log = tmp_path / "log.jsonl"
    rc = main(["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool", "--method",
               "supervised", "--steps", "3", "--batch-size", "2", "--crop", "32", "--base-channels", "8",
               "--device", "cpu", "--log", str(log), "--out", str(out)])
    assert rc == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["step"] for e in entries] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) and e["image_loss"] == 0 for e in entries)
    meta = read_metadata(out)
    assert meta["method"] == "supervised"
    assert meta["pretraining"]["data"]["domain"] == "synth"
    assert "training loss" in capsys.readouterr().out


def test_pretrain_draws_noise_levels_from_the_log_normal_it_is_given(tiny_sample_root, tmp_path, capsys):
    out = tmp_path / "hyb.safetensors"
    args = ["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool", "--steps", "2",
            "--batch-size", "2", "--crop", "32", "--base-channels", "8", "--device", "cpu", "--out", str(out)]
    assert main([*args, "--sigma-log-mean", "-2.5", "--sigma-log-std", "0.5"]) == 0
    loss = read_metadata(out)["loss"]
    assert (loss["p_mean"], loss["p_std"]) == (-2.5, 0.5)
    assert main([*args, "--sigma-log-std", "0"]) == 2
    assert "spread of log σ" in capsys.readouterr().err


def test_finetune_then_evaluate_writes_scores(tiny_sample_root, tiny_checkpoint, tmp_path, capsys):
    tuned = tmp_path / "tuned.safetensors"
    rc = main(["finetune", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_sample_root), "--domain", "synth",
               "--n-labels", "2", "--seed", "1", "--steps", "3", "--batch-size", "2", "--crop", "32",
               "--device", "cpu", "--out", str(tuned)])
    assert rc == 0
    meta = read_metadata(tuned)
    assert len(meta["finetuning"]) == 1 and len(meta["finetuning"][0]["labelled_ids"]) == 2
    scores_path = tmp_path / "scores.json"
    rc = main(["evaluate", "--checkpoint", str(tuned), "--data", str(tiny_sample_root), "--domain", "synth",
               "--device", "cpu", "--out", str(scores_path)])
    assert rc == 0
    scores = json.loads(scores_path.read_text())
    assert scores["n_images"] == 2
    assert 0.0 <= scores["mean_dice"] <= 1.0
    assert {r["id"] for r in scores["per_image"]} == set(
        json.loads((tiny_sample_root / "splits.json").read_text())["synth"]["test"])
    assert "mean over 2 images" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["png", "zarr"])
def test_predict_writes_one_mask_per_image(tiny_sample_root, tiny_checkpoint, tmp_path, fmt):
    images = tiny_sample_root / "synth" / "images"
    out = tmp_path / ("masks.zarr" if fmt == "zarr" else "masks")
    rc = main(["predict", "--checkpoint", str(tiny_checkpoint), str(images), "--output", str(out), "--device", "cpu"])
    assert rc == 0
    names = sorted(p.stem for p in images.glob("*.png"))
    if fmt == "png":
        masks = {p.stem: read_mask(p) for p in out.glob("*.png")}
    else:
        group = zarr.open_group(str(out), mode="r")
        masks = {name: group[name][...] for name in group.array_keys()}
    assert sorted(masks) == names
    assert all(m.shape == (64, 64) and set(np.unique(m)) <= {0, 1} for m in masks.values())


def test_predict_skips_files_that_are_not_images(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.png").write_text("not an image")
    rc = main(["predict", "--checkpoint", str(tiny_checkpoint), str(folder), "--output", str(tmp_path / "o"),
               "--device", "cpu"])
    assert rc == 1
    assert "notes.png could not be read as an image" in capsys.readouterr().out


def test_a_pickle_checkpoint_is_refused_on_the_command_line(tiny_sample_root, tmp_path, capsys):
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    rc = main(["evaluate", "--checkpoint", str(evil), "--data", str(tiny_sample_root), "--domain", "synth"])
    assert rc == 2
    assert "refuses" in capsys.readouterr().err


def test_unknown_domain_is_a_clear_error(tiny_sample_root, tiny_checkpoint, capsys):
    rc = main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_sample_root), "--domain", "nope"])
    assert rc == 2
    assert "nope" in capsys.readouterr().err


def test_simulate_reports_dice_per_round(tiny_sample_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "sim.json"
    rc = main(["simulate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_sample_root), "--domain", "synth",
               "--round-size", "2", "--rounds", "2", "--steps", "2", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    rounds = json.loads(out.read_text())
    assert [r["n_labels"] for r in rounds] == [0, 2, 4]
    assert set(rounds[1]["ids"]) < set(rounds[2]["ids"])
    printed = capsys.readouterr().out
    assert "round 2: 4 labelled images, test Dice" in printed
