"""Nuclei as objects: an instances model (background / interior / boundary, split by a seeded watershed) against
the connected components of a binary nuclei model made the same way.

    python -m training.instances --data ../shared/data --work runs/instances

Both start models are pretrained once, with hybrid pretraining on DSB fluorescence ``train`` in the shipped
nuclei model's architecture and recipe (patch size 2, clean fraction 0.5, 1,500 steps, intensities inverted in
half the crops): the instances model from the instance labels, the binary one from the same labels as masks. (The
committed records' binary model is the nuclei model the package shipped before it had an instances output, made
by that recipe.) Both start models are then scored zero-shot on DSB fluorescence
``val`` and histology ``test``, and after fine-tuning on 5 histology ``pool`` images (the same 5 for both,
per seed; the shipped model's fine-tuning recipe for both) on histology ``test``: object F1 at IoU 0.5,
aggregated Jaccard index, foreground Dice and the count error, per image. Differences are paired 95% bootstrap
intervals (seeds and test images resampled). Also timed: splitting one 256² prediction into objects.

Every run is one JSON line in ``<work>/records.jsonl``; the same command resumes. ``--report-only`` rebuilds
the JSON and the BENCHMARKS.md section from the committed records; ``--quick`` runs the whole benchmark on a
tiny synthetic set with tiny models (for the tests).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .stats import seed_image_grid

NAME = "instances"
RESULTS = report.results_dir(NAME)
INSTANCES, COMPONENTS = "instances", "components"
METHODS = (INSTANCES, COMPONENTS)
SCORES = ("f1", "aji", "dice")
SHIPPED_NUCLEI = Path(__file__).resolve().parents[1] / "napari_hybridseg" / "models" / "nuclei_hybrid.safetensors"
TIMING_SIZE = 256


@dataclass(frozen=True)
class Setting:
    """One scored target: labels drawn from ``pool`` (None: zero-shot only), scores on ``scored``."""

    target: str
    dataset: str  # folder under --data
    domain: str
    scored: str
    pool: str | None = None


@dataclass(frozen=True)
class Plan:
    settings: tuple[Setting, ...]
    source: Setting  # where the instances model is pretrained (its ``scored`` split is the training split)
    n_labels: int
    seeds: tuple[int, ...]
    quick: bool = False


FULL = Plan(
    settings=(Setting("histology", "dsb2018", "histology", "test", pool="pool"),
              Setting("fluorescence", "dsb2018", "fluorescence", "val")),
    source=Setting("fluorescence", "dsb2018", "fluorescence", "train"),
    n_labels=5, seeds=(0, 1, 2, 3, 4),
)
QUICK = Plan(
    settings=(Setting("synthetic", "synthetic", "synth", "test", pool="pool"),),
    source=Setting("synthetic", "synthetic", "synth", "pool"),
    n_labels=2, seeds=(0, 1), quick=True,
)


@dataclass(frozen=True)
class Job:
    target: str
    method: str
    n_labels: int
    seed: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.target, self.method, self.n_labels, self.seed)


def jobs(plan: Plan) -> list[Job]:
    zero_shot = [Job(s.target, m, 0, 0) for s in plan.settings for m in METHODS]
    tuned = [Job(s.target, m, plan.n_labels, seed) for seed in plan.seeds for s in plan.settings if s.pool
             for m in METHODS]
    return zero_shot + tuned


# ---------------------------------------------------------------- the two start models


def _tiny_configs(output: str, steps: int = 3):
    from napari_hybridseg.learn.pretrain import ModelConfig
    from napari_hybridseg.learn.train import TrainConfig

    model = ModelConfig(n_classes=3 if output == INSTANCES else 2, output=output, base_channels=8,
                        channel_mults=(1, 2))
    return model, TrainConfig(steps=steps, batch_size=2, crop_size=32, log_every=1)


def _nuclei_configs(shipped: dict[str, Any], output: str):
    """The shipped nuclei model's architecture and pretraining settings, with the ``output`` asked for."""
    from napari_hybridseg.learn.pretrain import ModelConfig
    from napari_hybridseg.learn.train import TrainConfig

    arch = shipped["architecture"]
    model = ModelConfig(image_channels=shipped["image_channels"], n_classes=3 if output == INSTANCES else 2, output=output,
                        base_channels=arch["base_channels"], channel_mults=tuple(arch["channel_mults"]),
                        blocks_per_level=arch.get("blocks_per_level", 1), patch_size=arch.get("patch_size", 1),
                        full_res_channels=arch.get("full_res_channels", 0))
    train = shipped["pretraining"]["train"]
    return model, TrainConfig(**{**train, "steps": 1500, "invert_probability": 0.5})


def pretrain_start(plan: Plan, data: Path, output: str, path: Path, threads: int) -> Path:
    """Pretrain (once: an existing ``path`` is kept) a start model with hybrid pretraining on the plan's source."""
    import torch

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.learn.pretrain import pretrain
    from napari_hybridseg.model.checkpoint import read_metadata, save_checkpoint
    from napari_hybridseg.model.loss import LossConfig

    if path.is_file():
        return path
    torch.set_num_threads(threads)
    source = plan.source
    samples = load_domain(data / source.dataset, source.domain, split=source.scored)
    shipped = read_metadata(SHIPPED_NUCLEI)
    model_config, train_config = _tiny_configs(output) if plan.quick else _nuclei_configs(shipped, output)
    description = {"root": source.dataset, "domain": source.domain, "split": source.scored, "n_images": len(samples)}
    print(f"pretraining the {output} start model on {source.dataset}/{source.domain} {source.scored} "
          f"({train_config.steps} steps)", file=sys.stderr, flush=True)
    loss = LossConfig(**shipped["loss"])  # hybrid, clean fraction 0.5
    result = pretrain(samples, loss, train_config, model_config, torch.device("cpu"), description)
    result.metadata["finetune_recipe"] = shipped["finetune_recipe"]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, result.model, result.metadata)
    return path


def start_models(plan: Plan, data: Path, work: Path, threads: int) -> dict[str, Path]:
    instances = pretrain_start(plan, data, INSTANCES, work / "instances.safetensors", threads)
    components = pretrain_start(plan, data, "semantic", work / "components.safetensors", threads)
    return {INSTANCES: instances, COMPONENTS: components}


# ---------------------------------------------------------------- runs


def _recipe(plan: Plan, meta: dict[str, Any], seed: int):
    from napari_hybridseg.learn.recipe import FinetuneRecipe

    if plan.quick:
        return FinetuneRecipe(steps=2, crop_size=32, batch_size=2).train_config(seed=seed)
    return FinetuneRecipe.from_metadata(meta).train_config(seed=seed)


def _setting(plan: Plan, target: str) -> Setting:
    return next(s for s in plan.settings if s.target == target)


def run_job(job: Job, plan: Plan, data: Path, starts: dict[str, Path], example: Path | None) -> dict[str, Any]:
    """Fine-tune (or not) one start model and score it; ``example``: keep the first scored image's objects there."""
    from napari_hybridseg.data.datasets import choose_subset, load_domain, split_ids
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.learn.finetune import FinetuneConfig, finetune
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.model.inference import Segmenter
    from napari_hybridseg.model.split import labels_from_classes

    setting = _setting(plan, job.target)
    root = data / setting.dataset
    model, meta = load_checkpoint(starts[job.method])
    labelled_ids: list[str] = []
    started = time.perf_counter()
    if job.n_labels:
        labelled_ids = sorted(choose_subset(split_ids(root, setting.domain, setting.pool), job.n_labels, job.seed))
        labelled = load_domain(root, setting.domain, ids=labelled_ids)
        model, meta, _ = finetune(model, meta, labelled, _recipe(plan, meta, job.seed), FinetuneConfig())
    seconds = time.perf_counter() - started
    segmenter = Segmenter(model, meta, engine="torch")
    scored = load_domain(root, setting.domain, split=setting.scored)
    scores = evaluate(segmenter, scored)
    if example is not None:
        first = scored[0]
        np.savez_compressed(example, image=first.image, truth=first.labels,
                            objects=labels_from_classes(segmenter.predict(first.image), meta))
    per_image = {r["id"]: {k: r[k] for k in (*SCORES, "count_error")} for r in scores["per_image"]}
    return {"target": job.target, "method": job.method, "n_labels": job.n_labels, "seed": job.seed,
            "per_image": per_image, "labelled": labelled_ids, "finetune_s": round(seconds, 1)}


def time_splitting(plan: Plan, data: Path, starts: dict[str, Path], repeats: int = 20) -> dict[str, Any]:
    """Median times on a 256² crop of the first scored image: the instances model's prediction, splitting it into
    objects, and the connected components of a binary mask of the same size."""
    from skimage.measure import label as connected_components

    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.model.inference import Segmenter
    from napari_hybridseg.model.split import split_instances

    setting = plan.settings[0]
    image = load_domain(data / setting.dataset, setting.domain, split=setting.scored)[0].image
    reps = -(-TIMING_SIZE // min(image.shape[:2]))
    image = np.tile(image, (reps, reps) + (1,) * (image.ndim - 2))[:TIMING_SIZE, :TIMING_SIZE]
    segmenter = Segmenter.from_checkpoint(starts[INSTANCES], engine="torch")
    classes = segmenter.predict(image)

    def median_ms(fn, n: int) -> float:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return round(1000 * float(np.median(times)), 2)

    return {"timing": {"size": TIMING_SIZE, "predict_ms": median_ms(lambda: segmenter.predict(image), 5),
                       "split_ms": median_ms(lambda: split_instances(classes), repeats),
                       "components_ms": median_ms(lambda: connected_components(classes > 0), repeats)}}


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


def run(plan: Plan, data: Path, work: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    records_path = work / "records.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    starts = start_models(plan, data, work, threads)
    records = report.read_records(records_path)
    done = {(r["target"], r["method"], r["n_labels"], r["seed"]) for r in records if "method" in r}
    todo = [j for j in jobs(plan) if j.key not in done]
    print(f"{len(done)} runs on record; {len(todo)} to go", file=sys.stderr)
    example_job = (plan.settings[0].target, plan.n_labels, plan.seeds[0])
    for job in todo:
        example = work / f"example_{job.method}.npz" if (job.target, job.n_labels, job.seed) == example_job else None
        record = run_job(job, plan, data, starts, example)
        _append(records_path, record)
        means = {k: np.mean([s[k] for s in record["per_image"].values()]) for k in SCORES}
        print(f"{job.target} {job.method} N={job.n_labels} seed {job.seed}: F1 {means['f1']:.3f} AJI "
              f"{means['aji']:.3f} Dice {means['dice']:.3f}", file=sys.stderr, flush=True)
    if not any("timing" in r for r in records):
        _append(records_path, time_splitting(plan, data, starts))


# ---------------------------------------------------------------- report


def _runs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((r for r in records if "method" in r), key=lambda r: (r["target"], r["n_labels"], r["method"],
                                                                         r["seed"]))


def results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target, one row per (method, N, seed) with its mean scores over the scored images."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in _runs(records):
        rows = list(r["per_image"].values())
        entry = {"method": r["method"], "n_labels": r["n_labels"], "seed": r["seed"],
                 **{k: round(float(np.mean([x[k] for x in rows])), 4) for k in SCORES},
                 "count_error": round(float(np.mean([abs(x["count_error"]) for x in rows])), 2)}
        out.setdefault(r["target"], []).append(entry)
    return [{"target": target, "results": rows} for target, rows in out.items()]


def _grid(records: list[dict[str, Any]], target: str, method: str, n_labels: int, score: str) -> np.ndarray | None:
    """seeds × scored images of one score (images in id order)."""
    return seed_image_grid(records, score, target=target, method=method, n_labels=n_labels)


def _difference(records: list[dict[str, Any]], target: str, n_labels: int, score: str):
    from .stats import paired_bootstrap

    a, b = (_grid(records, target, m, n_labels, score) for m in METHODS)
    return paired_bootstrap(a, b) if a is not None and b is not None and a.shape == b.shape else None


def _table(records: list[dict[str, Any]]) -> str:
    settings = sorted({(r["target"], r["n_labels"]) for r in _runs(records)}, key=lambda s: (s[1] == 0, s))
    rows = []
    for target, n_labels in settings:
        for method in METHODS:
            grids = {k: _grid(records, target, method, n_labels, k) for k in (*SCORES, "count_error")}
            if grids["f1"] is None:
                continue
            rows.append([target, n_labels or "0 (zero-shot)", method, len(grids["f1"]),
                         *[f"{grids[k].mean():.3f}" for k in SCORES], f"{np.abs(grids['count_error']).mean():.1f}"])
        differences = [_difference(records, target, n_labels, k) for k in SCORES]
        rows.append([target, n_labels or "0 (zero-shot)", "**instances − components**", "",
                     *[str(d) if d is not None else "—" for d in differences], ""])
    return report.markdown_table(["target", "labelled images", "method", "seeds", "F1 @ IoU 0.5", "AJI",
                                  "foreground Dice", "mean abs. count error"], rows)


def goals(records: list[dict[str, Any]], plan_n_labels: int) -> list[str]:
    """Whether the instances model meets its targets, in words."""
    lines = []
    tuned_targets = sorted({r["target"] for r in _runs(records) if r["n_labels"] == plan_n_labels})
    for target in tuned_targets:
        f1, aji, dice = (_difference(records, target, plan_n_labels, k) for k in SCORES)
        if None in (f1, aji, dice):
            continue
        held = f1.mean >= 0.10 and aji.mean >= 0.10 and dice.mean >= -0.01
        lines.append(f"* {target}, {plan_n_labels} labels: F1 and AJI ahead by ≥ 0.10 with Dice at most 0.01 lower: "
                     f"**{'holds' if held else 'does not hold'}** (F1 {f1.mean:+.3f}, AJI {aji.mean:+.3f}, "
                     f"Dice {dice.mean:+.3f}).")
    zero = _grid(records, "fluorescence", INSTANCES, 0, "f1")
    if zero is not None:
        lines.append(f"* fluorescence, zero-shot F1 of the shipped nuclei model (the instances model) ≥ 0.85: "
                     f"**{'holds' if zero.mean() >= 0.85 else 'does not hold'}** ({zero.mean():.3f}; connected "
                     f"components of the binary model: {_grid(records, 'fluorescence', COMPONENTS, 0, 'f1').mean():.3f}).")
    timing = next((r["timing"] for r in records if "timing" in r), None)
    if timing is not None:
        lines.append(f"* splitting a {timing['size']}² prediction into objects takes ≤ 50 ms: "
                     f"**{'holds' if timing['split_ms'] <= 50 else 'does not hold'}** ({timing['split_ms']:.1f} ms, "
                     f"beside {timing['predict_ms']:.0f} ms for the prediction itself and "
                     f"{timing['components_ms']:.1f} ms for connected components).")
    return lines


def draw_example(work: Path, path: Path) -> bool:
    """Image, truth, components and instances side by side, one colour per object; False if not kept."""
    files = {m: work / f"example_{m}.npz" for m in METHODS}
    if not all(f.is_file() for f in files.values()):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.color import label2rgb

    examples = {m: np.load(f) for m, f in files.items()}
    image = examples[INSTANCES]["image"]
    panels = [("image", image), ("truth", examples[INSTANCES]["truth"]),
              ("connected components", examples[COMPONENTS]["objects"]), ("instances", examples[INSTANCES]["objects"])]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, (title, data) in zip(axes, panels):
        shown = data if title == "image" else label2rgb(data, bg_label=0, colors=plt.cm.tab20.colors)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        count = "" if title == "image" else f" ({len(np.unique(data)) - (0 in data)} objects)"
        ax.set_title(title + count)
        ax.axis("off")
    report.save_figure(fig, path)
    return True


def markdown(records: list[dict[str, Any]], n_labels: int) -> str:
    return ("Objects against the truth's nuclei on each target's scored split (mean over seeds and images): "
            "**instances** is a model with a boundary class, pretrained on DSB fluorescence from its instance "
            "labels and split by a seeded watershed (the shipped nuclei model); **components** the connected "
            f"components of a binary model pretrained the same way (the nuclei model shipped before). Both fine-tuned on the same {n_labels} pool images per seed, or zero-shot. Differences: "
            "paired, mean [95% interval over seeds and images].\n\n" + _table(records)
            + "\n\nGoals:\n\n" + "\n".join(goals(records, n_labels)))


def write_report(records: list[dict[str, Any]], meta: dict[str, Any], benchmarks_md: Path, results_dir: Path,
                 work: Path | None = None) -> None:
    json_path = report.publish_run(NAME, results(records), records, meta, results_dir)
    picture = results_dir / f"{NAME}.png"
    if work is not None:
        draw_example(work, picture)
    body = markdown(records, meta["n_labels"])
    section = (f"{body}\n\n![One {meta['example']} image: the truth, connected components and instances, one colour "
               f"per object]({report.relative(picture)})\n\n"
               + report.run_footer(meta, json_path))
    report.update_section(NAME, section, benchmarks_md)
    print(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.instances", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="the folder that holds dsb2018/")
    p.add_argument("--work", type=Path, default=Path("runs/instances"))
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--quick", action="store_true", help="tiny synthetic data and tiny models, in seconds (for tests)")
    report.add_report_options(p, RESULTS)
    args = p.parse_args(argv)
    if args.report_only:
        records = report.read_records(args.results_dir / f"{NAME}_records.jsonl")
        write_report(records, report.read_json(f"{NAME}_run", args.results_dir), args.benchmarks_md, args.results_dir)
        return 0
    plan = QUICK if args.quick else FULL
    if args.quick:
        from napari_hybridseg.data.synthetic import write_sample_set

        args.data = args.work / "data"
        if not (args.data / "synthetic" / "splits.json").is_file():
            write_sample_set(args.data / "synthetic", n_pool=4, n_test=2, shape=(64, 64), domain="synth")
    elif args.data is None:
        p.error("--data is needed to run the benchmark")
    started = time.perf_counter()
    try:
        run(plan, args.data, args.work, args.threads)
    except KeyboardInterrupt:
        print(f"stopped; the records in {args.work / 'records.jsonl'} are kept: the same command resumes",
              file=sys.stderr)
        return 130
    command = "python -m training.instances " + shlex.join(argv if argv is not None else sys.argv[1:])
    meta = report.run_facts(NAME, command, started, args.results_dir, n_labels=plan.n_labels, seeds=list(plan.seeds),
                            example=plan.settings[0].target)
    write_report(report.read_records(args.work / "records.jsonl"), meta, args.benchmarks_md, args.results_dir, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
