"""Fault injection: SIGKILL a process that is saving corrections or registering models, then reopen its project."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_hybridseg.data.io import write_mask_png
from napari_hybridseg.model.checkpoint import load_checkpoint
from napari_hybridseg.project import ProjectStore

WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = 24

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _start(folder: Path, mode: str, seed: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(WORKER), str(folder), mode, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _read_until(proc: subprocess.Popen, first_word: str) -> list[str]:
    """The worker's lines up to and including the first that starts with ``first_word``."""
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"worker stopped before {first_word}: {lines}\n{proc.stderr.read()}")
        lines.append(line.strip())
        if line.startswith(first_word):
            return lines


@pytest.mark.timeout(1800)  # 24 fresh Python processes: minutes on a busy 2-core machine; the default guards hangs
def test_sigkill_during_saves_and_fine_tunes_loses_nothing_acknowledged(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        write_mask_png(folder / f"img{i}.png", rng.integers(0, 255, (40, 48), dtype=np.uint8))
    acknowledged: dict[str, int] = {}
    models_acknowledged: list[str] = []
    kills_mid_work = 0
    for attempt in range(KILLS):
        mode = "refine" if attempt % 2 else "accept"
        proc = _start(folder, mode, seed=attempt)
        # a refine worker is killed only once it has registered a model, so kills land in later rounds and saves
        lines = _read_until(proc, "MODEL" if mode == "refine" else "READY")
        time.sleep(float(rng.uniform(0.05, 1.5)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        lines += out.splitlines()
        kills_mid_work += len(lines) > 1
        for line in lines:
            kind, *rest = line.split()
            if kind == "ACK":
                acknowledged[rest[0]] = int(rest[1])
            elif kind == "MODEL":  # READY carries nothing
                models_acknowledged.append(rest[0])

        store = ProjectStore.open(folder)
        assert not [p for p in store.problems if "model" in p], store.problems
        for key, round_ in acknowledged.items():
            mask = store.accepted_mask(key)
            assert mask is not None, f"kill {attempt}: the acknowledged correction of {key} is gone"
            values = np.unique(mask)
            assert len(values) == 1, f"kill {attempt}: {key} holds a torn mask"
            # the round acknowledged, or the next one if the kill came after the save but before the ACK
            assert int(values[0]) - 1 in (round_, round_ + 1), f"kill {attempt}: {key} lost round {round_}"
            acknowledged[key] = int(values[0]) - 1
        registered = [v["id"] for v in store.model_versions()]
        assert set(models_acknowledged) <= set(registered)
        if models_acknowledged:
            assert store.active_model is not None
            assert registered.index(store.active_model) >= registered.index(models_acknowledged[-1])
        if store.active_model is not None:
            load_checkpoint(store.model_path(store.active_model))  # whole and loadable
        assert store.position is None or store.position in store.keys()

    assert acknowledged and models_acknowledged, "the worker never got to save anything before being killed"
    assert kills_mid_work >= KILLS // 2
