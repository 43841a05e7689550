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


def test_pretrain_on_several_sources_records_each_and_draws_them_equally(tiny_sample_root, tmp_path):
    out = tmp_path / "general.safetensors"
    rc = main(["pretrain", "--source", f"{tiny_sample_root}:synth:pool", "--source", f"{tiny_sample_root}:synth:test",
               "--steps", "2", "--batch-size", "2", "--crop", "32", "--base-channels", "8", "--device", "cpu",
               "--out", str(out)])
    assert rc == 0
    data = read_metadata(out)["pretraining"]["data"]
    assert [(s["split"], s["n_images"]) for s in data["sources"]] == [("pool", 4), ("test", 2)]
    assert "equally" in data["balanced"]


@pytest.mark.parametrize("spec", ["only-a-root", "a:b:c:d", ":synth"])
def test_a_malformed_source_is_a_clear_error(spec, tmp_path, capsys):
    rc = main(["pretrain", "--source", spec, "--steps", "1", "--out", str(tmp_path / "m.safetensors")])
    assert rc == 2 and "--source takes ROOT:DOMAIN" in capsys.readouterr().err


def _with_recipe(checkpoint, tmp_path, **recipe):
    from napari_hybridseg.model.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(checkpoint)
    meta["finetune_recipe"] = recipe
    return save_checkpoint(tmp_path / "with_recipe.safetensors", model, meta)


def test_finetune_follows_the_start_models_recipe_unless_told_otherwise(tiny_sample_root, tiny_checkpoint, tmp_path):
    start = _with_recipe(tiny_checkpoint, tmp_path, steps=3, crop_size=32, batch_size=2, lr=0.003)
    common = ["finetune", "--checkpoint", str(start), "--data", str(tiny_sample_root), "--domain", "synth",
              "--n-labels", "2", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "a.safetensors")]) == 0
    train = read_metadata(tmp_path / "a.safetensors")["finetuning"][-1]["train"]
    assert (train["steps"], train["crop_size"], train["batch_size"], train["lr"]) == (3, 32, 2, 0.003)
    assert main([*common, "--steps", "2", "--out", str(tmp_path / "b.safetensors")]) == 0
    assert read_metadata(tmp_path / "b.safetensors")["finetuning"][-1]["train"]["steps"] == 2


def test_choose_model_ranks_the_shipped_models_and_writes_json(tiny_sample_root, tmp_path, capsys):
    from napari_hybridseg.zoo import zoo_models

    out = tmp_path / "ranking.json"
    rc = main(["choose-model", str(tiny_sample_root / "synth" / "images"), "--json", str(out), "--device", "cpu"])
    assert rc == 0
    ranking = json.loads(out.read_text())
    assert {r["model"] for r in ranking} == {m.name for m in zoo_models()}
    assert all(r["relative_fit"] > 0 for r in ranking)
    printed = capsys.readouterr().out
    assert f"{ranking[0]['model']} knows these images best" in printed


def test_choose_model_refuses_inputs_with_no_image(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["choose-model", str(tmp_path)]) == 2
    assert "no images found" in capsys.readouterr().err


def test_checkpoint_auto_fine_tunes_from_the_best_fitting_shipped_model(tiny_sample_root, tmp_path, capsys):
    out = tmp_path / "auto.safetensors"
    rc = main(["finetune", "--checkpoint", "auto", "--data", str(tiny_sample_root), "--domain", "synth",
               "--n-labels", "2", "--steps", "1", "--batch-size", "2", "--crop", "32", "--device", "cpu",
               "--out", str(out)])
    assert rc == 0
    chosen = capsys.readouterr().out.split("start model: ")[1].split(" ")[0]
    assert read_metadata(out)["zoo_name"] == chosen
    rc = main(["predict", "--checkpoint", "auto", str(tiny_sample_root / "synth" / "images"),
               "--output", str(tmp_path / "masks"), "--device", "cpu"])
    assert rc == 0 and len(list((tmp_path / "masks").glob("*.png"))) == 6
