"""The dock widget contribution (npe2 imports this lazily, with Qt)."""

from ._qt.dock import HybridSegDock

__all__ = ["HybridSegDock"]
