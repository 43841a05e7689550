"""The label-efficiency report as a page: its JSON (the numbers) and, from the JSON alone, its markdown section and
plots, so ``--report-only`` rebuilds the section byte for byte."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .. import report
from ..stats import Interval
from .plan import ARMS, Budget, Variant
from .records import Records
from .summary import methods_present, pair_entry, report_rows


def _n_label(n: int, pool_size: int) -> str:
    return f"{n} (pool)" if n == pool_size else str(n)


def _interval(i: dict[str, Any]) -> str:
    return str(Interval(i["mean"], i["low"], i["high"], i["n_seeds"]))


def machines_line(rows: list[dict[str, Any]]) -> str:
    """The machines the runs were made on (early records do not name theirs)."""
    counts = Counter(r.get("machine") for r in rows)
    unrecorded = counts.pop(None, 0)
    if not unrecorded and len(counts) == 1:
        return next(iter(counts))

    def runs(n: int) -> str:
        return f"{n} run" + ("s" if n != 1 else "")

    parts = [f"{machine} ({runs(n)})" for machine, n in counts.most_common()]
    if unrecorded:
        parts.append(f"{runs(unrecorded)} from before records named their machine")
    return "; ".join(parts)


def build(records: Records, protocol: str, variant: Variant, budget: Budget, command: str, earlier: dict | None,
          baseline: Variant = Variant(finetuned_half_at=0.0), main: bool = True,
          only_pairs: set[str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report's JSON and the records it keeps. The main report shows each pair's arms at its chosen settings
    and keeps every record of the work folder (the superset a new work folder is rebuilt from); a named one
    (``main`` false) shows the other pretraining settings of its pairs (``only_pairs``) as ``<arm>@<setting>``
    too and keeps their records. Pairs of ``earlier`` (the report's previous JSON) with no records now are carried
    over unchanged. ``baseline``: the fine-tuning a variant's runs are compared with, paired."""
    of_report = [r for r in records.rows if only_pairs is None or r["pair"] in only_pairs]
    by_pair = report_rows(of_report, protocol, variant, budget, other_settings=not main)
    baseline_by_pair = report_rows(of_report, protocol, baseline, budget, other_settings=not main)
    pairs = [pair_entry(rows, shown, baseline_by_pair.get(name, ({}, []))[1], variant.tag)
             for name, (shown, rows) in sorted(by_pair.items())]  # by name: never the records' order
    recorded = {(p["source"], p["target"]) for p in pairs}
    carried = [p for p in (earlier or {}).get("pairs", []) if (p["source"], p["target"]) not in recorded]
    rows = [r for _, pair_rows in by_pair.values() for r in pair_rows]
    pretrain_seconds = [float(p.read_text()) for p in records.path.parent.glob("pretrain/*.seconds")]
    data = {
        "command": command, "date": report.today(), "protocol": protocol, "finetune": variant.tag, "machines": machines_line(rows),
        "compute": {"runs": len(rows), "run_hours": sum(r["seconds"] for r in rows) / 3600,
                    "source_models": len(pretrain_seconds), "pretrain_hours": sum(pretrain_seconds) / 3600},
        "pairs": pairs + carried,
    }
    kept = records.rows if main else [r for r in records.rows if r["protocol"] == protocol and (
        r["pair"] in by_pair or (r["source"], r["target"]) in {(p["source"], p["target"]) for p in carried})]
    return data, kept


def pair_markdown(entry: dict[str, Any]) -> str:
    pool = entry["n_pool"]
    cells = {(c["method"], c["n_labels"]): c for c in entry["cells"]}
    intervals = {(i["method"], i["n_labels"]): i for i in entry["hybrid_minus"]}
    ns = sorted({n for _, n in cells})
    present = methods_present(m for m, _ in cells)
    table = report.markdown_table(
        ["N labels", *present],
        [[_n_label(n, pool), *[(f"{cells[(m, n)]['mean']:.3f} ± {cells[(m, n)]['std']:.3f} ({cells[(m, n)]['n_seeds']})"
                                if (m, n) in cells else "–") for m in present]] for n in ns])
    others = [m for m in present if m != "hybrid"]
    if intervals:
        diff = report.markdown_table(
            ["N labels", *[f"hybrid − {m}" for m in others]],
            [[_n_label(n, pool), *[_interval(intervals[(m, n)]) if (m, n) in intervals else "–" for m in others]]
             for n in ns if any((m, n) in intervals for m in others)])
        paired = f"Paired differences, mean [95% bootstrap interval over seeds and test images]:\n\n{diff}"
    elif not others:
        paired = "One arm only: no paired differences between arms."
    else:
        paired = "No paired intervals: these runs have no per-image records."
    text = f"Dice, mean ± std over seeds (number of seeds):\n\n{table}\n\n{paired}"
    if "against_baseline" in entry:
        against = {(i["method"], i["n_labels"]): i for i in entry["against_baseline"]["intervals"]}
        methods, base = methods_present(m for m, _ in against), entry["against_baseline"]["baseline"]
        rows = [[_n_label(n, pool), *[f"{_interval(against[(m, n)])} ({against[(m, n)]['n_seeds']})"
                                      if (m, n) in against else "–" for m in methods]]
                for n in sorted({n for _, n in against})]
        text += (f"\n\nAgainst {base} (plain fine-tuning at the pair's chosen steps), paired on the same source models, "
                 "seeds and labelled images (mean [95% interval] (seeds)):\n\n"
                 + report.markdown_table(["N labels", *[f"{m}: {entry['finetune']} − {base}" for m in methods]], rows))
    return text


def plot_path(folder: Path, section: str, entry: dict[str, Any]) -> Path:
    return folder / f"{section}_{entry['target']}.png"


def plot_pair(entry: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {(c["method"], c["n_labels"]): c for c in entry["cells"]}
    ns = sorted({n for _, n in cells})
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for method in methods_present(m for m, _ in cells):
        xs = [i for i, n in enumerate(ns) if (method, n) in cells]
        ax.errorbar(xs, [cells[(method, ns[i])]["mean"] for i in xs], yerr=[cells[(method, ns[i])]["std"] for i in xs],
                    marker="o", capsize=3, label=method)
    ax.set_xticks(range(len(ns)), [_n_label(n, entry["n_pool"]) for n in ns])
    report.style_dice_axes(ax, "labelled target images", f"{entry['source']} → {entry['target']}")
    report.save_figure(fig, path)


def markdown(data: dict[str, Any], section: str, folder: Path, page: Path) -> str:
    """The section of ``page`` that shows the report ``section`` whose JSON and plots are in ``folder``."""
    parts = []
    for entry in data["pairs"]:
        plot = os.path.relpath(plot_path(folder, section, entry), page.parent)
        parts.append(f"### {entry['source']} → {entry['target']}\n\n![]({plot})\n\n"
                     f"{entry['settings'][0].upper()}{entry['settings'][1:]}.\n\n{pair_markdown(entry)}")
    compute = data["compute"]
    models = compute["source_models"]
    pretraining = (f"plus {compute['pretrain_hours']:.2f} h of pretraining the {models} source model"
                   f"{'s' * (models != 1)} its work folder held" if models
                   else "not counting pretraining (its work folder held none of the source models)")
    return ("\n\n".join(parts)
            + f"\n\nCompute: {compute['run_hours']:.2f} h of fine-tuning and scoring over {compute['runs']} runs, "
              f"{pretraining}.  \nFine-tuning of the network arms: {data['finetune']}.  \n"
              + report.footer(data["command"], data["machines"], folder / f"{section}.json", data.get("date")))


HEADLINE_N = 5


def overview_markdown(data: dict[str, Any], detail_page: Path, page: Path) -> str:
    """Every pair at the headline N in one table, and where each pair's whole report is."""
    rows = []
    for entry in data["pairs"]:
        cells = {c["method"]: c for c in entry["cells"] if c["n_labels"] == HEADLINE_N}
        intervals = {i["method"]: i for i in entry["hybrid_minus"] if i["n_labels"] == HEADLINE_N}
        if not cells:
            continue
        arms = methods_present(cells)
        rows.append([f"{entry['source']} → {entry['target']}",
                     *[f"{cells[m]['mean']:.3f}" if m in cells else "–" for m in ARMS],
                     *[_interval(intervals[m]) if m in intervals else "–" for m in ("supervised", "scratch")],
                     min(cells[m]["n_seeds"] for m in arms)])
    table = report.markdown_table(["pair", *ARMS, "hybrid − supervised", "hybrid − scratch", "seeds"], rows)
    link = os.path.relpath(detail_page, page.parent)
    return (f"Dice on each target's test split with {HEADLINE_N} labelled images (mean over seeds; differences paired, "
            f"mean [95% bootstrap interval over seeds and test images]):\n\n{table}\n\n"
            f"Every N from zero-shot to the whole pool, every arm, with plots: [{detail_page.name}]({link}).  \n"
            + report.footer(data["command"], data["machines"], detail_page.with_suffix(".json"), data.get("date")))


def write(data: dict[str, Any], section: str, folder: Path, page: Path, heading: str = "",
          detail_page: Path | None = None) -> None:
    """The plots and the section of ``page``, from the report's JSON alone; with ``detail_page``, ``page`` has the
    overview (:func:`overview_markdown`) and ``detail_page`` each pair's report, as its section ``<section>_pairs``."""
    for entry in data["pairs"]:
        plot_pair(entry, plot_path(folder, section, entry))
    if detail_page is None:
        report.update_section(section, heading + markdown(data, section, folder, page), page)
        return
    report.update_section(f"{section}_pairs", heading + markdown(data, section, folder, detail_page), detail_page)
    report.update_section(section, overview_markdown(data, detail_page, page), page)


def detail_page_of(section: str, folder: Path, page: Path, main: bool) -> Path | None:
    """Where the main report's pairs go when its section is on the results page: a page of their own."""
    return folder / f"{section}.md" if main and page.name == report.BENCHMARKS_MD.name else None


def save(data: dict[str, Any], kept: list[dict[str, Any]], section: str, folder: Path) -> Path:
    report.save_records(kept, folder, section)
    return report.write_json(section, data, folder)


def load(section: str, folder: Path) -> dict[str, Any] | None:
    path = folder / f"{section}.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_report(records: Records, protocol: str, variant: Variant, budget: Budget, command: str, section: str,
           folder: Path, page: Path, main: bool = True, only_pairs: set[str] | None = None,
           baseline: Variant = Variant(finetuned_half_at=0.0)) -> Path:
    """The report ``section`` of ``records`` (:func:`build`): its JSON and records in ``folder``, its plots, and its
    section of ``page``."""
    data, kept = build(records, protocol, variant, budget, command, load(section, folder), baseline, main, only_pairs)
    path = save(data, kept, section, folder)
    write(data, section, folder, page, detail_page=detail_page_of(section, folder, page, main))
    return path
