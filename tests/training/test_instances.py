"""The instances benchmark end to end on tiny synthetic data: every run on record, results in the layout the
pages cite, resuming without redoing a run, and the section rebuilt byte for byte from the records."""

from __future__ import annotations

import json

import pytest

from training import instances, report


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("instances")
    args = ["--quick", "--work", str(work / "work"), "--threads", "1", "--results-dir", str(work / "results"),
            "--benchmarks-md", str(work / "BENCHMARKS.md")]
    assert instances.main(args) == 0
    return work, args


def test_every_run_is_on_record_in_the_pages_layout(quick_run):
    work, _ = quick_run
    listed = json.loads((work / "results" / "instances.json").read_text())
    assert [entry["target"] for entry in listed] == ["synthetic"]
    rows = listed[0]["results"]
    expected = {(m, 0, 0) for m in instances.METHODS} | {(m, 2, s) for m in instances.METHODS for s in (0, 1)}
    assert {(r["method"], r["n_labels"], r["seed"]) for r in rows} == expected
    assert all(0 <= r[k] <= 1 for r in rows for k in ("f1", "aji", "dice"))
    records = report.read_records(work / "work" / "records.jsonl")
    timing = next(r["timing"] for r in records if "timing" in r)
    assert timing["size"] == 256 and timing["split_ms"] > 0
    assert (work / "results" / "instances.png").is_file()


def test_the_section_names_the_goals_the_picture_and_the_command(quick_run):
    work, _ = quick_run
    text = report.section((work / "BENCHMARKS.md").read_text(), "instances")
    assert "instances − components" in text and "F1 @ IoU 0.5" in text
    assert "splitting a 256² prediction" in text and "instances.png" in text
    assert "python -m training.instances --quick" in text


def test_the_same_command_resumes_without_redoing_a_run(quick_run):
    work, args = quick_run
    records = work / "work" / "records.jsonl"
    before = records.read_text()
    assert instances.main(args) == 0
    assert records.read_text() == before


def test_report_only_rebuilds_the_section_byte_for_byte(quick_run):
    work, args = quick_run
    page = work / "BENCHMARKS.md"
    before = report.section(page.read_text(), "instances")
    page.write_text("# page\n")
    assert instances.main(["--report-only", *args[-4:]]) == 0
    assert report.section(page.read_text(), "instances") == before


def test_the_benchmark_needs_its_data():
    with pytest.raises(SystemExit):
        instances.main(["--work", "unused"])
