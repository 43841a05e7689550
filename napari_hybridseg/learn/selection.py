"""Which images to label next: a round chosen from the signals of :mod:`.signals`, knowing the budget.

Rules:

* ``disagreement``: the images whose diffusion samples disagree most (BALD), one by one;
* ``coverage``: weighted facility location in the model's feature space. Each pick is the image that most raises
  ``Σ_y w_y · max_{s ∈ labelled ∪ picked} k(y, s)`` over the unlabelled images ``y``, with ``k`` a Gaussian kernel
  on the standardised bottleneck features (bandwidth: the median squared distance). A typical image (like many
  others) gains most, an image like one already labelled or picked gains little, so a round is both typical and
  diverse, with no two near-duplicates; every weight is 1;
* ``adaptive``: coverage weighted by how surprising each image is to the model (its denoising loss, as a rank)
  while fewer than ``switch_labels`` images are labelled, where the model does not know the domain yet; by
  disagreement from then on, once it does;
* ``auto``: by the round, the number of images labelled before the model learns from them (the viewer's *Refine
  every*): ``disagreement`` in rounds of 1, where the model's disagreement is fresh after every label;
  ``coverage`` in larger rounds, where the top of a disagreement ranking is a run of near-duplicates.

Every pick says why, in words (:attr:`Pick.reasons`). Pure numpy; knows nothing of Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from .signals import ImageSignals

RULES = ("auto", "disagreement", "coverage", "adaptive")
#: The dock's default: in rounds of 1 the rule that did best against random picks, in rounds of 5 the one never
#: below them (docs/studies/active_learning.md)
DEFAULT_RULE = "auto"
#: Labelled images from which the adaptive rule weights coverage by disagreement rather than surprise.
SWITCH_LABELS = 5
#: k(y, x) at or above this: x "resembles" y (a squared distance under half the median's).
RESEMBLES = float(np.exp(-0.5))
#: A signal's rank (0–1) at or above this is worth saying ("the samples disagree on it").
NOTEWORTHY_RANK = 0.75


@dataclass(frozen=True)
class Pick:
    key: Hashable
    gain: float  # what the pick adds to the rule's objective (disagreement: the BALD score)
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return "; ".join(self.reasons)


def _check(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}: use one of {', '.join(RULES)}")


def rule_for(rule: str, round_size: int) -> str:
    """The rule that picks a round of ``round_size`` images: ``auto`` resolved, any other rule as it is."""
    _check(rule)
    if rule == "auto":
        return "disagreement" if round_size <= 1 else "coverage"
    return rule


def weighting(rule: str, n_labelled: int, switch_labels: int = SWITCH_LABELS) -> str | None:
    """The signal a coverage rule weights images by (None: every weight 1)."""
    _check(rule)
    if rule == "adaptive":
        return "surprise" if n_labelled < switch_labels else "disagreement"
    return None


def ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank among ``values`` in (0, 1]: the highest 1; ties share their mean rank."""
    values = np.asarray(values, float)
    if not len(values):
        return np.zeros(0)
    places = np.empty(len(values))
    places[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    _, group, size = np.unique(values, return_inverse=True, return_counts=True)
    return np.bincount(group, weights=places)[group] / size[group] / len(values)


def kernel(features: np.ndarray) -> np.ndarray:
    """Gaussian similarities (n, n) of standardised feature rows, bandwidth the median squared distance."""
    z = (features - features.mean(0)) / np.maximum(features.std(0), 1e-6)
    norms = (z**2).sum(1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2 * z @ z.T, 0.0)
    off_diagonal = squared[~np.eye(len(z), dtype=bool)]
    scale = float(np.median(off_diagonal)) if off_diagonal.size and np.median(off_diagonal) > 0 else 1.0
    return np.exp(-squared / scale)


def plan(candidates: Mapping[Hashable, ImageSignals], labelled: Sequence[np.ndarray], rule: str = DEFAULT_RULE,
         k: int | None = None, n_labelled: int | None = None, switch_labels: int = SWITCH_LABELS,
         round_size: int = 1) -> list[Pick]:
    """The unlabelled ``candidates`` in the order ``rule`` would label them, best first, each with its reasons.

    ``labelled`` are the feature vectors of the images labelled so far; ``n_labelled`` (default: their number)
    how many there are, which sets the adaptive rule's phase; ``round_size`` how many are labelled before the model
    learns from them, which sets the rule ``auto`` resolves to. A coverage rule picks greedily the first ``k``
    (None: all; each pick costs O(n²)); the rest follow by what they would add after those.
    """
    rule = rule_for(rule, round_size)
    keys = list(candidates)
    if not keys:
        return []
    signals = [candidates[key] for key in keys]
    disagreement = np.array([s.score for s in signals], float)
    surprise = np.array([s.surprise for s in signals], float)
    said = {"disagreement": ranks(disagreement), "surprise": ranks(np.nan_to_num(surprise, nan=0.0))}
    weighted_by = weighting(rule, len(labelled) if n_labelled is None else n_labelled, switch_labels)
    if rule == "disagreement":
        order = np.argsort(-disagreement, kind="stable")
        return [Pick(keys[i], float(disagreement[i]), _signal_reasons(said, i) or ("the least disagreement left",))
                for i in order]

    similarity = kernel(np.stack([*(s.features for s in signals), *labelled]))
    n = len(keys)
    among, to_labelled = similarity[:n, :n], similarity[:n, n:]
    cover = to_labelled.max(1) if len(labelled) else np.zeros(n)
    weights = said[weighted_by] if weighted_by else np.ones(n)
    picks: list[Pick] = []
    free = np.ones(n, bool)
    for _ in range(n if k is None else min(k, n)):
        gains = np.where(free, weights @ np.maximum(among - cover[:, None], 0.0), -np.inf)
        i = int(np.argmax(gains))
        anything_chosen = bool(len(labelled) or picks)
        picks.append(Pick(keys[i], float(gains[i]), _coverage_reasons(among, cover, free, i, anything_chosen)
                          + _signal_reasons(said, i, weighted_by)))
        free[i] = False
        cover = np.maximum(cover, among[:, i])
    if free.any():
        gains = weights @ np.maximum(among - cover[:, None], 0.0)
        for i in sorted(np.flatnonzero(free), key=lambda j: -gains[j]):
            picks.append(Pick(keys[i], float(gains[i]), _signal_reasons(said, i, weighted_by)
                              or ("like images already labelled or chosen",)))
    return picks


def _coverage_reasons(among: np.ndarray, cover: np.ndarray, free: np.ndarray, i: int,
                      anything_chosen: bool) -> tuple[str, ...]:
    uncovered = free & (cover < RESEMBLES)
    uncovered[i] = False
    alike = int((uncovered & (among[:, i] >= RESEMBLES)).sum())
    reasons = []
    if anything_chosen and cover[i] < RESEMBLES:
        reasons.append("unlike any image labelled yet")
    if alike:
        reasons.append(f"like {alike} other unlabelled image{'s' if alike > 1 else ''}")
    return tuple(reasons) or ("typical of the images left",)


def _signal_reasons(said: dict[str, np.ndarray], i: int, weighted_by: str | None = None) -> tuple[str, ...]:
    reasons = []
    if said["surprise"][i] >= NOTEWORTHY_RANK or weighted_by == "surprise" and said["surprise"][i] >= 0.5:
        reasons.append("new to the model: it denoises it poorly")
    if said["disagreement"][i] >= NOTEWORTHY_RANK or weighted_by == "disagreement" and said["disagreement"][i] >= 0.5:
        reasons.append("the model's samples disagree on it")
    return tuple(reasons)
