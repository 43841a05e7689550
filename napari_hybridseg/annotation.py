"""The "label 5 images then refine" workflow, without any GUI.

:class:`AnnotationSession` ties a :class:`ProjectStore` to the active model:
what mask to show for an image, accepting corrections, when to refine,
building a background :class:`RefineJob` and installing its result, and which
image to label next (the one the active model's diffusion samples disagree on
most). The napari dock is a thin layer over it.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, NamedTuple

import numpy as np
from .data.datasets import Sample
from .export import ExportItem
from .model.checkpoint import load_checkpoint, read_metadata
from .model.onnx_graph import GraphSegmenter
from .model.split import labels_from_classes
from .project import ProjectStore

if TYPE_CHECKING:  # torch loads on first use (over a second): the first prediction needs none of it
    import torch

    from .learn.acquisition import DisagreementScorer
    from .learn.choose import ScoredCandidate
    from .learn.selection import Pick
    from .learn.recipe import FinetuneRecipe
    from .learn.refine import RefineJob, RefineResult
    from .model.inference import Segmenter

EDITED = "edited"  # the model tag of a mask the user changed but has not accepted
#: Refinement settings a project may set (``refine_steps``, ``refine_batch_size``, ``refine_crop``, ``refine_lr``);
#: the ones it does not set come from the start model's own fine-tuning recipe.
REFINE_DEFAULTS: dict[str, Any] = {"refine_loss": "mask"}
#: CPU threads for the one prediction the user is waiting for (background work gets one).
FOREGROUND_THREADS = min(4, os.cpu_count() or 1)
#: How the viewer ranks images (DisagreementScorer options): S = 8 noise samples (4 at each default σ*)
#: of one reproducible 128×128 crop per image, BALD averaged over it. A whole 256² image costs ≈ 1.5 s
#: on one CPU thread, the crop about a quarter of that, and its mean is an unbiased estimate of the
#: whole image's. The map layer is computed on the whole image (see disagreement_map).
RANKING_SCORER: dict[str, Any] = {"samples": 8, "mode": "noise", "metric": "bald", "max_pixels": 128 * 128}
#: How many suggestions are chosen one after another (each knowing the ones before); the rest follow by their gain.
PLANNED_PICKS = 10
#: While images are scored, the suggestions are planned again after every this many.
PLAN_EVERY = 16


class ImageStatus(NamedTuple):
    """What the list says of an image: its state and the model version its mask came from."""

    state: str  # unlabelled, predicted, edited, accepted or unreadable
    version: str | None = None  # the model version the mask came from (None: the shipped default)
    reason: str = ""  # why an unreadable image cannot be used
    stale: bool = False  # a prediction of another model than the active one

    def describe(self, label: Callable[[str | None], str]) -> str:
        """E.g. "predicted by v0002", "edited (from shipped default)", "unreadable: <reason>"."""
        if self.state == "unreadable":
            return f"unreadable: {self.reason}"
        if self.state == "unlabelled":
            return "unlabelled"
        where = {"predicted": f"predicted by {label(self.version)}", "edited": f"edited, not accepted "
                 f"(from {label(self.version)})", "accepted": f"accepted (from {label(self.version)})"}
        return where[self.state] + (" — an older model" if self.stale else "")


class Move(NamedTuple):
    """Where a move goes (None: nowhere to go), why, and the unreadable images it passed over."""

    key: str | None
    why: str
    skipped: tuple[str, ...] = ()


class ScoringProgress(NamedTuple):
    """One image scored by :meth:`AnnotationSession.score_unaccepted`: ``done`` of ``total``."""

    key: str
    score: float
    done: int
    total: int


class AnnotationSession:
    def __init__(self, store: ProjectStore, device: str | torch.device = "auto",
                 scoring: Mapping[str, Any] = RANKING_SCORER, refine_in_child_process: bool = True):
        self.store = store
        #: train in a child process (see learn.refine_process), so the viewer keeps Python's GIL and the CPU
        self.refine_in_child_process = refine_in_child_process
        self._device_spec = device
        self.scoring = dict(scoring)
        self._segmenters: dict[str | None, dict[bool, Segmenter]] = {}
        #: before a version's torch model is loaded, its cached ONNX graph predicts without torch
        self._graph_segmenters: dict[tuple[str | None, bool], GraphSegmenter | None] = {}
        self._segmenter_lock = threading.Lock()  # workers share one segmenter (and one ONNX export) per version
        # (model version, whole image?) → scorer; only the active version's are kept
        self._scorers: dict[tuple[str | None, bool], DisagreementScorer] = {}
        self._scorer_lock = threading.Lock()
        self._plan: tuple[tuple, list[Pick]] | None = None  # the last suggestions and what they were made from
        self._trained_on: dict[str, frozenset[str]] = {}
        self._position: str | None = None  # where the user is, ahead of the store when moves are not persisted
        #: images whose file cannot be used → why (found by check_files, or on reading)
        self.unreadable: dict[str, str] = {}

    # -- models -----------------------------------------------------------------------
    @functools.cached_property
    def device(self) -> torch.device:
        from .model.inference import resolve_device

        return resolve_device(self._device_spec)

    @property
    def active_version(self) -> str | None:
        return self.store.active_model

    def version_label(self, version: str | None = ...) -> str:
        version = self.active_version if version is ... else version
        return version or "shipped default"

    def segmenter(self, version: str | None = ..., foreground: bool = False) -> Segmenter:
        """The model of ``version`` (default: the active one), loaded once and shared by the workers.

        On the CPU, background work (ranking, refreshing, predicting ahead) runs on one thread,
        leaving a core to the viewer; ``foreground`` is for the prediction the user is waiting for,
        on up to :data:`FOREGROUND_THREADS` threads.
        """
        from .model.inference import Segmenter

        version = self.active_version if version is ... else version
        with self._segmenter_lock:
            if version not in self._segmenters:
                path = self.store.model_path(version)
                model, meta = load_checkpoint(path)
                background = Segmenter(model, meta, self.device, checkpoint=path, threads=1)
                self._segmenters = {version: {False: background}}  # one model in memory
                self._graph_segmenters = {}
            segmenters = self._segmenters[version]
            if foreground not in segmenters:
                segmenters[foreground] = segmenters[False].with_threads(FOREGROUND_THREADS)
            return segmenters[foreground]

    def set_active(self, version: str | None) -> None:
        """Roll back or forward to any registered version (None: the shipped model)."""
        self.store.set_active_model(version)

    def import_checkpoint(self, path: str | os.PathLike, note: str | None = None) -> str:
        """Use another checkpoint: validated, copied into the project and made the base for refinement."""
        model, meta = load_checkpoint(path)
        version = self.store.add_model_version(model, meta, parent=None, note=note or f"imported from {Path(path).name}",
                                               activate=True)
        self.store.update_settings(base_model=version)
        return version

    def needs_start_model(self) -> bool:
        """A new project, still on the shipped default with no model of its own: the start is to be chosen."""
        return not self.store.model_versions()

    def rank_start_models(self, on_progress: Callable[[int, int], None] | None = None) -> list[ScoredCandidate]:
        """The shipped models, best fit to this project's images first (reads up to 24 of them; call from a
        worker)."""
        from .learn.choose import rank_start_models
        from .learn.fit import read_spread

        images = read_spread(self.keys(), self.read_image)
        if not images:
            raise ValueError("none of the images could be read to choose a start model")
        return rank_start_models(images, on_progress=on_progress)

    def start_from(self, scored: ScoredCandidate) -> str:
        """Make the shipped model ``scored`` (from :meth:`rank_start_models`) the project's start."""
        return self.import_checkpoint(scored.candidate.path,
                                      note=f"{scored.name} (shipped), chosen automatically as the best fit to these images")

    # -- navigation --------------------------------------------------------------------
    def keys(self) -> list[str]:
        return [k for k in self.store.keys() if not self.store.record(k).missing]

    def current(self) -> str:
        keys = self.keys()
        if not keys:
            raise FileNotFoundError("the project has no images left to show")
        position = self._position or self.store.position
        return position if position in keys else keys[0]

    def go(self, key: str, persist: bool = True) -> str:
        """Make ``key`` the current image; ``persist=False`` leaves writing that to :meth:`save_position`
        (a viewer saves it once the user stops moving: a store write per move is time on the GUI thread)."""
        self.store.record(key)  # a KeyError for an image not in the project
        self._position = key
        if persist:
            self.save_position()
        return key

    def neighbour(self, delta: int) -> Move:
        """The readable image ``delta`` (+1 or -1) away in the list, passing over unreadable ones."""
        keys = self.keys()
        index = keys.index(self.current()) if keys else 0
        skipped = []
        for key in keys[index + delta::delta] if delta > 0 else keys[:index][::-1]:
            if key not in self.unreadable:
                return Move(key, "next in the list" if delta > 0 else "previous in the list", tuple(skipped))
            skipped.append(key)
        return Move(None, "the last readable image" if delta > 0 else "the first readable image", tuple(skipped))

    def step(self, delta: int, persist: bool = True) -> str:
        """Go to the readable image ``delta`` (+1 or -1) away, passing over unreadable ones; stay at either end."""
        move = self.neighbour(delta)
        return self.go(move.key if move.key is not None else self.current(), persist)

    # -- checking files ----------------------------------------------------------------
    def check_files(self) -> Iterator[tuple[str, str | None]]:
        """Check each image file's header and size (no pixels decoded), for a worker: yields (key, reason)
        where reason says why the file cannot be used, or is None."""
        for key in self.keys():
            reason = self.store.check_file(key)
            if reason is not None:
                self.unreadable[key] = reason
            yield key, reason

    def read_image(self, key: str) -> np.ndarray:
        """The image's pixels; a file that cannot be read is remembered as unreadable, with the reason."""
        try:
            image = self.store.read_image(key)
        except (OSError, ValueError) as err:
            self.unreadable[key] = str(err)
            raise
        self.unreadable.pop(key, None)
        return image

    def image_status(self, key: str) -> ImageStatus:
        """The state shown for ``key`` and the model version its mask came from. Reads no pixels."""
        if key in self.unreadable:
            return ImageStatus("unreadable", reason=self.unreadable[key])
        record = self.store.record(key)
        if record.state == "accepted":
            return ImageStatus("accepted", record.mask_model)
        if record.prediction_model == EDITED:
            return ImageStatus("edited", record.edited_from)
        if record.has_prediction:
            stale = record.prediction_model != self.active_version
            return ImageStatus("predicted", record.prediction_model, stale=stale)
        return ImageStatus("unlabelled")

    def save_position(self) -> None:
        """Write the current image to the store, for the next session to resume there."""
        if self._position is not None:
            self.store.position = self._position

    def prefetch_keys(self) -> list[str]:
        """The images the user is likely to open after the current one (next, suggested, previous) whose
        mask would have to be predicted first: predicting them ahead makes that navigation instant."""
        keys = self.keys()
        if not keys:
            return []
        key = self.current()
        likely = [self.neighbour(+1).key, self.suggest_next(), self.neighbour(-1).key]
        return [k for k in dict.fromkeys(likely) if k is not None and k != key and self.is_stale(k)]

    def unaccepted_keys(self) -> list[str]:
        """Readable images not accepted yet (the candidates to label next)."""
        return [key for key in self.keys() if key not in self.unreadable and self.store.record(key).state != "accepted"]

    def after_accept(self, accepted: str) -> Move:
        """Where to go once ``accepted`` is accepted, by the setting ``after_accept``: the next unaccepted
        image in the list (wrapping around), or the most informative one (the suggestion)."""
        unaccepted = set(self.unaccepted_keys())
        if not unaccepted:
            return Move(None, "every image is accepted")
        if self.settings["after_accept"] == "informative":
            key = self.suggest_next()
            pick = next((p for p in self.suggestions() if p.key == key), None)
            if pick is not None:
                return Move(key, f"the suggested image ({pick.describe()}, by {self.version_label()})")
            return Move(key, "the next unaccepted image: the images are not ranked yet")
        keys = self.keys()
        start = keys.index(accepted) + 1 if accepted in keys else 0
        key = next(k for k in keys[start:] + keys[:start] if k in unaccepted)
        return Move(key, "the next unaccepted image in the list")

    def suggest_next(self) -> str | None:
        """The unaccepted image to label next: the first of :meth:`suggestions`.

        Images not scored yet follow the scored ones, in order after the current image
        (wrapping around, the current one last); images holding an unaccepted edit come
        after all others. None when every image is accepted.
        """
        keys = self.keys()
        if not keys:
            return None
        start = keys.index(self.current()) + 1
        order = {key: i for i, key in enumerate(keys[start:] + keys[:start])}
        planned = {key: i for i, (key, _) in enumerate(self.ranking())}

        def priority(key: str) -> tuple:
            draft = self.store.record(key).prediction_model == EDITED
            return draft, key not in planned, planned.get(key, 0), order[key]

        return min(self.unaccepted_keys(), key=priority, default=None)

    # -- active learning ---------------------------------------------------------------
    def scorer(self, whole_image: bool = False) -> DisagreementScorer:
        """The scorer of the active model version, made (and the model loaded) on first use: the ranking's
        gives each image's signals (:class:`~.learn.signals.SignalScorer`), the whole image's its disagreement map.

        ``whole_image`` scores whole images rather than the ranking's crop. Scorers are
        per version, so after any change of the active model (refinement, rollback,
        import) nothing is reused: every image is scored again.
        """
        version = self.active_version
        with self._scorer_lock:
            scorer = self._scorers.get((version, whole_image))
            if scorer is None:
                from .learn.acquisition import DisagreementScorer
                from .learn.signals import SignalScorer

                segmenter = self.segmenter(version)
                if whole_image:
                    scorer = DisagreementScorer(segmenter.forward, version, device=self.device,
                                                **{**self.scoring, "max_pixels": None})
                else:
                    scorer = SignalScorer(segmenter.forward, segmenter.model, version, device=self.device,
                                          **self.scoring)
                self._scorers = {k: v for k, v in self._scorers.items() if k[0] == version}
                self._scorers[(version, whole_image)] = scorer
            return scorer

    def score_unaccepted(self) -> Iterator[ScoringProgress]:
        """Score the images not yet accepted with the active model, one at a time (for a worker).

        Already scored images come from the cache; stopping the iteration stops the scoring
        before the next image is read.
        """
        scorer = self.scorer()
        keys = self.unaccepted_keys()
        accepted = [key for key in self.keys() if key not in self.unreadable and key not in keys]
        for key, _ in scorer.score_many(self._images(accepted)):  # their features: what the labels cover
            pass
        for done, (key, result) in enumerate(scorer.score_many(self._images(keys, unaccepted=True)), 1):
            if done % PLAN_EVERY == 0 or done == len(keys):
                self.suggestions()  # planned here, off the viewer's thread
            yield ScoringProgress(key, result.score, done, len(keys))

    def _images(self, keys: Iterable[str], unaccepted: bool = False) -> Iterator[tuple[str, np.ndarray]]:
        for key in keys:
            if unaccepted and self.store.record(key).state == "accepted":
                continue  # accepted while we were scoring
            try:
                yield key, self.store.read_image(key)
            except (OSError, ValueError):
                continue  # gone or unreadable: it stays unranked (navigating to it says why)

    def suggestions(self, compute: bool = True) -> list[Pick]:
        """The unaccepted images scored for the active model, in the order the project's rule (``suggest_by``)
        would label them, each with why.

        Loads no model and reads no pixels: empty until :meth:`score_unaccepted` has run. Planning a big folder
        takes a moment (about 0.2 s for 1000 images), so the scoring worker plans as it goes; ``compute=False``
        returns the last plan, less the images accepted since, without planning.
        """
        scorer = self._scorers.get((self.active_version, False))
        if scorer is None:
            return []
        if not compute:
            last = self._plan[1] if self._plan is not None and self._plan[0][0] == self.active_version else []
            unaccepted = set(self.unaccepted_keys())
            return [pick for pick in last if pick.key in unaccepted]
        from .learn.selection import plan

        unaccepted = self.unaccepted_keys()
        accepted = [key for key in self.keys() if self.store.record(key).state == "accepted"]
        candidates, labelled = scorer.signals(unaccepted), scorer.signals(accepted)
        rule, round_size = self.settings["suggest_by"], int(self.settings["refine_every"])
        state = (self.active_version, rule, round_size, tuple(candidates), tuple(accepted), tuple(labelled))
        if self._plan is None or self._plan[0] != state:
            self._plan = state, plan(candidates, [signals.features for signals in labelled.values()], rule,
                                     k=PLANNED_PICKS, n_labelled=len(accepted), round_size=round_size)
        return self._plan[1]

    def ranking(self) -> list[tuple[str, float]]:
        """(key, gain) of :meth:`suggestions`, best first."""
        return [(pick.key, pick.gain) for pick in self.suggestions()]

    def disagreement_map(self, key: str) -> np.ndarray:
        """Per-pixel disagreement (H, W) of the active model over the whole of ``key``'s image.

        Reuses the ranking's score when that covered the whole image; otherwise computes
        (and caches) it at full size, which takes seconds on a CPU: call it from a worker.
        """
        image = self.store.read_image(key)
        max_pixels = self.scoring.get("max_pixels")
        whole = not max_pixels or image.shape[0] * image.shape[1] <= max_pixels
        return self.scorer(whole_image=not whole).score(key, image).map

    # -- masks -------------------------------------------------------------------------
    def mask_for(self, key: str) -> tuple[np.ndarray, str]:
        """What to show for ``key``: the accepted mask, the user's draft, or the active
        model's prediction (computed now if it is missing or stale); with its origin."""
        if self.store.record(key).state == "accepted":
            return self.store.accepted_mask(key), "accepted"
        stored = self.store.prediction(key)
        if stored is not None and stored[1] in (EDITED, self.active_version):
            return stored[0], EDITED if stored[1] == EDITED else "predicted"
        return self.predict(key, foreground=True), "predicted"

    def predict(self, key: str, version: str | None = ..., foreground: bool = False) -> np.ndarray:
        version = self.active_version if version is ... else version
        classes, metadata = self._class_map(self.store.read_image(key), version, foreground)
        mask = labels_from_classes(classes, metadata)  # one id per object (split by an instances model)
        self.store.save_prediction(key, mask, version)
        return mask

    def _class_map(self, image: np.ndarray, version: str | None, foreground: bool) -> tuple[np.ndarray, dict]:
        """The class map of ``image`` by ``version`` and that model's metadata. Until that version's
        torch model is loaded (by ranking, say), its cached ONNX graph predicts: no torch import."""
        if version not in self._segmenters and str(self._device_spec) in ("auto", "cpu"):
            with self._segmenter_lock:
                if (version, foreground) not in self._graph_segmenters:
                    threads = FOREGROUND_THREADS if foreground else 1
                    self._graph_segmenters[(version, foreground)] = GraphSegmenter.from_checkpoint(
                        self.store.model_path(version), threads)
                graph_segmenter = self._graph_segmenters[(version, foreground)]
            classes = graph_segmenter.predict(image) if graph_segmenter is not None else None
            if classes is not None:
                return classes, graph_segmenter.metadata
        segmenter = self.segmenter(version, foreground)
        return segmenter.predict(image), segmenter.metadata

    def _origin(self, key: str) -> str | None:
        """The model version the mask shown for ``key`` came from (a draft: the one its edit started from)."""
        record = self.store.record(key)
        if record.prediction_model == EDITED:
            return record.edited_from
        return record.prediction_model if record.has_prediction else self.active_version

    def save_draft(self, key: str, mask: np.ndarray) -> None:
        """Keep an edited, not yet accepted mask so that nothing is lost on navigation."""
        if self.store.record(key).state != "accepted":
            self.store.save_prediction(key, np.asarray(mask), EDITED, edited_from=self._origin(key))

    def accept(self, key: str, mask: np.ndarray) -> None:
        record = self.store.record(key)
        origin = record.mask_model if record.state == "accepted" else self._origin(key)
        self.store.accept(key, np.asarray(mask), from_model=origin)

    def is_stale(self, key: str) -> bool:
        """Would ``key`` show a prediction of an older model (or none)? Reads no pixels."""
        record = self.store.record(key)
        if record.state == "accepted":
            return False
        return not (record.has_prediction and record.prediction_model in (EDITED, self.active_version))

    def stale_keys(self) -> list[str]:
        """Readable images whose shown mask would be a prediction of an older model."""
        return [key for key in self.keys() if key not in self.unreadable and self.is_stale(key)]

    def refresh_predictions(self, keys: list[str] | None = None) -> Iterator[str]:
        """Predict stale images with the active model, one at a time (for a worker)."""
        version = self.active_version
        for key in self.stale_keys() if keys is None else keys:
            record = self.store.record(key)
            if record.state == "accepted" or record.prediction_model == EDITED:
                continue  # accepted or edited meanwhile: never overwrite the user's work
            try:
                self.predict(key, version)
            except (OSError, ValueError):
                continue  # gone or unreadable: it stays stale, and opening it says why
            yield key

    # -- refinement --------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        return {**REFINE_DEFAULTS, **self.store.settings}

    def trained_on(self) -> set[str]:
        """Accepted images the active model was fine-tuned on (from its checkpoint's header: no weights load)."""
        version = self.active_version
        if version is None:
            return set()
        if version not in self._trained_on:
            rounds = read_metadata(self.store.model_path(version)).get("finetuning") or []
            self._trained_on[version] = frozenset(rounds[-1]["labelled_ids"]) if rounds else frozenset()
        return set(self._trained_on[version])

    def new_since_refine(self) -> int:
        return len(set(self.store.accepted_keys()) - self.trained_on())

    def refine_due(self) -> bool:
        return self.new_since_refine() >= int(self.settings["refine_every"])

    def refine_recipe(self, base_metadata: dict[str, Any] | None = None) -> FinetuneRecipe:
        """How a refinement fine-tunes: the base model's own recipe, with what the project sets instead."""
        from dataclasses import replace

        from .learn.recipe import FinetuneRecipe

        s = self.settings
        if base_metadata is None:
            base_metadata = read_metadata(self.store.model_path(s.get("base_model")))
        overrides = {"steps": s.get("refine_steps"), "batch_size": s.get("refine_batch_size"),
                     "crop_size": s.get("refine_crop"), "lr": s.get("refine_lr")}
        return replace(FinetuneRecipe.from_metadata(base_metadata), **{k: v for k, v in overrides.items() if v is not None})

    def make_refine_job(self, threads: int | None = None, cancel: threading.Event | None = None) -> RefineJob:
        """A job that fine-tunes the base model on all accepted masks (not just the newest); setting
        ``cancel`` stops it. Reads every accepted image and loads the base model: call from a worker."""
        keys = self.store.accepted_keys()
        if not keys:
            raise ValueError("accept at least one mask before refining")
        from .learn.finetune import FinetuneConfig
        from .learn.refine import RefineJob

        labelled = [Sample(k, self.store.read_image(k), self.store.accepted_mask(k)) for k in keys]
        s = self.settings
        base_model, base_meta = load_checkpoint(self.store.model_path(s.get("base_model")))
        train_config = self.refine_recipe(base_meta).train_config(seed=len(self.store.model_versions()))
        if threads is None:
            threads = 1 if self.device.type == "cpu" else None
        return RefineJob(base_model, base_meta, labelled, train_config, FinetuneConfig(loss=s["refine_loss"]),
                         device=self.device, threads=threads, parent_version=self.active_version, cancel=cancel)

    def run_refine(self, job: RefineJob) -> RefineResult:
        """Train ``job`` (call from a worker thread), in a child process when ``refine_in_child_process``."""
        from .learn.refine_process import run_in_child_process

        return run_in_child_process(job) if self.refine_in_child_process else job.run()

    def finish_refine(self, job: RefineJob, result: RefineResult) -> str | None:
        """Register and activate a successful result; returns the new version (or None)."""
        run_entries = [e.to_dict() for e in result.history]
        if not result.ok:
            self.store.append_training_log(f"failed-{len(self.store.training_log())}",
                                           run_entries + [{"status": result.status, "message": result.message}])
            return None
        version = self.store.add_model_version(
            result.model, result.metadata, parent=job.parent_version,
            note=f"refined on {len(job.labelled)} accepted images in {result.seconds:.0f} s", activate=True,
        )
        self.store.append_training_log(version, run_entries)
        return version

    # -- export ------------------------------------------------------------------------
    def export_items(self) -> list[ExportItem]:
        """The accepted masks with their images; the pixels are read when the export reaches each one."""
        items = []
        for key in self.store.accepted_keys():
            record = self.store.record(key)
            items.append(ExportItem(key, functools.partial(self.store.read_image, key),
                                    functools.partial(self.store.accepted_mask, key), record.file,
                                    record.mask_model, record.accepted_at, shape=record.shape))
        return items
