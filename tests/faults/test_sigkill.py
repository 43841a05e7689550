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
NONATOMIC_KILLS = 12  # the worker spends most of its time inside a torn write: one kill almost always finds it

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _start(folder: Path, mode: str, seed: int, variant: str = "") -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    variant_args = [variant] if variant else []
    return subprocess.Popen([sys.executable, str(WORKER), str(folder), mode, str(seed), *variant_args],
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


def _image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        write_mask_png(folder / f"img{i}.png", rng.integers(0, 255, (40, 48), dtype=np.uint8))
    return folder


class KillTest:
    """Kill a worker saving to the project at a random moment, reopen the project, and list what was lost."""

    def __init__(self, folder: Path, variant: str = ""):
        self.folder, self.variant = folder, variant
        self.acknowledged: dict[str, int] = {}
        self.models_acknowledged: list[str] = []
        self.kills_mid_work = 0
        self.rng = np.random.default_rng(0)

    def kill_once(self, attempt: int, mode: str) -> list[str]:
        proc = _start(self.folder, mode, attempt, self.variant)
        # a refine worker is killed only once it has registered a model, so kills land in later rounds and saves
        lines = _read_until(proc, "MODEL" if mode == "refine" else "READY")
        time.sleep(float(self.rng.uniform(0.05, 1.5)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        lines += out.splitlines()
        self.kills_mid_work += len(lines) > 1
        for line in lines:
            kind, *rest = line.split()
            if kind == "ACK":
                self.acknowledged[rest[0]] = int(rest[1])
            elif kind == "MODEL":  # READY carries nothing
                self.models_acknowledged.append(rest[0])
        try:
            return self.problems_on_reopening(attempt)
        except Exception as err:  # noqa: BLE001 (a store that cannot be opened is what a kill must never leave)
            return [f"kill {attempt}: the project cannot be opened ({type(err).__name__}: {err})"]

    def problems_on_reopening(self, attempt: int) -> list[str]:
        store = ProjectStore.open(self.folder)
        problems = [f"kill {attempt}: {p}" for p in store.problems if "model" in p]
        for key, round_ in self.acknowledged.items():
            mask = store.accepted_mask(key)
            values = np.unique(mask) if mask is not None else []
            if len(values) != 1:
                problems.append(f"kill {attempt}: the acknowledged correction of {key} is gone or torn")
            # the round acknowledged, or the next one if the kill came after the save but before the ACK
            elif int(values[0]) - 1 not in (round_, round_ + 1):
                problems.append(f"kill {attempt}: {key} lost round {round_}")
            else:
                self.acknowledged[key] = int(values[0]) - 1
        registered = [v["id"] for v in store.model_versions()]
        if not set(self.models_acknowledged) <= set(registered):
            problems.append(f"kill {attempt}: an acknowledged model version is not registered")
        if self.models_acknowledged and (store.active_model is None or registered.index(store.active_model)
                                         < registered.index(self.models_acknowledged[-1])):
            problems.append(f"kill {attempt}: the active model went back")
        if store.active_model is not None:
            load_checkpoint(store.model_path(store.active_model))  # whole and loadable
        if not (store.position is None or store.position in store.keys()):
            problems.append(f"kill {attempt}: the position is not an image")
        return problems


@pytest.mark.timeout(1800)  # 24 fresh Python processes: minutes on a busy 2-core machine; the default guards hangs
def test_sigkill_during_saves_and_fine_tunes_loses_nothing_acknowledged(tmp_path):
    kills = KillTest(_image_folder(tmp_path))
    for attempt in range(KILLS):
        assert kills.kill_once(attempt, "refine" if attempt % 2 else "accept") == []
    assert kills.acknowledged and kills.models_acknowledged, "the worker never got to save anything before being killed"
    assert kills.kills_mid_work >= KILLS // 2


def test_the_kill_test_catches_a_store_write_that_is_not_atomic(tmp_path):
    """The same kills against a store whose state document is rewritten in place: a kill finds it torn."""
    kills = KillTest(_image_folder(tmp_path), variant="nonatomic")
    found = []
    for attempt in range(NONATOMIC_KILLS):
        found = kills.kill_once(attempt, "accept")
        if found:
            break
    assert found, f"{NONATOMIC_KILLS} kills of a non-atomic store write found nothing wrong"
    assert any("cannot be opened" in problem or "gone or torn" in problem for problem in found), found
