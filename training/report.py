"""Shared bits of the benchmark scripts: machine description, results folders, JSON and page sections.

Each benchmark keeps its results in its own folder, ``benchmarks/results/<benchmark>/`` (:func:`results_dir`):
``<report>.json`` (the numbers a page cites), ``<report>_records.jsonl`` where it keeps raw records to rebuild
or extend the report, and its plots. A report's markdown is a section of a page, between
``<!-- <report>:start -->`` and ``<!-- <report>:end -->`` (:func:`update_section`): BENCHMARKS.md for the results
a user asks about, else ``<report>.md`` beside its JSON. Every script builds that section from the JSON alone and
rebuilds it with ``--report-only`` (tests/training/test_pages.py checks that each does, byte for byte).
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def results_dir(benchmark: str) -> Path:
    """The folder of one benchmark's results: ``benchmarks/results/<benchmark>/``."""
    return RESULTS / benchmark


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU"
    return f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB{gpu}; Python {info['python']}, torch {info['torch']}"


def named_checkpoint(spec: str) -> tuple[str, Path]:
    """An argparse type for ``NAME=CHECKPOINT`` options: the name and the path of an existing file."""
    import argparse

    name, sep, path = spec.partition("=")
    if not sep or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"takes NAME=CHECKPOINT with an existing file, got {spec!r}")
    return name, Path(path)


def write_json(name: str, data: Any, folder: Path) -> Path:
    """``folder/<name>.json``; ``folder`` is a benchmark's :func:`results_dir`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def read_json(name: str, folder: Path) -> Any:
    return json.loads((folder / f"{name}.json").read_text())


def save_records(rows: list[dict[str, Any]], folder: Path, name: str) -> Path:
    """Keep a benchmark's raw records (one JSON line per run) beside its results, so a committed result can be
    rebuilt, extended or resumed on another machine (copy the file to ``<work>/records.jsonl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    """A resumable benchmark's records, one JSON object a line (none while the file does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def add_report_options(parser: Any, folder: Path) -> None:
    """``--report-only`` (rebuild the section from the committed JSON and records) and where the results and
    the page are (``--results-dir``, ``--benchmarks-md``, for tests)."""
    import argparse

    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the committed records")
    parser.add_argument("--results-dir", type=Path, default=folder, help=argparse.SUPPRESS)
    parser.add_argument("--benchmarks-md", type=Path, default=BENCHMARKS_MD, help=argparse.SUPPRESS)


def run_facts(name: str, command: str, started: float, folder: Path, **extra: Any) -> dict[str, Any]:
    """What a resumable benchmark's run records of itself: its command, machine and date, and its wall time
    added to that of the earlier runs it resumed (their ``<name>_run.json`` in ``folder``)."""
    import time

    previous = folder / f"{name}_run.json"
    spent = json.loads(previous.read_text())["wall_s"] if previous.exists() else 0.0
    return {"command": command, "machine": machine(), "wall_s": spent + time.perf_counter() - started,
            "date": today(), **extra}


def publish_run(name: str, results: Any, records: list[dict[str, Any]], facts: dict[str, Any], folder: Path) -> Path:
    """Write a resumable benchmark's results JSON, its run facts and its records; returns the results' path."""
    json_path = write_json(name, results, folder)
    write_json(f"{name}_run", facts, folder)
    save_records(records, folder, name)
    return json_path


def run_footer(facts: dict[str, Any], json_path: Path) -> str:
    """:func:`footer` of a resumable benchmark's section, with its total wall time."""
    return (footer(facts["command"], facts["machine"], json_path, facts["date"])
            + f"  \nWall time: {facts['wall_s'] / 60:.0f} min")


def section(text: str, name: str) -> str | None:
    """The markdown between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``text`` (None if absent)."""
    found = re.search(re.escape(f"<!-- {name}:start -->\n") + r"(.*?)\n" + re.escape(f"<!-- {name}:end -->"), text, re.S)
    return found.group(1) if found else None


def update_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` (appending it if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {name}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def relative(path: Path) -> str:
    """``path`` as the pages name it: from the repository's root."""
    return os.path.relpath(path, REPO)


def today() -> str:
    """The date a result is measured, as its JSON records it (``date``)."""
    import datetime

    return datetime.date.today().isoformat()


def footer(command: str, info: dict[str, Any] | str, json_path: Path, date: str | None = None) -> str:
    """The lines every benchmark section ends with: how to reproduce it, where, when, and its JSON."""
    where = info if isinstance(info, str) else machine_line(info)
    when = f"Date: {date}  \n" if date else ""
    return f"Command: `{command}`  \nMachine: {where}  \n{when}Results: `{relative(json_path)}`"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def style_dice_axes(ax, xlabel: str, title: str) -> None:
    """The look every Dice-against-labels plot shares."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Dice on the test split")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
