"""The on-disk project store: images, their states and masks, model versions, session."""

from ._layout import FORMAT_NAME, FORMAT_VERSION, PROJECT_SUBDIR
from ._records import STATES, ImageRecord
from ._session import AFTER_ACCEPT, DEFAULT_SETTINGS
from .store import ProjectStore

__all__ = [
    "AFTER_ACCEPT",
    "DEFAULT_SETTINGS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PROJECT_SUBDIR",
    "STATES",
    "ImageRecord",
    "ProjectStore",
]
