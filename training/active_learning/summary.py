"""The simulated clinician's records as tables: each strategy against random, per target and over the targets."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_hybridseg.learn.selection import rule_for

from .. import report
from ..stats import Interval, paired_bootstrap, paired_bootstrap_over_targets
from .plan import PRODUCT_RULE, STRATEGIES

Runs = dict[int, dict[str, Any]]  # seed → record


def cells(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str, int], Runs]:
    """``{(target, round_size, strategy, n_labels): {seed: record}}``."""
    found: dict[tuple[str, int, str, int], Runs] = {}
    for r in rows:
        found.setdefault((r["target"], r["round_size"], r["strategy"], r["n_labels"]), {})[r["seed"]] = r
    return found


def with_rule(found: dict[tuple[str, int, str, int], Runs], rule: str) -> dict[tuple[str, int, str, int], Runs]:
    """``found`` with the runs of ``rule`` where it stands for a measured strategy in each round size: ``auto``'s
    rounds are the very picks of the rule it resolves to (same model, signals and seed), so they are not run twice."""
    if rule in STRATEGIES:
        return found
    return {**found, **{(target, size, rule, n): runs for (target, size, strategy, n), runs in found.items()
                        if strategy == rule_for(rule, size)}}


def targets_of(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["target"] for r in rows))


def mean_of(runs: Runs, field: str = "dice") -> float:
    return float(np.mean([r[field] for r in runs.values()]))


def paired_grids(a: Runs, b: Runs) -> tuple[np.ndarray, np.ndarray] | None:
    """Seeds × test images of ``a`` and ``b`` over the seeds both have run, or None."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return (np.array([a[s]["per_image_dice"] for s in seeds]), np.array([b[s]["per_image_dice"] for s in seeds]))


def paired(a: Runs, b: Runs) -> Interval | None:
    """Paired interval of ``a − b`` over the seeds both have run, or None."""
    grids = paired_grids(a, b)
    return None if grids is None else paired_bootstrap(*grids)


def at(found: dict, target: str, strategy: str, n: int) -> tuple[int, Runs] | None:
    """The runs of ``strategy`` at ``n`` labels on ``target``, in the smallest rounds that reached ``n`` (rounds of 1
    for the first labels, rounds of 5 past them), with that round size."""
    for size in sorted({key[1] for key in found if key[0] == target}):
        runs = found.get((target, size, strategy, n))
        if runs and found.get((target, size, "random", n)):
            return size, runs
    return None


def over_targets(found: dict, strategy: str, n: int) -> tuple[Interval | None, list[str]]:
    """``strategy − random`` at ``n`` labels averaged over the targets that have both, and those targets."""
    pairs, names = [], []
    for target in dict.fromkeys(key[0] for key in found):
        hit = at(found, target, strategy, n)
        if hit is not None and (grids := paired_grids(hit[1], found[(target, hit[0], "random", n)])) is not None:
            pairs.append(grids)
            names.append(target)
    return (paired_bootstrap_over_targets(pairs) if pairs else None), names


def label_counts(rows: list[dict[str, Any]]) -> list[int]:
    return sorted({r["n_labels"] for r in rows})


def goals_markdown(rows: list[dict[str, Any]], goal_labels: int, rule: str = PRODUCT_RULE) -> str:
    """The product rule against random: over the targets, where it is below random, and its worst-image Dice."""
    found = with_rule(cells(rows), rule)
    dispatched = [] if rule in STRATEGIES else [rule]
    present = [*dispatched, *(s for s in STRATEGIES if s != "random" and any(key[2] == s for key in found))]
    table = []
    for n in label_counts(rows):
        intervals = [over_targets(found, s, n) for s in present]
        if any(interval for interval, _ in intervals):
            names = max((names for _, names in intervals), key=len)
            table.append([n, *[str(interval) if interval else "–" for interval, _ in intervals], ", ".join(names)])
    below = [f"{target} at {n} labels (rounds of {size}: {interval})" for (target, size, strategy, n), runs in found.items()
             if strategy == rule and (interval := paired(runs, found.get((target, size, "random", n), {})))
             and interval.high < 0]
    worst = [(target, hit) for target in targets_of(rows) if (hit := at(found, target, rule, 5))]
    worst_lines = [f"{target}: {mean_of(runs, 'worst_dice'):.3f} against random's "
                   f"{mean_of(found[(target, size, 'random', 5)], 'worst_dice'):.3f}" for target, (size, runs) in worst]
    worst_gain = np.mean([mean_of(runs, "worst_dice") - mean_of(found[(target, size, "random", 5)], "worst_dice")
                          for target, (size, runs) in worst]) if worst else None
    how_read = ""
    if dispatched:
        sizes = sorted({key[1] for key in found})
        stands_for = "; ".join(f"in rounds of {size} {rule_for(rule, size)}'s" for size in sizes)
        how_read = (f"; {rule}, the dock's default, picks as the rule it stands for ({stands_for}), so its rounds "
                    "are those rounds")
    return "\n\n".join([
        "Each strategy − random, test Dice averaged over the targets (each target's seeds and test images "
        f"resampled within it), mean [95% interval]{how_read}:",
        report.markdown_table(["labels", *[f"{s} − random" for s in present], "targets"], table),
        f"The product's rule ({rule}) significantly below random: "
        + ("; ".join(below) if below else "nowhere measured") + ".",
        f"Worst test image's Dice after 5 labels, {rule} (mean over seeds): " + ("; ".join(worst_lines) or "–")
        + (f"; mean difference over the targets {worst_gain:+.3f}." if worst_gain is not None else "."),
        labels_to_reach_markdown(rows, goal_labels, rule),
    ])


def labels_to_reach_markdown(rows: list[dict[str, Any]], goal_labels: int, strategy: str = PRODUCT_RULE) -> str:
    """Per target, how many labels ``strategy`` needs for its mean Dice to reach random's at ``goal_labels``."""
    found = with_rule(cells(rows), strategy)
    lines = []
    for target in targets_of(rows):
        reference = next((runs for (t, _, s, n), runs in sorted(found.items(), key=lambda kv: kv[0][1])
                          if (t, s, n) == (target, "random", goal_labels)), None)
        if reference is None:
            lines.append(f"* {target}: random at {goal_labels} labels not measured yet")
            continue
        goal = mean_of(reference)
        reached = sorted((n, size) for (t, size, s, n), runs in found.items()
                         if (t, s) == (target, strategy) and mean_of(runs) >= goal)
        if reached:
            n, size = reached[0]
            lines.append(f"* {target}: {n} labels in rounds of {size} (random at {goal_labels}: {goal:.3f})")
        else:
            most = max((n for (t, _, s, n) in found if (t, s) == (target, strategy)), default=0)
            lines.append(f"* {target}: not within {most} labels (random at {goal_labels}: {goal:.3f})")
    return f"Labels {strategy} needs for its mean Dice to reach random's at {goal_labels} labels:\n\n" + "\n".join(lines)


def detail_markdown(rows: list[dict[str, Any]]) -> str:
    """Per target and round size: every strategy's mean test Dice, its worst-image Dice and its difference to random."""
    found = cells(rows)
    parts = []
    for target in targets_of(rows):
        for size in sorted({key[1] for key in found if key[0] == target}):
            present = [s for s in STRATEGIES if (target, size, s) in {k[:3] for k in found}]
            ns = sorted({key[3] for key in found if key[:2] == (target, size)})

            def cell(strategy: str, n: int, field: str) -> str:
                runs = found.get((target, size, strategy, n))
                if not runs:
                    return "–"
                return f"{mean_of(runs, field):.3f} ± {np.std([r[field] for r in runs.values()]):.3f} ({len(runs)})"

            def versus(strategy: str, n: int) -> str:
                interval = paired(found.get((target, size, strategy, n), {}), found.get((target, size, "random", n), {}))
                return str(interval) if interval else "–"

            others = [s for s in present if s != "random"]
            parts += [
                f"### {target}, rounds of {size}",
                "Test Dice, mean ± std over seeds (seeds):",
                report.markdown_table(["labels", *present], [[n, *[cell(s, n, "dice") for s in present]] for n in ns]),
                "Worst test image's Dice, mean ± std over seeds (seeds):",
                report.markdown_table(["labels", *present], [[n, *[cell(s, n, "worst_dice") for s in present]] for n in ns]),
                "Paired differences to random, mean [95% bootstrap interval over seeds and test images]:",
                report.markdown_table(["labels", *[f"{s} − random" for s in others]],
                                      [[n, *[versus(s, n) for s in others]] for n in ns]),
            ]
    return "\n\n".join(parts)
