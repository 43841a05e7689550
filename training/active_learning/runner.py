"""One trajectory of the simulated clinician: choose, fine-tune, score, and again; each round recorded as it ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_hybridseg.data.datasets import Sample, choose_subset

from ..label_efficiency import Records
from .plan import Budget, Schedule


def choose(strategy: str, model_and_meta: tuple, pool: list[Sample], labelled: list[str], k: int, seed: int) -> list[str]:
    """The ``k`` unlabelled pool images ``strategy`` labels next."""
    remaining = [s for s in pool if s.id not in labelled]
    if strategy == "random":  # extends the previous subset, so random's subsets equal the label-efficiency ones
        return choose_subset([s.id for s in pool], len(labelled) + k, seed)[len(labelled):]
    from napari_hybridseg.annotation import RANKING_SCORER

    model, version = model_and_meta[0], f"{strategy}-{len(labelled)}"
    if strategy in ("disagreement", "entropy"):
        from napari_hybridseg.learn.acquisition import DisagreementScorer

        options = dict(RANKING_SCORER) if strategy == "disagreement" else {"metric": "entropy"}
        scorer = DisagreementScorer(model, version, seed=seed, **options)
        for _ in scorer.score_many((s.id, s.image) for s in remaining):
            pass
        return [key for key, _ in scorer.ranking()[:k]]
    from napari_hybridseg.learn.selection import plan
    from napari_hybridseg.learn.signals import SignalScorer

    scorer = SignalScorer(model, model, version, seed=seed, **RANKING_SCORER)
    signals = dict(scorer.score_many((s.id, s.image) for s in pool))  # the labelled ones for their features
    candidates = {s.id: signals[s.id] for s in remaining}
    return [pick.key for pick in plan(candidates, [signals[i].features for i in labelled], strategy, k=k)[:k]]


def run_trajectory(target: str, strategy: str, schedule: Schedule, seed: int, pool: list[Sample], test: list[Sample],
                   budget: Budget, records: Records, work: Path, start: Path) -> None:
    """Label ``pool`` images by ``strategy`` in rounds of ``schedule.round_size`` up to its ``max_labels``, from
    where the records leave off."""
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.learn.finetune import finetune
    from napari_hybridseg.learn.recipe import FinetuneRecipe
    from napari_hybridseg.model.checkpoint import load_checkpoint, save_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    done = [r for r in records.rows
            if (r["target"], r["strategy"], r["round_size"], r["seed"]) == (target, strategy, schedule.round_size, seed)]
    labelled = list(max(done, key=lambda r: r["n_labels"])["labelled_ids"]) if done else []
    if len(labelled) >= schedule.max_labels:
        return  # finished: no model to load or make again
    base = load_checkpoint(start)
    recipe = FinetuneRecipe.from_metadata(base[1])
    name = f"{target}-{strategy}-r{schedule.round_size}-s{seed}"
    latest = work / "models" / f"{name}.safetensors"
    by_id = {s.id: s for s in pool}

    def fine_tuned() -> tuple:
        train_config = recipe.train_config(seed=1000 * seed + len(labelled), **budget.finetune)
        return finetune(*base, [by_id[i] for i in labelled], train_config)[:2]

    if not done:
        current = base
    elif latest.exists():
        current = load_checkpoint(latest)
    else:  # resumed from the records alone (another machine): the last round's model, made again
        current = fine_tuned()
    while len(labelled) < schedule.max_labels:
        started = time.perf_counter()
        labelled += choose(strategy, current, pool, labelled, min(schedule.round_size, schedule.max_labels - len(labelled)), seed)
        model, meta = fine_tuned()
        scores = evaluate(Segmenter(model, meta), test)
        current = (model, meta)
        save_checkpoint(latest, model, meta)
        per_image = [r["dice"] for r in scores["per_image"]]
        row: dict[str, Any] = {"target": target, "strategy": strategy, "round_size": schedule.round_size, "seed": seed,
                               "n_labels": len(labelled), "labelled_ids": list(labelled), "dice": scores["mean_dice"],
                               "worst_dice": float(np.min(per_image)), "per_image_dice": per_image,
                               "seconds": round(time.perf_counter() - started, 1)}
        records.add(row)
        print(f"{name}: {len(labelled)} labels, Dice {row['dice']:.4f}, worst {row['worst_dice']:.3f} "
              f"({row['seconds']} s)", flush=True)
