"""Where a fine-tune starts: the scale of each source model's mask head and features on target crops.

    python -m training.start_scale --data ../shared/data/retina --target chase \\
        --model hybrid=runs/le21/pretrain/retina-drive-hybrid-clean0.5.safetensors \\
        --model diffusion=runs/le/pretrain/retina-drive-diffusion.safetensors

For each model, as fine-tuning starts from it (a diffusion-pretrained one with its new mask head) and for a
network with random weights of the same architecture: on batches of clean crops of the target's pool
images, the standard deviation of the output convolution's input (the features the mask head reads) and of
the mask logits, the mask loss, and the gradient norm of the first step (before clipping). A new head whose
logits or gradients are far larger than a random network's would distort the pretrained features in the
first steps. Writes benchmarks/results/start_scale/start_scale.json and its section, start_scale.md beside it
(``--report-only`` rebuilds the section from the JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from napari_hybridseg.data.crops import CropSampler
from napari_hybridseg.data.datasets import load_domain
from napari_hybridseg.learn.finetune import scratch_model, starting_model
from napari_hybridseg.model.checkpoint import load_checkpoint
from napari_hybridseg.model.loss import mask_loss
from napari_hybridseg.model.precond import SIGMA_MIN, HybridSegModel

from . import report


def start_statistics(model: HybridSegModel, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Scale of the head's input, its logits, the mask loss and the first gradient norm on one batch."""
    seen: dict[str, torch.Tensor] = {}
    hook = model.net.output_conv.register_forward_hook(lambda _module, inputs, _out: seen.update(features=inputs[0]))
    model.train()
    try:
        _, logits = model(images, SIGMA_MIN)
    finally:
        hook.remove()
    loss = mask_loss(logits, masks)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    head_grads = [p.grad for p in model.net.output_conv.parameters()]
    return {
        "feature_std": float(seen["features"].detach().std()),
        "logit_std": float(logits.detach().std()),
        "mask_loss": float(loss.detach()),
        "grad_norm": float(torch.nn.utils.get_total_norm(grads)),
        "head_grad_norm": float(torch.nn.utils.get_total_norm(head_grads)),
    }


def measure(models: dict[str, Path], data: Path, target: str, batches: int, crop: int, seed: int) -> dict[str, Any]:
    pool = load_domain(data, target, "pool")
    results: dict[str, Any] = {}
    architecture = None
    for name, path in list(models.items()) + [("random weights", None)]:
        if path is None:
            model, meta = scratch_model(architecture, seed)
        else:
            model, meta = load_checkpoint(path)
            architecture = architecture or meta
        model = starting_model(model, meta, seed)
        sampler = CropSampler(pool, seed=seed, model_channels=model.image_channels, n_classes=model.n_classes,
                              crop_size=crop, sigma_data=model.sigma_data)
        runs = [start_statistics(model, *sampler.batch(8)) for _ in range(batches)]
        results[name] = {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}
        results[name]["method"] = meta.get("method")
    return results


NAME = "start_scale"
FOLDER = report.results_dir(NAME)  # a study (docs/studies/diffusion_deficit.md): its section is beside it
ROWS = [("feature_std", "std of the features the head reads"), ("logit_std", "std of the mask logits"),
        ("mask_loss", "mask loss (CE + Dice)"), ("grad_norm", "first gradient norm, whole network"),
        ("head_grad_norm", "first gradient norm, output convolution")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.start_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="a data set folder in the shared layout")
    p.add_argument("--target", help="the target domain (its pool images are used)")
    p.add_argument("--model", action="append", metavar="NAME=CHECKPOINT", type=report.named_checkpoint)
    p.add_argument("--batches", type=int, default=8, help="batches of 8 crops to average over")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", type=Path, default=FOLDER, help=argparse.SUPPRESS)
    p.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON; measure nothing")
    p.add_argument("--benchmarks-md", type=Path, default=FOLDER / f"{NAME}.md",
                        help=argparse.SUPPRESS)  # the page of its section
    args = p.parse_args(argv)
    if args.report_only:
        report.update_section(NAME, markdown(report.read_json(NAME, args.results_dir), args.results_dir),
                              args.benchmarks_md)
        return 0
    if not (args.data and args.target and args.model):
        p.error("give --data, --target and at least one --model")
    torch.set_num_threads(1)
    results = measure(dict(args.model), args.data, args.target, args.batches, args.crop, args.seed)
    command = "python -m training.start_scale " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"target": args.target, "batches": args.batches, "crop": args.crop, "models": results,
              "machine": report.machine(), "date": report.today(), "command": command}
    report.write_json(NAME, result, args.results_dir)
    report.update_section(NAME, markdown(result, args.results_dir), args.benchmarks_md)
    return 0


def markdown(result: dict, folder: Path = FOLDER) -> str:
    """The section, from the JSON alone."""
    results, names = result["models"], list(result["models"])
    table = report.markdown_table(["at the first fine-tuning step", *names],
                                  [[label, *(f"{results[n][key]:.3f}" for n in names)] for key, label in ROWS])
    return (f"Target: {result['target']} pool, {result.get('batches', 8)} batches of 8 clean {result.get('crop', 128)}² "
            f"crops.\n\n{table}\n\n" + report.footer(result["command"], result["machine"], folder / f"{NAME}.json", result.get("date")))


if __name__ == "__main__":
    sys.exit(main())
