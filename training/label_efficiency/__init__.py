"""Label-efficiency benchmark: how much each pretraining buys with 1, 2, 5, 10 labelled target images.

For every source → target pair: pretrain one model per pretext method on the
source (hybrid, supervised, diffusion; same architecture and budget), then,
for each N and seed, draw N labelled images from the target's pool (the same
subset for every arm) and fine-tune each pretrained model, a model from
scratch and a random-forest pixel classifier on them; score all on the
target's test split. Zero-shot (N = 0) for the pretrained arms and the whole
pool (the ceiling) are added. Each pair runs at the settings chosen for it on
its validation protocol (``plan.FULL.chosen``).

Every run is appended to ``<work>/records.jsonl`` as it finishes, so an
interrupted benchmark resumes where it stopped; the report (JSON, plots, the
section of BENCHMARKS.md) is written from the records at the end, and
``--report-only`` rebuilds its section and plots from its JSON.

    python -m training.label_efficiency --workers 2 --threads 1   # the full benchmark
    python -m training.label_efficiency --quick                   # the whole pipeline on a tiny budget, minutes
    python -m training.label_efficiency --report-only             # the section, from the committed JSON

The parts: ``plan`` (pairs, budget, fine-tuning variant, planned runs), ``records``, ``runner`` (pretraining,
fine-tuning, scoring), ``summary`` (the numbers), ``page`` (JSON, tables, plots), ``cli``.
"""

from .cli import main
from .plan import ARMS, FULL, PRETRAINED, QUICK, Budget, Pair, Variant, default_pairs, default_section, planned_runs
from .records import Records
from .runner import TargetData, pretrained_checkpoint, run, source_model_path, target_data

__all__ = ["ARMS", "FULL", "PRETRAINED", "QUICK", "Budget", "Pair", "Records", "TargetData", "Variant", "default_pairs",
           "default_section", "main", "planned_runs", "pretrained_checkpoint", "run", "source_model_path", "target_data"]
