"""Label-efficiency benchmark: how much each pretraining buys with 1, 2, 5, 10 labelled target images.

For every source → target pair: pretrain one model per pretext method on the
source (hybrid, supervised, diffusion; same architecture and budget), then,
for each N and seed, draw N labelled images from the target's pool (the same
subset for every arm) and fine-tune each pretrained model, a model from
scratch and a random-forest pixel classifier on them; score all on the
target's test split. Zero-shot (N = 0) for the pretrained arms and the whole
pool (the ceiling) are added.

Every run is appended to ``<work>/records.jsonl`` as it finishes, so an
interrupted benchmark resumes where it stopped; the JSON, plots and the
BENCHMARKS.md section are rebuilt from the records at the end (or alone with
``--report-only``).

    python -m training.label_efficiency --workers 2 --threads 1
                                                        # the full benchmark: about 5 h on a 2-core CPU, 7.4 h as
                                                        # one process of 2 threads (bench_label_efficiency_time)
    python -m training.label_efficiency --quick         # the whole pipeline on a tiny budget, minutes
    python -m training.label_efficiency --protocol validation --arms hybrid --finetune-loss hybrid
                                                        # a hyperparameter choice, scored on held-out pool images
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import multiprocessing
import shlex
import sys
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Iterator

import numpy as np
import torch

from napari_hybridseg.data.datasets import Sample, choose_subset, load_domain, split_ids
from napari_hybridseg.learn.train import PRECISIONS, native_bfloat16

from . import report
from .stats import paired_bootstrap

if TYPE_CHECKING:
    from napari_hybridseg.learn.pretrain import ModelConfig

PRETRAINED = ("hybrid", "supervised", "diffusion")
TUNABLE = ("hybrid", "supervised", "diffusion")  # the arms whose pretraining setting the benchmark can vary
ARMS = (*PRETRAINED, "scratch", "forest")


@dataclass(frozen=True)
class Pair:
    root: Path
    source: str
    target: str
    source_split: str = "train"

    @property
    def name(self) -> str:
        return f"{self.root.name}-{self.source}-{self.target}"


@dataclass(frozen=True)
class Budget:
    pretrain_steps: dict[str, int]  # per data set folder name; "*" for any other
    finetune_steps: int = 200
    batch_size: int = 8
    crop: int = 128
    seeds: int = 5
    n_labels: tuple[int, ...] = (5, 1, 2, 10)  # run order: the headline N first
    ceiling_seeds: int = 1
    max_test_images: int | None = None
    base_channels: int = 16
    # Share of each hybrid pretraining batch at σ_min. 0.5 over 0.25: zero-shot Dice on CHASE pool 0.717 vs 0.595
    # and on DRIVE val 0.795 vs 0.775 (stop 8, validation splits only).
    clean_fraction: float = 0.5
    invert_probability: float = 0.0  # share of every pretrained arm's crops with inverted intensities
    lambda_image: float = 1.0  # weight of hybrid pretraining's denoising term (the mask term's is 1)
    sigma_log_mean: float = -1.2  # mean of log σ for hybrid pretraining's noised crops (EDM's log-normal)
    diffusion_clean_fraction: float = 0.0  # share of each diffusion pretraining batch at σ_min
    pretrain_scale: float = 1.0  # every pretrained arm's steps, as a multiple of ``pretrain_steps``
    # every pretrained arm's pretraining seed (weights, crops, noise): other seeds measure how much of an arm's
    # score is its one source model's luck, which the intervals over fine-tuning seeds and test images leave out
    pretrain_seed: int = 0
    # K > 0: the pretrained arms keep the share N / (N + K) of their fine-tuned weights (``Variant.finetuned_half_at``)
    finetuned_half_at: float = 0.0
    # settings chosen on a pair's validation protocol, by data set folder name (``retina``) or by pair name
    # (``dsb2018-fluorescence-histology``: a pair's own go over its data set's); a flag given on the command line
    # overrides them for every pair
    chosen: dict[str, dict[str, float]] = field(default_factory=dict)

    def overridden(self, **given: Any) -> Budget:
        """This budget with ``given`` settings for every pair, over the ones chosen per data set or pair."""
        return replace(self, **given, chosen={name: {k: v for k, v in settings.items() if k not in given}
                                              for name, settings in self.chosen.items()})

    def for_pair_name(self, pair_name: str) -> Budget:
        """This budget with the settings chosen for the pair named ``pair_name`` (``<root>-<source>-<target>``)."""
        matching = sorted((name for name in self.chosen if pair_name == name or pair_name.startswith(f"{name}-")), key=len)
        settings = {k: v for name in matching for k, v in self.chosen[name].items()}
        return replace(self, **settings, chosen={})

    def architecture(self) -> ModelConfig:
        """The network every arm trains: what ``hybridseg pretrain`` builds from the options that
        :func:`pretrained_checkpoint` gives it."""
        from napari_hybridseg.learn.pretrain import ModelConfig

        return ModelConfig(base_channels=self.base_channels)

    def pretrain_tag(self, method: str) -> str:
        """Names the pretraining setting of ``method`` in file names and records ("" for the one setting an arm always had)."""
        if method not in PRETRAINED:
            return ""
        parts = []
        if method == "hybrid":
            parts.append(f"clean{self.clean_fraction:g}")
        elif method == "diffusion" and self.diffusion_clean_fraction:
            parts.append(f"clean{self.diffusion_clean_fraction:g}")
        if self.invert_probability:
            parts.append(f"invert{self.invert_probability:g}")
        if method == "hybrid" and self.lambda_image != 1.0:
            parts.append(f"lambda{self.lambda_image:g}")
        if method == "hybrid" and self.sigma_log_mean != Budget.sigma_log_mean:
            parts.append(f"logsigma{self.sigma_log_mean:g}")
        if self.pretrain_scale != 1.0:
            parts.append(f"pretrain{self.pretrain_scale:g}x")
        if self.pretrain_seed:
            parts.append(f"seed{self.pretrain_seed}")
        return "-".join(parts)

    def pretrain_args(self, method: str) -> list[str]:
        """The ``hybridseg pretrain`` options of that setting."""
        shared = ["--invert-probability", str(self.invert_probability)] if self.invert_probability else []
        if self.pretrain_seed:
            shared += ["--seed", str(self.pretrain_seed)]
        if method == "hybrid":
            return ["--clean-fraction", str(self.clean_fraction), "--lambda-image", str(self.lambda_image),
                    "--sigma-log-mean", str(self.sigma_log_mean), *shared]
        if method == "diffusion":
            return ["--clean-fraction", str(self.diffusion_clean_fraction), *shared]
        return shared

    @property
    def shown_tags(self) -> dict[str, str]:
        """The setting reported as each tunable arm (others show as ``<arm>@<setting>``)."""
        return {m: self.pretrain_tag(m) for m in TUNABLE}

    def pretrain_steps_for(self, pair: Pair) -> int:
        return round(self.pretrain_scale * self.pretrain_steps.get(pair.root.name, self.pretrain_steps["*"]))


FULL = Budget(
    pretrain_steps={"dsb2018": 1500, "retina": 1000, "*": 1000},
    chosen={
        # CHASE validation, stop 22: N = 5 Dice 0.823 at λ 0.25, 0.817 at 1, 0.805 at 4; stop 34 (bfloat16
        # fine-tuning): mean log σ −2.0 0.827 and zero-shot 0.721, against 0.819–0.823 and 0.706–0.713 at −0.4,
        # −1.2, −2.8 and −3.6
        "retina": {"lambda_image": 0.25, "sigma_log_mean": -2.0},
        # half of the fluorescence crops inverted: brightfield validation (600 steps) N = 5 0.814 vs 0.727, histology
        # validation zero-shot 0.797 vs 0.005 and N = 5 level (stop 23)
        "dsb2018": {"invert_probability": 0.5},
        # brightfield validation, stop 20: 600 fine-tuning steps +0.077 over 200 at N = 5
        "dsb2018-fluorescence-brightfield": {"finetune_steps": 600},
        # histology validation, inverted start: 50 steps at least as good as 200 at every N (stop 24); keeping
        # N / (N + 1) of the fine-tuned weights +0.059 at N = 1, +0.016 at N = 2, level at N = 5 (stop 25)
        "dsb2018-fluorescence-histology": {"finetune_steps": 50, "finetuned_half_at": 1.0},
    },
)
QUICK = Budget(
    pretrain_steps={"*": 20}, finetune_steps=10, batch_size=2, crop=64, seeds=2, n_labels=(1, 2),
    max_test_images=2, base_channels=8,
)


@dataclass(frozen=True)
class Variant:
    """How the pretrained arms are fine-tuned (recorded with each result)."""

    loss: str = "mask"
    unlabelled_share: float = 0.0
    foreground_share: float = 0.0  # of the fine-tuning crops, for every network arm (scratch included)
    finetune_steps: int | None = None  # for every network arm; None: the budget's
    unlabelled_crops: int = 0  # unlabelled pool crops added to each batch (denoising only): the labelled ones stay as many
    head_steps: int = 0  # of the pretrained arms' fine-tuning steps, the first ones on the output convolution alone
    lr: float | None = None  # the pretrained arms' fine-tuning learning rate; None: the product's
    scratch_lr: float | None = None  # scratch's, chosen apart (a rate that suits a start may not suit random weights)
    start_decay: float = 0.0  # the pretrained arms' pull toward their starting weights (L2-SP; TrainConfig)
    finetuned_share: float = 1.0  # of the pretrained arms' returned weights, the fine-tuned share (WiSE-FT; FinetuneConfig)
    # K > 0: with N labelled images the fine-tuned share is N / (N + K) instead, so the fewer the labels, the more of
    # the pretrained model is kept (K = 1: one image gets half); 0: off; None: the pair's chosen K
    finetuned_half_at: float | None = None
    precision: str = "float32"  # of every network arm's fine-tuning (TrainConfig.precision)
    # every network arm's fine-tuning crop side; None: the budget's. The labelled crops a batch holds shrink with
    # its area, so that a step sees the budget's pixels and costs what it did
    crop: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for rate in (self.lr, self.scratch_lr):
            if rate is not None and not rate > 0:
                raise ValueError(f"the fine-tuning learning rate must be positive, got {rate}")
        if self.start_decay < 0:
            raise ValueError(f"the pull toward the starting weights must not be negative, got {self.start_decay}")
        if not 0 < self.finetuned_share <= 1:
            raise ValueError(f"the fine-tuned share of the weights must lie in (0, 1], got {self.finetuned_share}")
        if (self.finetuned_half_at or 0.0) < 0 or (self.finetuned_half_at and self.finetuned_share < 1):
            raise ValueError("the fine-tuned share is either fixed or N / (N + K) with K > 0, not both")
        if self.crop is not None and self.crop < 16:
            raise ValueError(f"the fine-tuning crop must be at least 16 pixels a side, got {self.crop}")

    def finetuned_share_for(self, n_labels: int) -> float:
        if self.finetuned_half_at and n_labels:  # with no labels nothing is fine-tuned
            return n_labels / (n_labels + self.finetuned_half_at)
        return self.finetuned_share

    @property
    def tag(self) -> str:
        # "mask+unlabelled…" records (stop 8) had the mask loss on noisy labelled crops too; since stop 21 the
        # labelled crops stay clean and the unlabelled ones feed only the denoising term: "mask+denoise…"
        unlabelled = "denoise" if self.loss == "mask" else "unlabelled"
        return (f"{self.loss}" + (f"+{unlabelled}{self.unlabelled_share:g}" if self.unlabelled_share else "")
                + (f"+foreground{self.foreground_share:g}" if self.foreground_share else "")
                + (f"+steps{self.finetune_steps}" if self.finetune_steps else "")
                + (f"+denoise{self.unlabelled_crops}crops" if self.unlabelled_crops else "")
                + (f"+head{self.head_steps}" if self.head_steps else "")
                + (f"+lr{self.lr:g}" if self.lr else "")
                + (f"+scratchlr{self.scratch_lr:g}" if self.scratch_lr else "")
                + (f"+l2sp{self.start_decay:g}" if self.start_decay else "")
                + (f"+wise{self.finetuned_share:g}" if self.finetuned_share < 1 else "")
                + (f"+wisek{self.finetuned_half_at:g}" if self.finetuned_half_at else "")
                + (f"+crop{self.crop}" if self.crop else "")
                + ("+bf16" if self.precision == "bfloat16" else ""))

    def on_pair(self, budget: Budget, pair_name: str) -> Variant:
        """This variant as it runs on the pair ``pair_name`` under ``budget``: its own fine-tuning steps and blend,
        else the pair's chosen ones (no chosen blend where a fixed share is given). Steps equal to ``budget``'s own
        (the benchmark's default, which records before per-pair steps never named) stay out of the tag, so a pair's
        chosen settings and the same settings asked for on the command line share their records."""
        chosen = budget.for_pair_name(pair_name)
        steps = self.finetune_steps or chosen.finetune_steps
        half_at = self.finetuned_half_at
        if half_at is None:
            half_at = chosen.finetuned_half_at if self.finetuned_share == 1 else 0.0
        return replace(self, finetune_steps=None if steps == budget.finetune_steps else steps, finetuned_half_at=half_at)

    def crop_and_crops(self, budget: Budget) -> tuple[int, int]:
        """The fine-tuning crop side and the labelled crops a batch holds: the budget's pixels a step at any side."""
        if not self.crop:
            return budget.crop, budget.batch_size
        return self.crop, max(1, round(budget.batch_size * budget.crop**2 / self.crop**2))

    def batch(self, labelled_crops: int) -> tuple[int, float]:
        """The fine-tuning batch size and its unlabelled share."""
        if self.unlabelled_crops:
            return labelled_crops + self.unlabelled_crops, self.unlabelled_crops / (labelled_crops + self.unlabelled_crops)
        return labelled_crops, self.unlabelled_share

    @property
    def slug(self) -> str:
        """The tag as a file-name part."""
        return self.tag.replace("+", "_")


# the pretraining settings a command line can give for every pair, as they name a report
PRETRAIN_SETTING_NAMES = {"clean_fraction": "clean", "invert_probability": "invert", "lambda_image": "lambda",
                          "sigma_log_mean": "logsigma",
                          "diffusion_clean_fraction": "diffusionclean", "pretrain_scale": "pretrain",
                          "pretrain_seed": "pretrainseed", "base_channels": "width"}


def default_section(quick: bool, protocol: str, variant: Variant, base: Budget, budget: Budget,
                    pair_names: list[str]) -> str:
    """The report a run writes unless it is named: the protocol's main one where every pair runs at its chosen
    settings (given on the command line or not), else one named after the settings that leave them, so that a run
    at other settings never overwrites the report of the chosen ones."""
    parts = ["label_efficiency"] + (["quick"] if quick else []) + (["validation"] if protocol == "validation" else [])
    if any(variant.on_pair(budget, name) != Variant().on_pair(budget, name) for name in pair_names):
        parts.append(variant.slug)
    for setting, short in PRETRAIN_SETTING_NAMES.items():
        if any(getattr(base.for_pair_name(name), setting) != getattr(budget.for_pair_name(name), setting)
               for name in pair_names):
            parts.append(f"{short}{getattr(budget, setting):g}")  # a flag given: the same for every pair
    return "_".join(parts)


def default_pairs(data_root: Path) -> list[Pair]:
    return [
        Pair(data_root / "retina", "drive", "chase"),
        Pair(data_root / "dsb2018", "fluorescence", "histology"),
        Pair(data_root / "dsb2018", "fluorescence", "brightfield"),
    ]


def parse_pair(text: str) -> Pair:
    try:
        root, source, target = text.rsplit(":", 2)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a pair is ROOT:SOURCE:TARGET, got {text!r}") from None
    return Pair(Path(root), source, target)


# ---------------------------------------------------------------- records


def _without_pretraining_tag(row: dict[str, Any]) -> dict[str, Any]:
    """Scratch and forest have no pretraining; records made before the tag said so named them after the
    pretrained arms' setting (the same runs)."""
    if row.get("method") not in PRETRAINED and row.get("pretrain"):
        return {**row, "pretrain": ""}
    return row


class Records:
    """Finished runs, one JSON line each, identified by the fields in ``key``; a run already recorded is never repeated."""

    def __init__(
        self, path: Path, key: tuple[str, ...] = ("pair", "protocol", "variant", "method", "pretrain", "n_labels", "seed")
    ):
        self.path = path
        self.key = key
        self.rows: list[dict[str, Any]] = []
        self._keys: set[tuple] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = _without_pretraining_tag(json.loads(line))
                    if self._key(row) not in self._keys:  # the first run of a key is the one on record
                        self.rows.append(row)
                        self._keys.add(self._key(row))

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[k] for k in self.key)

    def has(self, **key: Any) -> bool:
        return self._key(key) in self._keys

    def add(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        self.rows.append(row)
        self._keys.add(self._key(row))


# ---------------------------------------------------------------- the runs


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
        from .forest_baseline import PixelForest

        forest = PixelForest(seed=seed).fit(labelled)
        return evaluate_predictor(forest.predict, forest.n_classes, data.evaluation)

    from napari_hybridseg.learn.finetune import (
        FINETUNE_LR, FinetuneConfig, default_finetune_train_config, finetune, scratch_model,
    )
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    crop, labelled_crops = variant.crop_and_crops(budget)
    if method == "scratch":
        model, meta = scratch_model(budget.architecture(), seed)  # the pretrained arms' architecture, untrained
        batch_size, config = labelled_crops, FinetuneConfig()  # no pretext to continue: the mask loss on labelled images
        lr, start_decay = variant.scratch_lr or FINETUNE_LR, 0.0  # nothing learnt to keep
    else:
        model, meta = load_checkpoint(checkpoint(method))
        batch_size, unlabelled_share = variant.batch(labelled_crops)
        config = FinetuneConfig(loss=variant.loss, unlabelled_share=unlabelled_share, head_steps=variant.head_steps,
                                finetuned_share=variant.finetuned_share_for(len(labelled)))
        lr, start_decay = variant.lr or FINETUNE_LR, variant.start_decay
    chosen = {s.id for s in labelled}
    unlabelled = [s for s in data.pool if s.id not in chosen] if config.unlabelled_share else None
    if labelled:
        train_config = default_finetune_train_config(
            steps=variant.finetune_steps or budget.finetune_steps, batch_size=batch_size,
            crop_size=crop, seed=seed, foreground_share=variant.foreground_share, lr=lr,
            start_decay=start_decay, precision=variant.precision,
        )
        model, meta, _ = finetune(model, meta, labelled, train_config, config, unlabelled)
    return evaluate(Segmenter(model, meta), data.evaluation)


def planned_runs(pairs: list[Pair], arms: list[str], budget: Budget, pool_sizes: dict[str, int]) -> Iterator[tuple]:
    """(pair, method, n_labels, seed) in the order they run: zero-shot, then each N (the headline first), then the ceiling.
    Arms are innermost so an interrupted benchmark leaves complete paired sets."""
    for pair in pairs:
        for method in arms:
            if method in ("hybrid", "supervised"):  # diffusion pretraining never trains the mask head
                yield pair, method, 0, 0
    for n in budget.n_labels:
        for seed in range(budget.seeds):
            for pair in pairs:
                if n < pool_sizes[pair.name]:
                    for method in arms:
                        yield pair, method, n, seed
    for seed in range(budget.ceiling_seeds):
        for pair in pairs:
            for method in arms:
                yield pair, method, pool_sizes[pair.name], seed  # the ceiling: every pool image


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


# ---------------------------------------------------------------- the report


def _n_label(n: int, pool_size: int) -> str:
    return f"{n} (pool)" if n == pool_size else str(n)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std per (method, N), and paired intervals of hybrid against every other arm at each N."""
    by_cell: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        by_cell.setdefault((r["method"], r["n_labels"]), {})[r["seed"]] = r
    cells = {
        key: {"mean": float(np.mean([r["dice"] for r in runs.values()])),
              "std": float(np.std([r["dice"] for r in runs.values()])), "n_seeds": len(runs)}
        for key, runs in by_cell.items()
    }
    intervals = {}
    for (method, n), runs in by_cell.items():
        if method == "hybrid" or ("hybrid", n) not in by_cell:
            continue
        seeds = sorted(s for s in set(runs) & set(by_cell[("hybrid", n)])
                       if "per_image_dice" in runs[s] and "per_image_dice" in by_cell[("hybrid", n)][s])
        if not seeds:
            continue
        a = np.array([by_cell[("hybrid", n)][s]["per_image_dice"] for s in seeds])
        b = np.array([runs[s]["per_image_dice"] for s in seeds])
        intervals[(method, n)] = paired_bootstrap(a, b)
    return {"cells": cells, "intervals": intervals}


def methods_present(cells: dict[tuple, Any], arms: Iterable[str]) -> list[str]:
    """The arms that have results, in ``arms`` order, then other pretraining settings (``hybrid@<setting>``)."""
    present = {method for method, _ in cells}
    return [m for m in arms if m in present] + sorted(present - set(arms))


def _setting_name(method: str, tag: str) -> str:
    """The empty tag is the setting an arm had before it could vary: for diffusion, no σ_min share."""
    return tag or ("clean0" if method == "diffusion" else "default")


def report_rows(
    rows: list[dict[str, Any]], protocol: str, variant: Variant, budget: Budget
) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
    """The records of one report per pair, with each tunable arm's pretraining setting shown under the arm's
    name: the pair's setting in ``budget``, or the most-run setting where that one has not run on the pair yet. Runs of
    other settings are kept as their own arm, ``<arm>@<setting>``, compared paired. ``variant`` is taken as it runs
    on each pair (``Variant.on_pair``)."""
    tags = {pair: variant.on_pair(budget, pair).tag for pair in {r["pair"] for r in rows}}
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["protocol"] == protocol and r["variant"] == tags[r["pair"]]:
            by_pair.setdefault(r["pair"], []).append(r)
    out = {}
    for pair, pair_rows in by_pair.items():
        shown = {}
        for method, wanted in budget.for_pair_name(pair).shown_tags.items():
            tags = [r["pretrain"] for r in pair_rows if r["method"] == method]
            shown[method] = wanted if wanted in tags or not tags else max(set(tags), key=tags.count)
        out[pair] = (shown, [{**r, "method": f"{r['method']}@{_setting_name(r['method'], r['pretrain'])}"}
                             if r["method"] in shown and r["pretrain"] != shown[r["method"]] else r for r in pair_rows])
    return out


def plot_pair(rows: list[dict[str, Any]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summarise(rows)["cells"]
    ns = sorted({n for _, n in cells})
    labels = [_n_label(n, rows[0]["n_pool"]) for n in ns]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for method in methods_present(cells, ARMS):
        xs = [i for i, n in enumerate(ns) if (method, n) in cells]
        ax.errorbar(xs, [cells[(method, ns[i])]["mean"] for i in xs], yerr=[cells[(method, ns[i])]["std"] for i in xs],
                    marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(ns)), labels)
    report.style_dice_axes(ax, "labelled target images", title)
    report.save_figure(fig, path)


def pair_markdown(rows: list[dict[str, Any]], arms: list[str]) -> str:
    summary = summarise(rows)
    cells, intervals = summary["cells"], summary["intervals"]
    ns = sorted({n for _, n in cells})
    pool_size = rows[0]["n_pool"]
    present = methods_present(cells, arms)
    table = report.markdown_table(
        ["N labels", *present],
        [[_n_label(n, pool_size),
          *[(f"{cells[(m, n)]['mean']:.3f} ± {cells[(m, n)]['std']:.3f} ({cells[(m, n)]['n_seeds']})"
             if (m, n) in cells else "–") for m in present]] for n in ns],
    )
    others = [m for m in present if m != "hybrid"]
    diff_table = report.markdown_table(
        ["N labels", *[f"hybrid − {m}" for m in others]],
        [[_n_label(n, pool_size), *[str(intervals[(m, n)]) if (m, n) in intervals else "–" for m in others]]
         for n in ns if any((m, n) in intervals for m in others)],
    )
    if intervals:
        paired = f"Paired differences, mean [95% bootstrap interval over seeds and test images]:\n\n{diff_table}"
    elif not others:
        paired = "One arm only: no paired differences between arms."
    else:
        paired = "No paired intervals: these runs have no per-image records."
    return f"Dice, mean ± std over seeds (number of seeds):\n\n{table}\n\n{paired}"


def against_default_fine_tuning(rows: list[dict[str, Any]], default_rows: list[dict[str, Any]]) -> dict[tuple, Any]:
    """Paired intervals of each (arm, N) of a fine-tuning variant against the default fine-tuning's runs of the
    same arm, source model, seed and therefore labelled images; none where both are the same runs (a pair whose
    chosen fine-tuning is this variant)."""
    if rows and default_rows and rows[0]["variant"] == default_rows[0]["variant"]:
        return {}

    def arm(r: dict[str, Any]) -> str:  # without its report name (``hybrid@<setting>``): the two reports may differ
        return r["method"].split("@")[0]

    def by_run(some: list[dict[str, Any]]) -> dict[tuple, list[float]]:
        return {(arm(r), r["pretrain"], r["n_labels"], r["seed"]): r["per_image_dice"] for r in some if "per_image_dice" in r}

    ours, default = by_run(rows), by_run(default_rows)
    shown_as = {(arm(r), r["pretrain"]): r["method"] for r in rows}
    cells: dict[tuple, list[tuple]] = {}
    for run_key in ours:
        if run_key in default and run_key[2] > 0:  # with no labels there is no fine-tuning to differ
            cells.setdefault((shown_as[run_key[:2]], run_key[2]), []).append(run_key)
    return {cell: paired_bootstrap(np.array([ours[k] for k in sorted(keys)]), np.array([default[k] for k in sorted(keys)]))
            for cell, keys in cells.items()}


def against_default_markdown(intervals: dict[tuple, Any], tag: str, default_tag: str, pool_size: int) -> str:
    methods = methods_present(intervals, ARMS)
    ns = sorted({n for _, n in intervals})
    table = report.markdown_table(
        ["N labels", *[f"{m}: {tag} − {default_tag}" for m in methods]],
        [[_n_label(n, pool_size), *[f"{intervals[(m, n)]} ({intervals[(m, n)].n_seeds})" if (m, n) in intervals else "–"
                                    for m in methods]] for n in ns])
    return (f"Against {default_tag} (plain fine-tuning at the pair's chosen steps unless the command names others), "
            "paired on the same source models, seeds and labelled images "
            f"(mean [95% interval] (seeds)):\n\n{table}")


def earlier_entries(json_path: Path, recorded: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The pairs of an earlier report that have no records now (records lost, or kept in another work folder):
    carried over unchanged, so rebuilding the report from one pair's records never drops another pair's results."""
    if not json_path.exists():
        return []
    return [e for e in json.loads(json_path.read_text()) if (e["source"], e["target"]) not in recorded]


def machines_line(rows: list[dict[str, Any]], rebuilt_on: str) -> str:
    """The machines the runs were made on (records name theirs since stop 21), not the one rebuilding the report."""
    counts = Counter(r.get("machine") for r in rows)
    unrecorded = counts.pop(None, 0)
    if not unrecorded and len(counts) == 1:
        return next(iter(counts))

    def runs(n: int) -> str:
        return f"{n} run" + ("s" if n != 1 else "")

    parts = [f"{machine} ({runs(n)})" for machine, n in counts.most_common()]
    if unrecorded:
        parts.append(f"{runs(unrecorded)} from before records named their machine (this report rebuilt on {rebuilt_on})")
    return "; ".join(parts)


def write_report(records: Records, protocol: str, variant: Variant, budget: Budget, args_line: str,
                 results_dir: Path, benchmarks_md: Path, section: str, baseline: Variant = Variant(finetuned_half_at=0.0),
                 only_pairs: Collection[str] | None = None) -> Path:
    """``baseline``: the fine-tuning a variant's runs are compared with, paired (by default plain fine-tuning, no
    blend, at each pair's steps). ``only_pairs``: the pairs a named report is of (the ones its command ran; a pair
    where the report's setting never ran would show another setting under the arm's name), whose records under its
    protocol it keeps, with those of the pairs it carries over from its earlier report; None (the main report):
    every pair and every record of the work folder, which a new machine's work folder is rebuilt from."""
    of_report = [r for r in records.rows if only_pairs is None or r["pair"] in only_pairs]
    by_pair = report_rows(of_report, protocol, variant, budget)
    default_by_pair = report_rows(of_report, protocol, baseline, budget)  # a pair's own runs are never paired with themselves
    rows = [r for _, pair_rows in by_pair.values() for r in pair_rows]
    info = report.machine()
    json_path = results_dir / f"{section}.json"
    out = earlier_entries(json_path, {(r["source"], r["target"]) for r in rows})
    carried = {(e["source"], e["target"]) for e in out}
    reported = [(e, [{**r, "n_pool": e["n_pool"]} for r in e["results"]],
                 f"Carried over from an earlier report (`{e['command']}`; {report.machine_line(e['machine'])}).", "")
                for e in out]
    pretrain_times = [float(p.read_text()) for p in records.path.parent.glob("pretrain/*.seconds")]
    for pair, (shown, pair_rows) in sorted(by_pair.items()):  # by name: a rebuild never depends on the records' order
        first = pair_rows[0]
        entry = {
            "source": first["source"], "target": first["target"], "n_pool": first["n_pool"], "protocol": protocol,
            "finetune": first["variant"], "hybrid_pretraining": shown["hybrid"],
            "diffusion_pretraining": _setting_name("diffusion", shown["diffusion"]), "command": args_line, "machine": info,
            "results": [{k: r[k] for k in ("method", "n_labels", "seed", "dice", "iou", "seconds")} for r in pair_rows],
        }
        if shown["supervised"]:
            entry["supervised_pretraining"] = shown["supervised"]
        default_rows = default_by_pair.get(pair, ({}, []))[1]
        against = against_default_fine_tuning(pair_rows, default_rows)
        if against:
            entry["against_default_fine_tuning"] = [
                {"method": m, "n_labels": n, "mean": i.mean, "low": i.low, "high": i.high, "n_seeds": i.n_seeds}
                for (m, n), i in sorted(against.items())]
        out.append(entry)
        extra = (f"\n\n{against_default_markdown(against, first['variant'], default_rows[0]['variant'], first['n_pool'])}"
                 if against else "")
        settings = [f"{m} pretraining: {_setting_name(m, shown[m])}" for m in TUNABLE
                    if any(r["method"] == m for r in pair_rows)]
        if first["variant"] != variant.tag:
            settings.append(f"fine-tuning: {first['variant']} (chosen for this pair on validation)")
        origin = "; ".join(settings) or "no pretrained arm"
        reported.append((entry, pair_rows, f"{origin[0].upper()}{origin[1:]}.", extra))
    sections = []
    for entry, pair_rows, origin, extra in reported:
        plot = results_dir / f"{section}_{entry['target']}.png"
        plot_pair(pair_rows, f"{entry['source']} → {entry['target']}", plot)
        sections.append(f"### {entry['source']} → {entry['target']}\n\n![]({plot.relative_to(results_dir.parent.parent)})\n\n"
                        f"{origin}\n\n" + pair_markdown(pair_rows, list(ARMS)) + extra)
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=1) + "\n")
    report.save_records(records.rows if only_pairs is None else
                        [r for r in records.rows if r["protocol"] == protocol
                         and (r["pair"] in by_pair or (r["source"], r["target"]) in carried)], results_dir, section)
    run_seconds = sum(r["seconds"] for r in rows)
    pretraining = (f"plus {sum(pretrain_times) / 3600:.2f} h of pretraining the {len(pretrain_times)} source "
                   f"model{'s' * (len(pretrain_times) != 1)} this work folder holds" if pretrain_times
                   else "not counting pretraining (this work folder holds none of the source models)")
    timing = f"Compute: {run_seconds / 3600:.2f} h of fine-tuning and scoring over {len(rows)} runs, {pretraining}."
    body = "\n\n".join(sections) + f"\n\n{timing}  \nFine-tuning of the pretrained arms: {variant.tag} loss. " \
        + "`<arm>@<setting>` columns are that arm's pretraining with another setting, for comparison.  \n" \
        + f"Command: `{args_line}`  \nMachine: {machines_line(rows, report.machine_line(info))}  \n" \
        + f"Results: `{json_path.relative_to(results_dir.parent.parent)}`"
    report.update_section(section, body, benchmarks_md)
    return json_path


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.label_efficiency", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=report.REPO.parent / "shared" / "data",
                   help="folder holding retina/ and dsb2018/ (default: ../shared/data)")
    p.add_argument("--pair", type=parse_pair, action="append", help="ROOT:SOURCE:TARGET (repeatable); default: the three shipped pairs")
    p.add_argument("--source-split", default="train")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--quick", action="store_true", help="tiny budget: the whole pipeline in minutes")
    p.add_argument("--seeds", type=int)
    p.add_argument("--n-labels", type=int, nargs="+")
    p.add_argument("--clean-fraction", type=float,
                   help=f"share of each hybrid pretraining batch at σ_min (default {FULL.clean_fraction})")
    p.add_argument("--diffusion-clean-fraction", type=float,
                   help=f"share of each diffusion pretraining batch at σ_min (default {FULL.diffusion_clean_fraction:g})")
    p.add_argument("--invert-probability", type=float,
                   help="share of every pretrained arm's crops with inverted intensities (default 0)")
    p.add_argument("--lambda-image", type=float,
                   help=f"weight of the denoising term in hybrid pretraining (default {FULL.lambda_image:g}; the mask term's is 1)")
    p.add_argument("--sigma-log-mean", type=float,
                   help=f"mean of log σ, the noise levels of hybrid pretraining's noised crops (default "
                        f"{FULL.sigma_log_mean:g}: median σ {math.exp(FULL.sigma_log_mean):.2f})")
    p.add_argument("--pretrain-scale", type=float,
                   help="every pretrained arm's pretraining steps as a multiple of the pair's default "
                        f"({', '.join(f'{k} {v}' for k, v in FULL.pretrain_steps.items() if k != '*')}; default 1)")
    p.add_argument("--pretrain-seed", type=int,
                   help="every pretrained arm's pretraining seed (default 0; another seed pretrains source models "
                        "of its own, tag seedK, to measure how much a result owes to one source model)")
    p.add_argument("--base-channels", type=int,
                   help=f"model width for every arm (default {FULL.base_channels}); use its own --work folder")
    p.add_argument("--finetune-loss", choices=["mask", "hybrid"], default="mask")
    p.add_argument("--unlabelled-share", type=float, default=0.0,
                   help="share of each fine-tuning batch taken by unlabelled pool crops (denoising only)")
    p.add_argument("--unlabelled-crops", type=int, default=0,
                   help="unlabelled pool crops added to each fine-tuning batch (denoising only), the labelled crops as many as without")
    p.add_argument("--foreground-share", type=float, default=0.0,
                   help="share of fine-tuning crops placed around a foreground pixel (default 0: uniform crops)")
    p.add_argument("--finetune-steps", type=int,
                   help=f"fine-tuning steps of every network arm (default: the pair's chosen ones, else {FULL.finetune_steps})")
    p.add_argument("--head-steps", type=int, default=0,
                   help="of the pretrained arms' fine-tuning steps, the first ones train the output convolution alone "
                        "(linear probing, then fine-tuning; default 0)")
    p.add_argument("--finetune-lr", type=float,
                   help="the pretrained arms' fine-tuning learning rate (default: the product's, as scratch's)")
    p.add_argument("--scratch-lr", type=float,
                   help="scratch's fine-tuning learning rate (default: the product's); a variant's tag names it, so "
                        "give it with --arms scratch alone")
    p.add_argument("--start-decay", type=float, default=0.0,
                   help="the pretrained arms' pull toward their starting weights: each step moves every weight "
                        "lr × this toward its start (L2-SP; default 0)")
    p.add_argument("--finetuned-share", type=float, default=1.0,
                   help="the pretrained arms keep this share of the fine-tuned weights, the rest from the start "
                        "(WiSE-FT; default 1)")
    p.add_argument("--finetuned-half-at", type=float,
                   help="K: with N labelled images the pretrained arms keep the share N / (N + K) of the fine-tuned "
                        "weights, the rest from the start (WiSE-FT by the number of labels; default: the pair's "
                        "chosen K, else off; 0: off)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="every network arm's fine-tuning arithmetic: bfloat16 runs the convolutions in bfloat16 "
                        "(faster on a CPU with AVX-512 BF16 or AMX; refused on one without)")
    p.add_argument("--finetune-crop", type=int,
                   help=f"every network arm's fine-tuning crop side (default {FULL.crop}); a batch holds fewer crops "
                        "as they grow, so a step sees as many pixels")
    p.add_argument("--baseline-precision", choices=PRECISIONS, default="float32",
                   help="the arithmetic of the plain fine-tuning a variant is compared with (default float32)")
    p.add_argument("--baseline-finetune-steps", type=int,
                   help="compare a fine-tuning variant with plain fine-tuning (no blend) at these steps (default: the "
                        "pair's), e.g. a blend at 50 steps with plain 50-step fine-tuning")
    p.add_argument("--protocol", choices=["test", "validation"], default="test",
                   help="validation: label from 70%% of the pool and score on the other 30%% (for choosing settings)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each worker (default 2)")
    p.add_argument("--workers", type=int, default=1,
                   help="runs at once, each in its own process of --threads threads (default 1); on this 2-core "
                        "machine --workers 2 --threads 1 does the most runs an hour")
    p.add_argument("--work", type=Path, help="records and source models (default: runs/label_efficiency[-quick])")
    p.add_argument("--results-dir", type=Path, default=report.RESULTS)
    p.add_argument("--benchmarks-md", type=Path, default=report.BENCHMARKS_MD)
    p.add_argument("--report-only", action="store_true", help="rebuild JSON, plots and tables from the records")
    p.add_argument("--report-name", help="the BENCHMARKS.md section and results file names of this report "
                                         "(default: from the protocol and fine-tuning variant)")
    args = p.parse_args(argv)

    base_budget = QUICK if args.quick else FULL
    overrides = {"seeds": args.seeds, "n_labels": tuple(args.n_labels or ()), "clean_fraction": args.clean_fraction,
                 "invert_probability": args.invert_probability, "base_channels": args.base_channels,
                 "diffusion_clean_fraction": args.diffusion_clean_fraction, "lambda_image": args.lambda_image,
                 "sigma_log_mean": args.sigma_log_mean,
                 "pretrain_scale": args.pretrain_scale, "pretrain_seed": args.pretrain_seed}
    budget = base_budget.overridden(**{k: v for k, v in overrides.items() if v is not None and v != ()})
    pairs = [replace(pr, source_split=args.source_split) for pr in (args.pair or default_pairs(args.data_root))]
    try:
        variant = Variant(loss=args.finetune_loss, unlabelled_share=args.unlabelled_share,
                          foreground_share=args.foreground_share, finetune_steps=args.finetune_steps,
                          unlabelled_crops=args.unlabelled_crops, head_steps=args.head_steps, lr=args.finetune_lr,
                          scratch_lr=args.scratch_lr,
                          start_decay=args.start_decay, finetuned_share=args.finetuned_share,
                          finetuned_half_at=args.finetuned_half_at, precision=args.precision, crop=args.finetune_crop)
    except ValueError as error:
        p.error(str(error))
    if args.workers < 1 or args.threads < 1:
        p.error("--workers and --threads must be at least 1")
    if args.precision == "bfloat16" and not native_bfloat16(torch.device("cpu")):
        p.error("this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX): bfloat16 would be slower, not faster")
    work = args.work or report.REPO / "runs" / ("label_efficiency-quick" if args.quick else "label_efficiency")
    section = args.report_name or default_section(args.quick, args.protocol, variant, base_budget, budget,
                                                  [pr.name for pr in pairs])
    work.mkdir(parents=True, exist_ok=True)
    recorded = work / "budget.json"
    if recorded.exists() and json.loads(recorded.read_text()).get("base_channels") != budget.base_channels:
        p.error(f"{work} holds models of another width; give each --base-channels its own --work folder")
    (work / "budget.json").write_text(json.dumps(asdict(budget), indent=1) + "\n")

    try:
        records = Records(work / "records.jsonl") if args.report_only else run(
            pairs, args.arms, budget, variant, args.protocol, work, args.threads, args.workers
        )
    except KeyboardInterrupt:
        kept = len(Records(work / "records.jsonl").rows)
        print(f"stopped: {kept} finished run(s) on record in {work / 'records.jsonl'}; the same command resumes from there",
              file=sys.stderr)
        return 130
    command = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]  # the one that makes the records
    args_line = "python -m training.label_efficiency " + " ".join(shlex.quote(a) for a in command)
    main_report = section == "label_efficiency" + ("_quick" if args.quick else "")
    named_pairs = {pr.name for pr in pairs} if args.pair else {r["pair"] for r in records.rows}
    path = write_report(records, args.protocol, variant, budget, args_line, args.results_dir, args.benchmarks_md, section,
                        Variant(finetune_steps=args.baseline_finetune_steps, finetuned_half_at=0.0,
                                precision=args.baseline_precision),
                        only_pairs=None if main_report else named_pairs)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
