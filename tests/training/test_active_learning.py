"""The simulated-clinician benchmark end to end on a tiny budget."""

import json

from training import active_learning


def quick_args(data_root, checkpoint, tmp_path) -> list[str]:
    return ["--quick", "--targets", f"{data_root}:synth", "--source-model", str(checkpoint),
            "--threads", "1", "--work", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"),
            "--benchmarks-md", str(tmp_path / "BENCHMARKS.md")]


def test_quick_active_learning_runs_every_strategy_and_resumes(tiny_sample_root, tiny_checkpoint, tmp_path, capsys,
                                                               monkeypatch):
    args = quick_args(tiny_sample_root, tiny_checkpoint, tmp_path)
    assert active_learning.main(args) == 0

    data = json.loads((tmp_path / "results" / "active_learning_quick.json").read_text())
    assert [entry["target"] for entry in data] == ["synth"]
    runs = {(r["strategy"], r["seed"], r["n_labels"]) for r in data[0]["results"]}
    assert runs == {(s, seed, n) for s in active_learning.STRATEGIES for seed in (0, 1) for n in (1, 2)}
    assert all(0 <= r["worst_dice"] <= r["dice"] for r in data[0]["results"])
    records = [json.loads(line) for line in (tmp_path / "work" / "records.jsonl").read_text().splitlines()]
    for r in records:
        assert len(set(r["labelled_ids"])) == r["n_labels"]  # never the same image twice
    trajectories = {}
    for r in sorted(records, key=lambda r: r["n_labels"]):
        previous = trajectories.setdefault((r["strategy"], r["seed"]), [])
        assert r["labelled_ids"][: len(previous)] == previous  # each round adds to the labels already given
        trajectories[(r["strategy"], r["seed"])] = r["labelled_ids"]
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "adaptive − random" in page and "| 2 |" in page  # averaged over the targets, at each label count
    assert "Labels auto needs for its mean Dice to reach random's at 2 labels" in page  # the dock's default rule
    assert "Worst test image's Dice after 5 labels" in page
    detail = (tmp_path / "results" / "active_learning_quick_detail.md").read_text()
    assert "### synth, rounds of 1" in detail and "coverage − random" in detail
    assert (tmp_path / "results" / "active_learning_quick.png").stat().st_size > 1000
    kept = (tmp_path / "results" / "active_learning_quick_records.jsonl").read_text()
    assert [json.loads(line) for line in kept.splitlines()] == records  # the raw records travel with the results

    capsys.readouterr()
    assert active_learning.main(args) == 0  # resumes: everything is recorded, nothing is trained
    assert "Dice" not in capsys.readouterr().out
    assert active_learning.main([*args, "--report-only"]) == 0  # the report from the work folder, running nothing
    facts = json.loads((tmp_path / "results" / "active_learning_quick_run.json").read_text())
    assert "--report-only" not in facts["command"] and "--quick" in facts["command"]
    assert "Dice" not in capsys.readouterr().out

    # on another machine only the records come along: the last models are made again, then it goes on
    import shutil

    shutil.rmtree(tmp_path / "work" / "models")
    from napari_hybridseg.learn import finetune as finetune_module

    with monkeypatch.context() as patched:
        patched.setattr(finetune_module, "finetune", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
        assert active_learning.main(args) == 0  # finished trajectories: no model is made again
    records_path = tmp_path / "work" / "records.jsonl"
    first_rounds = [line for line in records_path.read_text().splitlines() if json.loads(line)["n_labels"] == 1]
    records_path.write_text("\n".join(first_rounds) + "\n")
    chosen_with = []
    choose = active_learning.choose

    def recording_choose(strategy, model_and_meta, pool, labelled, *rest):
        chosen_with.append(len(model_and_meta[1].get("finetuning") or []))  # rounds the model was tuned in
        return choose(strategy, model_and_meta, pool, labelled, *rest)

    monkeypatch.setattr(active_learning.runner, "choose", recording_choose)
    assert active_learning.main(args) == 0
    assert chosen_with == [1] * len(chosen_with) and chosen_with  # the model fine-tuned on the first label
    resumed = [json.loads(line) for line in records_path.read_text().splitlines()]
    assert {(r["strategy"], r["seed"], r["n_labels"]) for r in resumed} == runs
    first = {(r["strategy"], r["seed"]): r["labelled_ids"] for r in resumed if r["n_labels"] == 1}
    for r in resumed:
        assert r["labelled_ids"][:1] == first[(r["strategy"], r["seed"])]


def test_seeds_option_runs_only_the_given_seeds(tiny_sample_root, tiny_checkpoint, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(active_learning.cli, "run_trajectory",
                        lambda target, strategy, schedule, seed, *rest: ran.append((strategy, seed)))
    args = quick_args(tiny_sample_root, tiny_checkpoint, tmp_path) + ["--seeds", "1", "--strategies", "random", "entropy"]
    assert active_learning.main(args) == 0
    assert ran == [("random", 1), ("entropy", 1)]


def test_labels_to_reach_random_is_the_first_count_whose_mean_reaches_it():
    def row(strategy, round_size, seed, n, dice):
        return {"target": "t", "strategy": strategy, "round_size": round_size, "seed": seed, "n_labels": n,
                "dice": dice, "worst_dice": dice, "per_image_dice": [dice, dice]}

    rows = [row("random", 5, s, 10, 0.80) for s in (0, 1)]
    rows += [row("disagreement", 5, s, n, d) for s in (0, 1) for n, d in ((5, 0.70), (10, 0.81))]
    rows += [row("disagreement", 1, s, n, 0.70 + 0.03 * n) for s in (0, 1) for n in range(1, 6)]  # 0.73 … 0.85
    def reach(rows, goal_labels=10, strategy="disagreement"):
        return active_learning.labels_to_reach_markdown(rows, goal_labels, strategy)

    text = reach(rows)
    assert "random's at 10 labels" in text
    assert "* t: 4 labels in rounds of 1 (random at 10: 0.800)" in text  # 0.82 is the first mean at or above 0.80
    slow = [r for r in rows if not (r["strategy"] == "disagreement" and r["round_size"] == 1 and r["n_labels"] >= 4)]
    assert "* t: 10 labels in rounds of 5" in reach(slow)
    slower = [r for r in slow if not (r["strategy"] == "disagreement" and r["n_labels"] == 10)]
    assert "* t: not within 5 labels" in reach(slower)
    assert "not measured yet" in reach(rows, goal_labels=15)
    # auto is disagreement one by one and coverage in rounds of 5: the rounds of 5 above are not its own
    assert "* t: not within 3 labels" in reach(slow, strategy="auto")
    covering = [{**r, "strategy": "coverage"} for r in slow if r["strategy"] == "disagreement" and r["round_size"] == 5]
    assert "* t: 10 labels in rounds of 5" in reach(slow + covering, strategy="auto")


def test_goals_average_each_target_against_random_and_flag_where_the_rule_is_below():
    from training.active_learning.summary import goals_markdown

    def rows_of(target, strategy, dice):
        return [{"target": target, "strategy": strategy, "round_size": 1, "seed": s, "n_labels": 3, "dice": dice,
                 "worst_dice": dice - 0.2, "per_image_dice": [dice + 0.01 * s, dice - 0.01 * s, dice]} for s in range(3)]

    rows = rows_of("a", "random", 0.70) + rows_of("a", "disagreement", 0.80) + rows_of("b", "random", 0.70)
    rows += rows_of("b", "disagreement", 0.50)
    text = goals_markdown(rows, goal_labels=10, rule="disagreement")
    assert "| 3 | -0.050 [-0.050, -0.050] | a, b |" in text  # (+0.10 − 0.20) / 2, the same in every resample
    assert "significantly below random: b at 3 labels" in text
    by_default = goals_markdown(rows, goal_labels=10)  # auto: in rounds of 1, disagreement's rounds
    assert "| 3 | -0.050 [-0.050, -0.050] | -0.050 [-0.050, -0.050] | a, b |" in by_default
    assert "The product's rule (auto) significantly below random: b at 3 labels" in by_default
