"""Choosing the shipped model: candidate nucleus models side by side, on validation data and speed.

    python -m training.compare_models --data ../shared/data/dsb2018 \\
        --model shipped=napari_hybridseg/models/nuclei_hybrid.safetensors --model light=runs/light/p2b16.safetensors

For every candidate, in the same run and on the same machine:

* zero-shot Dice on the fluorescence ``val`` split and the histology and brightfield ``pool``s;
* Dice after fine-tuning on 5 labelled images (200 steps, mask loss, the plugin's recipe) for each seed,
  scored on held-out images of the target's pool (the label-efficiency benchmark's validation protocol)
  and, for the record only, on the target's ``test`` split;
* speed, each in a fresh process: predict 256² and 2048² (ONNX Runtime where it applies, tiled for 2048²)
  and one refinement round on 5 accepted sample images (the plugin's settings, 1 thread).

Paired differences against the first ``--model`` (the baseline) with 95% bootstrap intervals. The choice is
made on the validation columns; test scores never choose. Writes ``benchmarks/results/compare_models/<name>.json``
and its section, ``<name>.md`` beside it (``--name``, default ``model_choice``); ``--report-only`` rebuilds the
section from the JSON.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_hybridseg.data.datasets import Sample, choose_subset, load_domain

if TYPE_CHECKING:
    from napari_hybridseg.model.precond import HybridSegModel

from . import report
from .bench_scale import in_child
from .label_efficiency import Pair, TargetData, target_data
from .stats import paired_bootstrap

RESULT_NAME = "model_choice"
FOLDER = report.results_dir("compare_models")
#: the timing each speed measurement reports
SPEED_FIELDS = {"predict_256": "median_s", "predict_big": "median_s", "refine_5": "seconds"}


@dataclass(frozen=True)
class Plan:
    """What each candidate is measured on (the defaults are the DSB 2018 study)."""

    data: Path
    source: str = "fluorescence"
    zero_shot: tuple[str, ...] = ("fluorescence:val", "histology:pool", "brightfield:pool")  # DOMAIN:SPLIT
    targets: tuple[str, ...] = ("histology", "brightfield")
    n_labels: int = 5
    finetune_steps: int = 200
    seeds: tuple[int, ...] = (0, 1, 2)
    threads: int = 2
    big_size: int = 2048
    refine_steps: int | None = None  # None: the plugin's


def _scores(result: dict[str, Any]) -> dict[str, Any]:
    return {"mean_dice": result["mean_dice"], "per_image": {r["id"]: r["dice"] for r in result["per_image"]}}


@dataclass(frozen=True)
class StudyData:
    """The images every candidate is scored on, read once per run."""

    zero_shot: dict[str, list[Sample]]  # "<domain>-<split>" → samples
    validation: dict[str, TargetData]  # target → labelled part of the pool and its held-out images
    test: dict[str, list[Sample]]  # target → its test split

    @classmethod
    def load(cls, plan: Plan) -> "StudyData":
        return cls(
            zero_shot={f"{domain}-{split}": load_domain(plan.data, domain, split)
                       for domain, split in (item.split(":") for item in plan.zero_shot)},
            validation={t: target_data(Pair(plan.data, plan.source, t), "validation") for t in plan.targets},
            test={t: load_domain(plan.data, t, "test") for t in plan.targets},
        )


def fine_tuned(model: HybridSegModel, meta: dict[str, Any], plan: Plan, data: StudyData, target: str,
               seed: int) -> dict[str, Any]:
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.learn.finetune import default_finetune_train_config, finetune
    from napari_hybridseg.model.inference import Segmenter

    split = data.validation[target]
    chosen = set(choose_subset([s.id for s in split.pool], plan.n_labels, seed))
    start = time.perf_counter()
    tuned, tuned_meta, _ = finetune(model, meta, [s for s in split.pool if s.id in chosen],
                                    default_finetune_train_config(seed=seed, steps=plan.finetune_steps))
    seconds = time.perf_counter() - start
    segmenter = Segmenter(tuned, tuned_meta, engine="torch")
    return {"labelled": sorted(chosen), "finetune_s": seconds,
            "validation": _scores(evaluate(segmenter, split.evaluation)),
            "test": _scores(evaluate(segmenter, data.test[target]))}


def speed(checkpoint: Path, plan: Plan) -> dict[str, Any]:
    return {
        "predict_256": in_child("predict_big", size=256, threads=plan.threads, checkpoint=str(checkpoint), repeats=20),
        "predict_big": in_child("predict_big", size=plan.big_size, threads=plan.threads, checkpoint=str(checkpoint)),
        "refine_5": in_child("refine_images", n_accepted=5, threads=1, checkpoint=str(checkpoint), steps=plan.refine_steps),
    }


def measure(checkpoint: Path, plan: Plan, data: StudyData) -> dict[str, Any]:
    import torch

    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.model.inference import Segmenter

    torch.set_num_threads(plan.threads)
    model, meta = load_checkpoint(checkpoint)  # fine-tuning works on a copy, so one load serves every run
    result = {"checkpoint": str(checkpoint), "parameters": sum(p.numel() for p in model.parameters()),
              "architecture": meta["architecture"], "pretraining": meta.get("pretraining")}
    segmenter = Segmenter(model, meta, engine="torch")
    result["zero_shot"] = {key: _scores(evaluate(segmenter, samples)) for key, samples in data.zero_shot.items()}
    _progress(checkpoint, "zero-shot", {k: round(v["mean_dice"], 3) for k, v in result["zero_shot"].items()})
    result["fine_tuned"] = {}
    for target in plan.targets:
        runs = result["fine_tuned"][target] = {}
        for seed in plan.seeds:
            runs[str(seed)] = fine_tuned(model, meta, plan, data, target, seed)
            _progress(checkpoint, f"{target} seed {seed}", round(runs[str(seed)]["validation"]["mean_dice"], 3))
    result["speed"] = speed(checkpoint, plan)
    _progress(checkpoint, "speed", {key: result["speed"][key][field] for key, field in SPEED_FIELDS.items()})
    return result


def _progress(checkpoint: Path, step: str, value: Any) -> None:
    print(f"{checkpoint.name}: {step}: {value}", file=sys.stderr, flush=True)


def _grid(per_seed: list[dict[str, float]]) -> np.ndarray:
    ids = sorted(per_seed[0])
    return np.array([[scores[i] for i in ids] for scores in per_seed])


def differences(baseline: dict[str, Any], other: dict[str, Any], n_labels: int) -> dict[str, str]:
    """Paired intervals of other − baseline for every Dice column (same images; same seeds and labelled subsets)."""
    out = {}
    for key in baseline["zero_shot"]:
        out[f"zero-shot {key}"] = str(paired_bootstrap(_grid([other["zero_shot"][key]["per_image"]]),
                                                       _grid([baseline["zero_shot"][key]["per_image"]])))
    for target, runs in baseline["fine_tuned"].items():
        for part in ("validation", "test"):
            a = _grid([other["fine_tuned"][target][s][part]["per_image"] for s in runs])
            b = _grid([runs[s][part]["per_image"] for s in runs])
            out[_fine_tuned_column(target, n_labels, part)] = str(paired_bootstrap(a, b))
    return out


def _mean_over_seeds(runs: dict[str, Any], part: str) -> str:
    values = [r[part]["mean_dice"] for r in runs.values()]
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _fine_tuned_column(target: str, n_labels: int, part: str) -> str:
    return f"{target} {n_labels} labels, {part}"


def markdown(result: dict[str, Any]) -> str:
    names = list(result["models"])
    plan = result["plan"]
    fine_tuned_parts = [(t, part) for t in plan["targets"] for part in ("validation", "test")]
    columns = [f"zero-shot {k}" for k in result["models"][names[0]]["zero_shot"]]
    columns += [_fine_tuned_column(t, plan["n_labels"], part) for t, part in fine_tuned_parts]

    def dice_cells(m: dict[str, Any]) -> list[str]:
        cells = [f"{v['mean_dice']:.3f}" for v in m["zero_shot"].values()]
        return cells + [_mean_over_seeds(m["fine_tuned"][t], part) for t, part in fine_tuned_parts]

    rows = [[name] + dice_cells(result["models"][name]) for name in names]
    rows += [[f"{name} − {names[0]}"] + [result["differences"][name][c] for c in columns] for name in names[1:]]
    dice = report.markdown_table(["model"] + columns, rows)

    def speed_cells(m: dict[str, Any]) -> list[str]:
        s = m["speed"]
        return [f"{m['parameters'] / 1e6:.2f} M", f"{s['predict_256']['median_s'] * 1e3:.0f} ms",
                f"{s['predict_big']['median_s']:.2f} s",
                f"{s['refine_5']['seconds']:.1f} s",
                f"{np.mean([r['finetune_s'] for t in m['fine_tuned'].values() for r in t.values()]):.0f} s"]

    base_speed = result["models"][names[0]]["speed"]

    def ratio_cells(m: dict[str, Any]) -> list[str]:
        return [f"{m['speed'][key][field] / base_speed[key][field]:.2f}×" for key, field in SPEED_FIELDS.items()]

    speed_rows = [[name] + speed_cells(result["models"][name]) for name in names]
    speed_rows += [[f"{name} / {names[0]}", ""] + ratio_cells(result["models"][name]) + [""] for name in names[1:]]
    speeds = report.markdown_table(
        ["model", "parameters", "predict 256² (median of 20)",
         f"predict {plan['big_size']}² tiled (median of 3)", f"refine round, 5 accepted ({result['models'][names[0]]['speed']['refine_5']['steps']} steps, 1 thread)",
         f"fine-tune {plan['finetune_steps']} steps"], speed_rows)
    return (f"Dice (nucleus class, mean over images; fine-tuned: mean ± std over seeds {', '.join(map(str, plan['seeds']))}, "
            f"each seed's {plan['n_labels']} labelled images the same for every model). Validation: held-out images of "
            "the target's pool; test is for the record and never chooses. Paired differences against the "
            "first model, mean [95% bootstrap interval over seeds and images]:\n\n"
            f"{dice}\n\nSpeed, each in a fresh process, {plan['threads']} threads (refine: 1), ONNX Runtime "
            f"for prediction:\n\n{speeds}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.compare_models", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="the DSB 2018 root in the shared layout")
    p.add_argument("--model", action="append", default=[], metavar="NAME=CHECKPOINT", type=report.named_checkpoint,
                   help="a candidate (repeat); the first is the baseline of the paired differences")
    defaults = Plan(Path("."))
    p.add_argument("--source", default=defaults.source, help="the source domain (the validation protocol's pair)")
    p.add_argument("--zero-shot", nargs="+", default=list(defaults.zero_shot), metavar="DOMAIN:SPLIT")
    p.add_argument("--targets", nargs="+", default=list(defaults.targets), metavar="DOMAIN",
                   help="domains to fine-tune on (labels from the validation part of their pool)")
    p.add_argument("--n-labels", type=int, default=defaults.n_labels)
    p.add_argument("--finetune-steps", type=int, default=defaults.finetune_steps)
    p.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    p.add_argument("--threads", type=int, default=defaults.threads)
    p.add_argument("--big-size", type=int, default=defaults.big_size, help="side of the large image to predict")
    p.add_argument("--refine-steps", type=int, help="steps of the timed refinement round (default: the plugin's)")
    p.add_argument("--name", default=RESULT_NAME,
                   help=f"names the JSON and the BENCHMARKS.md section (default {RESULT_NAME}); another keeps an earlier comparison")
    p.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON of --name; measure nothing")
    p.add_argument("--results-dir", type=Path, default=FOLDER, help=argparse.SUPPRESS)
    p.add_argument("--benchmarks-md", type=Path, help=argparse.SUPPRESS)  # default: <name>.md beside the JSON
    args = p.parse_args(argv)
    page = args.benchmarks_md or args.results_dir / f"{args.name}.md"
    if args.report_only:
        write_report(report.read_json(args.name, args.results_dir), args.name, args.results_dir, page)
        return 0
    plan = Plan(args.data, args.source, tuple(args.zero_shot), tuple(args.targets), args.n_labels, args.finetune_steps,
                tuple(args.seeds), args.threads, args.big_size, args.refine_steps)
    candidates = dict(args.model)
    if len(candidates) < 2 or args.data is None:
        p.error("give --data and at least two --model candidates to compare")

    start = time.perf_counter()
    data = StudyData.load(plan)
    models = {name: measure(path, plan, data) for name, path in candidates.items()}
    baseline = models[next(iter(models))]
    info = report.machine()
    command = "python -m training.compare_models " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = {"command": command, "machine": info, "date": report.today(), "plan": {**asdict(plan), "data": str(plan.data)},
              "wall_s": time.perf_counter() - start, "models": models,
              "differences": {name: differences(baseline, m, plan.n_labels) for name, m in list(models.items())[1:]}}
    report.write_json(args.name, result, args.results_dir)
    write_report(result, args.name, args.results_dir, page)
    return 0


def write_report(result: dict[str, Any], name: str, folder: Path, page: Path) -> None:
    body = markdown(result)
    heading = "### Choosing the shipped model: " + ", ".join(result["models"])
    report.update_section(name, f"{heading}\n\n{body}\n\n"
                          + report.footer(result["command"], result["machine"], folder / f"{name}.json", result.get("date"))
                          + f"  \nWall time: {result['wall_s'] / 60:.0f} min", page)
    print(body)


if __name__ == "__main__":
    sys.exit(main())
