"""The on-disk project store: images, their states and masks, model versions, session."""

from ._layout import FORMAT_NAME, FORMAT_VERSION, PROJECT_SUBDIR
from ._records import STATES, ImageRecord
from ._session import DEFAULT_SETTINGS
from .store import ProjectStore

__all__ = [
    "DEFAULT_SETTINGS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PROJECT_SUBDIR",
    "STATES",
    "ImageRecord",
    "ProjectStore",
]
