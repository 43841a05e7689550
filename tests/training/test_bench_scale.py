"""The scale benchmark's measurements run and report what they measured (tiny sizes)."""

from __future__ import annotations

from training import bench_scale


def test_predict_big_reports_time_memory_and_engine():
    row = bench_scale.predict_big(size=96, threads=1)
    assert row["size"] == 96 and len(row["seconds"]) == bench_scale.REPEATS
    assert row["engine"] in ("OnnxModel", "HybridSegModel") and row["peak_rss_gb"] >= row["rss_before_predict_gb"] > 0
    assert bench_scale.predict_big(size=96, threads=1, engine="torch")["engine"] == "HybridSegModel"


def test_open_project_times_creation_reopening_and_navigation():
    row = bench_scale.open_project(n_images=4)
    assert row["n_images"] == 4 and row["create_s"] > 0 and row["reopen_s"] > 0
    assert 0 < row["navigate_step_ms_p50"] <= row["navigate_step_ms_max"]


def test_score_images_scores_every_image_in_the_child_process():
    row = bench_scale.in_child("score_images", n_images=2, threads=1)
    assert row["n_images"] == 2 and row["seconds"] > 0 and row["settings"]["samples"] >= 2
    assert row["signals"] and row["plan_seconds"] > 0  # the product's ranking: signals, then the plan
    alone = bench_scale.in_child("score_images", n_images=2, threads=1, signals=False)
    assert not alone["signals"] and alone["plan_seconds"] is None


def test_linearity_is_one_for_a_linear_cost():
    rows = [{"seconds": 2.0, "n": 10}, {"seconds": 8.0, "n": 40}]
    assert bench_scale._linearity(rows, "n") == 1.0
