"""Where a fine-tune starts: the scale of each source model's mask head and features on target crops.

    python -m training.start_scale --data ../shared/data/retina --target chase \\
        --model hybrid=runs/le21/pretrain/retina-drive-hybrid-clean0.5.safetensors \\
        --model diffusion=runs/le/pretrain/retina-drive-diffusion.safetensors

For each model, as fine-tuning starts from it (a diffusion-pretrained one with its new mask head) and for a
network with random weights of the same architecture: on batches of clean crops of the target's pool
images, the standard deviation of the output convolution's input (the features the mask head reads) and of
the mask logits, the mask loss, and the gradient norm of the first step (before clipping). A new head whose
logits or gradients are far larger than a random network's would distort the pretrained features in the
first steps. Writes benchmarks/results/start_scale.json and the "start_scale" section of BENCHMARKS.md.
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


ROWS = [("feature_std", "std of the features the head reads"), ("logit_std", "std of the mask logits"),
        ("mask_loss", "mask loss (CE + Dice)"), ("grad_norm", "first gradient norm, whole network"),
        ("head_grad_norm", "first gradient norm, output convolution")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.start_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a data set folder in the shared layout")
    p.add_argument("--target", required=True, help="the target domain (its pool images are used)")
    p.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT", type=report.named_checkpoint)
    p.add_argument("--batches", type=int, default=8, help="batches of 8 crops to average over")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", type=Path, default=report.RESULTS)
    p.add_argument("--benchmarks-md", type=Path, default=report.BENCHMARKS_MD)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = measure(dict(args.model), args.data, args.target, args.batches, args.crop, args.seed)
    info = report.machine()
    command = "python -m training.start_scale " + " ".join(argv if argv is not None else sys.argv[1:])
    report.write_json("start_scale", {"target": args.target, "models": results, "machine": info, "command": command},
                      args.results_dir)
    names = list(results)
    table = report.markdown_table(["at the first fine-tuning step", *names],
                                  [[label, *(f"{results[n][key]:.3f}" for n in names)] for key, label in ROWS])
    report.update_section("start_scale", f"Target: {args.target} pool, {args.batches} batches of 8 clean "
                          f"{args.crop}² crops.\n\n{table}\n\n" + report.footer(command, info, "start_scale"),
                          args.benchmarks_md)
    for key, label in ROWS:
        print(f"{label:45s}", "  ".join(f"{n}={results[n][key]:.3f}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
