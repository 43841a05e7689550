"""The simulated clinician's report: its JSON, records, plot and sections."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import report
from .plan import STRATEGIES
from .summary import detail_markdown, goals_markdown, targets_of

RESULT_FIELDS = ("strategy", "round_size", "seed", "n_labels", "dice", "worst_dice")


def results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's JSON: ``[{"target": ..., "results": [{strategy, round_size, seed, n_labels, dice, worst_dice}]}]``."""
    return [{"target": target, "results": [{k: r[k] for k in RESULT_FIELDS} for r in rows if r["target"] == target]}
            for target in targets_of(rows)]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = targets_of(rows)
    sizes = sorted({r["round_size"] for r in rows})
    fig, axes = plt.subplots(len(targets), len(sizes), figsize=(5 * len(sizes), 3.4 * len(targets)), dpi=100,
                             squeeze=False)
    for row_axes, target in zip(axes, targets):
        for ax, size in zip(row_axes, sizes):
            for strategy in STRATEGIES:
                points: dict[int, list[float]] = {}
                for r in rows:
                    if (r["target"], r["strategy"], r["round_size"]) == (target, strategy, size):
                        points.setdefault(r["n_labels"], []).append(r["dice"])
                if points:
                    ns = sorted(points)
                    ax.errorbar(ns, [np.mean(points[n]) for n in ns], yerr=[np.std(points[n]) for n in ns],
                                marker="o", capsize=3, label=strategy)
            ax.set_xticks(sorted({r["n_labels"] for r in rows if (r["target"], r["round_size"]) == (target, size)}))
            report.style_dice_axes(ax, "labelled images", f"{target}, rounds of {size}")
    report.save_figure(fig, path)


def write(rows: list[dict[str, Any]], facts: dict[str, Any], name: str, folder: Path, page: Path) -> Path:
    """Publish the run (JSON, run facts, records), its plot, the goals section on ``page`` and the per-target
    tables on a page of their own beside the JSON."""
    json_path = report.publish_run(name, results(rows), rows, facts, folder)
    plot(rows, folder / f"{name}.png")
    detail_page = folder / f"{name}_detail.md"
    report.update_section(f"{name}_detail", detail_markdown(rows) + "\n\n" + report.run_footer(facts, json_path),
                          detail_page)
    seeds = sorted({r["seed"] for r in rows})
    compute_h = sum(r["seconds"] for r in rows) / 3600
    body = (goals_markdown(rows, facts["goal_labels"])
            + f"\n\nPer target and round size, every strategy's mean and worst-image Dice: "
              f"[{detail_page.name}]({os.path.relpath(detail_page, page.parent)})"
            + f"\n\n![]({os.path.relpath(folder / f'{name}.png', page.parent)})\n\n"
            + f"Seeds: {', '.join(map(str, seeds))}. Compute: {compute_h:.2f} h over {len(rows)} rounds.  \n"
            + report.run_footer(facts, json_path))
    report.update_section(name, body, page)
    return json_path
