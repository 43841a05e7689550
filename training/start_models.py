"""Start models: what each shipped model is worth to a user of each kind of image, and whether the automatic
choice picks the best one.

    python -m training.start_models --data ../shared/data --work runs/start_models --workers 2

For every target (DSB histology and brightfield, CHASE, adult chest X-rays, CVC-ClinicDB) and every start
(each zoo model; scratch in the architecture and recipe of the target's matched model): zero-shot Dice on the
target's ``test`` split, and Dice after fine-tuning on N pool images with the start's own recipe (what the
viewer's refinement runs), for each seed; the N labelled images of a seed are the same for every start.
``auto`` is the start that the generative fit (``hybridseg choose-model``) picks from the target's unlabelled
pool images; its Dice is the picked start's. Paired 95% bootstrap intervals (seeds and test images resampled)
against the nuclei start and against scratch.

Every run is one JSON line in ``<work>/records.jsonl``; the same command resumes. ``--report-only`` rebuilds
the JSON, the plot and the BENCHMARKS.md section from the committed records.
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .stats import seed_image_grid

NAME = "start_models"
RESULTS = report.results_dir(NAME)
SCRATCH, AUTO = "scratch", "auto"


@dataclass(frozen=True)
class Target:
    name: str
    dataset: str
    domain: str
    matched: str  # the zoo model pretrained on this kind of image ("" if none)


TARGETS = (
    Target("histology", "dsb2018", "histology", "nuclei"),
    Target("brightfield", "dsb2018", "brightfield", "nuclei"),
    Target("chase", "retina", "chase", "vessels"),
    Target("covid", "lungs", "covid", "lungs"),
    Target("clinicdb", "polyps", "clinicdb", "polyps"),
)


@dataclass(frozen=True)
class Job:
    target: str
    start: str
    n_labels: int
    seed: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.target, self.start, self.n_labels, self.seed)


def zoo_paths(zoo_dir: Path | None) -> dict[str, Path]:
    from napari_hybridseg.zoo import ZOO, zoo_models

    if zoo_dir is None:
        return {m.name: m.path for m in zoo_models()}
    return {m.name: zoo_dir / m.file for m in ZOO if (zoo_dir / m.file).is_file()}


def plan(targets: list[Target], starts: list[str], n_labels: list[int], seeds: list[int]) -> list[Job]:
    zero_shot = [Job(t.name, s, 0, 0) for t in targets for s in starts if s != SCRATCH]
    fine_tuned = [Job(t.name, s, n, seed) for n in n_labels for seed in seeds for t in targets for s in starts]
    return zero_shot + fine_tuned


def _target(name: str) -> Target:
    return next(t for t in TARGETS if t.name == name)


def split(root: Path, domain: str, protocol: str) -> tuple[list[str], list[str]]:
    """The ids labels are drawn from and the ids scored: the pool and the test split; or, on ``validation``,
    the pool less 30% of it held out (a fixed draw) and those held-out images."""
    from napari_hybridseg.data.datasets import choose_subset, split_ids

    pool = split_ids(root, domain, "pool")
    if protocol == "test":
        return pool, split_ids(root, domain, "test")
    held_out = set(choose_subset(pool, len(pool), seed=12345)[: max(1, round(0.3 * len(pool)))])
    return [i for i in pool if i not in held_out], sorted(held_out)


@functools.lru_cache(maxsize=2)
def _scored_samples(root: Path, domain: str, ids: tuple[str, ...]) -> list[Any]:
    """The images a worker scores, read once for all the runs it makes on one target (the pool's runs read theirs)."""
    from napari_hybridseg.data.datasets import load_domain

    return load_domain(root, domain, ids=list(ids))


def run_job(job: Job, data: Path, zoo: dict[str, Path], threads: int, protocol: str = "test",
            recipe_changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fine-tune (or not) one start on one target and score it on the target's test split (or, on
    ``validation``, on held-out pool images); ``recipe_changes`` alter the start's own recipe."""
    import torch

    from dataclasses import replace

    from napari_hybridseg.data.datasets import choose_subset, load_domain
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.learn.finetune import FinetuneConfig, finetune, scratch_model
    from napari_hybridseg.learn.recipe import FinetuneRecipe
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    torch.set_num_threads(threads)
    target = _target(job.target)
    root = data / target.dataset
    started = time.perf_counter()
    if job.start == SCRATCH:
        architecture = load_checkpoint(zoo[target.matched or "general"])[1]
        model, meta = scratch_model(architecture, job.seed)
        recipe = FinetuneRecipe.from_metadata(architecture)
    else:
        model, meta = load_checkpoint(zoo[job.start])
        recipe = FinetuneRecipe.from_metadata(meta)
    recipe = replace(recipe, **(recipe_changes or {}))
    pool, scored = split(root, target.domain, protocol)
    labelled_ids: list[str] = []
    if job.n_labels:
        labelled_ids = sorted(choose_subset(pool, job.n_labels, job.seed))
        labelled = load_domain(root, target.domain, ids=labelled_ids)
        model, meta, _ = finetune(model, meta, labelled, recipe.train_config(seed=job.seed), FinetuneConfig())
    finetune_s = time.perf_counter() - started
    scores = evaluate(Segmenter(model, meta, engine="torch"), _scored_samples(root, target.domain, tuple(scored)))
    return {"target": job.target, "start": job.start, "n_labels": job.n_labels, "seed": job.seed,
            "dice": scores["mean_dice"], "per_image": {r["id"]: r["dice"] for r in scores["per_image"]},
            "labelled": labelled_ids, "recipe": recipe.to_dict(), "finetune_s": finetune_s}


def auto_pick(target: Target, data: Path, zoo: dict[str, Path], threads: int) -> dict[str, Any]:
    """The start the generative fit picks from the target's unlabelled pool, with the ranking and its time."""
    import torch

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.learn.choose import Candidate, rank_start_models
    from napari_hybridseg.learn.fit import relative_fit
    from napari_hybridseg.model.checkpoint import read_metadata

    torch.set_num_threads(threads)
    images = [s.image for s in load_domain(data / target.dataset, target.domain, "pool", with_labels=False)]
    started = time.perf_counter()
    ranking = rank_start_models(images, [Candidate(name, path) for name, path in zoo.items()])
    seconds = time.perf_counter() - started
    own = {s.name: relative_fit(s.fit, read_metadata(s.candidate.path), "own") for s in ranking}
    return {"target": target.name, "auto_pick": ranking[0].name, "choose_s": seconds,
            "ranking": [{"start": s.name, "relative_fit": s.relative, "relative_to_own": own[s.name], "loss": s.fit.loss,
                         "confidence": s.fit.confidence} for s in ranking]}


def run(jobs: list[Job], targets: list[Target], data: Path, zoo: dict[str, Path], records_path: Path, workers: int,
        threads: int, protocol: str = "test") -> None:
    records = report.read_records(records_path)
    done = {(r["target"], r["start"], r["n_labels"], r["seed"]) for r in records if "start" in r}
    picked = {r["target"] for r in records if "auto_pick" in r}
    records_path.parent.mkdir(parents=True, exist_ok=True)
    with records_path.open("a") as out:
        for target in targets:
            if target.name not in picked:
                _append(out, auto_pick(target, data, zoo, threads))
        todo = [j for j in jobs if j.key not in done]
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs on record; {len(todo)} to go", file=sys.stderr)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_job, job, data, zoo, threads, protocol) for job in todo]
            for job, future in zip(todo, futures):
                record = future.result()
                _append(out, record)
                print(f"{job.target} {job.start} N={job.n_labels} seed {job.seed}: {record['dice']:.3f} "
                      f"({record['finetune_s']:.0f} s)", file=sys.stderr, flush=True)


def _append(out, record: dict[str, Any]) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


# ---------------------------------------------------------------- report


def results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's layout: per target, one row per (start, N, seed) with the auto pick beside it; ``auto``'s rows
    repeat the picked start's."""
    picks = {r["target"]: r["auto_pick"] for r in records if "auto_pick" in r}
    out = []
    for target in [t.name for t in TARGETS if t.name in picks]:
        rows = [r for r in records if r.get("target") == target and "start" in r]
        entries = [{"start": r["start"], "n_labels": r["n_labels"], "seed": r["seed"], "dice": r["dice"],
                    "auto_pick": picks[target]} for r in rows]
        entries += [{**e, "start": AUTO} for e in entries if e["start"] == picks[target]]
        out.append({"target": target, "results": entries})
    return out


def _grid(records: list[dict[str, Any]], target: str, start: str, n_labels: int) -> np.ndarray | None:
    return seed_image_grid(records, target=target, start=start, n_labels=n_labels)


def _mean(grid: np.ndarray | None) -> str:
    return "—" if grid is None else f"{grid.mean():.3f}"


def _difference(a: np.ndarray | None, b: np.ndarray | None) -> str:
    from .stats import paired_bootstrap

    if a is None or b is None or a.shape != b.shape:
        return "—"
    return str(paired_bootstrap(a, b))


ZOO_ORDER = ("nuclei", "lungs", "polyps", "vessels", "general")


def _starts(records: list[dict[str, Any]]) -> list[str]:
    return [s for s in (*ZOO_ORDER, SCRATCH) if any(r.get("start") == s for r in records)]


def _pick(pick: dict[str, Any], key: str) -> str:
    """The start a rule picks from the recorded fits: the lowest ``key`` (``relative_fit``: the panel reference,
    the product's; ``relative_to_own``: each model's own source images)."""
    return min((r for r in pick["ranking"] if r.get(key) is not None), key=lambda r: r[key])["start"]


def _fit_cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown(records: list[dict[str, Any]], n_labels: int, scored: str = "each target's test split",
             with_fits: bool = True) -> str:
    picks = {r["target"]: r for r in records if "auto_pick" in r}
    starts = _starts(records)
    targets = [t for t in TARGETS if t.name in picks]
    rows, choices, fits = [], [], []
    for target in targets:
        pick = picks[target.name]
        zero = {s: _mean(_grid(records, target.name, s, 0)) for s in starts}
        tuned = {s: _grid(records, target.name, s, n_labels) for s in starts}
        cells = [f"{zero[s]} → **{_mean(tuned[s])}**" if s == target.matched else f"{zero[s]} → {_mean(tuned[s])}"
                 for s in starts]
        matched, auto = target.matched or "general", pick["auto_pick"]
        rows.append([target.name, *cells, _difference(tuned.get(matched), tuned.get("nuclei")) if matched != "nuclei"
                     else "—", _difference(tuned.get(matched), tuned.get(SCRATCH)), _difference(tuned.get(auto), tuned.get(SCRATCH))])
        means = {s: g.mean() for s, g in tuned.items() if g is not None and s != SCRATCH}
        best = max(means, key=means.get) if means else None
        cell = lambda start: "—" if start not in means else f"{start} ({means[start] - means[best]:+.3f})"  # noqa: E731
        choices.append([target.name, f"{best} ({means[best]:.3f})" if best else "—", cell(auto),
                        cell(_pick(pick, "relative_to_own")) if any(r.get("relative_to_own") for r in pick["ranking"]) else "—",
                        f"{pick['choose_s']:.1f} s"])
        by_start = {r["start"]: r for r in pick["ranking"]}
        fits.append([target.name, *[_fit_cell(by_start.get(s, {}).get("relative_fit")) for s in ZOO_ORDER if s in starts]])
    header = ["target", *[s if s != SCRATCH else "scratch (matched architecture)" for s in starts],
              f"matched − nuclei, N = {n_labels}", f"matched − scratch, N = {n_labels}", f"auto − scratch, N = {n_labels}"]
    return (f"Dice on {scored}: zero-shot → after fine-tuning on {n_labels} pool images with the "
            "start's own recipe (mean over seeds; the matched model in bold). Differences: paired, mean [95% interval "
            "over seeds and test images].\n\n" + report.markdown_table(header, rows)
            + f"\n\nThe automatic choice (`auto`, from the target's unlabelled pool) against the best start at N = "
            f"{n_labels} (its Dice − the best's); beside it, the pick of the rule that refers each model to its own source "
            "images instead of the common panel:\n\n"
            + report.markdown_table(["target", "best start", "auto picks", "own-source rule picks", "time to choose"], choices)
            + ("" if not with_fits else "\n\nGenerative fit of each zoo model on each target's unlabelled pool: its denoising loss relative to its mean "
            "loss on a fixed panel of the four sources' validation images (lower: knows these images better):\n\n"
            + report.markdown_table(["target", *[s for s in ZOO_ORDER if s in starts]], fits)))


def plot(records: list[dict[str, Any]], n_labels: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in TARGETS if any(r.get("target") == t.name for r in records)]
    starts = _starts(records)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(starts))
    for k, start in enumerate(starts):
        grids = [_grid(records, t.name, start, n_labels) for t in targets]
        means = [np.nan if grid is None else grid.mean() for grid in grids]
        ax.bar(np.arange(len(targets)) + k * width, means, width, label=start)
    ax.set_xticks(np.arange(len(targets)) + 0.4 - width / 2, [t.name for t in targets])
    ax.set_ylabel(f"Dice on test after {n_labels} labels")
    ax.set_ylim(0, 1)
    ax.legend(ncol=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    report.save_figure(fig, path)


def report_name(protocol: str) -> str:
    """The test protocol's report is the results page's section; the validation protocol's, a page of its own."""
    return NAME if protocol == "test" else f"{NAME}_{protocol}"


def write_report(records: list[dict[str, Any]], meta: dict[str, Any], benchmarks_md: Path, results_dir: Path) -> None:
    n_labels, name = meta["n_labels"], report_name(meta.get("protocol", "test"))
    json_path = report.publish_run(name, results(records), records, meta, results_dir)
    plot(records, n_labels, results_dir / f"{name}.png")
    body = (markdown(records, n_labels, with_fits=False) if name == NAME else markdown(
        records, n_labels, "held-out images of each target's pool (30% of it; labels from the rest; the test split is "
        "never read)"))
    section = (f"{body}\n\n![Dice after {n_labels} labels per start]({report.relative(results_dir / f'{name}.png')})\n\n"
               + report.run_footer(meta, json_path))
    report.update_section(name, section, benchmarks_md if name == NAME else results_dir / f"{name}.md")
    print(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.start_models", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="the folder that holds dsb2018/, lungs/, polyps/, retina/")
    p.add_argument("--work", type=Path, default=Path("runs/start_models"))
    p.add_argument("--zoo", type=Path, help="a folder of zoo models (default: the shipped ones)")
    p.add_argument("--targets", nargs="+", default=[t.name for t in TARGETS], choices=[t.name for t in TARGETS])
    p.add_argument("--starts", nargs="+", help="default: every zoo model and scratch")
    p.add_argument("--n-labels", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--protocol", choices=["test", "validation"], default="test",
                   help="validation: labels from 70%% of the pool, scored on the other 30%% (to choose settings)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    report.add_report_options(p, RESULTS)
    args = p.parse_args(argv)
    if args.report_only:
        name = report_name(args.protocol)
        records = report.read_records(args.results_dir / f"{name}_records.jsonl")
        write_report(records, report.read_json(f"{name}_run", args.results_dir), args.benchmarks_md, args.results_dir)
        return 0
    if args.data is None:
        p.error("--data is needed to run the benchmark")
    zoo = zoo_paths(args.zoo)
    starts = args.starts or [*zoo, SCRATCH]
    targets = [t for t in TARGETS if t.name in args.targets]
    started = time.perf_counter()
    jobs = plan(targets, starts, [args.n_labels], args.seeds)
    records_path = args.work / "records.jsonl"
    try:
        run(jobs, targets, args.data, zoo, records_path, args.workers, args.threads, args.protocol)
    except KeyboardInterrupt:
        print(f"stopped; {len(report.read_records(records_path))} records kept in {records_path}: the same command resumes",
              file=sys.stderr)
        return 130
    command = "python -m training.start_models " + shlex.join(argv if argv is not None else sys.argv[1:])
    meta = report.run_facts(report_name(args.protocol), command, started, args.results_dir, n_labels=args.n_labels,
                            seeds=args.seeds, protocol=args.protocol)
    write_report(report.read_records(records_path), meta, args.benchmarks_md, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
