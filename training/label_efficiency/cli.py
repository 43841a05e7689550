"""The label-efficiency benchmark's command line."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch

from napari_hybridseg.learn.train import PRECISIONS, native_bfloat16

from .. import report
from . import page
from .plan import ARMS, FULL, QUICK, Variant, default_pairs, default_section, main_section, parse_pair
from .records import Records
from .runner import run

FOLDER = report.results_dir("label_efficiency")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.label_efficiency",
                                description="How much each pretraining buys with 1, 2, 5, 10 labelled target images.")
    p.add_argument("--data-root", type=Path, default=report.REPO.parent / "shared" / "data",
                   help="folder holding retina/, dsb2018/, lungs/ and polyps/ (default: ../shared/data)")
    p.add_argument("--pair", type=parse_pair, action="append", help="ROOT:SOURCE:TARGET (repeatable); default: the five pairs")
    p.add_argument("--source-split", default="train")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--quick", action="store_true", help="tiny budget: the whole pipeline in minutes")
    p.add_argument("--seeds", type=int)
    p.add_argument("--n-labels", type=int, nargs="+")
    p.add_argument("--protocol", choices=["test", "validation"], default="test",
                   help="validation: label from 70%% of the pool and score on the other 30%% (for choosing settings)")
    g = p.add_argument_group("settings chosen per pair (Budget.chosen); a flag sets one for every pair")
    g.add_argument("--clean-fraction", type=float,
                   help=f"share of each hybrid pretraining batch at σ_min (default {FULL.clean_fraction})")
    g.add_argument("--invert-probability", type=float,
                   help="share of every pretrained arm's crops with inverted intensities (default 0)")
    g.add_argument("--lambda-image", type=float,
                   help=f"weight of the denoising term in hybrid pretraining (default {FULL.lambda_image:g}; the mask term's is 1)")
    g.add_argument("--sigma-log-mean", type=float,
                   help=f"mean of log σ, the noise levels of hybrid pretraining's noised crops (default "
                        f"{FULL.sigma_log_mean:g}: median σ {math.exp(FULL.sigma_log_mean):.2f})")
    g.add_argument("--finetune-steps", type=int, help=f"fine-tuning steps of every network arm (default {FULL.finetune_steps})")
    g.add_argument("--finetuned-half-at", type=float,
                   help="K: with N labelled images the pretrained arms keep the share N / (N + K) of the fine-tuned "
                        "weights, the rest from the start (WiSE-FT by the number of labels; 0: off)")
    g = p.add_argument_group("other settings")
    g.add_argument("--pretrain-seed", type=int,
                   help="every pretrained arm's pretraining seed (default 0; another seed pretrains source models "
                        "of its own, tag seedK, to measure how much a result owes to one source model)")
    g.add_argument("--finetune-lr", type=float,
                   help="the pretrained arms' fine-tuning learning rate (default: the product's, as scratch's)")
    g.add_argument("--scratch-lr", type=float,
                   help="scratch's fine-tuning learning rate (default: the product's); a variant's tag names it, so "
                        "give it with --arms scratch alone")
    g.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="every network arm's fine-tuning arithmetic: bfloat16 runs the convolutions in bfloat16 "
                        "(faster on a CPU with AVX-512 BF16 or AMX; refused on one without)")
    g = p.add_argument_group("running and reporting")
    g.add_argument("--threads", type=int, default=2, help="torch threads of each worker (default 2)")
    g.add_argument("--workers", type=int, default=1,
                   help="runs at once, each in its own process of --threads threads (default 1); on a 2-core "
                        "machine --workers 2 --threads 1 does the most runs an hour")
    g.add_argument("--work", type=Path, help="records and source models (default: runs/label_efficiency[-quick])")
    g.add_argument("--results-dir", type=Path, default=FOLDER)
    g.add_argument("--benchmarks-md", type=Path,
                   help="the page of the report's section (default: BENCHMARKS.md for the main report, else "
                        "<name>.md beside the report's JSON)")
    g.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the section and plots from the report's JSON; with --work, rebuild "
                        "the report (JSON too) from that work folder's records")
    g.add_argument("--report-name", help="the report's name: its section and results files (default: from the "
                                         "protocol and the settings that differ from the chosen ones)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    given = {"seeds": args.seeds, "n_labels": tuple(args.n_labels or ()), "clean_fraction": args.clean_fraction,
             "invert_probability": args.invert_probability, "lambda_image": args.lambda_image,
             "sigma_log_mean": args.sigma_log_mean, "pretrain_seed": args.pretrain_seed}
    budget = base.overridden(**{k: v for k, v in given.items() if v is not None and v != ()})
    pairs = [replace(pr, source_split=args.source_split) for pr in (args.pair or default_pairs(args.data_root))]
    try:
        variant = Variant(finetune_steps=args.finetune_steps, lr=args.finetune_lr, scratch_lr=args.scratch_lr,
                          finetuned_half_at=args.finetuned_half_at, precision=args.precision)
    except ValueError as error:
        p.error(str(error))
    if args.workers < 1 or args.threads < 1:
        p.error("--workers and --threads must be at least 1")
    section = args.report_name or default_section(args.quick, args.protocol, variant, base, budget,
                                                  [pr.name for pr in pairs])
    main_report = section == main_section(args.quick, args.protocol)
    folder = args.results_dir
    md = args.benchmarks_md or (report.BENCHMARKS_MD if main_report else folder / f"{section}.md")
    if args.report_only and args.work is None:
        data = page.load(section, folder)
        if data is None:
            p.error(f"no report {folder / section}.json to rebuild the section from")
        if not isinstance(data, dict):  # a study's report in the format of the commit that wrote it
            p.error(f"{folder / section}.json predates this report format: its page {section}.md is as its command "
                    "wrote it; rebuild the report from its records with --work")
        page.write(data, section, folder, md, detail_page=page.detail_page_of(section, folder, md, main_report))
        return 0
    if args.precision == "bfloat16" and not native_bfloat16(torch.device("cpu")):
        p.error("this CPU has no native bfloat16 arithmetic (AVX-512 BF16 or AMX): bfloat16 would be slower, not faster")
    work = args.work or report.REPO / "runs" / ("label_efficiency-quick" if args.quick else "label_efficiency")
    work.mkdir(parents=True, exist_ok=True)
    (work / "budget.json").write_text(json.dumps(asdict(budget), indent=1) + "\n")
    try:
        records = Records(work / "records.jsonl") if args.report_only else run(
            pairs, args.arms, budget, variant, args.protocol, work, args.threads, args.workers)
    except KeyboardInterrupt:
        kept = len(Records(work / "records.jsonl").rows)
        print(f"stopped: {kept} finished run(s) on record in {work / 'records.jsonl'}; the same command resumes from there",
              file=sys.stderr)
        return 130
    given_args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]  # the one that makes the records
    command = "python -m training.label_efficiency " + " ".join(shlex.quote(a) for a in given_args)
    named_pairs = {pr.name for pr in pairs} if args.pair else None
    path = page.write_report(records, args.protocol, variant, budget, command.strip(), section, folder, md,
                             main=main_report, only_pairs=None if main_report else named_pairs)
    print(f"wrote {path}")
    return 0
