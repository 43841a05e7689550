"""Simulated-clinician benchmark: does choosing images by diffusion disagreement save labels?

Ground-truth masks stand in for the clinician's corrections. Starting from the
shipped source model, each strategy picks ``round_size`` pool images, the model
is fine-tuned from the source model on every image labelled so far (as the
plugin's refine does), the target's test split is scored, the new model ranks
the rest of the pool, and so on up to ``max_labels``. Strategies:

* ``disagreement``: the plugin's ranking (BALD across diffusion samples, settings ``RANKING_SCORER``);
* ``entropy``: the mean softmax entropy of one clean prediction (the cheap alternative);
* ``random``: the labelled subsets of the label-efficiency benchmark (``choose_subset``).

Runs are appended to ``<work>/records.jsonl`` and the latest model of each
trajectory is kept (or made again from the records), so an interrupted
benchmark resumes; copying the records into a new ``<work>`` resumes it on
another machine. Processes given disjoint ``--seeds`` may share one ``<work>``
(each appends whole lines); ``--report-only --work W`` then tables all of them, and ``--report-only``
alone rebuilds the section from the committed JSON and records (benchmarks/results/active_learning/).

    python -m training.active_learning                       # rounds of 5 to 20 and of 1 to 5, 5 seeds
    python -m training.active_learning --threads 1 --seeds 0 1 &   # the same, as two processes
    python -m training.active_learning --threads 1 --seeds 2 3 4; wait
    python -m training.active_learning --report-only --work runs/active_learning
    python -m training.active_learning --quick               # the pipeline on a tiny budget
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_hybridseg.data.datasets import Sample, choose_subset, load_domain

from . import report
from .label_efficiency import Records
from .stats import Interval, paired_bootstrap

STRATEGIES = ("disagreement", "entropy", "random")
KEY = ("strategy", "round_size", "seed", "n_labels")  # of a record
FOLDER = report.results_dir("active_learning")


@dataclass(frozen=True)
class Schedule:
    round_size: int
    max_labels: int


@dataclass(frozen=True)
class Budget:
    finetune_steps: int = 200
    batch_size: int = 8
    crop: int = 128
    seeds: int = 5
    schedules: tuple[Schedule, ...] = (Schedule(5, 20), Schedule(1, 5))
    max_test_images: int | None = None
    goal_labels: int = 10  # the goal: disagreement reaches random's Dice at this many labels with fewer


FULL = Budget()
QUICK = Budget(finetune_steps=4, batch_size=2, crop=32, seeds=2, schedules=(Schedule(1, 2),), max_test_images=2,
               goal_labels=2)


def choose(strategy: str, model_and_meta, pool: list[Sample], labelled: list[str], k: int, seed: int) -> list[str]:
    """The ``k`` unlabelled pool images ``strategy`` labels next."""
    remaining = [s for s in pool if s.id not in labelled]
    if strategy == "random":  # extends the previous subset, so random's subsets equal the label-efficiency ones
        return choose_subset([s.id for s in pool], len(labelled) + k, seed)[len(labelled):]
    from napari_hybridseg.annotation import RANKING_SCORER
    from napari_hybridseg.learn.acquisition import DisagreementScorer

    options = dict(RANKING_SCORER) if strategy == "disagreement" else {"metric": "entropy"}
    scorer = DisagreementScorer(model_and_meta[0], f"{strategy}-{len(labelled)}", seed=seed, **options)
    for _ in scorer.score_many((s.id, s.image) for s in remaining):
        pass
    return [key for key, _ in scorer.ranking()[:k]]


def run_trajectory(strategy: str, schedule: Schedule, seed: int, pool: list[Sample], test: list[Sample],
                   budget: Budget, records: Records, work: Path, source: Path) -> None:
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.learn.finetune import default_finetune_train_config, finetune
    from napari_hybridseg.model.checkpoint import load_checkpoint, save_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    done = [r for r in records.rows if (r["strategy"], r["round_size"], r["seed"]) == (strategy, schedule.round_size, seed)]
    labelled = list(max(done, key=lambda r: r["n_labels"])["labelled_ids"]) if done else []
    if len(labelled) >= schedule.max_labels:
        return  # finished: no model to load or make again
    base = load_checkpoint(source)
    name = f"{strategy}-r{schedule.round_size}-s{seed}"
    latest = work / "models" / f"{name}.safetensors"
    by_id = {s.id: s for s in pool}

    def fine_tuned() -> tuple:
        train_config = default_finetune_train_config(steps=budget.finetune_steps, batch_size=budget.batch_size,
                                                     crop_size=budget.crop, seed=1000 * seed + len(labelled))
        return finetune(*base, [by_id[i] for i in labelled], train_config)[:2]

    if not done:
        current = base
    elif latest.exists():
        current = load_checkpoint(latest)
    else:  # resumed from the records alone (another machine): the last round's model, made again
        current = fine_tuned()
    while len(labelled) < schedule.max_labels:
        started = time.perf_counter()
        labelled += choose(strategy, current, pool, labelled, schedule.round_size, seed)
        model, meta = fine_tuned()
        scores = evaluate(Segmenter(model, meta), test)
        current = (model, meta)
        save_checkpoint(latest, model, meta)
        row = {"strategy": strategy, "round_size": schedule.round_size, "seed": seed, "n_labels": len(labelled),
               "labelled_ids": list(labelled), "dice": scores["mean_dice"],
               "per_image_dice": [r["dice"] for r in scores["per_image"]], "seconds": round(time.perf_counter() - started, 1)}
        records.add(row)
        print(f"{name}: {len(labelled)} labels, Dice {row['dice']:.4f} ({row['seconds']} s)", flush=True)


def by_cell(rows: list[dict[str, Any]], round_size: int) -> dict[tuple[str, int], dict[int, dict]]:
    """``{(strategy, n_labels): {seed: record}}`` for one round size."""
    cell: dict[tuple[str, int], dict[int, dict]] = {}
    for r in rows:
        if r["round_size"] == round_size:
            cell.setdefault((r["strategy"], r["n_labels"]), {})[r["seed"]] = r
    return cell


def mean_dice(runs: dict[int, dict]) -> float:
    """Mean test Dice over the seeds of one cell."""
    return float(np.mean([r["dice"] for r in runs.values()]))


def paired(a: dict[int, dict], b: dict[int, dict]) -> Interval | None:
    """Paired interval of ``a − b`` over the seeds both have run, or None."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return paired_bootstrap(np.array([a[s]["per_image_dice"] for s in seeds]),
                            np.array([b[s]["per_image_dice"] for s in seeds]))


def labels_to_reach_markdown(rows: list[dict[str, Any]], goal_labels: int) -> str:
    """How many labels disagreement needs, per round size, to reach random's mean Dice at ``goal_labels``."""
    cells = {size: by_cell(rows, size) for size in sorted({r["round_size"] for r in rows}, reverse=True)}
    reference = next((c[("random", goal_labels)] for c in cells.values() if c.get(("random", goal_labels))), None)
    if reference is None:
        return f"Labels disagreement needs to reach random's Dice at {goal_labels} labels: not measured yet."
    target = mean_dice(reference)
    lines = []
    for size, cell in cells.items():
        ns = sorted(n for strategy, n in cell if strategy == "disagreement")
        reached = next((n for n in ns if mean_dice(cell[("disagreement", n)]) >= target), None)
        if reached is None:
            lines.append(f"* rounds of {size}: not within {max(ns, default=0)} labels")
        else:
            runs = cell[("disagreement", reached)]
            lines.append(f"* rounds of {size}: {reached} labels (disagreement at {reached} − random at {goal_labels}: "
                         f"{paired(runs, reference)}, seeds: {len(runs)})")
    return (f"Labels disagreement needs for its mean Dice to reach random's at {goal_labels} labels ({target:.3f}):\n\n"
            + "\n".join(lines))


def summary_markdown(rows: list[dict[str, Any]], round_size: int) -> str:
    cell = by_cell(rows, round_size)
    ns = sorted({n for _, n in cell})
    present = [s for s in STRATEGIES if any(k[0] == s for k in cell)]

    def mean_std(strategy: str, n: int) -> str:
        runs = cell.get((strategy, n))
        if not runs:
            return "–"
        return f"{mean_dice(runs):.3f} ± {np.std([r['dice'] for r in runs.values()]):.3f} ({len(runs)})"

    def interval(other: str, n: int) -> str:
        found = paired(cell.get(("disagreement", n), {}), cell.get((other, n), {}))
        return "–" if found is None else str(found)

    table = report.markdown_table(["labels", *present], [[n, *[mean_std(s, n) for s in present]] for n in ns])
    diffs = report.markdown_table(["labels", "disagreement − random", "disagreement − entropy"],
                                  [[n, interval("random", n), interval("entropy", n)] for n in ns])
    return (f"Rounds of {round_size}. Dice on the test split, mean ± std over seeds (seeds):\n\n{table}\n\n"
            f"Paired differences, mean [95% bootstrap interval over seeds and test images]:\n\n{diffs}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, round_size in zip(axes, sorted({r["round_size"] for r in rows}, reverse=True)):
        for strategy in STRATEGIES:
            points: dict[int, list[float]] = {}
            for r in rows:
                if r["strategy"] == strategy and r["round_size"] == round_size:
                    points.setdefault(r["n_labels"], []).append(r["dice"])
            if points:
                ns = sorted(points)
                ax.errorbar(ns, [np.mean(points[n]) for n in ns], yerr=[np.std(points[n]) for n in ns],
                            marker="o", capsize=3, label=strategy)
        ax.set_xticks(sorted({r["n_labels"] for r in rows if r["round_size"] == round_size}))
        report.style_dice_axes(ax, "labelled images", f"rounds of {round_size}")
    report.save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.active_learning", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=report.REPO.parent / "shared" / "data" / "dsb2018",
                   help="data set in the shared layout (default: ../shared/data/dsb2018)")
    p.add_argument("--target", default="histology")
    p.add_argument("--source-model", type=Path, help="default: the shipped model")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="run only these seeds (default: all); lets several processes share one benchmark")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path)
    p.add_argument("--results-dir", type=Path, default=FOLDER)
    p.add_argument("--benchmarks-md", type=Path, default=report.BENCHMARKS_MD)
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the section and plot from the committed JSON and records; with "
                        "--work, the report (JSON too) from that work folder's records")
    args = p.parse_args(argv)
    budget = QUICK if args.quick else FULL
    name = "active_learning" + ("_quick" if args.quick else "")
    if args.report_only and args.work is None:
        data = report.read_json(name, args.results_dir)
        rows = Records(args.results_dir / f"{name}_records.jsonl", key=KEY).rows
        write_section(data, rows, budget, name, args.results_dir, args.benchmarks_md)
        return 0

    import torch

    from napari_hybridseg.resources import default_model_path

    torch.set_num_threads(args.threads)
    source = args.source_model or default_model_path()
    work = args.work or report.REPO / "runs" / ("active_learning-quick" if args.quick else "active_learning")
    records = Records(work / "records.jsonl", key=KEY)
    if not args.report_only:
        pool = load_domain(args.data, args.target, "pool")
        test = load_domain(args.data, args.target, "test")[: budget.max_test_images]
        for schedule in budget.schedules:
            for seed in args.seeds if args.seeds is not None else range(budget.seeds):
                for strategy in args.strategies:
                    run_trajectory(strategy, schedule, seed, pool, test, budget, records, work, source)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python -m training.active_learning " + " ".join(shlex.quote(a) for a in given)
    results = [{k: r[k] for k in ("strategy", "round_size", "seed", "n_labels", "dice", "seconds")} for r in records.rows]
    data = {"target": args.target, "command": command.strip(), "machine": report.machine(), "date": report.today(), "results": results}
    json_path = report.write_json(name, data, args.results_dir)
    report.save_records(records.rows, args.results_dir, name)
    write_section(data, records.rows, budget, name, args.results_dir, args.benchmarks_md)
    print(f"wrote {json_path}")
    return 0


def write_section(data: dict[str, Any], rows: list[dict[str, Any]], budget: Budget, name: str, folder: Path,
                  page: Path) -> None:
    """The plot and the section, from the report's JSON and its records (their per-image Dice for the intervals)."""
    plot(rows, folder / f"{name}.png")
    compute_h = sum(r["seconds"] for r in data["results"]) / 3600
    body = "\n\n".join([*(summary_markdown(rows, s.round_size) for s in budget.schedules),
                         labels_to_reach_markdown(rows, budget.goal_labels)])
    body += (f"\n\n![]({os.path.relpath(folder / f'{name}.png', page.parent)})\n\n"
             f"Compute: {compute_h:.2f} h over {len(data['results'])} rounds.  \n"
             + report.footer(data["command"], data["machine"], folder / f"{name}.json", data.get("date")))
    report.update_section(name, body, page)


if __name__ == "__main__":
    sys.exit(main())
