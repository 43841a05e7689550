"""Choosing the start model for a user's images: the zoo model that denoises them best, relative to how
well it denoises its own kind of image (see :mod:`.fit`)."""

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
    description: str = ""


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    fit: Fit
    relative: float | None  # loss over the model's loss on its own source images; None: no reference

    @property
    def name(self) -> str:
        return self.candidate.name


def zoo_candidates() -> list[Candidate]:
    from ..zoo import zoo_models

    return [Candidate(m.name, m.path, m.describe()) for m in zoo_models()]


def rank_start_models(
    images: Sequence[np.ndarray],
    candidates: Sequence[Candidate] | None = None,
    probe: FitProbe = FitProbe(),
    on_progress: Callable[[int, int], None] | None = None,
) -> list[ScoredCandidate]:
    """Candidates (default: the zoo) best first: lowest relative fit, then those without a reference by raw loss."""
    from ..model.checkpoint import load_checkpoint

    candidates = list(candidates if candidates is not None else zoo_candidates())
    if not candidates:
        raise ValueError("no candidate models to choose from")
    crops = ProbeCrops(images, probe)
    scored = []
    for done, candidate in enumerate(candidates):
        model, meta = load_checkpoint(candidate.path)
        fit = generative_fit(model, crops)
        scored.append(ScoredCandidate(candidate, fit, relative_fit(fit, meta)))
        if on_progress is not None:
            on_progress(done + 1, len(candidates))
    return sorted(scored, key=lambda s: (s.relative is None, s.relative if s.relative is not None else s.fit.loss))


def explain(ranking: Sequence[ScoredCandidate]) -> str:
    """The choice in words a user understands."""
    best = ranking[0]
    if best.relative is None:
        return f"{best.name}: no other model to compare with"
    lines = [f"{best.name} knows these images best: they are {_familiarity(best.relative)}."]
    others = [f"{s.name} {s.relative:.1f}×" for s in ranking[1:] if s.relative is not None]
    if others:
        lines.append(f"How hard each model finds them, against its own kind of image (lower is better): "
                     f"{best.name} {best.relative:.1f}×, " + ", ".join(others) + ".")
    return " ".join(lines)


def _familiarity(relative: float) -> str:
    if relative <= 1.25:
        return "as familiar to it as the images it learnt from"
    if relative <= 2.0:
        return f"somewhat unlike the images it learnt from ({relative:.1f}× as hard to denoise)"
    return f"unlike anything it learnt from ({relative:.1f}× as hard to denoise); label a few and refine"
