"""Launch → first prediction shown, with and without pint's cached unit definitions, in alternating launches.

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m training.bench_launch

Each launch is a fresh process that opens a real napari window with the dock on the bundled sample and stops once the
first predicted mask is shown; the launches alternate between the dock as shipped (napari's unit registry built
from the package's cache, ``_qt/unit_registry.py``) and the same dock with that step left out (pint parses its
definitions afresh, as before), so both see the same machine load. The cache is written by a first launch that is
not counted. Writes benchmarks/results/launch/launch.json and its section, launch.md beside it
(``--report-only`` rebuilds the section from the JSON).
"""

from __future__ import annotations

import time

LAUNCH = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from napari_hybridseg.model.onnx_graph import CACHE_ENV  # noqa: E402

from .report import (  # noqa: E402
    REPO, footer, machine, markdown_table, read_json, results_dir, today, update_section, write_json,
)

NAME = "launch"
FOLDER = results_dir(NAME)  # a study (docs/studies/launch_time.md): its section is launch.md beside the JSON
ARMS = {"cached": "unit registry from the package's cache (as shipped)", "parsed": "pint parses its units afresh"}


def launch_once(arm: str) -> float:
    """Seconds from this process's start to the first predicted mask on screen."""
    from napari_hybridseg._qt import dock as dock_module

    from .gui_driver import dock_on_sample, mask_shown, process_events_until

    if arm == "parsed":
        dock_module.build_cached_unit_registry = lambda: False
    _, dock = dock_on_sample()
    process_events_until(lambda: mask_shown(dock))
    shown = time.perf_counter() - LAUNCH
    dock.close_project()
    return shown


def _in_child(arm: str) -> float:
    done = subprocess.run([sys.executable, "-m", "training.bench_launch", "--one", arm], check=True, cwd=REPO,
                          capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5, help="launches of each arm, alternating (default 5)")
    parser.add_argument("--one", choices=list(ARMS), help=argparse.SUPPRESS)  # a child: one launch, print its time
    parser.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON; measure nothing")
    parser.add_argument("--benchmarks-md", type=Path, default=FOLDER / f"{NAME}.md",
                        help=argparse.SUPPRESS)  # the page of its section
    args = parser.parse_args(argv)
    if args.report_only:
        update_section(NAME, markdown(read_json(NAME, FOLDER)), args.benchmarks_md)
        return 0
    if args.one:
        print(launch_once(args.one))
        return 0
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="hybridseg-cache-")
    _in_child("cached")  # writes the cache, as the first launch after installing does
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for _ in range(args.pairs):
        for arm in ARMS:
            seconds[arm].append(_in_child(arm))
    median = {arm: statistics.median(values) for arm, values in seconds.items()}
    command = "xvfb-run -a -s '-screen 0 1600x1000x24' python -m training.bench_launch"
    result = {"command": command, "machine": machine(), "date": today(), "seconds": seconds, "median_s": median,
              "cached_over_parsed": median["cached"] / median["parsed"]}
    write_json(NAME, result, FOLDER)
    update_section(NAME, markdown(result), args.benchmarks_md)
    print(json.dumps(median))
    return 0


def markdown(result: dict) -> str:
    """The section, from the JSON alone."""
    seconds, median = result["seconds"], result["median_s"]
    table = markdown_table(
        ["launch", f"median of {len(seconds['cached'])}", "range"],
        [[ARMS[arm], f"{median[arm]:.2f} s", f"{min(v):.2f} – {max(v):.2f} s"] for arm, v in seconds.items()])
    return ("## Launch → first prediction shown: pint's unit cache\n\n"
            "Fresh processes, alternating, each timed from its start to the first predicted mask on screen "
            "(real napari window under Xvfb, bundled sample, shipped model). "
            f"Cached over parsed: **{result['cached_over_parsed']:.2f}×** "
            f"({median['cached'] - median['parsed']:+.2f} s).\n\n"
            f"{table}\n\n" + footer(result["command"], result["machine"], FOLDER / f"{NAME}.json", result.get("date")))


if __name__ == "__main__":
    sys.exit(main())
