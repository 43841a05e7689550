"""A viewer killed during a refinement leaves no training process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir() or not hasattr(signal, "SIGKILL"),
                                reason="needs Linux /proc and POSIX signals")

VIEWER = """
import numpy as np
from napari_hybridseg.data.datasets import Sample
from napari_hybridseg.learn.finetune import default_finetune_train_config
from napari_hybridseg.learn.refine import RefineJob
from napari_hybridseg.learn.refine_process import run_in_child_process
from napari_hybridseg.model.precond import HybridSegModel
from napari_hybridseg.model.checkpoint import model_metadata

model = HybridSegModel(3, 2, base_channels=8, channel_mults=(1, 2))
rng = np.random.default_rng(0)
samples = [Sample("a", rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), (rng.random((48, 48)) > 0.5).astype(np.uint8))]
job = RefineJob(model, model_metadata(model), samples, default_finetune_train_config(steps=10**9, batch_size=2, crop_size=32))
run_in_child_process(job)
"""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (gone) could reap it


def test_killing_the_viewer_mid_refinement_stops_the_training_process():
    viewer = subprocess.Popen([sys.executable, "-c", VIEWER], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (children := _children(viewer.pid)):
        assert viewer.poll() is None and time.monotonic() < deadline, "the training process never started"
        time.sleep(0.2)
    time.sleep(3)  # let it train
    (child,) = children
    assert _alive(child)
    viewer.kill()
    viewer.wait()
    deadline = time.monotonic() + 60
    while _alive(child):
        assert time.monotonic() < deadline, "the training process outlived the viewer"
        time.sleep(0.2)
