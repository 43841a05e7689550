"""The label-efficiency time benchmark: what it counts and how it times."""

from training import bench_label_efficiency_time as bench
from training.label_efficiency import FULL, Pair


def test_the_plan_counts_every_run_step_and_source_model_of_the_full_benchmark(tiny_sample_root):
    pair = Pair(tiny_sample_root, "synth", "synth")  # a pool of 4: N = 1 and 2 with 5 seeds each, and the ceiling
    work = bench.planned_work([pair])[pair.name]
    fine_tuned_runs = 4 * (2 * FULL.seeds + 1)  # hybrid, supervised, diffusion, scratch
    assert work["network_runs"] == fine_tuned_runs + 2  # and zero-shot hybrid and supervised, scored only
    assert work["forest_runs"] == 2 * FULL.seeds + 1
    assert work["finetune_steps"] == fine_tuned_runs * FULL.finetune_steps
    assert work["pretrain_steps"] == 3 * FULL.pretrain_steps["*"]  # one source model per pretrained arm


def test_two_workers_time_their_steps_side_by_side():
    times = bench.measure_layout(bench.Layout(processes=2, threads=1, precision="float32"), steps=2)
    assert len(times) == 4 and all(t > 0 for t in times)
    assert bench.Layout(2, 1, "bfloat16").flags == "--workers 2 --threads 1 --precision bfloat16"
    assert bench.Layout(1, 2, "float32").flags == "--threads 2"
