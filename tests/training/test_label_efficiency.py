"""The label-efficiency benchmark end to end on a tiny budget, its settings, and its report."""

import json
from dataclasses import replace

import numpy as np
import pytest

from training import label_efficiency
from training.label_efficiency import cli, page, runner, summary
from training.stats import paired_bootstrap

Variant = label_efficiency.Variant


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


def test_quick_benchmark_runs_every_arm_resumes_and_rebuilds_its_section_from_its_json(
    tiny_sample_root, tmp_path, capsys, monkeypatch
):
    results, md = tmp_path / "benchmarks" / "results" / "label_efficiency", tmp_path / "BENCHMARKS.md"
    args = ["--quick", "--pair", f"{tiny_sample_root}:synth:synth", "--source-split", "pool", "--threads", "1",
            "--work", str(tmp_path / "work"), "--results-dir", str(results), "--benchmarks-md", str(md)]
    assert label_efficiency.main(args) == 0

    data = json.loads((results / "label_efficiency_quick.json").read_text())
    assert [(d["source"], d["target"]) for d in data["pairs"]] == [("synth", "synth")]
    runs = data["pairs"][0]["results"]
    cells = {(r["method"], r["n_labels"]) for r in runs}
    for method in label_efficiency.ARMS:
        for n in (1, 2, 4):  # 4: the whole pool, the ceiling
            assert (method, n) in cells
    assert ("hybrid", 0) in cells and ("supervised", 0) in cells and ("diffusion", 0) not in cells
    assert {r["seed"] for r in runs if r["n_labels"] == 1} == {0, 1}
    assert all(0.0 <= r["dice"] <= 1.0 for r in runs)

    # the same subset for every arm: one labelled set per (N, seed)
    records = [json.loads(line) for line in (tmp_path / "work" / "records.jsonl").read_text().splitlines()]
    subsets = {}
    for r in records:
        subsets.setdefault((r["n_labels"], r["seed"]), set()).add(tuple(r["labelled_ids"]))
    assert all(len(s) == 1 for s in subsets.values())
    kept = (results / "label_efficiency_quick_records.jsonl").read_text()
    assert [json.loads(line) for line in kept.splitlines()] == records  # the raw records travel with the results

    assert (results / "label_efficiency_quick_synth.png").stat().st_size > 1000
    written, pairs_page = md.read_text(), results / "label_efficiency_quick.md"
    detail = pairs_page.read_text()
    assert "hybrid − supervised" in written and "label_efficiency_quick:start" in written  # every pair in one table
    assert "hybrid − forest" in detail and "label_efficiency_quick_pairs:start" in detail  # each pair's whole report
    assert "label_efficiency_quick.md" in written

    # --report-only rebuilds both sections from the JSON alone, byte for byte
    md.write_text(written.replace("hybrid − supervised", "stale"))
    pairs_page.write_text(detail.replace("hybrid − forest", "stale"))
    assert label_efficiency.main(["--quick", "--results-dir", str(results), "--benchmarks-md", str(md),
                                  "--report-only"]) == 0
    assert md.read_text() == written and pairs_page.read_text() == detail

    # a second run finds every record and trains nothing
    capsys.readouterr()
    assert label_efficiency.main(args) == 0
    assert "Dice" not in capsys.readouterr().out
    assert len((tmp_path / "work" / "records.jsonl").read_text().splitlines()) == len(records)

    # a fine-tuning variant reports in its own section, beside its JSON, and leaves the main report as it was
    from napari_hybridseg.learn import finetune

    steps_trained = []
    make_config = finetune.default_finetune_train_config
    monkeypatch.setattr(finetune, "default_finetune_train_config",
                        lambda **kw: steps_trained.append(kw["steps"]) or make_config(**kw))
    before = (results / "label_efficiency_quick.json").read_text()
    variant_args = ["--finetune-steps", "3", "--arms", "scratch", "--n-labels", "1", "--seeds", "1"]
    assert label_efficiency.main([a for a in args if a not in ("--benchmarks-md", str(md))] + variant_args) == 0
    assert steps_trained == [3, 3]  # N = 1 and the ceiling
    assert (results / "label_efficiency_quick.json").read_text() == before
    variant = json.loads((results / "label_efficiency_quick_mask_steps3.json").read_text())
    assert {(r["method"], r["n_labels"]) for r in variant["pairs"][0]["results"]} == {("scratch", 1), ("scratch", 4)}
    assert variant["pairs"][0]["finetune"] == "mask+steps3"
    assert "label_efficiency_quick_mask_steps3:start" in (results / "label_efficiency_quick_mask_steps3.md").read_text()
    assert "mask_steps3" not in md.read_text()


def _record(method: str, n: int, seed: int, dice: float, pretrain: str | None = None) -> dict:
    return {"pair": "root-a-b", "protocol": "test", "variant": "mask", "method": method,
            "pretrain": pretrain if pretrain is not None else "clean0.5" if method == "hybrid" else "",
            "n_labels": n, "seed": seed, "source": "a",
            "target": "b", "n_pool": 4, "labelled_ids": [], "dice": dice, "iou": dice / 2,
            "per_image_dice": [dice - 0.01, dice + 0.01], "seconds": 1.0}


def _report(tmp_path, records, section="label_efficiency", variant=Variant(), budget=label_efficiency.FULL, **kw):
    """The report ``section`` in ``tmp_path``: its JSON and the text of its page (BENCHMARKS.md for the main
    report, else ``<section>.md`` beside the JSON)."""
    results = tmp_path / "results"
    md = tmp_path / "BENCHMARKS.md" if kw.get("main", True) else results / f"{section}.md"  # as the command line does
    page.write_report(records, "test", variant, budget, "cmd", section, results, md, **kw)
    pairs = results / f"{section}.md"  # the main report's pairs, on a page of their own
    text = md.read_text() + (pairs.read_text() if kw.get("main", True) and pairs.exists() else "")
    return json.loads((results / f"{section}.json").read_text()), text


def test_a_named_report_is_of_its_own_pairs_and_keeps_their_records_and_the_main_one_every_record(tmp_path):
    results = tmp_path / "results"
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    records.add(_record("hybrid", 5, 0, 0.8))
    records.add({**_record("hybrid", 5, 0, 0.7), "protocol": "validation"})
    records.add({**_record("hybrid", 5, 0, 0.6), "pair": "other-c-d", "target": "d"})
    _report(tmp_path, records, "named", main=False, only_pairs={"root-a-b", "other-c-d"})
    _report(tmp_path, records)
    common = ["--work", str(tmp_path / "work"), "--results-dir", str(results), "--report-only", "--report-name", "one_pair"]
    assert label_efficiency.main([*common, "--pair", "data/other:c:d"]) == 0
    kept = {name: [json.loads(line)["dice"] for line in (results / f"{name}_records.jsonl").read_text().splitlines()]
            for name in ("named", "one_pair", "label_efficiency")}
    assert kept["named"] == [0.8, 0.6]  # both pairs' test runs; not the validation one
    assert sorted(kept["label_efficiency"]) == [0.6, 0.7, 0.8]
    assert [e["target"] for e in json.loads((results / "one_pair.json").read_text())["pairs"]] == ["d"]
    assert "### a → b" not in (results / "one_pair.md").read_text()
    assert kept["one_pair"] == [0.6]

    assert label_efficiency.main([*common, "--pair", "data/root:a:b"]) == 0
    assert sorted(e["target"] for e in json.loads((results / "one_pair.json").read_text())["pairs"]) == ["b", "d"]
    assert sorted(json.loads(line)["dice"] for line in (results / "one_pair_records.jsonl").read_text().splitlines()) \
        == [0.6, 0.8]  # d carried over, with its records


def test_the_main_report_shows_the_arms_and_a_named_one_other_settings_as_arms_of_their_own(tmp_path):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    for seed in (0, 1):
        records.add(_record("hybrid", 5, seed, 0.8))
        records.add(_record("hybrid", 5, seed, 0.9, pretrain="clean0.5-invert0.5"))
        records.add(_record("forest", 5, seed, 0.85))
    main, text = _report(tmp_path, records)
    assert "| hybrid − forest |" in text and "@" not in text.split("label_efficiency:start")[1]
    inverted = label_efficiency.FULL.overridden(invert_probability=0.5)
    named, _ = _report(tmp_path, records, "inverted", budget=inverted, main=False)
    named_text = (tmp_path / "results" / "inverted.md").read_text()
    assert "| hybrid − forest | hybrid − hybrid@clean0.5 |" in named_text
    assert "| 5 | +0.050 [" in named_text  # the inverted start against the forest
    assert named["pairs"][0]["pretraining"]["hybrid"] == "clean0.5-invert0.5"
    assert main["pairs"][0]["pretraining"]["hybrid"] == "clean0.5"
    assert (tmp_path / "results" / "inverted_b.png").exists()


def test_report_keeps_an_earlier_pair_that_has_no_records(tmp_path):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    records.add(_record("hybrid", 5, 0, 0.8))
    records.add(_record("scratch", 5, 0, 0.7))
    first, _ = _report(tmp_path, records)
    moved = label_efficiency.Records(tmp_path / "other" / "records.jsonl")
    for seed in (0, 1):
        moved.add({**_record("hybrid", 5, seed, 0.9), "pair": "root-x-y", "source": "x", "target": "y"})
        moved.add({**_record("scratch", 5, seed, 0.6), "pair": "root-x-y", "source": "x", "target": "y"})
    data, text = _report(tmp_path, moved)
    assert [(d["source"], d["target"]) for d in data["pairs"]] == [("x", "y"), ("a", "b")]
    assert data["pairs"][1] == first["pairs"][0]  # carried over unchanged
    assert "### a → b" in text and "+0.300 [" in text  # hybrid − scratch of the new pair


def test_scratch_and_forest_train_without_a_source_model(tiny_sample_root, tmp_path, monkeypatch):
    import torch

    from napari_hybridseg.learn.finetune import scratch_model
    from napari_hybridseg.model.checkpoint import read_metadata

    budget = replace(label_efficiency.QUICK, seeds=1, n_labels=(1,), ceiling_seeds=0)
    pair = label_efficiency.Pair(tiny_sample_root, "synth", "synth", source_split="pool")

    def no_pretraining(*args):
        raise AssertionError("scratch and forest must not pretrain a source model")

    with monkeypatch.context() as patched:
        patched.setattr(runner, "pretrained_checkpoint", no_pretraining)
        records = label_efficiency.run([pair], ["scratch", "forest"], budget, Variant(), "test", tmp_path / "work",
                                       threads=1)
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
    serial = label_efficiency.run([pair], arms, budget, Variant(), "test", tmp_path / "one", threads=1)
    parallel = label_efficiency.run([pair], arms, budget, Variant(), "test", tmp_path / "two", threads=1, workers=2)
    assert "2 worker(s) of 1 thread(s)" in capsys.readouterr().out

    def by_key(records):
        return {tuple(r[k] for k in records.key): (r["labelled_ids"], r["per_image_dice"]) for r in records.rows}

    assert len(serial.rows) == 2 * 3 + 1  # two seeds of each arm, and hybrid zero-shot
    assert by_key(parallel) == by_key(serial)  # one thread each: the same arithmetic, whichever process ran it
    # each source model is pretrained once, and the records file is whole JSON lines written by one process
    assert len(list((tmp_path / "two" / "pretrain").glob("*.safetensors"))) == 1
    assert len(label_efficiency.Records(tmp_path / "two" / "records.jsonl").rows) == len(parallel.rows)


def test_bfloat16_fine_tuning_is_its_own_variant_and_is_refused_where_it_would_be_emulated(tmp_path, monkeypatch, capsys):
    assert Variant(precision="bfloat16").tag == "mask+bf16"
    assert Variant().tag == "mask"
    with pytest.raises(ValueError, match="precision"):
        Variant(precision="float16")
    monkeypatch.setattr(cli, "native_bfloat16", lambda device: False)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--precision", "bfloat16", "--work", str(tmp_path / "work")])
    assert "no native bfloat16" in capsys.readouterr().err


def test_an_interrupted_benchmark_says_what_is_kept_and_how_to_resume(tmp_path, monkeypatch, capsys):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    records.add(_record("hybrid", 5, 0, 0.8))

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
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


def option_values(args: list[str]) -> dict[str, str]:
    return dict(zip(args[::2], args[1::2]))


def test_pretraining_settings_name_the_source_models_and_reach_pretraining():
    budget = label_efficiency.FULL
    assert budget.pretrain_tag("hybrid") == "clean0.5"  # the default keeps the name of every earlier source model
    assert option_values(budget.pretrain_args("hybrid")) == {"--clean-fraction": "0.5", "--lambda-image": "1.0",
                                                             "--sigma-log-mean": "-1.2"}
    assert budget.pretrain_tag("diffusion") == "" and budget.pretrain_args("diffusion") == ["--clean-fraction", "0"]
    weighted = replace(budget, lambda_image=4.0)
    assert weighted.pretrain_tag("hybrid") == "clean0.5-lambda4"
    assert option_values(weighted.pretrain_args("hybrid"))["--lambda-image"] == "4.0"
    assert weighted.pretrain_args("supervised") == []
    inverted = replace(budget, invert_probability=0.5, pretrain_seed=2)
    assert inverted.pretrain_tag("hybrid") == "clean0.5-invert0.5-seed2"
    assert inverted.pretrain_tag("supervised") == "invert0.5-seed2"
    assert inverted.pretrain_tag("scratch") == inverted.pretrain_tag("forest") == ""  # nothing pretrained to name
    assert inverted.pretrain_args("supervised") == ["--invert-probability", "0.5", "--seed", "2"]


def test_the_noise_levels_of_hybrid_pretraining_name_its_checkpoint_and_reach_pretraining():
    chase = label_efficiency.FULL.for_pair_name("retina-drive-chase")
    assert chase.pretrain_tag("hybrid") == "clean0.5-lambda0.25-logsigma-2"  # chosen on CHASE validation
    assert option_values(chase.pretrain_args("hybrid"))["--sigma-log-mean"] == "-2.0"
    assert chase.pretrain_tag("diffusion") == "" and chase.pretrain_args("supervised") == []  # hybrid's alone
    flagged = label_efficiency.FULL.overridden(sigma_log_mean=-3.0)
    assert flagged.for_pair_name("dsb2018-fluorescence-histology").pretrain_tag("hybrid") == "clean0.5-invert0.5-logsigma-3"


def test_settings_chosen_for_a_data_set_apply_to_its_pairs_unless_a_flag_overrides_them(tmp_path):
    chase = label_efficiency.Pair(tmp_path / "retina", "drive", "chase")
    histology = label_efficiency.Pair(tmp_path / "dsb2018", "fluorescence", "histology")
    full = label_efficiency.FULL
    assert full.for_pair_name(chase.name).shown_tags["hybrid"] == "clean0.5-lambda0.25-logsigma-2"
    assert full.for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5-invert0.5"
    assert full.overridden(invert_probability=0.0).for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5"
    flagged = full.overridden(lambda_image=4.0, seeds=2)
    assert flagged.for_pair_name(chase.name).pretrain_tag("hybrid") == "clean0.5-lambda4-logsigma-2"
    assert flagged.for_pair_name(histology.name).pretrain_tag("hybrid") == "clean0.5-invert0.5-lambda4"
    assert full.overridden(seeds=2).for_pair_name(chase.name).lambda_image == 0.25
    assert full.pretrain_steps_for(chase) == 1000 and full.pretrain_steps_for(histology) == 1500


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
    assert Variant().on_pair(chosen, "root-a-b") == Variant(finetune_steps=600).on_pair(chosen, "root-a-b")
    assert Variant().on_pair(chosen, "root-a-b").tag == "mask+steps600"
    assert Variant(finetune_steps=50).on_pair(chosen, "root-a-b").tag == "mask+steps50"  # the command line wins
    assert Variant(finetune_steps=200).on_pair(chosen, "root-a-b").tag == "mask"  # the default's records
    assert Variant().on_pair(label_efficiency.FULL, "root-a-b").tag == "mask"

    rows = [_record("hybrid", 5, s, 0.80) for s in (0, 1)]  # 200 steps
    rows += [{**_record("hybrid", 5, s, 0.85), "variant": "mask+steps600"} for s in (0, 1)]
    (_, reported), = summary.report_rows(rows, "test", Variant(), chosen).values()
    assert {r["dice"] for r in reported} == {0.85}
    (_, reported), = summary.report_rows(rows, "test", Variant(finetune_steps=200), chosen).values()
    assert {r["dice"] for r in reported} == {0.80}
    steps600 = [r for r in rows if r["variant"] == "mask+steps600"]
    assert summary.against_baseline(steps600, steps600) == []  # the same runs: nothing to compare


def test_a_pairs_chosen_blend_applies_unless_the_command_line_names_one(tiny_sample_root, tiny_checkpoint, monkeypatch):
    budget = replace(label_efficiency.FULL, chosen={"root-a-b": {"finetune_steps": 50, "finetuned_half_at": 1.0}})
    assert Variant().on_pair(budget, "root-a-b").tag == "mask+steps50+wisek1"
    assert Variant().on_pair(budget, "root-a-b") == Variant(finetune_steps=50, finetuned_half_at=1.0).on_pair(budget, "root-a-b")
    assert Variant(finetuned_half_at=0.0).on_pair(budget, "root-a-b").tag == "mask+steps50"  # 0: off
    assert Variant(finetuned_half_at=3.0).on_pair(budget, "root-a-b").tag == "mask+steps50+wisek3"
    assert Variant().on_pair(budget, "other-a-b").tag == "mask"
    assert [Variant(finetuned_half_at=1.0).finetuned_share_for(n) for n in (0, 1, 3)] == [1.0, 0.5, 0.75]
    with pytest.raises(ValueError, match="must not be negative"):
        Variant(finetuned_half_at=-1.0)

    # the blend reaches the pretrained arms' fine-tuning, not scratch's
    seen, pool, data = _recorded_fine_tuning(monkeypatch, tiny_sample_root, lambda _, config: config.finetuned_share)
    for method in ("hybrid", "scratch"):
        runner.fit_and_score(method, pool[:3], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                             Variant(finetuned_half_at=1.0), seed=0)
    assert seen == {"hybrid": 0.75, "scratch": 1.0}

    # the main report pairs the chosen blend with plain fine-tuning at the same steps
    rows = [{**_record("hybrid", 1, s, 0.80), "variant": "mask+steps50"} for s in (0, 1)]
    rows += [{**_record("hybrid", 1, s, 0.85), "variant": "mask+steps50+wisek1"} for s in (0, 1)]
    (_, blended), = summary.report_rows(rows, "test", Variant(), budget).values()
    (_, plain), = summary.report_rows(rows, "test", Variant(finetuned_half_at=0.0), budget).values()
    assert {r["dice"] for r in blended} == {0.85} and {r["dice"] for r in plain} == {0.80}
    (against,) = summary.against_baseline(blended, plain)
    assert (against["method"], against["n_labels"], against["mean"]) == ("hybrid", 1, pytest.approx(0.05))


def test_a_run_writes_the_main_report_only_at_every_pairs_chosen_settings():
    full = label_efficiency.FULL
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
    assert section(pretrain_seed=1) == "label_efficiency_pretrainseed1"


def test_a_setting_not_yet_run_on_a_pair_shows_the_most_run_one_as_the_arm():
    tuned = replace(label_efficiency.FULL, invert_probability=0.5)
    rows = [_record("hybrid", 5, s, 0.8) for s in (0, 1)] + [_record("supervised", 5, s, 0.6) for s in (0, 1)]
    (shown, reported), = summary.report_rows(rows, "test", Variant(), tuned).values()
    assert shown["hybrid"] == "clean0.5" and shown["supervised"] == ""
    rows += [_record("supervised", 5, s, 0.7, pretrain="invert0.5") for s in (0, 1)]
    (shown, reported), = summary.report_rows(rows, "test", Variant(), tuned).values()
    assert shown["supervised"] == "invert0.5"
    assert sorted({r["method"] for r in reported}) == ["hybrid", "supervised", "supervised@default"]
    (_, main), = summary.report_rows(rows, "test", Variant(), tuned, other_settings=False).values()
    assert sorted({r["method"] for r in main}) == ["hybrid", "supervised"]


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
    slower = Variant(lr=1e-4)
    assert slower.tag == "mask+lr0.0001"
    for method in ("hybrid", "scratch"):
        runner.fit_and_score(method, pool[:1], data, lambda _: tiny_checkpoint, label_efficiency.QUICK, slower, seed=0)
    assert rates == {"hybrid": 1e-4, "scratch": finetune_module.FINETUNE_LR}
    scratch_faster = Variant(scratch_lr=3e-3)
    assert scratch_faster.tag == "mask+scratchlr0.003"
    runner.fit_and_score("scratch", pool[:1], data, lambda _: tiny_checkpoint, label_efficiency.QUICK,
                         scratch_faster, seed=0)
    assert rates["scratch"] == 3e-3
    for rates_given in ({"lr": -1e-3}, {"scratch_lr": 0.0}):
        with pytest.raises(ValueError, match="must be positive"):
            Variant(**rates_given)
    with pytest.raises(SystemExit):
        label_efficiency.main(["--finetune-lr", "0", "--report-only"])


def test_the_report_names_the_machines_that_ran_the_records():
    line = page.machines_line
    assert line([{"machine": "A"}, {"machine": "A"}]) == "A"
    mixed = line([{"machine": "A"}, {"machine": "B"}, {"machine": "A"}, {}])
    assert mixed == "A (2 runs); B (1 run); 1 run from before records named their machine"


def test_a_fine_tuning_variant_is_compared_paired_with_the_default_on_the_same_runs(tmp_path):
    records = label_efficiency.Records(tmp_path / "work" / "records.jsonl")
    longer = Variant(finetune_steps=600)
    for seed in (0, 1, 2):
        records.add(_record("hybrid", 5, seed, 0.80))
        records.add({**_record("hybrid", 5, seed, 0.82), "variant": longer.tag})
        records.add({**_record("hybrid", 0, seed, 0.70), "variant": longer.tag})  # zero-shot: nothing fine-tuned
    records.add({**_record("scratch", 5, 0, 0.7), "variant": longer.tag})  # no default run of its own to pair with
    data, _ = _report(tmp_path, records, "label_efficiency_mask_steps600", longer, main=False)
    (against,) = data["pairs"][0]["against_baseline"]["intervals"]
    assert (against["method"], against["n_labels"], against["n_seeds"]) == ("hybrid", 5, 3)
    assert against["mean"] == pytest.approx(0.02)
    text = (tmp_path / "results" / "label_efficiency_mask_steps600.md").read_text()
    assert "hybrid: mask+steps600 − mask" in text and "+0.020 [+0.020, +0.020] (3)" in text

    data, _ = _report(tmp_path, records)
    assert "against_baseline" not in data["pairs"][0]  # the default is not compared with itself
