"""napari's unit registry, built from a disk cache.

napari's first layer builds pint's application unit registry, which parses pint's whole definitions file: about
0.5 s of every launch on a 2-core CPU, on the way to the first prediction. pint can keep the parsed definitions on
disk (its ``cache_folder`` option); from that, a later launch builds the registry in about 0.1 s. pint writes the
cache with pickle, so it lives in this package's own cache folder, which only this package writes (as it writes the
ONNX graphs there), never in a folder a user hands in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..model.onnx_graph import default_cache_dir


def unit_cache_folder() -> Path:
    return default_cache_dir() / "pint"


def build_cached_unit_registry(folder: Path | None = None) -> bool:
    """Make pint's application registry now, from the cache in ``folder`` (default: ``unit_cache_folder()``),
    writing the cache on first use. True if the cached registry is the application's.

    Nothing changes when the registry is already built or set by someone else: a layer may hold units of it, and
    units of two registries cannot be combined. A cache that cannot be read (a process killed while pint wrote it)
    is removed and written again; a folder that cannot be written leaves pint's own lazy registry in place."""
    import pint
    from pint.registry import LazyRegistry

    current = pint.get_application_registry().get()
    if type(current) is not LazyRegistry or current.__dict__.get("params") != ((), {}):
        return False
    folder = folder or unit_cache_folder()
    for _ in range(2):  # the second time from an empty folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            registry = pint.UnitRegistry(cache_folder=folder, on_redefinition="raise")
        except OSError:
            return False
        except Exception:  # noqa: BLE001 — a damaged cache file: pickle, EOF or parse errors of any kind
            shutil.rmtree(folder, ignore_errors=True)
            continue
        pint.set_application_registry(registry)
        return True
    return False
