"""The model comparison measures every candidate on the same images and subsets, and reports paired differences."""

from __future__ import annotations

import json

import pytest

from napari_hybridseg.cli import main as cli
from training import compare_models


@pytest.fixture(scope="module")
def half_resolution_checkpoint(tiny_sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "patch2.safetensors"
    assert cli(["pretrain", "--data", str(tiny_sample_root), "--domain", "synth", "--split", "pool", "--steps", "4",
                "--batch-size", "2", "--crop", "32", "--base-channels", "8", "--channel-mults", "1", "2",
                "--patch-size", "2", "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_two_candidates_are_measured_alike_and_compared(tiny_sample_root, tiny_checkpoint, half_resolution_checkpoint,
                                                        tmp_path):
    results, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    assert compare_models.main([
        "--data", str(tiny_sample_root), "--source", "synth", "--zero-shot", "synth:test", "--targets", "synth",
        "--n-labels", "2", "--finetune-steps", "2", "--seeds", "0", "1", "--threads", "1", "--big-size", "96", "--refine-steps", "3",
        "--model", f"base={tiny_checkpoint}", "--model", f"half={half_resolution_checkpoint}",
        "--results-dir", str(results), "--benchmarks-md", str(md)]) == 0

    data = json.loads((results / "model_choice.json").read_text())
    base, half = data["models"]["base"], data["models"]["half"]
    assert half["architecture"]["patch_size"] == 2 and base["architecture"].get("patch_size", 1) == 1
    for model in (base, half):
        assert set(model["zero_shot"]) == {"synth-test"}
        runs = model["fine_tuned"]["synth"]
        assert set(runs) == {"0", "1"}
        for run in runs.values():
            assert len(run["labelled"]) == 2
            held_out = set(run["validation"]["per_image"])
            assert held_out and not held_out & set(run["labelled"])  # validation never scores a labelled image
            assert set(run["test"]["per_image"]) == set(model["zero_shot"]["synth-test"]["per_image"])
        assert model["speed"]["predict_big"]["size"] == 96 and model["speed"]["refine_5"]["steps"] == 3
    for seed in ("0", "1"):  # the same labelled subset for both candidates
        assert base["fine_tuned"]["synth"][seed]["labelled"] == half["fine_tuned"]["synth"][seed]["labelled"]
    assert set(data["differences"]) == {"half"}
    assert set(data["differences"]["half"]) == {"zero-shot synth-test", "synth 2 labels, validation", "synth 2 labels, test"}

    text = md.read_text()
    assert "<!-- model_choice:start -->" in text and "Choosing the shipped model" in text
    assert "| half − base |" in text and "| half / base |" in text
    md.unlink()  # the section is rebuilt from the JSON alone
    assert compare_models.main(["--report-only", "--results-dir", str(results), "--benchmarks-md", str(md)]) == 0
    assert md.read_text() == text


def test_a_missing_candidate_is_refused(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_models.main(["--data", str(tmp_path), "--model", f"a={tiny_checkpoint}", "--model", "b=missing.safetensors"])
    assert "existing file" in capsys.readouterr().err
