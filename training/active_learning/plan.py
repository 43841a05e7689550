"""What the simulated-clinician benchmark runs: its targets with their start models, strategies and schedules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from napari_hybridseg.learn.selection import DEFAULT_RULE

from ..start_models import TARGETS as START_MODEL_TARGETS

STRATEGIES = ("random", "entropy", "disagreement", "coverage", "adaptive")
PRODUCT_RULE = DEFAULT_RULE  # the dock's suggestion
KEY = ("target", "strategy", "round_size", "seed", "n_labels")  # of a record


@dataclass(frozen=True)
class Target:
    name: str
    folder: str  # under the data root
    domain: str
    start: str  # the zoo model it starts from: the best start at 5 labels (BENCHMARKS.md, "Which start model?")


#: the zoo model a target starts from where the best start at 5 labels is not its matched one (BENCHMARKS.md,
#: "Which start model?")
BEST_START = {"brightfield": "lungs"}
TARGETS = tuple(Target(t.name, t.dataset, t.domain, BEST_START.get(t.name, t.matched)) for t in START_MODEL_TARGETS)
DEFAULT_TARGETS = ("histology", "covid", "clinicdb")


@dataclass(frozen=True)
class Schedule:
    round_size: int
    max_labels: int


@dataclass(frozen=True)
class Budget:
    seeds: int = 5
    schedules: tuple[Schedule, ...] = (Schedule(1, 5), Schedule(5, 20))
    # fine-tuning settings over the start model's recipe (empty: the recipe, as the viewer refines)
    finetune: dict[str, Any] = field(default_factory=dict)
    max_test_images: int | None = None
    goal_labels: int = 10  # the goal: the product's rule reaches random's Dice at this many labels with fewer


FULL = Budget()
QUICK = Budget(seeds=2, schedules=(Schedule(1, 2),), finetune={"steps": 4, "batch_size": 2, "crop_size": 32},
               max_test_images=2, goal_labels=2)


def target_named(name: str) -> Target:
    """A benchmark target by name, or ``ROOT:DOMAIN`` for any data set in the shared layout (its start model
    given with ``--source-model``)."""
    for target in TARGETS:
        if target.name == name:
            return target
    if ":" in name:
        root, domain = name.rsplit(":", 1)
        return Target(domain, root, domain, "")
    raise ValueError(f"unknown target {name!r}: use one of {', '.join(t.name for t in TARGETS)} or ROOT:DOMAIN")
