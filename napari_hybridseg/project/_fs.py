"""File-system helpers for the project store: durability, clear permission errors."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def permission_error(where: Path, err: OSError | None = None) -> PermissionError:
    """A PermissionError that says where the store tried to write and what to do."""
    reason = f" ({err.strerror or err})" if err is not None else ""
    return PermissionError(
        f"cannot write the napari-hybridseg project at {where}{reason}. "
        "The folder is read-only or you lack permission to write there; "
        "pick another project folder (one you can write to) and open the images again."
    )


def disk_full_error(where: Path, err: OSError) -> OSError:
    """An OSError that says the disk is full, that nothing was changed, and what to do."""
    return OSError(
        errno.ENOSPC,
        f"the disk holding the napari-hybridseg project at {where} is full; this change was not saved "
        "and everything saved before is intact. Free some space, then try again.",
    )


def is_permission_problem(err: OSError) -> bool:
    return isinstance(err, PermissionError) or err.errno in _PERMISSION_ERRNOS


@contextmanager
def writing(where: Path) -> Iterator[None]:
    """Turn permission and full-disk failures raised inside the block into clear messages."""
    try:
        yield
    except OSError as err:
        if "napari-hybridseg project" in str(err):
            raise
        if is_permission_problem(err):
            raise permission_error(where, err) from err
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(where, err) from err
        raise


def _touch(path: Path) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove that a file can be written in it."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        _touch(probe)
        probe.unlink()


def fsync_path(path: Path) -> None:
    """Flush one file or folder to disk; folders are skipped where the OS refuses (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, the folders themselves, and its parent folder."""
    for dirpath, _, files in os.walk(folder):
        for name in files:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))
    fsync_path(folder.parent)


def remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
