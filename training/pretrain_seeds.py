"""How much of one pretraining method's lead over another is its source model's luck.

The label-efficiency benchmark pretrains one source model per arm, so its paired intervals (over fine-tuning seeds
and test images) hold that model fixed. Pretrain each arm again with other seeds (``python -m
training.label_efficiency ... --pretrain-seed K``), then compare the two arms per pretraining seed and over all of
them, with a bootstrap that resamples the source models too:

    python -m training.pretrain_seeds --records runs/le/records.jsonl --pair retina-drive-chase --n-labels 5

Writes ``benchmarks/results/pretrain_seeds/<name>.json`` and the BENCHMARKS.md section ``<name>`` (default
``pretrain_seeds``); ``--report-only`` rebuilds the section from the JSON.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import report
from .label_efficiency import FULL, Budget, Records, Variant
from .stats import paired_bootstrap, paired_bootstrap_over_source_models

FOLDER = report.results_dir("pretrain_seeds")


def runs_by_source_model(rows: list[dict[str, Any]], pair: str, protocol: str, method: str, n_labels: int,
                         pretrain_seeds: list[int], budget: Budget = FULL) -> dict[int, dict[int, dict[str, Any]]]:
    """``{pretraining seed: {fine-tuning seed: record}}`` of ``method`` at ``n_labels`` on ``pair``, fine-tuned the
    pair's chosen way, from the source model each pretraining seed gives at the pair's chosen settings."""
    variant = Variant().on_pair(budget, pair).tag
    out: dict[int, dict[int, dict[str, Any]]] = {}
    for k in pretrain_seeds:
        tag = budget.overridden(pretrain_seed=k).for_pair_name(pair).pretrain_tag(method)
        runs = {r["seed"]: r for r in rows
                if (r["pair"], r["protocol"], r["variant"], r["method"], r["pretrain"], r["n_labels"])
                == (pair, protocol, variant, method, tag, n_labels)}
        if runs:
            out[k] = runs
    return out


def compare(rows: list[dict[str, Any]], pair: str, protocol: str, arms: tuple[str, str], n_labels: int,
            pretrain_seeds: list[int]) -> dict[str, Any]:
    """Per pretraining seed and over all of them: each arm's mean Dice and the paired difference of the two."""
    first, second = (runs_by_source_model(rows, pair, protocol, m, n_labels, pretrain_seeds) for m in arms)
    models = sorted(set(first) & set(second))
    if not models:
        raise ValueError(f"no pretraining seed of {pretrain_seeds} has runs of both {arms[0]} and {arms[1]} at "
                         f"N = {n_labels} on {pair} ({protocol})")
    seeds = sorted(set.intersection(*(set(first[k]) & set(second[k]) for k in models)))
    a = np.array([[first[k][s]["per_image_dice"] for s in seeds] for k in models])
    b = np.array([[second[k][s]["per_image_dice"] for s in seeds] for k in models])
    per_model = [{"pretrain_seed": k, arms[0]: float(a[i].mean()), arms[1]: float(b[i].mean()),
                  "difference": str(paired_bootstrap(a[i], b[i]))} for i, k in enumerate(models)]
    pooled = paired_bootstrap_over_source_models(a, b)
    arm_means = {m: x.mean(axis=(1, 2)) for m, x in zip(arms, (a, b))}
    unnamed = "older runs whose records did not name their machine"
    machines = sorted({str(x[k][s].get("machine", unnamed)) for x in (first, second) for k in models for s in seeds})
    return {
        "pair": pair, "protocol": protocol, "n_labels": n_labels, "arms": list(arms), "finetune_seeds": seeds,
        "machines": machines,
        "per_pretrain_seed": per_model,
        "over_pretrain_seeds": {
            **{m: {"mean": float(v.mean()), "std_between_source_models": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
               for m, v in arm_means.items()},
            "difference": {"mean": pooled.mean, "low": pooled.low, "high": pooled.high, "pretrain_seeds": pooled.n_seeds},
        },
    }


def markdown(result: dict[str, Any]) -> str:
    x, y = result["arms"]
    rows = [[r["pretrain_seed"], f"{r[x]:.3f}", f"{r[y]:.3f}", r["difference"]] for r in result["per_pretrain_seed"]]
    over = result["over_pretrain_seeds"]
    d = over["difference"]
    rows.append([f"all {d['pretrain_seeds']} (three-level bootstrap)",
                 f"{over[x]['mean']:.3f} (sd {over[x]['std_between_source_models']:.3f})",
                 f"{over[y]['mean']:.3f} (sd {over[y]['std_between_source_models']:.3f})",
                 f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"])
    return (f"### {result['pair']}, N = {result['n_labels']} ({result['protocol']} split; fine-tuning seeds "
            f"{', '.join(map(str, result['finetune_seeds']))})\n\n"
            + report.markdown_table(["pretraining seed", x, y, f"{x} − {y} [95% interval]"], rows))


def section(data: dict[str, Any], json_path: Path) -> str:
    """The section, from the JSON alone."""
    results = data["results"]
    machines = sorted({m for r in results for m in r["machines"]})
    return ("Each arm pretrained with several seeds (`--pretrain-seed`), every other setting the pair's chosen one; "
            "the same fine-tuning seeds (labelled images) and test images for every source model. Per seed: "
            "paired interval over fine-tuning seeds and test images; over all seeds: the mean of the differences, "
            "with a bootstrap that resamples the source models too (coarse with so few), and each arm's spread "
            "between its source models.\n\n"
            + "\n\n".join(markdown(r) for r in results)
            + "\n\n" + report.footer(data["command"], "; ".join(machines), json_path, data.get("date")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.pretrain_seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=Path, default=report.results_dir("label_efficiency") / "label_efficiency_records.jsonl",
                   help="the label-efficiency benchmark's records (a work folder's records.jsonl)")
    p.add_argument("--pair", action="append", help="pair name, e.g. retina-drive-chase (repeatable; required)")
    p.add_argument("--protocol", choices=["test", "validation"], default="test")
    p.add_argument("--arms", nargs=2, default=["hybrid", "supervised"])
    p.add_argument("--n-labels", type=int, nargs="+", default=[5])
    p.add_argument("--pretrain-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--name", default="pretrain_seeds", help="the results file and BENCHMARKS.md section")
    p.add_argument("--results-dir", type=Path, default=FOLDER)
    p.add_argument("--benchmarks-md", type=Path, default=report.results_dir("pretrain_seeds") / "pretrain_seeds.md",
                   help="the page its section goes to (default: its report page beside its JSON)")
    p.add_argument("--report-only", action="store_true", help="rebuild the section from the JSON of --name")
    args = p.parse_args(argv)
    json_path = args.results_dir / f"{args.name}.json"
    if args.report_only:
        report.update_section(args.name, section(report.read_json(args.name, args.results_dir), json_path),
                              args.benchmarks_md)
        return 0
    if not args.pair:
        p.error("give at least one --pair")
    if not args.records.is_file():
        p.error(f"no records at {args.records}")

    rows = Records(args.records).rows
    try:
        results = [compare(rows, pair, args.protocol, tuple(args.arms), n, args.pretrain_seeds)
                   for pair in args.pair for n in args.n_labels]
    except ValueError as error:
        p.error(str(error))
    command = "python -m training.pretrain_seeds " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    data = {"command": command, "date": report.today(), "results": results}
    report.write_json(args.name, data, args.results_dir)
    report.update_section(args.name, section(data, json_path), args.benchmarks_md)
    for r in results:
        print(markdown(r), end="\n\n")
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
