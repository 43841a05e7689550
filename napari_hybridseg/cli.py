"""The ``hybridseg`` command line: pretrain, finetune, predict, evaluate, choose-model, simulate, gui."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .data.io import ImageReadError
from .model.checkpoint import CheckpointError


CHECKPOINT_HELP = ("a checkpoint file, or 'auto': the shipped model that fits the images best "
                   "(see choose-model); default: the shipped nuclei model")


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


# ---------------------------------------------------------------- arguments


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


def _add_data(p: argparse.ArgumentParser, split: str | None, required: bool = True) -> None:
    g = p.add_argument_group("data (either --data/--domain/--split or --images/--masks)")
    g.add_argument("--data", type=Path, help="root of a data set in the shared layout (<root>/<domain>/images, splits.json)")
    g.add_argument("--domain", help="domain folder under --data, e.g. fluorescence")
    g.add_argument("--split", default=split, help=f"split of the domain (default: {split})")
    g.add_argument("--images", type=Path, help="a folder of images")
    g.add_argument("--masks", type=Path, help="a folder of masks with the images' file names")


def _add_train(p: argparse.ArgumentParser, steps: int | None, lr: float | None, crop: int | None,
               batch_size: int | None) -> None:
    recipe = "default: the start model's fine-tuning recipe"
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=steps, help=None if steps else recipe)
    g.add_argument("--batch-size", type=int, default=batch_size, help=None if batch_size else recipe)
    g.add_argument("--crop", type=int, default=crop, help="crop size in pixels" + ("" if crop else f" ({recipe})"))
    g.add_argument("--lr", type=float, default=lr, help=None if lr else recipe)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--invert-probability", type=float, default=0.0,
                   help="share of training crops with inverted intensities (bright-on-dark ↔ dark-on-bright)")
    g.add_argument("--log", type=Path, help="write the training log here as JSON lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridseg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pretrain a model on a labelled source domain (runs under torchrun too)")
    _add_data(p, split="train")
    p.add_argument("--source", action="append", default=[], metavar="ROOT:DOMAIN[:SPLIT]",
                   help="a source data set in the shared layout (repeat for several; each is drawn equally often); "
                        "instead of --data/--domain")
    _add_train(p, steps=2000, lr=2e-3, crop=128, batch_size=8)
    p.add_argument("--method", choices=["hybrid", "supervised", "diffusion"], default="hybrid")
    p.add_argument("--lambda-image", type=float, default=1.0)
    p.add_argument("--lambda-mask", type=float, default=1.0)
    p.add_argument("--sigma-log-mean", type=float, default=-1.2,
                   help="mean of log σ, the noise levels drawn for the denoising term (log-normal; default -1.2)")
    p.add_argument("--sigma-log-std", type=float, default=1.2, help="spread of log σ (default 1.2)")
    p.add_argument("--clean-fraction", type=float,
                   help="share of each batch at σ≈0 (default: 0.25 for hybrid, 0 for diffusion)")
    p.add_argument("--channels", type=int, choices=[1, 3], default=3, help="model image channels")
    p.add_argument("--classes", type=int, default=None,
                   help="K mask classes (default 2: background/foreground from labels > 0; 3 with --output instances)")
    p.add_argument("--output", choices=["semantic", "instances"], default="semantic",
                   help="instances: background / interior / boundary from instance labels (one id per object), "
                        "split into objects by a seeded watershed; for touching objects such as nuclei")
    p.add_argument("--boundary-width", type=int, default=2,
                   help="with --output instances: pixels of each object along the background or another object "
                        "that are its boundary (default 2)")
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--channel-mults", type=int, nargs="+", default=[1, 2, 4, 4], metavar="M",
                   help="width of each U-Net level, in multiples of --base-channels")
    p.add_argument("--patch-size", type=int, choices=[1, 2, 4], default=1,
                   help="pixels folded into channels before the U-Net (2: it runs at half resolution, ~4x less compute)")
    p.add_argument("--full-res-channels", type=int, default=0,
                   help="with --patch-size above 1: a small full-resolution head of this width (0: none)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.safetensors)")
    _add_common(p)

    p = sub.add_parser("finetune", help="fine-tune a checkpoint on a few labelled target images")
    p.add_argument("--checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("--scratch", action="store_true",
                   help="start from random weights (the architecture of --checkpoint, or the default one)")
    _add_data(p, split="pool")
    _add_train(p, steps=None, lr=None, crop=None, batch_size=None)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--n-labels", type=int, help="draw this many labelled images from the split (with --seed)")
    g.add_argument("--ids", help="comma-separated ids of the labelled images")
    p.add_argument("--loss", choices=["mask", "hybrid"], default="mask")
    p.add_argument("--unlabelled-share", type=float, default=0.0, help="share of each batch from the split's unlabelled images")
    p.add_argument("--out", type=Path, required=True)
    _add_common(p)

    p = sub.add_parser("predict", help="predict masks for a folder (or files) of images")
    p.add_argument("--checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--output", type=Path, required=True,
                   help="folder (png) or .zarr store (zarr); an instances model writes one id per object, "
                        "any other model its class map")
    p.add_argument("--format", choices=["png", "zarr"], default=None, help="default: zarr if --output ends in .zarr")
    _add_common(p)

    p = sub.add_parser("evaluate", help="Dice and IoU of a checkpoint on labelled images, and object scores "
                                        "(F1 at IoU 0.5, AJI, count error) for a model of objects")
    p.add_argument("--checkpoint", type=Path, help=CHECKPOINT_HELP)
    _add_data(p, split="test")
    p.add_argument("--out", type=Path, help="write the scores here as JSON")
    _add_common(p)

    p = sub.add_parser("choose-model", help="rank the shipped models by how well they know these images")
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--model", action="append", default=[], type=Path, metavar="CHECKPOINT",
                   help="rank this checkpoint too (repeat); a checkpoint without a fit reference ranks last")
    p.add_argument("--json", type=Path, help="write the ranking here as JSON")
    _add_common(p)

    p = sub.add_parser("gui", help="open napari with the annotation dock on a folder (default: the bundled sample)")
    p.add_argument("folder", nargs="?", type=Path, help="folder of images (default: the bundled sample set)")
    p.add_argument("--project", type=Path, help="where the project store goes (default: FOLDER/.hybridseg)")
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu or cuda")

    p = sub.add_parser("simulate", help="the 'label 5 images then refine' loop, headless, with true masks as corrections")
    p.add_argument("--checkpoint", type=Path, help=CHECKPOINT_HELP)
    p.add_argument("--data", type=Path, help="default: the bundled sample set")
    p.add_argument("--domain", default=None)
    p.add_argument("--pool-split", default="pool")
    p.add_argument("--test-split", default="test")
    p.add_argument("--round-size", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, help="fine-tuning steps per refinement (default: the start model's recipe)")
    p.add_argument("--loss", choices=["mask", "hybrid"], default="mask")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the per-round scores here as JSON")
    _add_common(p)
    return parser


# ---------------------------------------------------------------- helpers


def _setup_torch(args: argparse.Namespace):
    import torch

    from .model.inference import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return resolve_device(args.device)
    except RuntimeError as err:
        raise UsageError(str(err)) from None


def _load_samples(args: argparse.Namespace, split: str | None = None, ids: list[str] | None = None, with_labels: bool = True):
    from .data.datasets import load_domain, load_folder_pair

    if args.images is not None:
        if args.data is not None:
            raise UsageError("give either --data or --images, not both")
        return load_folder_pair(args.images, args.masks if with_labels else None)
    if args.data is None or args.domain is None:
        raise UsageError("give --data ROOT --domain NAME (shared layout) or --images DIR --masks DIR")
    return load_domain(args.data, args.domain, split=split if ids is None else None, ids=ids, with_labels=with_labels)


def _data_description(args: argparse.Namespace, samples) -> dict[str, Any]:
    if args.images is not None:
        return {"images": str(args.images), "masks": str(args.masks), "n_images": len(samples)}
    return {"root": Path(args.data).name, "domain": args.domain, "split": args.split, "n_images": len(samples)}


def _pretraining_data(args: argparse.Namespace) -> tuple[list, list[str] | None, dict[str, Any]]:
    """The samples, their source groups (None for one source) and the data description of ``pretrain``."""
    from .data.datasets import load_domain

    if not args.source:
        samples = _load_samples(args, split=args.split)
        return samples, None, _data_description(args, samples)
    if args.data is not None or args.images is not None:
        raise UsageError("give either --source (repeatable) or --data/--images, not both")
    samples, groups, sources = [], [], []
    for spec in args.source:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"--source takes ROOT:DOMAIN or ROOT:DOMAIN:SPLIT, got {spec!r}")
        root, domain, split = parts[0], parts[1], parts[2] if len(parts) == 3 else args.split
        part = load_domain(Path(root), domain, split=split)
        samples += part
        groups += [f"{Path(root).name}/{domain}"] * len(part)
        sources.append({"root": Path(root).name, "domain": domain, "split": split, "n_images": len(part)})
    return samples, groups, {"sources": sources, "balanced": "each source drawn equally often", "n_images": len(samples)}


def _checkpoint(args: argparse.Namespace, images: Callable[[], list] | None = None) -> Path:
    """The checkpoint asked for: a file, the shipped default, or with ``auto`` the zoo model that fits the
    images that ``images()`` returns best (the ranking is printed)."""
    from .resources import default_model_path
    from .zoo import AUTO

    if args.checkpoint is None:
        return default_model_path()
    if str(args.checkpoint) != AUTO:
        return args.checkpoint
    if images is None:
        raise UsageError(f"--checkpoint {AUTO} needs images to choose for")
    return _choose_and_print(images())


def _choose_and_print(images: list) -> Path:
    from .learn.choose import explain, rank_start_models

    if not images:
        raise UsageError("no images to choose a start model for")
    ranking = rank_start_models(images)
    print(f"start model: {ranking[0].name} ({ranking[0].candidate.path.name}). {explain(ranking)}")
    return ranking[0].candidate.path


def _train_config(args: argparse.Namespace, log_every: int, metadata: dict[str, Any] | None = None):
    """Pretraining's settings from the options; fine-tuning's from the start model's recipe (``metadata``),
    overridden by the options given."""
    from .learn.recipe import FinetuneRecipe
    from .learn.train import TrainConfig

    given = {"steps": args.steps, "batch_size": args.batch_size, "crop_size": args.crop, "lr": args.lr,
             "seed": args.seed, "log_every": log_every, "invert_probability": args.invert_probability}
    if metadata is None:
        return TrainConfig(**given)
    return FinetuneRecipe.from_metadata(metadata).train_config(**given)


class _ProgressLog:
    """tqdm bar plus an optional JSON-lines log of the training loss."""

    def __init__(self, total: int, desc: str, log_path: Path | None, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", disable=not enabled)
        self.file = None
        if log_path is not None and enabled:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(log_path, "w")
        self.first = None
        self.last = None
        self.done = 0

    def __call__(self, entry) -> None:
        self.bar.update(entry.step - self.done)
        self.done = entry.step
        self.bar.set_postfix(loss=f"{entry.loss:.4f}")
        if self.first is None:
            self.first = entry
        self.last = entry
        if self.file is not None:
            self.file.write(json.dumps(entry.to_dict()) + "\n")
            self.file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()


# ---------------------------------------------------------------- commands


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .learn.distributed import init_distributed, shutdown, weights_digest, wrap
    from .learn.pretrain import ModelConfig, pretrain
    from .model.checkpoint import save_checkpoint
    from .model.loss import LossConfig

    device = _setup_torch(args)
    ctx = init_distributed(device)
    try:
        samples, groups, description = _pretraining_data(args)
        loss_config = LossConfig(
            method=args.method, lambda_image=args.lambda_image, lambda_mask=args.lambda_mask,
            p_mean=args.sigma_log_mean, p_std=args.sigma_log_std, clean_fraction=args.clean_fraction,
        )
        classes = args.classes if args.classes is not None else 3 if args.output == "instances" else 2
        model_config = ModelConfig(image_channels=args.channels, n_classes=classes, output=args.output,
                                   boundary_width=args.boundary_width, base_channels=args.base_channels,
                                   channel_mults=tuple(args.channel_mults), patch_size=args.patch_size,
                                   full_res_channels=args.full_res_channels)
        train_config = _train_config(args, log_every=max(1, min(50, args.steps // 20)))
        progress = _ProgressLog(args.steps, f"pretrain {args.method}", args.log, enabled=ctx.is_main)
        try:
            result = pretrain(
                samples, loss_config, train_config, model_config, ctx.device, description,
                rank=ctx.rank, wrap=lambda m: wrap(m, ctx), on_log=progress, groups=groups,
            )
        finally:
            progress.close()
        if ctx.enabled:
            result.metadata["pretraining"]["world_size"] = ctx.world_size
            print(f"weights-digest rank={ctx.rank} sha256={weights_digest(result.model)}", flush=True)
        if ctx.is_main:
            save_checkpoint(args.out, result.model, result.metadata)
            print(f"training loss {progress.first.loss:.4f} (step {progress.first.step}) -> "
                  f"{progress.last.loss:.4f} (step {progress.last.step}); saved {args.out}")
    finally:
        shutdown(ctx)
    return 0


def _scratch_model(args: argparse.Namespace, architecture_of: Path | None):
    from .learn.finetune import scratch_model
    from .model.checkpoint import read_metadata

    return scratch_model(read_metadata(architecture_of) if architecture_of is not None else None, args.seed)


def cmd_finetune(args: argparse.Namespace) -> int:
    from .data.datasets import choose_subset, split_ids
    from .learn.finetune import FinetuneConfig, finetune
    from .model.checkpoint import load_checkpoint, read_metadata, save_checkpoint

    device = _setup_torch(args)
    split_images = lambda: [s.image for s in _load_samples(args, split=args.split, with_labels=False)]  # noqa: E731
    if args.scratch:
        start = None if args.checkpoint is None else _checkpoint(args, split_images)
        model, meta = _scratch_model(args, start)
        recipe_of = read_metadata(start) if start is not None else meta
    else:
        model, meta = load_checkpoint(_checkpoint(args, split_images))
        recipe_of = meta
    if args.ids:
        ids = [i.strip() for i in args.ids.split(",") if i.strip()]
    elif args.n_labels is not None and args.images is None:
        if args.data is None or args.domain is None:
            raise UsageError("--n-labels needs --data and --domain")
        ids = choose_subset(split_ids(args.data, args.domain, args.split), args.n_labels, args.seed)
    else:
        ids = None
    labelled = _load_samples(args, split=args.split, ids=ids)
    if args.n_labels is not None and args.images is not None:
        labelled = [labelled[i] for i in sorted(choose_subset(list(range(len(labelled))), args.n_labels, args.seed))]
    unlabelled = None
    if args.unlabelled_share > 0:
        chosen = {s.id for s in labelled}
        unlabelled = [s for s in _load_samples(args, split=args.split, with_labels=False) if s.id not in chosen]
    print(f"fine-tuning on {len(labelled)} labelled image(s): {', '.join(s.id for s in labelled)}")
    train_config = _train_config(args, log_every=10, metadata=recipe_of)
    progress = _ProgressLog(train_config.steps, "finetune", args.log)
    try:
        tuned, new_meta, _ = finetune(
            model, meta, labelled, train_config,
            FinetuneConfig(loss=args.loss, unlabelled_share=args.unlabelled_share), unlabelled, device, on_log=progress,
        )
    finally:
        progress.close()
    save_checkpoint(args.out, tuned, new_meta)
    print(f"training loss {progress.first.loss:.4f} -> {progress.last.loss:.4f}; saved {args.out}")
    return 0


def _readable_images(files: list[Path]) -> list:
    """The images of ``files`` that choosing a start model reads (evenly spread; unreadable ones left out)."""
    from .data.io import read_image
    from .learn.fit import read_spread

    return read_spread(files, read_image)


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data.io import read_image
    from .export import MaskWriter
    from .model.inference import Segmenter
    from .model.outputs import INSTANCES, output_kind
    from .model.split import split_instances

    device = _setup_torch(args)
    files = _image_files(args.inputs)
    fmt = args.format or ("zarr" if args.output.suffix == ".zarr" else "png")
    segmenter = Segmenter.from_checkpoint(_checkpoint(args, lambda: _readable_images(files)), device)
    writer = MaskWriter(args.output, fmt)
    as_mask = split_instances if output_kind(segmenter.metadata) == INSTANCES else (lambda classes: classes)
    failed = 0
    for path in tqdm(files, desc="predict", unit="image"):
        try:
            writer.write(path.stem, as_mask(segmenter.predict(read_image(path))))
        except ImageReadError as err:
            failed += 1
            tqdm.write(f"skipped: {err}")
    print(f"wrote {len(files) - failed} mask(s) to {args.output} ({fmt})" + (f"; skipped {failed}" if failed else ""))
    return 1 if failed == len(files) else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .learn.evaluate import evaluate
    from .model.inference import Segmenter

    device = _setup_torch(args)
    samples = _load_samples(args, split=args.split)
    checkpoint = _checkpoint(args, lambda: [s.image for s in samples])
    segmenter = Segmenter.from_checkpoint(checkpoint, device)
    scores = evaluate(segmenter, samples, progress=True)
    scores["checkpoint"] = str(checkpoint)
    scores["data"] = _data_description(args, samples)
    for row in scores["per_image"]:
        print(f"{row['id']:>24s}  dice {row['dice']:.4f}  iou {row['iou']:.4f}{_object_scores(row)}")
    mean = (f"  f1 {scores['mean_f1']:.4f}  aji {scores['mean_aji']:.4f}  mean |count error| "
            f"{scores['mean_abs_count_error']:.2f}" if "mean_f1" in scores else "")
    print(f"mean over {scores['n_images']} images: dice {scores['mean_dice']:.4f}  iou {scores['mean_iou']:.4f}{mean}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(scores, indent=1))
    return 0


def _object_scores(row: dict[str, Any]) -> str:
    """An image's object scores as ``evaluate`` prints them ("" for a model without objects)."""
    if "f1" not in row:
        return ""
    return f"  f1 {row['f1']:.4f}  aji {row['aji']:.4f}  objects {row['n_pred']} (true {row['n_true']})"


def cmd_simulate(args: argparse.Namespace) -> int:
    from .data.datasets import load_domain
    from .learn.simulate import simulate
    from .resources import SAMPLE_DOMAIN, sample_data_root

    device = _setup_torch(args)
    root = args.data if args.data is not None else sample_data_root()
    domain = args.domain or (SAMPLE_DOMAIN if args.data is None else None)
    if domain is None:
        raise UsageError("--domain is needed with --data")
    rounds = simulate(
        checkpoint=_checkpoint(args, lambda: [s.image for s in load_domain(root, domain, args.pool_split, with_labels=False)]),
        root=root, domain=domain, pool_split=args.pool_split, test_split=args.test_split,
        round_size=args.round_size, rounds=args.rounds, steps=args.steps, loss=args.loss, seed=args.seed, device=device,
        echo=print,
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rounds, indent=1))
    return 0


def _image_files(inputs: list[Path]) -> list[Path]:
    from .data.io import is_image_file, list_images

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            files.extend(list_images(item))
        elif is_image_file(item):
            files.append(item)
        else:
            raise UsageError(f"{item} is neither a folder nor a PNG/TIFF/JPEG image")
    if not files:
        raise UsageError("no images found in the inputs")
    return files


def cmd_choose_model(args: argparse.Namespace) -> int:
    from .learn.choose import Candidate, explain, rank_start_models, zoo_candidates

    _setup_torch(args)
    images = _readable_images(_image_files(args.inputs))
    if not images:
        raise UsageError("none of the inputs could be read as an image")
    candidates = zoo_candidates() + [Candidate(path.stem, path) for path in args.model]
    ranking = rank_start_models(images, candidates)
    print(f"{'rank':>4}  {'model':<10} {'relative fit':>12} {'denoising loss':>15} {'mask confidence':>16}")
    for rank, s in enumerate(ranking, 1):
        relative = f"{s.relative:.2f}×" if s.relative is not None else "—"
        print(f"{rank:>4}  {s.name:<10} {relative:>12} {s.fit.loss:>15.4f} {s.fit.confidence:>16.3f}")
    print(explain(ranking))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([{"model": s.name, "checkpoint": str(s.candidate.path), "relative_fit": s.relative,
                                          "loss": s.fit.loss, "confidence": s.fit.confidence} for s in ranking], indent=1))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    from .resources import SAMPLE_DOMAIN, sample_data_root

    try:
        import napari
    except ImportError:
        raise UsageError("napari is not installed: pip install 'napari-hybridseg[napari]'") from None
    from ._qt.dock import HybridSegDock

    folder = args.folder if args.folder is not None else sample_data_root() / SAMPLE_DOMAIN / "images"
    viewer = napari.Viewer(title="napari-hybridseg")
    # the bundled sample is synthetic stained nuclei, made for the nuclei model (the default): the generative fit
    # would pick the polyps model for its pink, smooth synthetic texture; a user's folder gets the choice
    dock = HybridSegDock(viewer, device=args.device, choose_start_model=args.folder is not None)
    viewer.window.add_dock_widget(dock, name="Label 5 images then refine", area="right")
    dock.open_folder(folder, args.project)
    napari.run()
    dock.close_project()
    return 0


COMMANDS = {
    "gui": cmd_gui,
    "pretrain": cmd_pretrain,
    "finetune": cmd_finetune,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "simulate": cmd_simulate,
    "choose-model": cmd_choose_model,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, CheckpointError, ImageReadError, OSError, KeyError, ValueError) as err:  # OSError: disk full, permissions
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"hybridseg {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
