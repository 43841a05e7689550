"""Simulated-clinician benchmark: does the product's choice of the next image to label beat picking at random?

Ground-truth masks stand in for the clinician's corrections. For each target, starting from the start model the
zoo has for it, each strategy picks ``round_size`` pool images; the model is fine-tuned from that start on every
image labelled so far with the start model's own recipe (as the viewer's refinement does), the target's test split
is scored (mean and worst-image Dice), the new model ranks the rest of the pool, and so on up to ``max_labels``.
Strategies:

* ``adaptive``: the product's rule (:mod:`napari_hybridseg.learn.selection`): coverage of the model's feature space,
  weighted by generative surprise for the first labels and by disagreement later;
* ``coverage``: the same coverage with every image weighted alike (typicality and diversity alone);
* ``disagreement``: BALD across diffusion samples, highest first (the earlier suggestion);
* ``entropy``: the mean softmax entropy of one clean prediction (the cheap alternative);
* ``random``: the label-efficiency benchmark's subsets (``choose_subset``).

Runs are appended to ``<work>/records.jsonl`` and each trajectory's latest model is kept (or made again from the
records), so an interrupted benchmark resumes; processes given disjoint ``--seeds`` may share one ``<work>``.

    python -m training.active_learning --data-root ../shared/data               # the default targets, 5 seeds
    python -m training.active_learning --data-root ../shared/data --seeds 0 1 &  # the same, as two processes
    python -m training.active_learning --data-root ../shared/data --seeds 2 3 4; wait
    python -m training.active_learning --report-only                            # the section from the records
"""

from .cli import main
from .plan import KEY, STRATEGIES, TARGETS
from .runner import choose, run_trajectory
from .summary import labels_to_reach_markdown

__all__ = ["KEY", "STRATEGIES", "TARGETS", "choose", "labels_to_reach_markdown", "main", "run_trajectory"]
