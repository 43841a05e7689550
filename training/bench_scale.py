"""Scale benchmark: big images, big projects, and how scoring and refining grow with the number of images.

    python -m training.bench_scale [--threads 2]

Each measurement runs in a fresh child process, so its peak RSS is its own.
Writes benchmarks/results/scale/scale.json and the "scale" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .report import (
    BENCHMARKS_MD, REPO, footer, machine, markdown_table, read_json, results_dir, today, update_section, write_json,
)

REPEATS = 3
NAME = "scale"
FOLDER = results_dir(NAME)


def _peak_rss_gb() -> float:
    """This process's peak resident memory since it started its program. getrusage's ru_maxrss is no good
    in a child: on Linux it keeps the parent's peak from before exec (the forked copy), so a child of a
    large process reports the parent's size; /proc's VmHWM belongs to the new program's memory alone."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _synthetic_image(size: int) -> np.ndarray:
    """A size × size H&E-like image tiled from the sample generator (cheap to make, realistic to predict)."""
    from napari_hybridseg.data.synthetic import make_sample

    tile, _ = make_sample(0, (256, 256))
    reps = -(-size // 256)
    return np.tile(tile, (reps, reps, 1))[:size, :size]


def predict_big(size: int, threads: int, engine: str = "auto", checkpoint: str | None = None,
                repeats: int = REPEATS) -> dict:
    import torch

    from napari_hybridseg.model.inference import Segmenter
    from napari_hybridseg.resources import default_model_path

    torch.set_num_threads(threads)
    segmenter = Segmenter.from_checkpoint(checkpoint or default_model_path(), engine=engine)
    image = _synthetic_image(size)
    base_rss = _peak_rss_gb()
    segmenter.predict(image)  # warm-up: the first run of ONNX Runtime plans its memory
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter.predict(image)
        times.append(time.perf_counter() - start)
    return {"size": size, "engine": type(segmenter.forward).__name__, "seconds": times, "median_s": float(np.median(times)),
            "peak_rss_gb": _peak_rss_gb(), "rss_before_predict_gb": base_rss}


def open_project(n_images: int) -> dict:
    from PIL import Image

    from napari_hybridseg.annotation import AnnotationSession
    from napari_hybridseg.project import ProjectStore

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tile = _synthetic_image(256)
        for i in range(n_images):
            Image.fromarray(tile).save(folder / f"img{i:05d}.png", compress_level=1)
        start = time.perf_counter()
        store = ProjectStore.open(folder)
        create_s = time.perf_counter() - start
        del store
        start = time.perf_counter()
        store = ProjectStore.open(folder)
        reopen_s = time.perf_counter() - start
        session = AnnotationSession(store, device="cpu")
        steps = []
        for _ in range(200):
            start = time.perf_counter()
            session.step(+1)
            session.is_stale(session.current())
            steps.append(time.perf_counter() - start)
    return {"n_images": n_images, "create_s": create_s, "reopen_s": reopen_s,
            "navigate_step_ms_p50": 1e3 * float(np.median(steps)), "navigate_step_ms_max": 1e3 * float(np.max(steps))}


def score_images(n_images: int, threads: int, engine: str = "auto", signals: bool = True) -> dict:
    """The plugin's ranking, as ``AnnotationSession`` makes it: each image's signals on the segmenter's engine
    (``signals=False``: its disagreement alone, the earlier ranking), then the suggestions planned from them."""
    import torch

    from napari_hybridseg.annotation import PLANNED_PICKS, RANKING_SCORER
    from napari_hybridseg.data.synthetic import make_sample
    from napari_hybridseg.learn.acquisition import DisagreementScorer
    from napari_hybridseg.learn.selection import plan
    from napari_hybridseg.learn.signals import SignalScorer
    from napari_hybridseg.model.inference import Segmenter
    from napari_hybridseg.resources import default_model_path

    torch.set_num_threads(threads)
    segmenter = Segmenter.from_checkpoint(default_model_path(), engine=engine)
    scorer = (SignalScorer(segmenter.forward, segmenter.model, "bench", **RANKING_SCORER) if signals
              else DisagreementScorer(segmenter.forward, "bench", **RANKING_SCORER))
    images = [(f"img{i}", make_sample(i, (256, 256))[0]) for i in range(n_images)]
    start = time.perf_counter()
    scored = dict(scorer.score_many(images))
    seconds = time.perf_counter() - start
    planning = time.perf_counter()
    if signals:
        plan(scored, [], "adaptive", k=PLANNED_PICKS)  # the costliest rule: coverage, weighted
    return {"n_images": n_images, "engine": type(segmenter.forward).__name__, "seconds": seconds,
            "plan_seconds": time.perf_counter() - planning if signals else None, "signals": signals,
            "settings": RANKING_SCORER}


def refine_images(n_accepted: int, threads: int, checkpoint: str | None = None, steps: int | None = None) -> dict:
    from napari_hybridseg.data.datasets import Sample
    from napari_hybridseg.data.synthetic import make_sample
    from napari_hybridseg.learn.recipe import FinetuneRecipe
    from napari_hybridseg.learn.refine import RefineJob
    from napari_hybridseg.model.checkpoint import load_checkpoint
    from napari_hybridseg.resources import default_model_path

    model, meta = load_checkpoint(checkpoint or default_model_path())
    labelled = [Sample(f"img{i}", *make_sample(i, (256, 256))) for i in range(n_accepted)]
    config = FinetuneRecipe.from_metadata(meta).train_config(steps=steps)  # what the viewer's refinement runs
    start = time.perf_counter()
    result = RefineJob(model, meta, labelled, config, threads=threads).run()
    assert result.ok, result.message
    return {"n_accepted": n_accepted, "seconds": time.perf_counter() - start, "steps": config.steps}


TASKS = {"predict_big": predict_big, "open_project": open_project, "score_images": score_images, "refine_images": refine_images}


def in_child(task: str, **kwargs) -> dict:
    """Run one of :data:`TASKS` in a fresh Python, so its peak RSS and its threads are its own."""
    code = f"import json; from training.bench_scale import TASKS; print(json.dumps(TASKS[{task!r}](**{kwargs!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _linearity(rows: list[dict], n_key: str) -> float:
    """Seconds per image at the largest N over seconds per image at the smallest: 1 means linear."""
    small, large = rows[0], rows[-1]
    return (large["seconds"] / large[n_key]) / (small["seconds"] / small[n_key])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bench_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON; measure nothing")
    p.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.report_only:
        update_section(NAME, markdown(read_json(NAME, FOLDER)), args.benchmarks_md)
        return 0
    info = machine()
    results = {
        "machine": info,
        "date": today(),
        "threads": args.threads,
        "predict": [in_child("predict_big", size=s, threads=args.threads) for s in (1024, 2048)],
        "predict_torch_2048": in_child("predict_big", size=2048, threads=args.threads, engine="torch"),
        "projects": [in_child("open_project", n_images=n) for n in (100, 1000)],
        "scoring": [in_child("score_images", n_images=n, threads=args.threads) for n in (25, 50, 100)],
        "scoring_torch_100": in_child("score_images", n_images=100, threads=args.threads, engine="torch"),
        "scoring_disagreement_100": in_child("score_images", n_images=100, threads=args.threads, signals=False),
        "refining": [in_child("refine_images", n_accepted=n, threads=1) for n in (5, 20, 80)],
    }
    results["scoring_linearity"] = _linearity(results["scoring"], "n_images")
    results["scoring_speedup_over_torch"] = results["scoring_torch_100"]["seconds"] / results["scoring"][-1]["seconds"]
    write_json(NAME, results, FOLDER)
    update_section(NAME, markdown(results), args.benchmarks_md)
    return 0


def markdown(results: dict) -> str:
    """The section, from the JSON alone."""
    rows = [[f"predict {r['size']}² (tiled, median of {REPEATS})", f"{r['median_s']:.2f} s", f"peak RSS {r['peak_rss_gb']:.2f} GB",
             "≤ 3 s, ≤ 1.5 GB" if r["size"] == 2048 else ""] for r in results["predict"]]
    baseline = results["predict_torch_2048"]
    rows += [["the same 2048², through torch (baseline)", f"{baseline['median_s']:.2f} s",
              f"ONNX Runtime is {baseline['median_s'] / results['predict'][-1]['median_s']:.2f}× faster", ""]]
    rows += [[f"open a project of {r['n_images']} images", f"create {r['create_s']:.2f} s, reopen {r['reopen_s']:.2f} s",
              f"navigate p50 {r['navigate_step_ms_p50']:.1f} ms, max {r['navigate_step_ms_max']:.1f} ms",
              "≤ 2 s" if r["n_images"] == 1000 else ""] for r in results["projects"]]
    rows += [[f"score {r['n_images']} images of 256² (S = {r['settings']['samples']}, 128² crop)", f"{r['seconds']:.1f} s",
              f"{1e3 * r['seconds'] / r['n_images']:.0f} ms per image"
              + (f"; a coverage plan of them in {1e3 * r['plan_seconds']:.1f} ms" if r.get("plan_seconds") else ""),
              "100 in ≤ 20 s" if r["n_images"] == 100 else ""]
             for r in results["scoring"]]
    torch_row = results["scoring_torch_100"]
    rows += [["the same, 100 images, through torch (baseline)", f"{torch_row['seconds']:.1f} s",
              f"ONNX Runtime is {results['scoring_speedup_over_torch']:.2f}× faster", ""]]
    if "scoring_disagreement_100" in results:
        alone = results["scoring_disagreement_100"]
        rows += [["the same, 100 images, disagreement alone (no surprise, no features)", f"{alone['seconds']:.1f} s",
                  f"the signals cost {results['scoring'][-1]['seconds'] / alone['seconds']:.2f}× as much", ""]]
    rows += [[f"refine on {r['n_accepted']} accepted images ({r['steps']} steps, 1 thread)", f"{r['seconds']:.1f} s", "", ""]
             for r in results["refining"]]
    table = markdown_table(["measurement", "time", "detail", "goal"], rows)
    return (f"{table}\n\nScoring time per image at 100 images over that at 25: {results['scoring_linearity']:.2f} "
            "(1 = linear). Refining runs a fixed number of steps, so its time does not grow with the images.\n\n"
            + footer("python -m training.bench_scale", results["machine"], FOLDER / f"{NAME}.json", results.get("date")))


if __name__ == "__main__":
    sys.exit(main())
