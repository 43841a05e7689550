"""napari-hybridseg: label-efficient segmentation with hybrid-pretrained diffusion U-Nets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-hybridseg")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
