"""Every generated section of BENCHMARKS.md, and of the report pages beside the results, is what its script's
``--report-only`` builds from the committed JSON, byte for byte: the pages never drift from the numbers."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from training import report

# (script, its --report-only arguments, the page, the section)
PAGES = [
    ("label_efficiency", [], report.BENCHMARKS_MD, "label_efficiency"),
    ("label_efficiency", [], report.results_dir("label_efficiency") / "label_efficiency.md", "label_efficiency_pairs"),
    ("pretrain_seeds", [], report.results_dir("pretrain_seeds") / "pretrain_seeds.md", "pretrain_seeds"),
    ("bench_speed", [], report.BENCHMARKS_MD, "speed"),
    ("bench_scale", [], report.BENCHMARKS_MD, "scale"),
    ("bench_ui_latency", [], report.BENCHMARKS_MD, "ui_latency"),
    ("bench_ui_latency", ["--navigate-every", "1e9"], report.BENCHMARKS_MD, "ui_latency_idle"),
    ("active_learning", [], report.BENCHMARKS_MD, "active_learning"),
    ("active_learning", [], report.results_dir("active_learning") / "active_learning_detail.md", "active_learning_detail"),
    ("instances", [], report.BENCHMARKS_MD, "instances"),
    ("start_models", [], report.BENCHMARKS_MD, "start_models"),
    ("start_models", ["--protocol", "validation"], report.results_dir("start_models") / "start_models_validation.md",
     "start_models_validation"),
    ("bench_choose", [], report.BENCHMARKS_MD, "bench_choose"),
    ("bench_launch", [], report.results_dir("launch") / "launch.md", "launch"),
    ("bench_label_efficiency_time", [], report.results_dir("label_efficiency_time") / "label_efficiency_time.md",
     "label_efficiency_time"),
    ("start_scale", [], report.results_dir("start_scale") / "start_scale.md", "start_scale"),
    ("compare_models", [], report.results_dir("compare_models") / "model_choice.md", "model_choice"),
    ("compare_models", ["--name", "model_choice_head"], report.results_dir("compare_models") / "model_choice_head.md",
     "model_choice_head"),
]


@pytest.mark.parametrize(("script", "args", "page", "section"), PAGES, ids=[p[3] for p in PAGES])
def test_a_section_is_rebuilt_byte_for_byte_from_its_json(script, args, page, section, monkeypatch):
    module = importlib.import_module(f"training.{script}")
    written: dict[tuple[str, Path], str] = {}

    def capture(name: str, markdown: str, path: Path = report.BENCHMARKS_MD) -> None:
        written[(name, Path(path))] = markdown.strip()

    for owner in {report, module, *[m for n, m in vars(module).items() if n in ("page", "cli")]}:
        if hasattr(owner, "update_section"):
            monkeypatch.setattr(owner, "update_section", capture)
    monkeypatch.setattr(report, "update_section", capture)
    monkeypatch.setattr(report, "save_figure", lambda fig, path: None)  # plots are drawn, not written
    assert module.main([*args, "--report-only"]) == 0
    assert written[(section, page)] == report.section(page.read_text(), section)


def test_every_generated_section_on_the_pages_has_its_script():
    on_pages = {(Path(md), name) for md in [report.BENCHMARKS_MD, *report.RESULTS.glob("*/*.md")]
                for name in re.findall(r"<!-- (\S+):start -->", Path(md).read_text())}
    checked = {(page, section) for _, _, page, section in PAGES}
    archived = {(md, name) for md, name in on_pages if md.parent.name == "label_efficiency" and md != report.BENCHMARKS_MD
                and name != "label_efficiency_pairs"}
    # the label-efficiency studies' reports (label_efficiency/<name>.md) are kept as their commands wrote them
    assert on_pages - archived == checked
