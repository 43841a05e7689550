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


def test_two_workers_time_their_steps_side_by_side(tmp_path):
    from napari_hybridseg.data.synthetic import write_sample_set

    write_sample_set(tmp_path / "retina", n_pool=5, n_test=1, shape=(64, 64), domain="chase")
    seconds = bench.measure_layout(bench.Layout(processes=2, threads=1, precision="float32"), 1, tmp_path)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert bench.step_flops() > 1e9  # batch 8 of 128² through the benchmark's U-Net, forward and backward
    assert bench.Layout(2, 1, "bfloat16").flags == "--workers 2 --threads 1 --precision bfloat16"
    assert bench.Layout(1, 2, "float32").flags == "--threads 2"
