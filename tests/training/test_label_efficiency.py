"""The label-efficiency benchmark end to end on a tiny budget, and its statistics."""

import json

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


def test_quick_benchmark_runs_every_arm_and_resumes(tiny_sample_root, tmp_path, capsys):
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
