"""Choosing the start model for a user's images: the zoo model that denoises them best, relative to how well it
denoises a fixed panel of images of every kind the zoo covers (see :mod:`.fit`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .fit import Fit, FitProbe, ProbeCrops, generative_fit, relative_fit


@dataclass(frozen=True)
class Candidate:
    name: str
    path: Path


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    fit: Fit
    relative: float | None  # loss over the model's reference loss (see fit.reference_loss); None: no reference

    @property
    def name(self) -> str:
        return self.candidate.name


def zoo_candidates() -> list[Candidate]:
    from ..zoo import zoo_models

    return [Candidate(m.name, m.path) for m in zoo_models()]


def rank_start_models(
    images: Sequence[np.ndarray],
    candidates: Sequence[Candidate] | None = None,
    probe: FitProbe = FitProbe(),
    on_progress: Callable[[int, int], None] | None = None,
    reference: str = "panel",
) -> list[ScoredCandidate]:
    """Candidates (default: the zoo) best first: lowest relative fit, then those without a reference by raw loss.
    ``reference``: what each model's loss is divided by (:func:`.fit.reference_loss`)."""
    from ..model.checkpoint import load_checkpoint

    candidates = list(candidates if candidates is not None else zoo_candidates())
    if not candidates:
        raise ValueError("no candidate models to choose from")
    crops = ProbeCrops(images, probe)
    scored = []
    for done, candidate in enumerate(candidates):
        model, meta = load_checkpoint(candidate.path)
        fit = generative_fit(model, crops)
        scored.append(ScoredCandidate(candidate, fit, relative_fit(fit, meta, reference)))
        if on_progress is not None:
            on_progress(done + 1, len(candidates))
    return sorted(scored, key=lambda s: (s.relative is None, s.relative if s.relative is not None else s.fit.loss))


def explain(ranking: Sequence[ScoredCandidate]) -> str:
    """The choice in words a user understands."""
    best = ranking[0]
    if best.relative is None:
        return f"{best.name}: no other model to compare with"
    lines = [f"{best.name} knows these images best: {_familiarity(best.relative)}."]
    others = [f"{s.name} {s.relative:.2f}" for s in ranking[1:] if s.relative is not None]
    if others:
        lines.append("How hard each model finds them to denoise, against the average image of the kinds the shipped "
                     f"models cover (lower: more familiar): {best.name} {best.relative:.2f}, " + ", ".join(others) + ".")
    return " ".join(lines)


def _familiarity(relative: float) -> str:
    if relative <= 0.9:
        return "they look like the images it learnt from"
    if relative <= 1.1:
        return "they look somewhat like the images it learnt from"
    return "they look unlike the images any shipped model learnt from; expect to correct more before it adapts"
