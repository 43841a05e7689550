"""Files that ship with the package: the default model and the sample data."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = PACKAGE_DIR / "models" / "nuclei_hybrid.safetensors"
SAMPLE_DOMAIN = "synthetic_histology"
_REPO_SAMPLE = PACKAGE_DIR.parent / "sample_data"


def default_model_path() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(f"the shipped default model is missing from {DEFAULT_MODEL}; reinstall napari-hybridseg")
    return DEFAULT_MODEL


def sample_data_root() -> Path:
    """The bundled sample set: the repository's ``sample_data/`` when present,
    else generated once (deterministically) into the user's cache."""
    if (_REPO_SAMPLE / "splits.json").is_file():
        return _REPO_SAMPLE
    from .data.synthetic import write_sample_set

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "napari-hybridseg" / "sample_data"
    if not (cache / "splits.json").is_file():
        write_sample_set(cache, domain=SAMPLE_DOMAIN)
    return cache
