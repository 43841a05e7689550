"""Speed benchmark: one training step and one 256×256 prediction on this machine.

    python -m training.bench_speed [--checkpoint PATH]
    python -m training.bench_speed --report-only        # the section, from the committed JSON

Writes benchmarks/results/speed/speed.json and the "speed" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_hybridseg.model.inference import Segmenter
from napari_hybridseg.model.loss import HybridLoss, LossConfig
from napari_hybridseg.resources import default_model_path

from .report import (
    BENCHMARKS_MD, footer, machine, markdown_table, read_json, results_dir, today, update_section, write_json,
)

ENGINES = ("torch", "onnx")
NAME = "speed"
FOLDER = results_dir(NAME)


def _timed(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def train_step_times(segmenter: Segmenter, threads: int, batch: int, crop: int, repeats: int) -> list[float]:
    torch.set_num_threads(threads)
    model = segmenter.model
    model.train()
    loss = HybridLoss(LossConfig("hybrid"), model.sigma_data)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)
    images = torch.randn(batch, model.image_channels, crop, crop) * 0.5
    masks = torch.randint(0, model.n_classes, (batch, crop, crop))

    def step():
        terms = loss(model, images, masks)
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()

    times = _timed(step, repeats)
    model.eval()
    return times


def predict_times(segmenter: Segmenter, threads: int, size: int, repeats: int) -> list[float]:
    torch.set_num_threads(threads)
    image = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return _timed(lambda: segmenter.predict(image), repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON; measure nothing")
    parser.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report_only:
        update_section(NAME, markdown(read_json(NAME, FOLDER)), args.benchmarks_md)
        return 0
    checkpoint = args.checkpoint or default_model_path()
    segmenter = Segmenter.from_checkpoint(checkpoint, "cpu", engine="torch")
    n_params = sum(p.numel() for p in segmenter.model.parameters())
    rows = []
    for threads in sorted({1, torch.get_num_threads()}):
        step = train_step_times(segmenter, threads, batch=8, crop=128, repeats=args.repeats)
        row = {"threads": threads, "train_step_s": {"median": statistics.median(step), "min": min(step), "batch": 8, "crop": 128}}
        for engine in ENGINES:
            torch.set_num_threads(threads)  # the ONNX engine takes its thread count from torch's
            predictor = Segmenter(segmenter.model, segmenter.metadata, "cpu", engine=engine)
            for size, repeats in ((256, args.repeats), (1024, max(3, args.repeats // 4))):
                times = predict_times(predictor, threads, size, repeats)
                row[f"predict_{size}_{engine}_s"] = {"median": statistics.median(times), "min": min(times)}
        for size in (256, 1024):
            row[f"predict_{size}_speedup"] = row[f"predict_{size}_torch_s"]["median"] / row[f"predict_{size}_onnx_s"]["median"]
        rows.append(row)
    command = "python -m training.bench_speed" + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
    result = {"command": command, "machine": machine(), "date": today(), "model_parameters": n_params, "repeats": args.repeats,
              "results": rows}
    write_json(NAME, result, FOLDER)
    update_section(NAME, markdown(result), args.benchmarks_md)
    return 0


def markdown(result: dict) -> str:
    """The section, from the JSON alone."""

    def ms(row, key):
        return f"{row[key]['median'] * 1000:.0f} ms"

    table = markdown_table(
        ["threads", "train step (batch 8, 128², hybrid loss)", "predict 256² torch", "predict 256² ONNX Runtime",
         "predict 1024² torch", "predict 1024² ONNX Runtime"],
        [[r["threads"], ms(r, "train_step_s"),
          ms(r, "predict_256_torch_s"), f"{ms(r, 'predict_256_onnx_s')} ({r['predict_256_speedup']:.2f}×)",
          ms(r, "predict_1024_torch_s"), f"{ms(r, 'predict_1024_onnx_s')} ({r['predict_1024_speedup']:.2f}×)"]
         for r in result["results"]],
    )
    return (f"Medians of {result['repeats']} runs (a quarter of that for 1024²) after 3 warm-up runs; "
            f"the shipped model ({result['model_parameters'] / 1e6:.2f} M parameters); predict includes normalisation "
            f"and padding (one pass, no tiling). ONNX Runtime is the product's CPU engine (`Segmenter(engine=\"auto\")`); "
            f"its speed-up over torch, measured in the same run, in brackets.\n\n{table}\n\n"
            + footer(result["command"], result["machine"], FOLDER / f"{NAME}.json", result.get("date")))


if __name__ == "__main__":
    sys.exit(main())
