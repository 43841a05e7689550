"""Runs the label-efficiency benchmark's planned runs: pretrains the source models, fine-tunes and scores every
arm on each labelled subset, and records each run as it finishes."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from napari_hybridseg.data.datasets import Sample, choose_subset, load_domain

from .. import report
from .plan import PRETRAINED, Budget, Pair, Variant, planned_runs
from .records import Records


def source_model_path(work: Path, pair: Pair, method: str, budget: Budget) -> Path:
    """Where the source model of ``method`` for ``pair`` under ``budget`` is kept: pairs that share a source
    domain and a pretraining setting share it."""
    tag = budget.pretrain_tag(method)
    name = f"{method}-{tag}" if tag else method
    return work / "pretrain" / f"{pair.root.name}-{pair.source}-{name}.safetensors"


def pretrained_checkpoint(work: Path, pair: Pair, method: str, budget: Budget, threads: int) -> Path:
    """The source model of ``method``, trained on first use through the CLI and kept in ``work``."""
    from napari_hybridseg.cli import main as cli

    out = source_model_path(work, pair, method, budget)
    if not out.exists():
        started = time.perf_counter()
        rc = cli([
            "pretrain", "--data", str(pair.root), "--domain", pair.source, "--split", pair.source_split,
            "--method", method, *budget.pretrain_args(method), "--steps", str(budget.pretrain_steps_for(pair)),
            "--batch-size", str(budget.batch_size), "--crop", str(budget.crop), "--base-channels", str(budget.base_channels),
            "--threads", str(threads), "--device", "cpu", "--out", str(out), "--log", str(out.with_suffix(".jsonl")),
        ])
        if rc != 0:
            raise RuntimeError(f"pretraining {method} on {pair.source} failed")
        out.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
    return out


@dataclass
class TargetData:
    pool: list[Sample]
    evaluation: list[Sample]  # the test split, or held-out pool images in the validation protocol


def target_data(pair: Pair, protocol: str, max_test_images: int | None = None) -> TargetData:
    pool = load_domain(pair.root, pair.target, "pool")
    if protocol == "validation":
        order = choose_subset([s.id for s in pool], len(pool), seed=12345)
        held_out = set(order[: max(1, round(0.3 * len(pool)))])
        evaluation = [s for s in pool if s.id in held_out]
        pool = [s for s in pool if s.id not in held_out]
    else:
        evaluation = load_domain(pair.root, pair.target, "test")
    if max_test_images is not None:
        evaluation = evaluation[:max_test_images]
    return TargetData(pool, evaluation)


def fit_and_score(
    method: str, labelled: list[Sample], data: TargetData, checkpoint: Callable[[str], Path],
    budget: Budget, variant: Variant, seed: int,
) -> dict[str, Any]:
    from napari_hybridseg.learn.evaluate import evaluate, evaluate_predictor

    if method == "forest":
        from ..forest_baseline import PixelForest

        forest = PixelForest(seed=seed).fit(labelled)
        return evaluate_predictor(forest.predict, forest.n_classes, data.evaluation)

    from napari_hybridseg.learn.finetune import (
        FINETUNE_LR, FinetuneConfig, default_finetune_train_config, finetune, scratch_model,
    )
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    if method == "scratch":
        model, meta = scratch_model(budget.architecture(), seed)  # the pretrained arms' architecture, untrained
        config, lr = FinetuneConfig(), variant.scratch_lr or FINETUNE_LR  # nothing learnt to keep
    else:
        model, meta = load_checkpoint(checkpoint(method))
        config = FinetuneConfig(finetuned_share=variant.finetuned_share_for(len(labelled)))
        lr = variant.lr or FINETUNE_LR
    if labelled:
        train_config = default_finetune_train_config(
            steps=variant.finetune_steps or budget.finetune_steps, batch_size=budget.batch_size,
            crop_size=budget.crop, seed=seed, lr=lr, precision=variant.precision,
        )
        model, meta, _ = finetune(model, meta, labelled, train_config, config)
    return evaluate(Segmenter(model, meta), data.evaluation)


@dataclass(frozen=True)
class Job:
    """One run: an arm fine-tuned on one labelled subset of a pair's pool and scored, with its record's key."""

    pair: Pair
    method: str
    labelled_ids: tuple[str, ...]
    budget: Budget  # the pair's
    variant: Variant  # the pair's
    protocol: str
    key: dict[str, Any]


@functools.lru_cache(maxsize=None)
def _target_data_of(pair: Pair, protocol: str, max_test_images: int | None) -> TargetData:
    """A process's copy of a pair's images, read once."""
    return target_data(pair, protocol, max_test_images)


def _source_model_of(job: Job, work: Path, threads: int) -> Path:
    """The source model ``job``'s arm starts from, pretrained in whichever process runs it."""
    return pretrained_checkpoint(work, job.pair, job.method, job.budget, threads)


def _fit_and_score_job(job: Job, work: Path, threads: int) -> tuple[dict[str, Any], float]:
    """``job``'s scores and its seconds, in whichever process runs it."""
    data = _target_data_of(job.pair, job.protocol, job.budget.max_test_images)
    chosen = set(job.labelled_ids)
    labelled = [s for s in data.pool if s.id in chosen]
    started = time.perf_counter()
    scores = fit_and_score(job.method, labelled, data,
                           lambda m: pretrained_checkpoint(work, job.pair, m, job.budget, threads),
                           job.budget, job.variant, job.key["seed"])
    return scores, time.perf_counter() - started


@contextlib.contextmanager
def _executor(workers: int, threads: int) -> Iterator[Executor | None]:
    """``workers`` processes of ``threads`` threads each (spawned: torch and fork do not mix), or None to run
    in this one."""
    if workers == 1:
        torch.set_num_threads(threads)
        yield None
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(threads,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_turn(executor: Executor | None, function: Callable, items: list, *args: Any) -> Iterator[tuple[Any, Any]]:
    """(item, function(item, *args)) for each item, as each finishes: in ``executor``'s processes, else here."""
    if executor is None:
        for item in items:
            yield item, function(item, *args)
        return
    futures = {executor.submit(function, item, *args): item for item in items}
    for future in as_completed(futures):
        yield futures[future], future.result()


def pending_jobs(pairs: list[Pair], arms: list[str], budget: Budget, variant: Variant, protocol: str,
                 data: dict[str, TargetData], records: Records) -> list[Job]:
    """The planned runs not yet on record, in the order they run."""
    pool_sizes = {name: len(d.pool) for name, d in data.items()}
    jobs = []
    for pair, method, n, seed in planned_runs(pairs, arms, budget, pool_sizes):
        pair_budget = budget.for_pair_name(pair.name)
        pair_variant = variant.on_pair(budget, pair.name)
        key = dict(pair=pair.name, protocol=protocol, variant=pair_variant.tag, method=method,
                   pretrain=pair_budget.pretrain_tag(method), n_labels=n, seed=seed)
        if not records.has(**key):
            ids = choose_subset([s.id for s in data[pair.name].pool], n, seed)
            jobs.append(Job(pair, method, tuple(sorted(ids)), pair_budget, pair_variant, protocol, key))
    return jobs


def run(pairs: list[Pair], arms: list[str], budget: Budget, variant: Variant, protocol: str,
        work: Path, threads: int, workers: int = 1) -> Records:
    """Every planned run not yet on record, in ``workers`` processes of ``threads`` threads each; each run's record
    is written as it finishes (by this process alone), so an interrupted benchmark loses only the runs in flight."""
    records = Records(work / "records.jsonl")
    here = report.machine_line(report.machine())
    data = {p.name: _target_data_of(p, protocol, budget.max_test_images) for p in pairs}
    jobs = pending_jobs(pairs, arms, budget, variant, protocol, data, records)
    sources = list({source_model_path(work, j.pair, j.method, j.budget): j for j in jobs
                    if j.method in PRETRAINED}.values())
    started = time.perf_counter()
    with _executor(workers, threads) as executor:
        # pretraining first, its time counted apart; the source models are files the runs then read
        for _ in _in_turn(executor, _source_model_of, sources, work, threads):
            pass
        for job, (scores, seconds) in _in_turn(executor, _fit_and_score_job, jobs, work, threads):
            row = {
                **job.key, "source": job.pair.source, "target": job.pair.target,
                "n_pool": len(data[job.pair.name].pool), "labelled_ids": list(job.labelled_ids),
                "dice": scores["mean_dice"], "iou": scores["mean_iou"],
                "per_image_dice": [r["dice"] for r in scores["per_image"]], "seconds": round(seconds, 1),
                "machine": here,
            }
            records.add(row)
            print(f"{job.pair.target:>12} {job.method:>10} N={job.key['n_labels']!s:>4} seed={job.key['seed']}: "
                  f"Dice {row['dice']:.4f} ({row['seconds']} s)", flush=True)
    if jobs:
        print(f"{len(jobs)} runs in {(time.perf_counter() - started) / 60:.1f} min wall, {workers} worker(s) of "
              f"{threads} thread(s)", flush=True)
    return records
