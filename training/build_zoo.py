"""Build the shipped source models: pretrain each with ``hybridseg pretrain --method hybrid``, measure its
generative-fit reference on its own source validation images, attach its fine-tuning recipe and install it
into ``napari_hybridseg/models/``.

    python -m training.build_zoo --data ../shared/data --work runs/zoo            # every model
    python -m training.build_zoo --data ../shared/data --work runs/zoo --only lungs

Pretraining is skipped where ``<work>/<name>.safetensors`` exists (delete it to retrain), so the command
resumes. ``--install-only`` re-attaches the fit reference and the recipe to the models already in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_hybridseg.learn.recipe import FinetuneRecipe
from napari_hybridseg.zoo import ZOO, ZooModel


TERMS = {
    "dsb2018": "DSB2018 stage 1 (BBBC038), CC0; Caicedo et al., Nature Methods 16, 1247–1253 (2019)",
    "lungs": "COVID-19 Radiography Database, viral pneumonia class, with its lung masks; research use; Chowdhury et al., "
             "IEEE Access 2020, Rahman et al., Comput. Biol. Med. 2021",
    "polyps": "Kvasir-SEG; research and educational use; Jha et al., MMM 2020",
    "retina": "DRIVE; research use; Staal et al., IEEE TMI 2004",
}


@dataclass(frozen=True)
class ZooRecipe:
    """How one zoo model is made: its sources (``DATASET:DOMAIN``, read from ``--data``), the source validation
    images its fit reference is measured on (``DATASET:DOMAIN:SPLIT``), its pretraining options and the
    fine-tuning recipe that the viewer's refinement and ``hybridseg finetune`` use with it."""

    sources: tuple[str, ...]
    validation: tuple[str, ...]
    pretrain: tuple[str, ...]
    # crops reaching borders and corners as often as the middle: held-out Dice +0.025 on CVC-ClinicDB, +0.012 on
    # adult chest X-rays (docs/studies/finetune_recipes.md)
    finetune: FinetuneRecipe = field(default_factory=lambda: FinetuneRecipe(even_coverage=True))
    limits: str = ""  # what a user should know before relying on it


HALF_RES = ("--method", "hybrid", "--patch-size", "2", "--clean-fraction", "0.5")
RECIPES: dict[str, ZooRecipe] = {
    "nuclei": ZooRecipe(
        ("dsb2018:fluorescence",), ("dsb2018:fluorescence:val",),
        (*HALF_RES, "--steps", "1500", "--invert-probability", "0.5", "--output", "instances"),
        limits="Zero-shot it segments fluorescence nuclei well and stained tissue fairly; on large brightfield images "
               "it finds little before fine-tuning. Nuclei are predicted on a 2× coarser grid: for objects under about "
               "6 px, pretrain at full resolution (`--patch-size 1`). Touching nuclei are split along the boundary "
               "class; the model still merges some clusters, more often on stained tissue than on fluorescence "
               "(BENCHMARKS.md, *Nuclei as objects*). Why half resolution, and what it costs: "
               "[docs/studies/shipped_model.md](../../docs/studies/shipped_model.md)."),
    "lungs": ZooRecipe(
        ("lungs:paediatric",), ("lungs:paediatric:val",), (*HALF_RES, "--steps", "4000"),
        FinetuneRecipe(crop_size=192, batch_size=2, even_coverage=True),  # lung fields need crops that hold them
        limits="Pretrained on children's radiographs whose masks stop at the heart border; adult radiographs whose "
               "outlines run behind the heart need a few corrections before its masks follow that convention."),
    "polyps": ZooRecipe(
        ("polyps:kvasir",), ("polyps:kvasir:val",), (*HALF_RES, "--steps", "4000"),
        limits="Frames of one hospital's endoscopes; other endoscopes' dark borders and glare need corrections."),
    # vessels are 1–3 px wide: full resolution; λ, σ and the fine-tuning rate as chosen for this source on CHASE
    # validation (docs/studies/lambda.md, noise_levels.md, learning_rates.md)
    "vessels": ZooRecipe(
        ("retina:drive",), ("retina:drive:val",),
        ("--method", "hybrid", "--patch-size", "1", "--clean-fraction", "0.5", "--lambda-image", "0.25",
         "--sigma-log-mean", "-2.0", "--steps", "1500"),
        FinetuneRecipe(lr=3e-3, even_coverage=True),
        limits="Full resolution (vessels are 1–3 px wide), so about four times the arithmetic of the others: "
               "slower to predict and to refine. Pretrained on 32 images."),
    "general": ZooRecipe(("dsb2018:fluorescence", "lungs:paediatric", "polyps:kvasir", "retina:drive"),
                         ("dsb2018:fluorescence:val", "lungs:paediatric:val", "polyps:kvasir:val", "retina:drive:val"),
                         (*HALF_RES, "--steps", "4000", "--invert-probability", "0.25"),
                         limits="One mask head for four meanings of 'foreground' (nuclei, lungs, polyps, vessels): "
                                "a start for a kind of image the zoo has no model for, to be fine-tuned; at half "
                                "resolution, thin structures such as vessels come out coarse."),
}


def pretrain_command(name: str, data: Path, out: Path, threads: int) -> list[str]:
    recipe = RECIPES[name]
    if len(recipe.sources) == 1:
        dataset, domain = recipe.sources[0].split(":")
        where = ["--data", str(data / dataset), "--domain", domain]
    else:
        where = [arg for source in recipe.sources for arg in ("--source", f"{data / source.split(':')[0]}:{source.split(':')[1]}")]
    return ["pretrain", *where, *recipe.pretrain, "--seed", "0", "--threads", str(threads), "--device", "cpu",
            "--out", str(out), "--log", str(out.with_suffix(".jsonl"))]


#: the images every zoo model's fit is referred to: each source's validation split (see learn/fit.py)
FIT_PANEL = ("dsb2018:fluorescence:val", "lungs:paediatric:val", "polyps:kvasir:val", "retina:drive:val")


def images_of(specs: tuple[str, ...], data: Path) -> list[Any]:
    """The images of ``DATASET:DOMAIN:SPLIT`` specs, read from ``data``."""
    from napari_hybridseg.data.datasets import load_domain

    images = []
    for spec in specs:
        dataset, domain, split = spec.split(":")
        images += [s.image for s in load_domain(data / dataset, domain, split, with_labels=False)]
    return images


def validation_dice(name: str, data: Path, net: Any, meta: dict[str, Any]) -> dict[str, float]:
    """Zero-shot Dice of the model on each of its source validation sets."""
    from napari_hybridseg.data.datasets import load_domain
    from napari_hybridseg.learn.evaluate import evaluate
    from napari_hybridseg.model.inference import Segmenter

    segmenter = Segmenter(net, meta, engine="torch")
    scores = {}
    for spec in RECIPES[name].validation:
        dataset, domain, split = spec.split(":")
        scores[spec] = evaluate(segmenter, load_domain(data / dataset, domain, split))["mean_dice"]
    return scores


def install(model: ZooModel, trained: Path, data: Path) -> dict[str, Any]:
    """Copy ``trained`` into the package with its fit reference, fine-tuning recipe, zoo name and the Dice on its
    source validation images, and write its model card."""
    from napari_hybridseg.learn.fit import fit_reference
    from napari_hybridseg.model.checkpoint import load_checkpoint, save_checkpoint

    net, meta = load_checkpoint(trained)
    recipe = RECIPES[model.name]
    meta["zoo_name"] = model.name
    panel = {spec: fit_reference(net, images_of((spec,), data), spec) for spec in FIT_PANEL}
    own = (panel[recipe.validation[0]] if len(recipe.validation) == 1 and recipe.validation[0] in panel
           else fit_reference(net, images_of(recipe.validation, data), " + ".join(recipe.validation)))
    meta["fit_reference"] = {**own, "panel": {spec: reference["loss"] for spec, reference in panel.items()}}
    meta["finetune_recipe"] = recipe.finetune.to_dict()
    meta["source_validation_dice"] = validation_dice(model.name, data, net, meta)
    save_checkpoint(model.path, net, meta)
    model.card.write_text(model_card(model, meta, net))
    return meta


def model_card(model: ZooModel, meta: dict[str, Any], net: Any) -> str:
    """The model card: what it is for, its data and terms, how it was made, what it scores."""
    recipe = RECIPES[model.name]
    arch = meta["architecture"]
    loss = meta["loss"]
    train = meta["pretraining"]["train"]
    resolution = "half resolution (2×2 pixels folded into channels)" if arch.get("patch_size", 1) == 2 else "full resolution"
    datasets = sorted({source.split(":")[0] for source in recipe.sources})
    command = "hybridseg " + " ".join(pretrain_command(model.name, Path("../shared/data"), Path(model.file), 2))
    rows = [
        ("for", f"{model.segments} in {model.images}: a start for fine-tuning on a few labelled images of your own"),
        ("architecture", f"noise-conditioned U-Net at {resolution}, base {arch['base_channels']} channels, multipliers "
                         f"{tuple(arch['channel_mults'])}, EDM preconditioning; {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters"),
        ("input / output", f"{meta['image_channels']} channels ({meta['channel_convention']}), per-image z-score; "
                           + mask_output(meta)),
        ("pretraining", f"hybrid: EDM-weighted denoising (ln σ ~ N({loss['p_mean']}, {loss['p_std']}²), λ_image "
                        f"{loss['lambda_image']}) + cross-entropy + soft Dice; {loss['clean_fraction']:.0%} of each batch "
                        f"clean; {train['steps']} steps of batch {train['batch_size']}, {train['crop_size']}² crops, "
                        f"{train['invert_probability']:.0%} of crops inverted"),
        ("training data", "; ".join(recipe.sources) + " (train split). " + " ".join(f"{TERMS[d]}." for d in datasets)),
        ("fine-tuning recipe", ", ".join(f"{k} {v}" for k, v in meta["finetune_recipe"].items())
         + " (used by the viewer's refinement and `hybridseg finetune` unless told otherwise)"),
        ("Dice on source validation images, zero-shot", ", ".join(f"{k} {v:.3f}" for k, v in meta["source_validation_dice"].items())),
        ("generative-fit reference", f"denoising loss {meta['fit_reference']['loss']:.4f} on {meta['fit_reference']['images']}"),
    ]
    table = "\n".join(["| | |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows]])
    limits = f"\n\n## Limits\n\n{recipe.limits}" if recipe.limits else ""
    return (f"# Model card: `{model.name}` ({model.file})\n\n{table}\n\nMade by (from the repository root, the data "
            f"beside it): `python -m training.build_zoo --data ../shared/data --only {model.name}`, which runs\n\n"
            f"    {command}\n\nWhat it is worth on real target images, zero-shot and after 5 labels, against the other "
            "starts and training from scratch: BENCHMARKS.md, *Which start model*." + limits + "\n")


def mask_output(meta: dict[str, Any]) -> str:
    """What a model's mask logits are, in a card's words."""
    from napari_hybridseg.model.outputs import INSTANCES, boundary_width_of, output_kind

    if output_kind(meta) == INSTANCES:
        return (f"denoised image + 3 mask logits (background, interior, boundary {boundary_width_of(meta)} px wide); "
                "objects: the interiors seed a watershed over the foreground, one object per nucleus")
    return "denoised image + 2 mask logits (background, foreground)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.build_zoo", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the folder that holds dsb2018/, lungs/, polyps/, retina/")
    p.add_argument("--work", type=Path, default=Path("runs/zoo"), help="where pretrained models and logs are kept")
    p.add_argument("--only", nargs="+", choices=list(RECIPES), help="build these models only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--install-only", action="store_true", help="do not pretrain; install what --work holds")
    args = p.parse_args(argv)
    from napari_hybridseg.cli import main as cli

    args.work.mkdir(parents=True, exist_ok=True)
    for model in ZOO:
        if args.only and model.name not in args.only:
            continue
        trained = args.work / f"{model.name}.safetensors"
        if not trained.exists() and not args.install_only:
            started = time.perf_counter()
            if cli(pretrain_command(model.name, args.data, trained, args.threads)) != 0:
                print(f"pretraining {model.name} failed", file=sys.stderr)
                return 1
            trained.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.1f}\n")
        if not trained.exists():
            print(f"{model.name}: no pretrained model in {args.work}; skipped", file=sys.stderr)
            continue
        meta = install(model, trained, args.data)
        print(f"{model.name}: installed {model.path} (fit reference {json.dumps(meta['fit_reference']['loss'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
