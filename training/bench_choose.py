"""How long choosing the start model takes: the whole zoo ranked by generative fit for a folder of images.

    python -m training.bench_choose [--n-images 100 --size 256 --threads 2 --repeats 3]

Times ``rank_start_models`` (reading every zoo checkpoint, cropping the images, the denoising passes of every
model) on ``--n-images`` synthetic histology images of ``--size``², in this process after a warm-up run.
Writes ``benchmarks/results/bench_choose/bench_choose.json`` and its BENCHMARKS.md section.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import report

NAME = "bench_choose"


def measure(n_images: int, size: int, threads: int, repeats: int) -> dict[str, Any]:
    import torch

    from napari_hybridseg.data.synthetic import make_sample
    from napari_hybridseg.learn.choose import rank_start_models
    from napari_hybridseg.zoo import zoo_models

    torch.set_num_threads(threads)
    images = [make_sample(i, (size, size))[0] for i in range(n_images)]
    rank_start_models(images[:4])  # warm-up: imports, first allocations
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        ranking = rank_start_models(images)
        seconds.append(time.perf_counter() - started)
    return {"n_images": n_images, "size": size, "threads": threads, "models": [m.name for m in zoo_models()],
            "seconds": seconds, "median_s": sorted(seconds)[len(seconds) // 2], "picked": ranking[0].name}


def markdown(result: dict[str, Any]) -> str:
    return (f"Ranking the {len(result['models'])} shipped models ({', '.join(result['models'])}) for "
            f"{result['n_images']} images of {result['size']}², {result['threads']} threads: "
            f"**{result['median_s']:.2f} s** (median of {len(result['seconds'])}; "
            + ", ".join(f"{s:.2f}" for s in result["seconds"]) + " s). The product's goal is 5 s.")


def write_report(result: dict[str, Any], folder: Path, benchmarks_md: Path) -> None:
    footer = report.footer(result["command"], result["machine"], folder / f"{NAME}.json", result["date"])
    report.update_section(NAME, markdown(result) + "\n\n" + footer, benchmarks_md)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench_choose", description=__doc__.split("\n\n")[0])
    p.add_argument("--n-images", type=int, default=100)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    report.add_report_options(p, report.results_dir(NAME))
    args = p.parse_args(argv)
    if args.report_only:
        write_report(report.read_json(NAME, args.results_dir), args.results_dir, args.benchmarks_md)
        return 0
    result = measure(args.n_images, args.size, args.threads, args.repeats)
    result.update(command=("python -m training.bench_choose " + shlex.join(argv if argv is not None else sys.argv[1:])).rstrip(),
                  machine=report.machine(), date=time.strftime("%Y-%m-%d"))
    report.write_json(NAME, result, args.results_dir)
    write_report(result, args.results_dir, args.benchmarks_md)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
