"""The label-efficiency benchmark end to end on a tiny budget, and its statistics."""

import json
from dataclasses import replace

import numpy as np
import pytest

from training import label_efficiency
from training.stats import paired_bootstrap


def test_paired_bootstrap_finds_a_consistent_gain_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.9, size=(5, 20))
    gain = paired_bootstrap(base + 0.02 + rng.normal(0, 0.005, base.shape), base)
    assert gain.excludes_zero() and gain.low > 0 and abs(gain.mean - 0.02) < 0.005
    noise = paired_bootstrap(base + rng.normal(0, 0.05, base.shape), base)
    assert not noise.excludes_zero()
    assert paired_bootstrap(np.array([0.8, 0.82, 0.81]), np.array([0.8, 0.82, 0.81])).mean == 0


def test_paired_bootstrap_refuses_unpaired_scores():
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap(np.zeros((3, 4)), np.zeros((2, 4)))


def test_quick_benchmark_runs_every_arm_and_resumes(tiny_sample_root, tmp_path, capsys, monkeypatch):
    args = ["--quick", "--pair", f"{tiny_sample_root}:synth:synth", "--source-split", "pool", "--threads", "1",
            "--work", str(tmp_path / "work"), "--results-dir", str(tmp_path / "benchmarks" / "results"),
            "--benchmarks-md", str(tmp_path / "BENCHMARKS.md")]
    assert label_efficiency.main(args) == 0

    data = json.loads((tmp_path / "benchmarks" / "results" / "label_efficiency_quick.json").read_text())
    assert [(d["source"], d["target"]) for d in data] == [("synth", "synth")]
    results = data[0]["results"]
    cells = {(r["method"], r["n_labels"]) for r in results}
    for method in label_efficiency.ARMS:
        for n in (1, 2, 4):  # 4: the whole pool, the ceiling
            assert (method, n) in cells
    assert ("hybrid", 0) in cells and ("supervised", 0) in cells and ("diffusion", 0) not in cells
    assert {r["seed"] for r in results if r["n_labels"] == 1} == {0, 1}
    assert all(0.0 <= r["dice"] <= 1.0 for r in results)

    # the same subset for every arm: one labelled set per (N, seed)
    records = [json.loads(line) for line in (tmp_path / "work" / "records.jsonl").read_text().splitlines()]
    subsets = {}
    for r in records:
        subsets.setdefault((r["n_labels"], r["seed"]), set()).add(tuple(r["labelled_ids"]))
    assert all(len(s) == 1 for s in subsets.values())
    kept = (tmp_path / "benchmarks" / "results" / "label_efficiency_quick_records.jsonl").read_text()
    assert [json.loads(line) for line in kept.splitlines()] == records  # the raw records travel with the results

    assert (tmp_path / "benchmarks" / "results" / "label_efficiency_quick_synth.png").stat().st_size > 1000
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "hybrid − forest" in md and "label_efficiency_quick:start" in md

    # a second run finds every record and trains nothing
    capsys.readouterr()
    assert label_efficiency.main(args) == 0
    assert "Dice" not in capsys.readouterr().out
    assert len((tmp_path / "work" / "records.jsonl").read_text().splitlines()) == len(records)

    # a fine-tuning variant reports in its own section and leaves the default's report as it was
    from napari_hybridseg.learn import finetune

    steps_trained = []
    make_config = finetune.default_finetune_train_config
    monkeypatch.setattr(finetune, "default_finetune_train_config",
                        lambda **kw: steps_trained.append(kw["steps"]) or make_config(**kw))
    results = tmp_path / "benchmarks" / "results"
    before = (results / "label_efficiency_quick.json").read_text()
    variant_args = ["--foreground-share", "0.5", "--finetune-steps", "3", "--arms", "scratch", "--n-labels", "1",
                    "--seeds", "1"]
    assert label_efficiency.main(args + variant_args) == 0
    assert steps_trained == [3, 3]  # N = 1 and the ceiling
    assert (results / "label_efficiency_quick.json").read_text() == before
    variant = json.loads((results / "label_efficiency_quick_mask_foreground0.5_steps3.json").read_text())
    assert {(r["method"], r["n_labels"]) for r in variant[0]["results"]} == {("scratch", 1), ("scratch", 4)}
    assert variant[0]["finetune"] == "mask+foreground0.5+steps3"
    assert "label_efficiency_quick_mask_foreground0.5_steps3:start" in (tmp_path / "BENCHMARKS.md").read_text()


def test_a_named_report_is_of_its_own_pairs_and_keeps_their_records_and_the_main_one_every_record(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    records.add(_record("hybrid", 5, 0, 0.8))
    records.add({**_record("hybrid", 5, 0, 0.7), "protocol": "validation"})
    records.add({**_record("hybrid", 5, 0, 0.6), "pair": "other-c-d", "target": "d"})
    md = tmp_path / "BENCHMARKS.md"
    for section, only_pairs in (("named", {"root-a-b", "other-c-d"}), ("label_efficiency", None)):
        label_efficiency.write_report(records, "test", label_efficiency.Variant(), label_efficiency.FULL, "cmd",
                                      results, md, section, only_pairs=only_pairs)
    assert label_efficiency.main(["--work", str(tmp_path / "work"), "--results-dir", str(results), "--benchmarks-md",
                                  str(md), "--report-only", "--pair", "data/other:c:d", "--report-name", "one_pair"]) == 0
    kept = {name: [json.loads(line)["dice"] for line in (results / f"{name}_records.jsonl").read_text().splitlines()]
            for name in ("named", "one_pair", "label_efficiency")}
    assert kept["named"] == [0.8, 0.6]  # both pairs' test runs; not the validation one
    assert sorted(kept["label_efficiency"]) == [0.6, 0.7, 0.8]
    assert [e["target"] for e in json.loads((results / "one_pair.json").read_text())] == ["d"]
    assert "### a → b" not in md.read_text().split("<!-- one_pair:start -->")[1].split("<!-- one_pair:end -->")[0]
    assert kept["one_pair"] == [0.6]

    assert label_efficiency.main(["--work", str(tmp_path / "work"), "--results-dir", str(results), "--benchmarks-md",
                                  str(md), "--report-only", "--pair", "data/root:a:b", "--report-name", "one_pair"]) == 0
    assert sorted(e["target"] for e in json.loads((results / "one_pair.json").read_text())) == ["b", "d"]  # d carried over
    assert sorted(json.loads(line)["dice"] for line in (results / "one_pair_records.jsonl").read_text().splitlines()) \
        == [0.6, 0.8]


def _record(method: str, n: int, seed: int, dice: float, pretrain: str | None = None) -> dict:
    return {"pair": "root-a-b", "protocol": "test", "variant": "mask", "method": method,
            "pretrain": pretrain if pretrain is not None else "clean0.5" if method == "hybrid" else "",
            "n_labels": n, "seed": seed, "source": "a",
            "target": "b", "n_pool": 4, "labelled_ids": [], "dice": dice, "iou": dice / 2,
            "per_image_dice": [dice - 0.01, dice + 0.01], "seconds": 1.0}


def test_scratch_and_forest_train_without_a_source_model(tiny_sample_root, tmp_path, monkeypatch):
    import torch

    from napari_hybridseg.learn.finetune import scratch_model
    from napari_hybridseg.model.checkpoint import read_metadata

    budget = replace(label_efficiency.QUICK, seeds=1, n_labels=(1,), ceiling_seeds=0)
    pair = label_efficiency.Pair(tiny_sample_root, "synth", "synth", source_split="pool")

    def no_pretraining(*args):
        raise AssertionError("scratch and forest must not pretrain a source model")

    with monkeypatch.context() as patched:
        patched.setattr(label_efficiency, "pretrained_checkpoint", no_pretraining)
        records = label_efficiency.run([pair], ["scratch", "forest"], budget, label_efficiency.Variant(), "test",
                                       tmp_path / "work", threads=1)
    assert sorted(r["method"] for r in records.rows) == ["forest", "scratch"]

    # scratch is the pretrained arms' network, untrained: the same weights as one built from their checkpoint
    hybrid = label_efficiency.pretrained_checkpoint(tmp_path / "work", pair, "hybrid", budget, threads=1)
    from_budget, _ = scratch_model(budget.architecture(), seed=3)
    from_checkpoint, _ = scratch_model(read_metadata(hybrid), seed=3)
    assert from_budget.state_dict().keys() == from_checkpoint.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(from_budget.state_dict().values(), from_checkpoint.state_dict().values()))


def test_runs_in_two_worker_processes_record_what_one_process_records(tiny_sample_root, tmp_path, capsys):
    budget = replace(label_efficiency.QUICK, seeds=2, n_labels=(1,), ceiling_seeds=0)
    pair = label_efficiency.Pair(tiny_sample_root, "synth", "synth", source_split="pool")
    arms = ["hybrid", "scratch", "forest"]
    serial = label_efficiency.run([pair], arms, budget, label_efficiency.Variant(), "test", tmp_path / "one", threads=1)
    parallel = label_efficiency.run([pair], arms, budget, label_efficiency.Variant(), "test", tmp_path / "two",
                                    threads=1, workers=2)
    assert "2 worker(s) of 1 thread(s)" in capsys.readouterr().out

    def by_key(records):
        return {tuple(r[k] for k in records.key): (r["labelled_ids"], r["per_image_dice"]) for r in records.rows}

    assert len(serial.rows) == 2 * 3 + 1  # two seeds of each arm, and hybrid zero-shot
    assert by_key(parallel) == by_key(serial)  # one thread each: the same arithmetic, whichever process ran it
    # each source model is pretrained once, and the records file is whole JSON lines written by one process
    assert len(list((tmp_path / "two" / "pretrain").glob("*.safetensors"))) == 1
    assert len(label_efficiency.Records(tmp_path / "two" / "records.jsonl").rows) == len(parallel.rows)


def test_bfloat16_fine_tuning_is_its_own_variant_and_is_refused_where_it_would_be_emulated(tmp_path, monkeypatch, capsys):
    assert label_efficiency.Variant(precision="bfloat16").tag == "mask+bf16"
    assert label_efficiency.Variant().tag == "mask"
    with pytest.raises(ValueError, match="precision"):
        label_efficiency.Variant(precision="float16")
    monkeypatch.setattr(label_efficiency, "native_bfloat16", lambda device: False)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--precision", "bfloat16", "--work", str(tmp_path / "work")])
    assert "no native bfloat16" in capsys.readouterr().err


def test_an_interrupted_benchmark_says_what_is_kept_and_how_to_resume(tmp_path, monkeypatch, capsys):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    records.add(_record("hybrid", 5, 0, 0.8))

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(label_efficiency, "run", interrupted)
    assert label_efficiency.main(["--work", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"),
                                  "--benchmarks-md", str(tmp_path / "BENCHMARKS.md")]) == 130
    err = capsys.readouterr().err
    assert "1 finished run(s) on record" in err and "the same command resumes" in err
    assert not (tmp_path / "results").exists()  # no report from a run that did not finish


def test_records_name_scratch_and_forest_by_no_pretraining_and_keep_the_first_run_of_a_key(tmp_path):
    key = dict(pair="p", protocol="test", variant="mask", n_labels=1, seed=0)
    lines = [dict(key, method="forest", pretrain="", dice=0.5), dict(key, method="forest", pretrain="invert0.5", dice=0.6),
             dict(key, method="scratch", pretrain="invert0.5", dice=0.7), dict(key, method="hybrid", pretrain="invert0.5", dice=0.8)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = label_efficiency.Records(tmp_path / "records.jsonl")
    assert [(r["method"], r["pretrain"], r["dice"]) for r in records.rows] == [
        ("forest", "", 0.5), ("scratch", "", 0.7), ("hybrid", "invert0.5", 0.8)]
    assert records.has(**key, method="scratch", pretrain="")


def test_report_keeps_an_earlier_pair_that_has_no_records(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    earlier = {"source": "x", "target": "y", "n_pool": 9, "protocol": "test", "finetune": "mask",
               "command": "python -m training.label_efficiency --old", "machine": {
                   "cpu": "Old CPU", "cores": 2, "memory_gib": 8, "python": "3.11", "torch": "2.13.0", "gpu": None},
               "results": [{"method": m, "n_labels": 5, "seed": s, "dice": d, "iou": d / 2, "seconds": 1.0}
                           for m, d in (("hybrid", 0.8), ("scratch", 0.7)) for s in (0, 1)]}
    (results / "label_efficiency.json").write_text(json.dumps([earlier]))
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    for seed in (0, 1):
        records.add(_record("hybrid", 5, seed, 0.9))
        records.add(_record("scratch", 5, seed, 0.6))
    md = tmp_path / "BENCHMARKS.md"

    label_efficiency.write_report(records, "test", label_efficiency.Variant(), label_efficiency.FULL,
                                  "python -m training.label_efficiency --new", results, md, "label_efficiency")

    data = json.loads((results / "label_efficiency.json").read_text())
    assert [(d["source"], d["target"]) for d in data] == [("x", "y"), ("a", "b")]
    assert data[0] == earlier  # carried over unchanged
    text = md.read_text()
    carried, recorded = text.split("### a → b")
    assert "### x → y" in carried and "--old" in carried and "Old CPU" in carried
    assert "0.800 ± 0.000 (2)" in carried and "No paired intervals" in carried
    assert "+0.300 [" in recorded  # hybrid − scratch from the per-image records
    assert (results / "label_efficiency_y.png").exists() and (results / "label_efficiency_b.png").exists()


def test_a_named_report_shows_another_setting_as_the_arm_without_touching_the_default_report(tmp_path):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    for seed in (0, 1):
        records.add(_record("hybrid", 5, seed, 0.8))
        records.add(_record("hybrid", 5, seed, 0.9, pretrain="clean0.5-invert0.5"))
        records.add(_record("forest", 5, seed, 0.85))
    results, md = tmp_path / "benchmarks" / "results", tmp_path / "BENCHMARKS.md"
    common = ["--work", str(tmp_path / "work"), "--results-dir", str(results), "--benchmarks-md", str(md), "--report-only"]
    assert label_efficiency.main(common) == 0
    assert label_efficiency.main([*common, "--invert-probability", "0.5", "--report-name", "inverted"]) == 0

    default, inverted = (md.read_text().split(f"<!-- {name}:start -->")[1] for name in ("label_efficiency", "inverted"))
    assert "| hybrid − forest | hybrid − hybrid@clean0.5-invert0.5 |" in default
    assert "| hybrid − forest | hybrid − hybrid@clean0.5 |" in inverted
    assert "| 5 | +0.050 [" in inverted  # the inverted start against the forest
    assert json.loads((results / "inverted.json").read_text())[0]["hybrid_pretraining"] == "clean0.5-invert0.5"
    assert json.loads((results / "label_efficiency.json").read_text())[0]["hybrid_pretraining"] == "clean0.5"
    assert (results / "inverted_b.png").exists()


def test_the_weight_of_the_denoising_term_names_the_hybrid_checkpoint_and_reaches_pretraining():
    budget = label_efficiency.FULL
    assert budget.pretrain_tag("hybrid") == "clean0.5"  # the default keeps the name of every earlier source model
    assert option_values(budget.pretrain_args("hybrid")) == {"--clean-fraction": "0.5", "--lambda-image": "1.0",
                                                             "--sigma-log-mean": "-1.2"}
    weighted = label_efficiency.replace(budget, lambda_image=4.0)
    assert weighted.pretrain_tag("hybrid") == "clean0.5-lambda4"
    assert option_values(weighted.pretrain_args("hybrid"))["--lambda-image"] == "4.0"
    assert weighted.pretrain_args("supervised") == []


def test_the_noise_levels_of_hybrid_pretraining_name_its_checkpoint_and_reach_pretraining():
    chase = label_efficiency.FULL.for_pair_name("retina-drive-chase")
    assert chase.pretrain_tag("hybrid") == "clean0.5-lambda0.25-logsigma-2"  # chosen on CHASE validation
    assert option_values(chase.pretrain_args("hybrid"))["--sigma-log-mean"] == "-2.0"
    assert chase.pretrain_tag("diffusion") == "" and chase.pretrain_args("supervised") == []  # hybrid's alone
    flagged = label_efficiency.FULL.overridden(sigma_log_mean=-3.0)
    assert flagged.for_pair_name("dsb2018-fluorescence-histology").pretrain_tag("hybrid") == "clean0.5-invert0.5-logsigma-3"


def option_values(args: list[str]) -> dict[str, str]:
    return dict(zip(args[::2], args[1::2]))


def test_longer_or_inverted_pretraining_names_every_pretrained_arm_and_reaches_pretraining(tmp_path):
    longer = label_efficiency.replace(label_efficiency.FULL, pretrain_scale=3.0, lambda_image=0.25)
    assert longer.pretrain_tag("hybrid") == "clean0.5-lambda0.25-pretrain3x"
    assert longer.pretrain_tag("supervised") == "pretrain3x" and longer.pretrain_tag("diffusion") == "pretrain3x"
    retina = label_efficiency.Pair(tmp_path / "retina", "drive", "chase")
    assert longer.pretrain_steps_for(retina) == 3 * label_efficiency.FULL.pretrain_steps_for(retina)
    inverted = label_efficiency.replace(longer, invert_probability=0.5)
    assert inverted.pretrain_tag("hybrid") == "clean0.5-invert0.5-lambda0.25-pretrain3x"
    assert inverted.pretrain_tag("supervised") == "invert0.5-pretrain3x"
    assert inverted.pretrain_tag("scratch") == inverted.pretrain_tag("forest") == ""  # nothing pretrained to name
    assert inverted.pretrain_args("supervised") == ["--invert-probability", "0.5"]
    assert inverted.pretrain_args("diffusion") == ["--clean-fraction", "0.0", "--invert-probability", "0.5"]

    rows = [_record("supervised", 5, s, 0.7) for s in (0, 1)]
    rows += [_record("supervised", 5, s, 0.75, pretrain="pretrain3x") for s in (0, 1)]
    (shown, reported), = label_efficiency.report_rows(rows, "test", label_efficiency.Variant(), longer).values()
    assert shown["supervised"] == "pretrain3x"
    assert sorted({r["method"] for r in reported}) == ["supervised", "supervised@default"]
    assert {r["dice"] for r in reported if r["method"] == "supervised"} == {0.75}


def test_settings_chosen_for_a_data_set_apply_to_its_pairs_unless_a_flag_overrides_them(tmp_path):
    chase = label_efficiency.Pair(tmp_path / "retina", "drive", "chase")
    histology = label_efficiency.Pair(tmp_path / "dsb2018", "fluorescence", "histology")
    full = label_efficiency.FULL
    assert full.for_pair_name(chase.name).pretrain_tag("hybrid") == "clean0.5-lambda0.25-logsigma-2"
    assert full.for_pair_name(chase.name).shown_tags["hybrid"] == "clean0.5-lambda0.25-logsigma-2"
    assert full.for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5-invert0.5"
    assert full.overridden(invert_probability=0.0).for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5"
    flagged = full.overridden(lambda_image=4.0, seeds=2)
    assert flagged.for_pair_name(chase.name).pretrain_tag("hybrid") == "clean0.5-lambda4-logsigma-2"
    assert flagged.for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5-invert0.5-lambda4"
    assert full.overridden(seeds=2).for_pair_name(chase.name).lambda_image == 0.25


def test_a_pairs_own_settings_go_over_its_data_sets_and_reach_no_other_pair():
    budget = replace(label_efficiency.FULL, chosen={
        "dsb2018": {"invert_probability": 0.5, "finetune_steps": 100},
        "dsb2018-fluorescence-brightfield": {"finetune_steps": 600},
        "dsb2018-fluorescence-b": {"finetune_steps": 7},  # a prefix of the pair's name, not the pair
    })
    brightfield = budget.for_pair_name("dsb2018-fluorescence-brightfield")
    assert (brightfield.invert_probability, brightfield.finetune_steps) == (0.5, 600)
    histology = budget.for_pair_name("dsb2018-fluorescence-histology")
    assert (histology.invert_probability, histology.finetune_steps) == (0.5, 100)
    assert budget.for_pair_name("retina-drive-chase").finetune_steps == 200


def test_a_pairs_chosen_fine_tuning_steps_name_its_records_as_the_same_steps_asked_for_would():
    chosen = replace(label_efficiency.FULL, chosen={"root-a-b": {"finetune_steps": 600}})
    Variant = label_efficiency.Variant
    assert Variant().on_pair(chosen, "root-a-b") == Variant(finetune_steps=600).on_pair(chosen, "root-a-b")
    assert Variant().on_pair(chosen, "root-a-b").tag == "mask+steps600"
    assert Variant(finetune_steps=50).on_pair(chosen, "root-a-b").tag == "mask+steps50"  # the command line wins
    assert Variant(finetune_steps=200).on_pair(chosen, "root-a-b").tag == "mask"  # the default's records
    assert Variant().on_pair(label_efficiency.FULL, "root-a-b").tag == "mask"

    rows = [_record("hybrid", 5, s, 0.80) for s in (0, 1)]  # 200 steps
    rows += [{**_record("hybrid", 5, s, 0.85), "variant": "mask+steps600"} for s in (0, 1)]
    (_, reported), = label_efficiency.report_rows(rows, "test", Variant(), chosen).values()
    assert {r["dice"] for r in reported} == {0.85}
    (_, reported), = label_efficiency.report_rows(rows, "test", Variant(finetune_steps=200), chosen).values()
    assert {r["dice"] for r in reported} == {0.80}
    (_, reported), = label_efficiency.report_rows(rows, "test", Variant(), label_efficiency.FULL).values()
    assert {r["dice"] for r in reported} == {0.80}
    steps600 = [r for r in rows if r["variant"] == "mask+steps600"]
    assert label_efficiency.against_default_fine_tuning(steps600, steps600) == {}  # the same runs: nothing to compare


def test_a_pairs_chosen_blend_applies_unless_the_command_line_names_one():
    budget = replace(label_efficiency.FULL, chosen={"root-a-b": {"finetune_steps": 50, "finetuned_half_at": 1.0}})
    Variant = label_efficiency.Variant
    assert Variant().on_pair(budget, "root-a-b").tag == "mask+steps50+wisek1"
    assert Variant().on_pair(budget, "root-a-b") == Variant(finetune_steps=50, finetuned_half_at=1.0).on_pair(budget, "root-a-b")
    assert Variant(finetuned_half_at=0.0).on_pair(budget, "root-a-b").tag == "mask+steps50"  # 0: off
    assert Variant(finetuned_half_at=3.0).on_pair(budget, "root-a-b").tag == "mask+steps50+wisek3"
    assert Variant(finetuned_share=0.5).on_pair(budget, "root-a-b").tag == "mask+steps50+wise0.5"  # a fixed share
    assert Variant().on_pair(budget, "other-a-b").tag == "mask"
    assert Variant().on_pair(budget, "root-a-b").finetuned_share_for(1) == 0.5

    # the main report pairs the chosen blend with plain fine-tuning at the same steps
    rows = [{**_record("hybrid", 1, s, 0.80), "variant": "mask+steps50"} for s in (0, 1)]
    rows += [{**_record("hybrid", 1, s, 0.85), "variant": "mask+steps50+wisek1"} for s in (0, 1)]
    (_, blended), = label_efficiency.report_rows(rows, "test", Variant(), budget).values()
    (_, plain), = label_efficiency.report_rows(rows, "test", Variant(finetuned_half_at=0.0), budget).values()
    assert {r["dice"] for r in blended} == {0.85} and {r["dice"] for r in plain} == {0.80}
    assert list(label_efficiency.against_default_fine_tuning(blended, plain)) == [("hybrid", 1)]


def test_a_run_writes_the_main_report_only_at_every_pairs_chosen_settings():
    full, Variant = label_efficiency.FULL, label_efficiency.Variant
    brightfield, histology = "dsb2018-fluorescence-brightfield", "dsb2018-fluorescence-histology"

    def section(variant=Variant(), protocol="test", pairs=(brightfield,), **given):
        return label_efficiency.default_section(False, protocol, variant, full, full.overridden(**given), list(pairs))

    assert section() == "label_efficiency"
    # the pair's chosen settings asked for on the command line are still the main report's
    assert section(Variant(finetune_steps=600), invert_probability=0.5) == "label_efficiency"
    assert section(Variant(finetune_steps=600), pairs=(brightfield, histology)) == "label_efficiency_mask_steps600"
    assert section(invert_probability=0.0) == "label_efficiency_invert0"
    assert section(protocol="validation", lambda_image=0.25, invert_probability=0.5) == (
        "label_efficiency_validation_lambda0.25")
    assert section(lambda_image=0.25, pairs=("retina-drive-chase",)) == "label_efficiency"
    assert section(Variant(finetuned_half_at=0.0), pairs=(histology,)) == "label_efficiency_mask"
    assert section(base_channels=32) == "label_efficiency_width32"


def test_diffusion_settings_name_their_checkpoints_records_and_columns():
    budget = label_efficiency.FULL
    assert budget.pretrain_tag("diffusion") == "" and budget.pretrain_args("diffusion") == ["--clean-fraction", "0.0"]
    tuned = label_efficiency.replace(budget, diffusion_clean_fraction=0.5)
    assert tuned.pretrain_tag("diffusion") == "clean0.5"
    assert tuned.pretrain_args("diffusion") == ["--clean-fraction", "0.5"]
    assert tuned.pretrain_tag("supervised") == "" and tuned.pretrain_args("supervised") == []

    rows = [_record("hybrid", 5, s, 0.8) for s in (0, 1)] + [_record("diffusion", 5, s, 0.6) for s in (0, 1)]
    rows += [_record("diffusion", 5, s, 0.7, pretrain="clean0.5") for s in (0, 1)]
    (shown, reported), = label_efficiency.report_rows(rows, "test", label_efficiency.Variant(), tuned).values()
    assert shown == {"hybrid": "clean0.5", "supervised": "", "diffusion": "clean0.5"}
    assert sorted({r["method"] for r in reported}) == ["diffusion", "diffusion@clean0", "hybrid"]
    assert {r["dice"] for r in reported if r["method"] == "diffusion"} == {0.7}
    md = label_efficiency.pair_markdown(reported, list(label_efficiency.ARMS))
    assert "hybrid − diffusion@clean0" in md and "+0.200 [" in md and "+0.100 [" in md

    # a setting that has not run on the pair yet: the most-run one is shown as the arm
    (shown, _), = label_efficiency.report_rows(rows[:4], "test", label_efficiency.Variant(), tuned).values()
    assert shown["diffusion"] == ""


def test_unlabelled_crops_are_added_to_the_batch_not_taken_from_it():
    assert label_efficiency.Variant().batch(8) == (8, 0.0)
    assert label_efficiency.Variant(unlabelled_share=0.5).batch(8) == (8, 0.5)
    added = label_efficiency.Variant(unlabelled_crops=8)
    assert added.batch(8) == (16, 0.5)
    assert added.tag == "mask+denoise8crops"
    assert label_efficiency.Variant(unlabelled_share=0.5).tag == "mask+denoise0.5"
    assert label_efficiency.Variant("hybrid", unlabelled_share=0.5).tag == "hybrid+unlabelled0.5"


def test_a_head_first_fine_tune_is_recorded_under_its_own_tag():
    assert label_efficiency.Variant(head_steps=50).tag == "mask+head50"
    assert label_efficiency.Variant(finetune_steps=600, head_steps=50).slug == "mask_steps600_head50"


def _recorded_fine_tuning(monkeypatch, sample_root, read):
    """Fine-tuning replaced by a record of ``read(train_config, config)`` per arm: (that record, a pool, its data)."""
    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.learn import finetune as finetune_module

    seen = {}

    def recording_finetune(model, meta, labelled, train_config, config, *rest):
        seen[meta["method"]] = read(train_config, config)
        return model, meta, []

    monkeypatch.setattr(finetune_module, "finetune", recording_finetune)
    pool = load_domain(sample_root, "synth", "pool")
    return seen, pool, label_efficiency.TargetData(pool, pool[:1])


def test_a_learning_rate_variant_fine_tunes_the_pretrained_arms_at_that_rate_and_scratch_at_its_own(
    tiny_sample_root, tiny_checkpoint, monkeypatch
):
    from napari_hybridseg.learn import finetune as finetune_module

    rates, pool, data = _recorded_fine_tuning(monkeypatch, tiny_sample_root, lambda train_config, _: train_config.lr)
    slower = label_efficiency.Variant(lr=1e-4)
    assert slower.tag == "mask+lr0.0001"
    for method in ("hybrid", "scratch"):
        label_efficiency.fit_and_score(method, pool[:1], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                                       slower, seed=0)
    assert rates == {"hybrid": 1e-4, "scratch": finetune_module.FINETUNE_LR}
    scratch_faster = label_efficiency.Variant(scratch_lr=3e-3)
    assert scratch_faster.tag == "mask+scratchlr0.003"
    label_efficiency.fit_and_score("scratch", pool[:1], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                                   scratch_faster, seed=0)
    assert rates["scratch"] == 3e-3
    for rates_given in ({"lr": -1e-3}, {"scratch_lr": 0.0}):
        with pytest.raises(ValueError, match="must be positive"):
            label_efficiency.Variant(**rates_given)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--finetune-lr", "0", "--report-only"])


def test_a_larger_fine_tuning_crop_reaches_every_network_arm_with_as_many_pixels_a_step(
    tiny_sample_root, tiny_checkpoint, monkeypatch
):
    seen, pool, data = _recorded_fine_tuning(monkeypatch, tiny_sample_root,
                                             lambda train_config, _: (train_config.crop_size, train_config.batch_size))
    wider = label_efficiency.Variant(crop=128)
    assert wider.tag == "mask+crop128"
    budget = label_efficiency.QUICK  # 64² crops, 2 a batch: one 128² crop holds their pixels
    for method in ("hybrid", "scratch"):
        label_efficiency.fit_and_score(method, pool[:1], data, lambda _: tiny_checkpoint, budget, wider, seed=0)
    assert seen == {"hybrid": (128, 1), "scratch": (128, 1)}
    assert label_efficiency.Variant(crop=32).crop_and_crops(budget) == (32, 8)
    assert label_efficiency.Variant().crop_and_crops(budget) == (budget.crop, budget.batch_size)
    with pytest.raises(ValueError, match="at least 16"):
        label_efficiency.Variant(crop=8)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--finetune-crop", "4", "--report-only"])


def test_a_bfloat16_variant_is_compared_with_bfloat16_plain_fine_tuning_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(label_efficiency, "native_bfloat16", lambda device: True)
    work, results, md = tmp_path / "work", tmp_path / "benchmarks" / "results", tmp_path / "BENCHMARKS.md"
    records = label_efficiency.Records(work / "records.jsonl")
    wider = label_efficiency.Variant(crop=256, precision="bfloat16")
    for seed in (0, 1):
        records.add(_record("hybrid", 5, seed, 0.70))  # float32: not the baseline asked for
        records.add({**_record("hybrid", 5, seed, 0.80), "variant": "mask+bf16"})
        records.add({**_record("hybrid", 5, seed, 0.83), "variant": wider.tag})
    common = ["--work", str(work), "--results-dir", str(results), "--benchmarks-md", str(md), "--report-only",
              "--precision", "bfloat16", "--finetune-crop", "256", "--report-name", "crop"]
    assert label_efficiency.main([*common, "--baseline-precision", "bfloat16"]) == 0
    (entry,) = json.loads((results / "crop.json").read_text())
    (against,) = entry["against_default_fine_tuning"]
    assert against["mean"] == pytest.approx(0.03)
    assert "hybrid: mask+crop256+bf16 − mask+bf16" in md.read_text()
    assert label_efficiency.main(common) == 0
    (entry,) = json.loads((results / "crop.json").read_text())
    assert entry["against_default_fine_tuning"][0]["mean"] == pytest.approx(0.13)


def test_keeping_near_the_start_applies_to_the_pretrained_arms_only(tiny_sample_root, tiny_checkpoint, monkeypatch):
    seen, pool, data = _recorded_fine_tuning(monkeypatch, tiny_sample_root,
                                             lambda train_config, config: (train_config.start_decay, config.finetuned_share))
    near = label_efficiency.Variant(finetune_steps=50, start_decay=10.0, finetuned_share=0.5)
    assert near.tag == "mask+steps50+l2sp10+wise0.5"
    for method in ("hybrid", "scratch"):
        label_efficiency.fit_and_score(method, pool[:1], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                                       near, seed=0)
    assert seen == {"hybrid": (10.0, 0.5), "scratch": (0.0, 1.0)}
    by_labels = label_efficiency.Variant(finetuned_half_at=1.0)
    assert by_labels.tag == "mask+wisek1"
    assert [by_labels.finetuned_share_for(n) for n in (0, 1, 3)] == [1.0, 0.5, 0.75]
    label_efficiency.fit_and_score("hybrid", pool[:3], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                                   by_labels, seed=0)
    assert seen["hybrid"] == (0.0, 0.75)
    with pytest.raises(ValueError, match="not both"):
        label_efficiency.Variant(finetuned_share=0.5, finetuned_half_at=1.0)
    for bad in (["--start-decay", "-1"], ["--finetuned-share", "0"], ["--finetuned-half-at", "-1"]):
        with pytest.raises(SystemExit):
            label_efficiency.main([*bad, "--report-only"])


def test_the_report_names_the_machines_that_ran_the_records_not_the_one_rebuilding_it():
    line = label_efficiency.machines_line
    assert line([{"machine": "A"}, {"machine": "A"}], "HERE") == "A"
    mixed = line([{"machine": "A"}, {"machine": "B"}, {"machine": "A"}, {}], "HERE")
    assert mixed == "A (2 runs); B (1 run); 1 run from before records named their machine (this report rebuilt on HERE)"


def test_a_variant_can_be_compared_with_the_default_fine_tuning_at_other_steps(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    Variant = label_efficiency.Variant
    blend = Variant(finetune_steps=50, finetuned_share=0.5)
    for seed in (0, 1):
        records.add(_record("hybrid", 1, seed, 0.60))  # 200 steps
        records.add({**_record("hybrid", 1, seed, 0.70), "variant": Variant(finetune_steps=50).tag})
        records.add({**_record("hybrid", 1, seed, 0.75), "variant": blend.tag})
    md = tmp_path / "BENCHMARKS.md"
    label_efficiency.write_report(records, "test", blend, label_efficiency.FULL, "cmd", results, md, "blend",
                                  baseline=Variant(finetune_steps=50))
    (entry,) = json.loads((results / "blend.json").read_text())
    (against,) = entry["against_default_fine_tuning"]
    assert against["mean"] == pytest.approx(0.05)
    assert "hybrid: mask+steps50+wise0.5 − mask+steps50" in md.read_text()


def test_a_fine_tuning_variant_is_compared_paired_with_the_default_on_the_same_runs(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    longer = label_efficiency.Variant(finetune_steps=600)
    for seed in (0, 1, 2):
        records.add(_record("hybrid", 5, seed, 0.80))
        records.add({**_record("hybrid", 5, seed, 0.82), "variant": longer.tag})
        records.add({**_record("hybrid", 0, seed, 0.70), "variant": longer.tag})  # zero-shot: nothing fine-tuned
    records.add({**_record("scratch", 5, 0, 0.7), "variant": longer.tag})  # no default run of its own to pair with
    md = tmp_path / "BENCHMARKS.md"
    label_efficiency.write_report(records, "test", longer, label_efficiency.FULL, "cmd", results, md,
                                  "label_efficiency_mask_steps600")
    (entry,) = json.loads((results / "label_efficiency_mask_steps600.json").read_text())
    (against,) = entry["against_default_fine_tuning"]
    assert (against["method"], against["n_labels"], against["n_seeds"]) == ("hybrid", 5, 3)
    assert against["mean"] == pytest.approx(0.02)
    assert "hybrid: mask+steps600 − mask" in md.read_text() and "+0.020 [+0.020, +0.020] (3)" in md.read_text()

    label_efficiency.write_report(records, "test", label_efficiency.Variant(), label_efficiency.FULL, "cmd",
                                  results, md, "label_efficiency")
    (entry,) = json.loads((results / "label_efficiency.json").read_text())
    assert "against_default_fine_tuning" not in entry  # the default is not compared with itself

    # the variant also ran another pretraining setting, which its report shows as the arm: the default setting's
    # runs (``hybrid`` in the default report, ``hybrid@clean0.5`` in the variant's) still pair with each other
    for seed in (0, 1, 2):
        records.add({**_record("hybrid", 5, seed, 0.9, pretrain="clean0.5-invert0.5"), "variant": longer.tag})
    inverted = label_efficiency.FULL.overridden(invert_probability=0.5)
    label_efficiency.write_report(records, "test", longer, inverted, "cmd", results, md, "label_efficiency_mask_steps600")
    (entry,) = json.loads((results / "label_efficiency_mask_steps600.json").read_text())
    (against,) = entry["against_default_fine_tuning"]
    assert (against["method"], against["mean"]) == ("hybrid@clean0.5", pytest.approx(0.02))
