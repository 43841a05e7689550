"""Seeds from the interior probability: does a stricter seed split touching nuclei better than the class map?

The shipped split (``napari_hybridseg.model.split``) seeds its watershed with the interior class of the argmax
class map. Here the seeds are the pixels whose interior probability exceeds a threshold, flooded over the
foreground (background probability under 0.5) down the interior probability. The threshold is chosen on
DSB fluorescence ``train`` images (the shipped nuclei model's own training images, zero-shot) and the chosen one
is scored on ``val``: object F1 at IoU 0.5, against the shipped split of the same predictions.

    python -m training.instance_seeds --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import report

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
FOLDER = report.results_dir("instances")


def probability_split(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Instance labels from background / interior / boundary probabilities (3, H, W)."""
    from skimage.measure import label as connected_components
    from skimage.segmentation import watershed

    foreground = probs[0] < 0.5
    seeds = connected_components((probs[1] > threshold) & foreground, connectivity=1)
    labels = watershed(-probs[1], markers=seeds, mask=foreground, connectivity=1)
    unseeded = foreground & (labels == 0)
    if unseeded.any():
        extra = connected_components(unseeded, connectivity=1)
        labels[unseeded] = extra[unseeded] + labels.max()
    return labels


def f1_by_split(samples, segmenter) -> dict[str, float]:
    from napari_hybridseg.learn.evaluate import true_objects
    from napari_hybridseg.learn.instances import object_scores
    from napari_hybridseg.model.split import split_instances

    scores: dict[str, list[float]] = {"class map": [], **{f"p > {t:g}": [] for t in THRESHOLDS}}
    for sample in samples:
        probs = segmenter.logits(sample.image).softmax(0).numpy()
        truth = true_objects(sample.labels)
        scores["class map"].append(object_scores(truth, split_instances(probs.argmax(0))).f1)
        for t in THRESHOLDS:
            scores[f"p > {t:g}"].append(object_scores(truth, probability_split(probs, t)).f1)
    return {k: float(np.mean(v)) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.instance_seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the folder that holds dsb2018/")
    p.add_argument("--choose-on", type=int, default=80, help="how many fluorescence train images choose the threshold")
    args = p.parse_args(argv)
    import torch

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.model.inference import Segmenter
    from napari_hybridseg.resources import default_model_path

    torch.set_num_threads(1)
    segmenter = Segmenter.from_checkpoint(default_model_path(), engine="torch")
    root = args.data / "dsb2018"
    choosing = f1_by_split(load_domain(root, "fluorescence", "train")[: args.choose_on], segmenter)
    scored = f1_by_split(load_domain(root, "fluorescence", "val"), segmenter)
    chosen = max((k for k in choosing if k != "class map"), key=choosing.get)
    data = {"train_f1": choosing, "val_f1": scored, "chosen": chosen, "machine": report.machine(), "date": report.today(),
            "command": "python -m training.instance_seeds " + " ".join(argv if argv is not None else sys.argv[1:])}
    report.write_json("instance_seeds", data, FOLDER)
    for name in choosing:
        print(f"{name:>10}: train {choosing[name]:.4f}  val {scored[name]:.4f}")
    print(f"chosen on train: {chosen} → val F1 {scored[chosen]:.4f} (class map {scored['class map']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
