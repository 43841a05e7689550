"""One background refinement: fine-tune on a snapshot of the accepted masks.

A :class:`RefineJob` holds copies of everything it trains on, so the user can
keep editing while it runs. Progress goes into a queue that any front end can
poll; cancelling is a thread-safe flag. Nothing here knows about Qt.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..data.datasets import Sample
from ..model.precond import HybridSegModel
from .finetune import FinetuneConfig, finetune
from .train import StepLog, TrainConfig, TrainingCancelled, TrainingDiverged


@dataclass
class RefineResult:
    model: HybridSegModel | None
    metadata: dict[str, Any] | None
    history: list[StepLog] = field(default_factory=list)
    status: str = "done"  # done | cancelled | diverged | out_of_memory | crashed | failed
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "done"


class RefineJob:
    def __init__(
        self,
        base_model: HybridSegModel,
        base_metadata: dict[str, Any],
        labelled: list[Sample],
        train_config: TrainConfig,
        config: FinetuneConfig = FinetuneConfig(),
        device: torch.device | str = "cpu",
        threads: int | None = 1,
        parent_version: str | None = None,
        cancel: threading.Event | None = None,
    ):
        self.base_model = base_model
        self.base_metadata = base_metadata
        self.labelled = [Sample(s.id, s.image.copy(), s.labels.copy()) for s in labelled]
        self.train_config = train_config
        self.config = config
        self.device = torch.device(device)
        self.threads = threads
        self.parent_version = parent_version  # the model version that was active when the job started
        self.updates: queue.Queue[StepLog] = queue.Queue()
        #: setting it stops the run; pass one in to cancel a job before it has reached you
        self._cancel = cancel if cancel is not None else threading.Event()
        self._on_user_active: Callable[[], None] | None = None  # set while a child process trains the job

    def __getstate__(self) -> dict[str, Any]:
        """For a child process (see :mod:`.refine_process`): the queue and flag stay in this process."""
        state = self.__dict__.copy()
        del state["updates"], state["_cancel"], state["_on_user_active"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.updates = queue.Queue()
        self._cancel = threading.Event()
        self._on_user_active = None

    def cancel(self) -> None:
        self._cancel.set()

    def user_active(self) -> None:
        """The user just moved or drew: a CPU training in a child process pauses for a moment
        (see :class:`~.refine_process.PauseWhileUserWorks`); otherwise nothing happens."""
        hook = self._on_user_active
        if hook is not None:
            hook()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> RefineResult:
        """Train (call from a worker thread); never raises for training faults."""
        if self.threads:
            torch.set_num_threads(self.threads)  # per OS thread: leaves a core to the viewer
        start = time.perf_counter()
        history: list[StepLog] = []

        def on_log(entry: StepLog) -> None:
            history.append(entry)
            self.updates.put(entry)

        try:
            model, meta, _ = finetune(
                self.base_model, self.base_metadata, self.labelled, self.train_config, self.config,
                device=self.device, on_log=on_log, should_stop=self._cancel.is_set,
            )
            result = RefineResult(model.cpu(), meta, history, "done", f"fine-tuned on {len(self.labelled)} images")
        except TrainingCancelled as err:
            result = RefineResult(None, None, history, "cancelled", f"refinement {err}; the previous model stays active")
        except TrainingDiverged as err:
            result = RefineResult(None, None, history, "diverged", f"refinement stopped: {err}; the previous model stays active")
        except (torch.OutOfMemoryError, MemoryError):
            result = self._out_of_memory(history)
        except RuntimeError as err:  # the CPU allocator reports exhaustion as a plain RuntimeError
            if "can't allocate memory" not in str(err) and "out of memory" not in str(err):
                raise
            result = self._out_of_memory(history)
        finally:
            self._release_memory()
        result.seconds = time.perf_counter() - start
        return result

    @staticmethod
    def _out_of_memory(history: list[StepLog]) -> RefineResult:
        return RefineResult(None, None, history, "out_of_memory",
                            "refinement ran out of memory; the previous model stays active (try a smaller crop size)")

    def _release_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
