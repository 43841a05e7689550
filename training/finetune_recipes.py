"""Choosing each zoo model's fine-tuning recipe on validation data.

    python -m training.finetune_recipes --data ../shared/data --work runs/finetune_recipes --workers 2

Each zoo model is fine-tuned on N labelled images of its matched target's pool with its current recipe and with
each candidate change (larger crops for large objects, a higher learning rate, more steps, crops that reach the
image borders as often as the middle), and scored on held-out pool images (30% of the pool, a fixed draw;
the test split is never read). Paired differences against the current recipe, per model, with 95% intervals.
Every run is a JSON line in ``<work>/records.jsonl``; the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .stats import seed_image_grid
from .start_models import TARGETS, Job, run_job, zoo_paths

NAME = "finetune_recipes"
CHANGES: dict[str, dict[str, Any]] = {
    "current": {},
    "crop192": {"crop_size": 192, "batch_size": 2},  # as many pixels a step as 8 crops of 96²
    "lr3e-3": {"lr": 3e-3},
    "steps200": {"steps": 200},
    "even_coverage": {"even_coverage": True},
}


def _grid(records: list[dict[str, Any]], target: str, start: str, change: str) -> np.ndarray | None:
    return seed_image_grid(records, target=target, start=start, change=change)


def markdown(records: list[dict[str, Any]]) -> str:
    from .stats import paired_bootstrap

    rows = []
    for target, start in sorted({(r["target"], r["start"]) for r in records}):
        base = _grid(records, target, start, "current")
        for change in CHANGES:
            grid = _grid(records, target, start, change)
            if grid is None:
                continue
            diff = "—" if change == "current" or base is None or grid.shape != base.shape else str(paired_bootstrap(grid, base))
            rows.append([start, target, change, f"{grid.mean():.3f}", diff, len(grid)])
    return report.markdown_table(["model", "validated on", "recipe change", "held-out Dice", "change − current", "seeds"], rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.finetune_recipes", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("runs/finetune_recipes"))
    p.add_argument("--zoo", type=Path, help="a folder of zoo models (default: the shipped ones)")
    p.add_argument("--pairs", nargs="+", metavar="MODEL:TARGET",
                   help="default: each target with its matched model")
    p.add_argument("--changes", nargs="+", default=list(CHANGES), choices=list(CHANGES))
    p.add_argument("--n-labels", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    zoo = zoo_paths(args.zoo)
    pairs = [tuple(pair.split(":")) for pair in args.pairs] if args.pairs else [(t.matched, t.name) for t in TARGETS]
    records_path = args.work / "records.jsonl"
    records = report.read_records(records_path)
    done = {(r["target"], r["start"], r["change"], r["seed"]) for r in records}
    todo = [(Job(target, start, args.n_labels, seed), change) for change in args.changes for seed in args.seeds
            for start, target in pairs if (target, start, change, seed) not in done]
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    with records_path.open("a") as out, ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_job, job, args.data, zoo, args.threads, "validation", CHANGES[change])
                   for job, change in todo]
        for (job, change), future in zip(todo, futures):
            record = {**future.result(), "change": change}
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(f"{job.start} on {job.target} {change} seed {job.seed}: {record['dice']:.3f}", file=sys.stderr, flush=True)
    records = report.read_records(records_path)
    folder = report.results_dir(NAME)
    report.save_records(records, folder, NAME)
    report.write_json(NAME, {"command": "python -m training.finetune_recipes " + shlex.join(argv or sys.argv[1:]),
                             "machine": report.machine(), "wall_s": time.perf_counter() - started,
                             "table": markdown(records)}, folder)
    print(markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
