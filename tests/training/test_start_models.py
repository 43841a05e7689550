import json

import pytest

from training import report, start_models


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A data root with a tiny 'dsb2018/histology' target and a zoo of two tiny models (nuclei, general), each
    with a fit reference and a 2-step recipe."""
    import torch

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.data.synthetic import write_sample_set
    from napari_hybridseg.learn.fit import fit_reference
    from napari_hybridseg.learn.pretrain import ModelConfig
    from napari_hybridseg.model.checkpoint import model_metadata, save_checkpoint

    root = tmp_path_factory.mktemp("data")
    write_sample_set(root / "dsb2018", n_pool=4, n_test=2, shape=(64, 64), domain="histology")
    images = [s.image for s in load_domain(root / "dsb2018", "histology", "pool", with_labels=False)]
    zoo = tmp_path_factory.mktemp("zoo")
    for seed, (name, file) in enumerate([("nuclei", "nuclei_hybrid.safetensors"), ("general", "general_hybrid.safetensors")]):
        torch.manual_seed(seed)
        model = ModelConfig(base_channels=8).build().eval()
        meta = model_metadata(model, method="hybrid", zoo_name=name,
                              finetune_recipe={"steps": 2, "crop_size": 32, "batch_size": 2},
                              fit_reference=fit_reference(model, images, "pool"))
        save_checkpoint(zoo / file, model, meta)
    return root, zoo


def _run(tiny_world, tmp_path, *extra):
    root, zoo = tiny_world
    return start_models.main(["--data", str(root), "--zoo", str(zoo), "--work", str(tmp_path / "work"),
                              "--targets", "histology", "--n-labels", "2", "--seeds", "0", "1",
                              "--results-dir", str(tmp_path / "results"), "--benchmarks-md", str(tmp_path / "B.md"),
                              *extra])


def test_every_start_is_scored_zero_shot_and_after_fine_tuning_and_auto_names_its_pick(tiny_world, tmp_path):
    assert _run(tiny_world, tmp_path) == 0
    records = report.read_records(tmp_path / "work" / "records.jsonl")
    runs = {(r["start"], r["n_labels"], r["seed"]) for r in records if "start" in r}
    assert runs == {("nuclei", 0, 0), ("general", 0, 0),
                    *((s, 2, seed) for s in ("nuclei", "general", "scratch") for seed in (0, 1))}
    tuned = [r for r in records if r.get("n_labels") == 2]
    assert all(len(r["labelled"]) == 2 and r["recipe"]["steps"] == 2 for r in tuned)
    assert len({tuple(r["labelled"]) for r in tuned if r["seed"] == 0}) == 1  # the same labels for every start
    pick = next(r for r in records if "auto_pick" in r)
    assert pick["auto_pick"] in ("nuclei", "general") and pick["choose_s"] > 0

    results = json.loads((tmp_path / "results" / "start_models.json").read_text())
    assert [t["target"] for t in results] == ["histology"]
    rows = results[0]["results"]
    auto = [r for r in rows if r["start"] == "auto"]
    picked = [r for r in rows if r["start"] == pick["auto_pick"]]
    assert [(r["n_labels"], r["seed"], r["dice"]) for r in auto] == [(r["n_labels"], r["seed"], r["dice"]) for r in picked]
    assert all(0 <= r["dice"] <= 1 and r["auto_pick"] == pick["auto_pick"] for r in rows)
    assert "auto picks" in (tmp_path / "B.md").read_text()


def test_the_same_command_resumes_and_report_only_rebuilds_the_section_byte_for_byte(tiny_world, tmp_path):
    assert _run(tiny_world, tmp_path) == 0
    records = (tmp_path / "work" / "records.jsonl").read_text()
    assert _run(tiny_world, tmp_path) == 0
    assert (tmp_path / "work" / "records.jsonl").read_text() == records  # nothing ran twice
    page, data = (tmp_path / "B.md").read_text(), (tmp_path / "results" / "start_models.json").read_text()
    (tmp_path / "B.md").write_text("# Benchmarks\n")
    assert _run(tiny_world, tmp_path, "--report-only") == 0
    assert (tmp_path / "B.md").read_text().split("<!-- start_models:start -->")[1] == page.split("<!-- start_models:start -->")[1]
    assert (tmp_path / "results" / "start_models.json").read_text() == data


def test_split_holds_out_part_of_the_pool_on_validation_and_never_reads_test(tiny_world):
    root, _ = tiny_world
    pool, scored = start_models.split(root / "dsb2018", "histology", "validation")
    assert len(scored) == 1 and not set(pool) & set(scored) and len(pool) == 3
    test_pool, test = start_models.split(root / "dsb2018", "histology", "test")
    assert len(test_pool) == 4 and len(test) == 2 and not set(test) & set(pool + scored)


def test_the_validation_protocol_reports_on_a_page_of_its_own_and_never_scores_test(tiny_world, tmp_path):
    from napari_hybridseg.data.datasets import split_ids

    root, _ = tiny_world
    assert _run(tiny_world, tmp_path, "--protocol", "validation") == 0
    page = tmp_path / "results" / "start_models_validation.md"
    assert page.exists() and "held-out images of each target's pool" in page.read_text()
    assert not (tmp_path / "B.md").exists()
    pool = set(split_ids(root / "dsb2018", "histology", "pool"))
    records = report.read_records(tmp_path / "work" / "records.jsonl")
    assert all(set(r["per_image"]) <= pool and not set(r["per_image"]) & set(r["labelled"]) for r in records if "start" in r)
