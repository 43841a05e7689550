"""The label-efficiency report's numbers, from the records: per pair, mean ± std Dice per arm and N, paired
intervals of hybrid against every other arm, and of a fine-tuning variant against plain fine-tuning."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..stats import paired_bootstrap
from .plan import ARMS, PRETRAINED, Budget, Variant


def setting_name(method: str, tag: str) -> str:
    """The empty tag is the setting an arm had before it could vary: for diffusion, no σ_min share."""
    return tag or ("clean0" if method == "diffusion" else "default")


def methods_present(methods: Iterable[str]) -> list[str]:
    """``methods`` in the arms' order, then other pretraining settings (``hybrid@<setting>``)."""
    present = set(methods)
    return [m for m in ARMS if m in present] + sorted(present - set(ARMS))


def report_rows(rows: list[dict[str, Any]], protocol: str, variant: Variant, budget: Budget,
                other_settings: bool = True) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
    """The records of one report per pair, with each pretrained arm's setting shown under the arm's name: the
    pair's setting in ``budget``, or the most-run setting where that one has not run on the pair yet. Runs of
    other settings become arms of their own, ``<arm>@<setting>``, compared paired (or are left out, with
    ``other_settings`` false). ``variant`` is taken as it runs on each pair (``Variant.on_pair``)."""
    tags = {pair: variant.on_pair(budget, pair).tag for pair in {r["pair"] for r in rows}}
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["protocol"] == protocol and r["variant"] == tags[r["pair"]]:
            by_pair.setdefault(r["pair"], []).append(r)
    out = {}
    for pair, pair_rows in by_pair.items():
        shown = {}
        for method, wanted in budget.for_pair_name(pair).shown_tags.items():
            run = [r["pretrain"] for r in pair_rows if r["method"] == method]
            shown[method] = wanted if wanted in run or not run else max(set(run), key=run.count)
        kept = []
        for r in pair_rows:
            if r["method"] in shown and r["pretrain"] != shown[r["method"]]:
                if other_settings:
                    kept.append({**r, "method": f"{r['method']}@{setting_name(r['method'], r['pretrain'])}"})
            else:
                kept.append(r)
        out[pair] = (shown, kept)
    return out


def cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std Dice over seeds per (method, N)."""
    by_cell: dict[tuple, dict[int, float]] = {}
    for r in rows:
        by_cell.setdefault((r["method"], r["n_labels"]), {})[r["seed"]] = r["dice"]
    return [{"method": m, "n_labels": n, "mean": float(np.mean(list(d.values()))),
             "std": float(np.std(list(d.values()))), "n_seeds": len(d)}
            for (m, n), d in sorted(by_cell.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _interval(method: str, n: int, a: list, b: list) -> dict[str, Any]:
    i = paired_bootstrap(np.array(a), np.array(b))
    return {"method": method, "n_labels": n, "mean": i.mean, "low": i.low, "high": i.high, "n_seeds": i.n_seeds}


def against_hybrid(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired intervals of hybrid − each other arm at each N, over the seeds both have per-image records of."""
    runs: dict[tuple, dict[int, list[float]]] = {}
    for r in rows:
        if "per_image_dice" in r:
            runs.setdefault((r["method"], r["n_labels"]), {})[r["seed"]] = r["per_image_dice"]
    out = []
    for (method, n), by_seed in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        hybrid = runs.get(("hybrid", n), {})
        seeds = sorted(set(by_seed) & set(hybrid))
        if method != "hybrid" and seeds:
            out.append(_interval(method, n, [hybrid[s] for s in seeds], [by_seed[s] for s in seeds]))
    return out


def against_baseline(rows: list[dict[str, Any]], baseline_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired intervals of each (arm, N) of a fine-tuning variant against the baseline fine-tuning's runs of the
    same arm, source model, seed and therefore labelled images; none where both are the same runs (a pair whose
    chosen fine-tuning is the baseline)."""
    if rows and baseline_rows and rows[0]["variant"] == baseline_rows[0]["variant"]:
        return []

    def by_run(some: list[dict[str, Any]]) -> dict[tuple, list[float]]:
        return {(r["method"].split("@")[0], r["pretrain"], r["n_labels"], r["seed"]): r["per_image_dice"]
                for r in some if "per_image_dice" in r}

    ours, baseline = by_run(rows), by_run(baseline_rows)
    shown_as = {(r["method"].split("@")[0], r["pretrain"]): r["method"] for r in rows}
    keys_of: dict[tuple, list[tuple]] = {}
    for run_key in sorted(ours):
        if run_key in baseline and run_key[2] > 0:  # with no labels there is no fine-tuning to differ
            keys_of.setdefault((shown_as[run_key[:2]], run_key[2]), []).append(run_key)
    return [_interval(m, n, [ours[k] for k in keys], [baseline[k] for k in keys])
            for (m, n), keys in sorted(keys_of.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def pair_entry(pair_rows: list[dict[str, Any]], shown: dict[str, str], baseline_rows: list[dict[str, Any]],
               variant_tag: str) -> dict[str, Any]:
    """One pair's part of the report's JSON: everything its tables and plot are drawn from."""
    first = pair_rows[0]
    settings = [f"{m} pretraining: {setting_name(m, shown[m])}" for m in PRETRAINED
                if any(r["method"] == m for r in pair_rows)]
    if first["variant"] != variant_tag:
        settings.append(f"fine-tuning: {first['variant']} (chosen for this pair on validation)")
    entry = {
        "source": first["source"], "target": first["target"], "n_pool": first["n_pool"],
        "finetune": first["variant"], "pretraining": {m: setting_name(m, shown[m]) for m in PRETRAINED},
        "settings": "; ".join(settings) or "no pretrained arm",
        "cells": cells(pair_rows), "hybrid_minus": against_hybrid(pair_rows),
        "results": [{k: r[k] for k in ("method", "n_labels", "seed", "dice", "iou", "seconds")} for r in pair_rows],
    }
    baseline = against_baseline(pair_rows, baseline_rows)
    if baseline:
        entry["against_baseline"] = {"baseline": baseline_rows[0]["variant"], "intervals": baseline}
    return entry
