"""The "label 5 images then refine" loop, headless.

True masks stand in for the clinician's corrections: each round labels the
next ``round_size`` pool images, fine-tunes the starting model on all images
labelled so far, and scores the test split (Dice, IoU, and for a model of objects the object F1 at IoU 0.5
and AJI; see :mod:`.evaluate`). For an instances model the true masks are instance labels, as a user's
corrections are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.datasets import choose_subset, load_domain, split_ids
from ..model.checkpoint import load_checkpoint
from ..model.inference import Segmenter
from .evaluate import evaluate
from .finetune import FinetuneConfig, finetune
from .recipe import FinetuneRecipe


def simulate(
    checkpoint: str | Path,
    root: str | Path,
    domain: str,
    pool_split: str = "pool",
    test_split: str = "test",
    round_size: int = 5,
    rounds: int = 2,
    steps: int | None = None,  # None: the start model's recipe
    loss: str = "mask",
    seed: int = 0,
    device: torch.device = torch.device("cpu"),
    echo: Callable[[str], None] = lambda s: None,
) -> list[dict[str, Any]]:
    base_model, base_meta = load_checkpoint(checkpoint)
    recipe = FinetuneRecipe.from_metadata(base_meta)
    pool_ids = split_ids(root, domain, pool_split)
    n_total = min(len(pool_ids), round_size * rounds)
    order = choose_subset(pool_ids, n_total, seed)
    pool = {s.id: s for s in load_domain(root, domain, ids=order)}
    test = load_domain(root, domain, split=test_split)

    score = evaluate(Segmenter(base_model, base_meta, device), test)
    echo(f"round 0: 0 labelled images, test Dice {score['mean_dice']:.4f}{_objects(score)} (start model)")
    results = [{"round": 0, "n_labels": 0, **_scores(score), "seconds": 0.0}]
    for r in range(1, rounds + 1):
        labelled_ids = order[: min(n_total, r * round_size)]
        if len(labelled_ids) == results[-1]["n_labels"]:
            break
        start = time.perf_counter()
        model, meta, _ = finetune(
            base_model, base_meta, [pool[i] for i in labelled_ids],
            recipe.train_config(steps=steps, seed=seed + r), FinetuneConfig(loss=loss), device=device,
        )
        seconds = time.perf_counter() - start
        score = evaluate(Segmenter(model, meta, device), test)
        before = results[-1]["dice"]
        echo(
            f"round {r}: {len(labelled_ids)} labelled images, test Dice {before:.4f} -> {score['mean_dice']:.4f} "
            f"({score['mean_dice'] - before:+.4f}{_objects(score)}; refine took {seconds:.0f} s)"
        )
        results.append({"round": r, "n_labels": len(labelled_ids), "ids": list(labelled_ids), **_scores(score),
                        "seconds": seconds})
    return results


def _scores(score: dict[str, Any]) -> dict[str, float]:
    """A round's mean scores: Dice and IoU, and the object scores where the model has them."""
    names = {"dice": "mean_dice", "iou": "mean_iou", "f1": "mean_f1", "aji": "mean_aji"}
    return {name: score[key] for name, key in names.items() if key in score}


def _objects(score: dict[str, Any]) -> str:
    return f", object F1 {score['mean_f1']:.4f}, AJI {score['mean_aji']:.4f}" if "mean_f1" in score else ""
