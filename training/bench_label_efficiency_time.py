"""How long the whole label-efficiency benchmark takes on this machine, and what would make it fit its 2 hours.

Measures the benchmark's training step (its network, batch 8, 128² crops, fine-tuning loss) in each way the
benchmark can run on this CPU: one process of 2 threads (``--threads 2``, the default) or two worker processes
of 1 thread each (``--workers 2 --threads 1``), each in float32 and in bfloat16 (``--precision bfloat16``);
counts the optimiser steps, runs and scorings the full benchmark plans at its chosen settings
(``label_efficiency.FULL``) and projects its wall time from them. Also counts a step's floating-point
operations, so the projection can be set against what the CPU could do at best.

    python -m training.bench_label_efficiency_time [--steps 40] [--data-root ../shared/data]

Writes benchmarks/results/label_efficiency_time/label_efficiency_time.json and its section, label_efficiency_time.md
beside it; ``--report-only`` rebuilds the section from the JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from napari_hybridseg.data.datasets import load_domain, split_ids
from napari_hybridseg.learn.finetune import default_finetune_train_config, finetune, scratch_model
from napari_hybridseg.learn.train import PRECISIONS, native_bfloat16
from napari_hybridseg.model.loss import HybridLoss, LossConfig

from . import report
from .label_efficiency import (
    ARMS, FULL, PRETRAINED, Pair, default_pairs, planned_runs, source_model_path, target_data,
)

CPU = torch.device("cpu")
NAME = "label_efficiency_time"
FOLDER = report.results_dir(NAME)  # a study of the benchmark (docs/studies/benchmark_time.md): its section is beside it


@dataclass(frozen=True)
class Layout:
    """One way to run the benchmark: ``processes`` workers of ``threads`` threads, in ``precision``."""

    processes: int
    threads: int
    precision: str

    @property
    def flags(self) -> str:
        workers = f"--workers {self.processes} " if self.processes > 1 else ""
        precision = " --precision bfloat16" if self.precision == "bfloat16" else ""
        return f"{workers}--threads {self.threads}{precision}"


def _fine_tuning(precision: str, data_root: Path):
    """Fine-tuning of the benchmark's network (a scratch one) on five CHASE pool images, as every network run
    does it: ``run(steps)`` trains that many steps of the real loop, crops drawn from the images included."""
    budget = FULL
    labelled = load_domain(data_root / "retina", "chase", "pool")[:5]
    model, meta = scratch_model(budget.architecture(), seed=0)

    def run(steps: int) -> None:
        finetune(model, meta, labelled, default_finetune_train_config(
            steps=steps, batch_size=budget.batch_size, crop_size=budget.crop, precision=precision))

    return run


def _step_seconds(layout: Layout, steps: int, data_root: Path, start: Any) -> float:
    """In one worker process: the seconds a fine-tuning step takes, over ``steps`` steps after 3 warm-up ones,
    once every worker of the layout is ready (``start``, a barrier), so that they share the cores as benchmark
    workers do."""
    torch.set_num_threads(layout.threads)
    fine_tune = _fine_tuning(layout.precision, data_root)
    fine_tune(3)
    start.wait()
    began = time.perf_counter()
    fine_tune(steps)
    return (time.perf_counter() - began) / steps


def measure_layout(layout: Layout, steps: int, data_root: Path) -> list[float]:
    """Each worker's seconds a step, the layout's workers running at once, each in its own process."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(layout.processes) as pool:
        start = manager.Barrier(layout.processes)
        return pool.starmap(_step_seconds, [(layout, steps, data_root, start)] * layout.processes)


def step_flops() -> int:
    """Floating-point operations of one training step of the benchmark's network (forward and backward, batch 8,
    128² crops), as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = scratch_model(FULL.architecture(), seed=0)
    images = torch.randn(FULL.batch_size, model.image_channels, FULL.crop, FULL.crop)
    masks = torch.randint(0, model.n_classes, (FULL.batch_size, FULL.crop, FULL.crop))
    with FlopCounterMode(display=False) as counter:
        HybridLoss(LossConfig(method="supervised"), model.sigma_data)(model, images, masks).total.backward()
    return counter.get_total_flops()


def scoring_seconds(pair: Pair, threads: int) -> float:
    """Seconds to score one model on ``pair``'s test split (what every run does after training)."""
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.model.inference import Segmenter

    torch.set_num_threads(threads)
    model, meta = scratch_model(FULL.architecture(), seed=0)
    samples = target_data(pair, "test").evaluation
    began = time.perf_counter()
    evaluate(Segmenter(model, meta), samples)
    return time.perf_counter() - began


def planned_work(pairs: list[Pair]) -> dict[str, dict[str, float]]:
    """Per pair: the full benchmark's fine-tuning steps, network runs (each scored once), forest runs and the
    pretraining steps of the source models it is the first to need."""
    pool_sizes = {p.name: len(split_ids(p.root, p.target, "pool")) for p in pairs}
    work: dict[str, dict[str, float]] = {p.name: dict.fromkeys(
        ("finetune_steps", "network_runs", "forest_runs", "pretrain_steps"), 0) for p in pairs}
    for pair, method, n, _ in planned_runs(pairs, list(ARMS), FULL, pool_sizes):
        counts = work[pair.name]
        if method == "forest":
            counts["forest_runs"] += 1
            continue
        counts["network_runs"] += 1
        if n:
            counts["finetune_steps"] += FULL.for_pair_name(pair.name).finetune_steps
    sources: dict[Path, Pair] = {}  # each source model once, counted to the first pair that needs it
    for pair in pairs:
        for method in PRETRAINED:
            sources.setdefault(source_model_path(Path(), pair, method, FULL.for_pair_name(pair.name)), pair)
    for pair in sources.values():
        work[pair.name]["pretrain_steps"] += FULL.for_pair_name(pair.name).pretrain_steps_for(pair)
    return work


def forest_seconds(records_path: Path, pair_names: list[str]) -> dict[str, float]:
    """The median seconds of a forest run per pair, from the committed benchmark records (one thread's worth)."""
    seconds: dict[str, list[float]] = {name: [] for name in pair_names}
    for line in records_path.read_text().splitlines():
        row = json.loads(line)
        if row["method"] == "forest" and row["pair"] in seconds and row["protocol"] == "test":
            seconds[row["pair"]].append(row["seconds"])
    return {name: statistics.median(values) if values else 0.0 for name, values in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.bench_label_efficiency_time",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed fine-tuning steps per worker and layout")
    parser.add_argument("--data-root", type=Path, default=report.REPO.parent / "shared" / "data")
    parser.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON; measure nothing")
    parser.add_argument("--benchmarks-md", type=Path, default=FOLDER / f"{NAME}.md",
                        help=argparse.SUPPRESS)  # the page of its section
    args = parser.parse_args(argv)
    if args.report_only:
        report.update_section(NAME, markdown(report.read_json(NAME, FOLDER)), args.benchmarks_md)
        return 0

    precisions = PRECISIONS if native_bfloat16(CPU) else ("float32",)
    layouts = [Layout(1, 2, p) for p in precisions] + [Layout(2, 1, p) for p in precisions]
    pairs = default_pairs(args.data_root)
    work = planned_work(pairs)
    forest = forest_seconds(report.results_dir("label_efficiency") / "label_efficiency_records.jsonl", [p.name for p in pairs])
    scoring = {threads: {p.name: scoring_seconds(p, threads) for p in pairs} for threads in (1, 2)}
    flops = step_flops()
    total_steps = sum(w["finetune_steps"] + w["pretrain_steps"] for w in work.values())

    rows = []
    for layout in layouts:
        per_worker = measure_layout(layout, args.steps, args.data_root)
        step = statistics.mean(per_worker)
        # workers run side by side: the wall time is the work of one thread's worth divided among them
        other = sum(w["network_runs"] * scoring[layout.threads][name] + w["forest_runs"] * forest[name]
                    for name, w in work.items())
        wall = (total_steps * step + other) / layout.processes
        rows.append({"processes": layout.processes, "threads": layout.threads, "precision": layout.precision,
                     "flags": layout.flags, "step_s": step, "step_s_per_worker": per_worker,
                     "steps_per_hour": 3600 * layout.processes / step,
                     "gflops_per_s": flops * layout.processes / step / 1e9, "projected_hours": wall / 3600})
    baseline = rows[0]["projected_hours"]
    for row in rows:
        row["speedup"] = baseline / row["projected_hours"]
    command = "python -m training.bench_label_efficiency_time" + (f" --steps {args.steps}" if args.steps != 40 else "")
    result = {"command": command, "machine": report.machine(), "date": report.today(), "step_flops": flops, "planned": work,
              "forest_seconds": forest, "scoring_seconds": scoring, "total_steps": total_steps, "timed_steps": args.steps,
              "results": rows}
    report.write_json(NAME, result, FOLDER)
    report.update_section(NAME, markdown(report.read_json(NAME, FOLDER)), args.benchmarks_md)  # as --report-only does
    return 0


def markdown(result: dict[str, Any]) -> str:
    """The section, from the JSON alone."""
    rows, work, flops, total_steps = result["results"], result["planned"], result["step_flops"], result["total_steps"]
    scoring, forest = result["scoring_seconds"], result["forest_seconds"]
    table = report.markdown_table(
        ["flags", "step", "steps / hour", "GFLOP/s", "projected wall, whole benchmark", "vs default"],
        [[f"`{r['flags']}`", f"{r['step_s'] * 1000:.0f} ms", f"{r['steps_per_hour']:.0f}",
          f"{r['gflops_per_s']:.0f}", f"{r['projected_hours']:.2f} h", f"{r['speedup']:.2f}×"] for r in rows],
    )
    plan = report.markdown_table(
        ["pair", "fine-tuning steps", "network runs (each scored)", "forest runs", "pretraining steps",
         "scoring one run (1 thread)", "forest run (records)"],
        [[name, int(w["finetune_steps"]), int(w["network_runs"]), int(w["forest_runs"]), int(w["pretrain_steps"]),
          f"{scoring['1'][name]:.1f} s", f"{forest[name]:.0f} s"] for name, w in work.items()],
    )
    return (
        "## Label efficiency: the whole benchmark's time on this machine\n\n"
        f"The full benchmark at its chosen settings plans {total_steps:,} optimiser steps "
        f"({total_steps * flops / 1e15:.2f} PFLOP at {flops / 1e9:.1f} GFLOP a step, batch {FULL.batch_size}, "
        f"{FULL.crop}² crops), per pair:\n\n{plan}\n\n"
        f"Each layout's step is the mean over its workers of {result.get('timed_steps', 40)} fine-tuning steps (the "
        "benchmark's loop on five CHASE pool images) after 3 warm-up steps, its workers running at once; the "
        "projection is steps × step time + scorings + forest runs (the forest's seconds from the committed records), "
        "divided among the workers. Speed-ups are against the benchmark's default (`--threads 2`, float32), measured "
        f"in the same run.\n\n{table}\n\n" + report.footer(result["command"], result["machine"], FOLDER / f"{NAME}.json",
                                                        result.get("date")))


if __name__ == "__main__":
    sys.exit(main())
