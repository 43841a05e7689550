"""pint's application registry is process-wide, so each case runs in a fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys
from pathlib import Path
import pint
from napari_hybridseg._qt.unit_registry import build_cached_unit_registry
if sys.argv[2] == "built-already":
    pint.get_application_registry().pixel
used = build_cached_unit_registry(Path(sys.argv[1]))
registry = pint.get_application_registry().get()
print(json.dumps({"used": used, "pixel": str(registry.pixel), "cache": str(registry.cache_folder)}))
"""


def _child(folder: Path, case: str = "") -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), case], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_registry_is_built_from_a_cache_written_on_first_use(tmp_path):
    folder = tmp_path / "pint"
    first = _child(folder)
    assert first == {"used": True, "pixel": "pixel", "cache": str(folder)}
    written = sorted(p.name for p in folder.iterdir())
    assert any(name.endswith(".pickle") for name in written)
    assert _child(folder)["used"]  # the second launch reads it
    assert sorted(p.name for p in folder.iterdir()) == written


def test_a_damaged_cache_is_written_again(tmp_path):
    folder = tmp_path / "pint"
    _child(folder)
    for cached in folder.glob("*.pickle"):  # as a process killed while pint wrote it leaves it
        cached.write_bytes(cached.read_bytes()[:100])
    assert _child(folder) == {"used": True, "pixel": "pixel", "cache": str(folder)}
    assert _child(folder)["used"]


def test_a_registry_already_in_use_is_left_alone(tmp_path):
    result = _child(tmp_path / "pint", "built-already")
    assert result["used"] is False and result["cache"] == "None"
    assert not (tmp_path / "pint").exists()


def test_a_cache_folder_that_cannot_be_written_leaves_pints_own_registry(tmp_path):
    (tmp_path / "file").write_text("")
    result = _child(tmp_path / "file" / "pint")  # a folder under a file: never creatable
    assert result["used"] is False and result["pixel"] == "pixel" and result["cache"] == "None"
