"""Keeps saving to a project until it is killed: the subject of the SIGKILL fault-injection test.

    python crash_worker.py IMAGES_FOLDER accept|refine SEED [nonatomic]

Prints ``READY`` once the project is open, then ``ACK <key> <round>`` after each
accepted mask is saved and ``MODEL <version>`` after each model version is
registered and made active; the parent kills it at a random moment and checks
that everything acknowledged survived. ``nonatomic`` swaps the store's one write of its image-state document
for a deliberately non-atomic one (the file truncated and rewritten in place, in two halves): the fault test
must catch that.
"""

import json
import os
import sys
import threading
import time

import numpy as np
import torch

from napari_hybridseg.data.datasets import Sample
from napari_hybridseg.learn.finetune import finetune
from napari_hybridseg.learn.pretrain import ModelConfig
from napari_hybridseg.learn.train import TrainConfig
from napari_hybridseg.model.checkpoint import load_checkpoint, model_metadata
from napari_hybridseg.project import ProjectStore

_print_lock = threading.Lock()


def say(line: str) -> None:
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def mask_of_round(shape: tuple[int, ...], round_: int) -> np.ndarray:
    """Every pixel holds the round (+1), so a torn write shows as mixed values."""
    return np.full(shape[:2], round_ % 60000 + 1, dtype=np.uint16)


def accept_forever(store: ProjectStore, rng: np.random.Generator) -> None:
    keys = store.keys()
    shapes = {k: store.read_image(k).shape for k in keys}  # read once: the loop measures saving, not decoding
    rounds = {}
    for k in keys:
        saved = store.accepted_mask(k)
        rounds[k] = int(saved[0, 0]) - 1 if saved is not None else 0
    while True:
        key = keys[rng.integers(len(keys))]
        rounds[key] += 1
        store.accept(key, mask_of_round(shapes[key], int(rounds[key])), from_model=store.active_model)
        say(f"ACK {key} {rounds[key]}")
        other = keys[rng.integers(len(keys))]
        store.save_prediction(other, mask_of_round(shapes[other], 0), store.active_model)
        store.position = key


def refine_forever(store: ProjectStore, seed: int) -> None:
    if store.active_model is not None:
        model, meta = load_checkpoint(store.model_path(store.active_model))
    else:
        torch.manual_seed(seed)
        model = ModelConfig(base_channels=8).build()
        meta = model_metadata(model, method="hybrid", loss={}, pretraining=None, finetuning=[])
    images = {k: store.read_image(k) for k in store.keys()[:2]}
    labelled = [Sample(k, image, np.ones(image.shape[:2], np.uint8)) for k, image in images.items()]
    while True:
        model, meta, _ = finetune(model, meta, labelled, TrainConfig(steps=2, batch_size=2, crop_size=32, seed=seed, log_every=1))
        version = store.add_model_version(model, meta, parent=store.active_model, note="crash test", activate=True)
        say(f"MODEL {version}")


def write_state_in_place(store: ProjectStore, images: dict) -> None:
    """The state document written as a careless program would: truncated, then filled in two halves."""
    path = store.store_path / "state" / "zarr.json"
    text = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"images": images}})
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])
        f.flush()
        os.fsync(f.fileno())
        time.sleep(0.2)  # a slow disk: the torn state lasts long enough for a kill to find it
        f.write(text[len(text) // 2:])


def main() -> None:
    folder, mode, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if sys.argv[4:] == ["nonatomic"]:
        ProjectStore._write_images_state = write_state_in_place
    torch.set_num_threads(1)
    store = ProjectStore.open(folder)
    rng = np.random.default_rng(seed)
    say("READY")
    if mode == "refine":  # the user keeps accepting while the model trains
        threading.Thread(target=accept_forever, args=(store, rng), daemon=True).start()
        refine_forever(store, seed)
    else:
        accept_forever(store, rng)


if __name__ == "__main__":
    main()
