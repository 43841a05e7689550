"""The simulated-clinician benchmark's command line."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from .. import report
from ..label_efficiency import Records
from . import page
from .plan import DEFAULT_TARGETS, FULL, KEY, QUICK, STRATEGIES, target_named
from .runner import run_trajectory

FOLDER = report.results_dir("active_learning")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.active_learning",
                                description="Does the product's choice of the next image beat picking at random?")
    p.add_argument("--data-root", type=Path, default=report.REPO.parent / "shared" / "data",
                   help="the folder holding dsb2018/, lungs/, polyps/, retina/ (default: ../shared/data)")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS),
                   help="targets by name (histology, covid, clinicdb, brightfield, chase) or ROOT:DOMAIN "
                        f"(default: {' '.join(DEFAULT_TARGETS)})")
    p.add_argument("--source-model", type=Path, help="start every target from this checkpoint (default: each "
                                                     "target's start model from the zoo)")
    p.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    p.add_argument("--round-sizes", type=int, nargs="+", help="run only the schedules of these round sizes")
    p.add_argument("--quick", action="store_true", help="the pipeline on a tiny budget")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="run only these seeds (default: all); lets several processes share one benchmark")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path)
    report.add_report_options(p, FOLDER)
    return p


def kept_start(work: Path, zoo_path: Path) -> Path:
    """A zoo model as the benchmark's trajectories start from it: copied into ``work`` on first use, so that a zoo
    model rebuilt meanwhile does not change a benchmark half-way."""
    kept = work / "starts" / zoo_path.name
    if not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(zoo_path, kept)
    return kept


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    budget = QUICK if args.quick else FULL
    name = "active_learning" + ("_quick" if args.quick else "")
    if args.report_only and args.work is None:
        rows = report.read_records(args.results_dir / f"{name}_records.jsonl")
        facts = report.read_json(f"{name}_run", args.results_dir)
        page.write(rows, facts, name, args.results_dir, args.benchmarks_md)
        return 0
    try:
        targets = [target_named(t) for t in args.targets]
    except ValueError as error:
        p.error(str(error))
    if any(not t.start for t in targets) and args.source_model is None:
        p.error("a target given as ROOT:DOMAIN needs --source-model")

    import torch

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.zoo import zoo_model

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = args.work or report.REPO / "runs" / name.replace("_", "-")
    records = Records(work / "records.jsonl", key=KEY)
    schedules = [s for s in budget.schedules if args.round_sizes is None or s.round_size in args.round_sizes]
    if args.report_only:  # from the work folder's records, as the command without --report-only would report them
        schedules = []
    splits: dict[str, list] = {}  # each target's pool and test images, read once
    try:  # seeds outside targets: an interrupted run leaves complete paired sets over the targets
        for schedule in schedules:
            for seed in args.seeds if args.seeds is not None else range(budget.seeds):
                for target in targets:
                    if target.name not in splits:
                        splits[target.name] = [load_domain(args.data_root / target.folder, target.domain, split)
                                               for split in ("pool", "test")]
                    pool, test = splits[target.name]
                    start = args.source_model or kept_start(work, zoo_model(target.start).path)
                    for strategy in args.strategies:
                        run_trajectory(target.name, strategy, schedule, seed, pool, test[: budget.max_test_images],
                                       budget, records, work, start)
    except KeyboardInterrupt:
        print(f"stopped: {len(records.rows)} rounds on record in {work / 'records.jsonl'}; the same command resumes",
              file=sys.stderr)
        return 130
    rows = Records(work / "records.jsonl", key=KEY).rows
    if not rows:
        print("no rounds on record yet: nothing to report")
        return 0
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python -m training.active_learning " + shlex.join(given)
    facts = report.run_facts(name, command, started, args.results_dir, goal_labels=budget.goal_labels)
    json_path = page.write(rows, facts, name, args.results_dir, args.benchmarks_md)
    print(f"wrote {json_path}")
    return 0
