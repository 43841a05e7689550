import json

import numpy as np
import pytest

from training import label_efficiency, pretrain_seeds
from training.stats import paired_bootstrap, paired_bootstrap_over_source_models

CHASE = "retina-drive-chase"


def _run(method: str, pretrain_seed: int, seed: int, per_image: list[float], n: int = 5) -> dict:
    tag = label_efficiency.FULL.overridden(pretrain_seed=pretrain_seed).for_pair_name(CHASE).pretrain_tag(method)
    return {"pair": CHASE, "protocol": "test", "variant": "mask", "method": method, "pretrain": tag, "n_labels": n,
            "seed": seed, "dice": float(np.mean(per_image)), "per_image_dice": per_image, "machine": "here"}


def test_another_pretraining_seed_names_its_own_source_models_and_reaches_pretraining():
    seeded = label_efficiency.FULL.overridden(pretrain_seed=2).for_pair_name(CHASE)
    assert seeded.pretrain_tag("hybrid") == "clean0.5-lambda0.25-logsigma-2-seed2"
    assert seeded.pretrain_tag("supervised") == "seed2" and seeded.pretrain_tag("scratch") == ""
    assert seeded.pretrain_args("supervised") == ["--seed", "2"]
    assert seeded.pretrain_args("hybrid")[-2:] == ["--seed", "2"]
    assert label_efficiency.FULL.for_pair_name(CHASE).pretrain_args("supervised") == []  # seed 0: the records so far
    assert label_efficiency.default_section(False, "test", label_efficiency.Variant(), label_efficiency.FULL,
                                            label_efficiency.FULL.overridden(pretrain_seed=2), [CHASE]) \
        == "label_efficiency_pretrainseed2"


def test_the_source_models_luck_widens_the_interval_and_never_moves_the_mean():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 0.05, size=(1, 1, 12))
    luck = np.array([-0.02, 0.0, 0.02])[:, None, None]  # each hybrid source model's own offset
    a = 0.80 + luck + image + rng.normal(0, 0.002, size=(3, 5, 12))
    b = 0.79 + image + rng.normal(0, 0.002, size=(3, 5, 12))
    pooled = paired_bootstrap_over_source_models(a, b)
    flat = paired_bootstrap(a.reshape(15, 12), b.reshape(15, 12))  # as if every run shared one source model
    assert pooled.mean == pytest.approx((a - b).mean()) == pytest.approx(flat.mean)
    assert pooled.n_seeds == 3
    assert pooled.high - pooled.low > 2 * (flat.high - flat.low)
    with pytest.raises(ValueError, match="pretraining seeds"):
        paired_bootstrap_over_source_models(a[0], b[0])


def test_arms_are_compared_per_pretraining_seed_and_over_all_of_them(tmp_path):
    rows = [_run("hybrid", k, s, [0.80 + 0.01 * k, 0.70]) for k in (0, 1) for s in (0, 1)]
    rows += [_run("supervised", k, s, [0.79, 0.70]) for k in (0, 1) for s in (0, 1)]
    rows += [_run("hybrid", 0, s, [0.1, 0.1], n=2) for s in (0, 1)]  # another N: not mixed in
    rows += [{**_run("hybrid", 1, 0, [0.1, 0.1]), "variant": "mask+lr0.003"}]  # another fine-tuning: not mixed in
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = tmp_path / "BENCHMARKS.md"

    assert pretrain_seeds.main(["--records", str(records), "--pair", CHASE, "--pretrain-seeds", "0", "1", "2",
                                "--results-dir", str(tmp_path), "--benchmarks-md", str(md)]) == 0

    result, = json.loads((tmp_path / "pretrain_seeds.json").read_text())["results"]
    assert [r["pretrain_seed"] for r in result["per_pretrain_seed"]] == [0, 1]  # seed 2 has no runs
    assert [r["hybrid"] for r in result["per_pretrain_seed"]] == pytest.approx([0.75, 0.755])
    over = result["over_pretrain_seeds"]
    assert over["difference"]["mean"] == pytest.approx(0.0075)
    assert over["hybrid"]["std_between_source_models"] == pytest.approx(np.std([0.75, 0.755], ddof=1))
    text = md.read_text()
    assert "<!-- pretrain_seeds:start -->" in text and "all 2 (three-level bootstrap)" in text


def test_pretraining_seeds_without_runs_of_both_arms_are_refused(tmp_path, capsys):
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps(_run("hybrid", 1, 0, [0.8, 0.7])) + "\n")
    with pytest.raises(SystemExit) as stop:
        pretrain_seeds.main(["--records", str(records), "--pair", CHASE, "--results-dir", str(tmp_path),
                             "--benchmarks-md", str(tmp_path / "B.md")])
    assert stop.value.code == 2
    assert "has runs of both hybrid and supervised" in capsys.readouterr().err
