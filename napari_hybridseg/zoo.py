"""The shipped source models: one hybrid-pretrained model per kind of image, and a general one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .resources import PACKAGE_DIR

MODELS_DIR = PACKAGE_DIR / "models"
AUTO = "auto"  # the name that stands for "the zoo model that fits these images best"


@dataclass(frozen=True)
class ZooModel:
    name: str
    file: str
    segments: str  # what its mask marks
    images: str  # the kind of image it was pretrained on, in a user's words

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.file

    @property
    def card(self) -> Path:
        return self.path.with_suffix(".md")

    def describe(self) -> str:
        return f"{self.name}: {self.segments} in {self.images}"


ZOO: tuple[ZooModel, ...] = (
    ZooModel("nuclei", "nuclei_hybrid.safetensors", "cell nuclei", "microscopy (fluorescence, stained tissue, brightfield)"),
    ZooModel("lungs", "lungs_hybrid.safetensors", "lung fields", "chest X-rays"),
    ZooModel("polyps", "polyps_hybrid.safetensors", "polyps", "colonoscopy frames"),
    ZooModel("vessels", "vessels_hybrid.safetensors", "blood vessels", "colour fundus photographs"),
    ZooModel("general", "general_hybrid.safetensors", "the object of interest",
             "any kind of image (pretrained on all four kinds at once)"),
)


def zoo_models() -> list[ZooModel]:
    """The zoo models installed with the package."""
    return [m for m in ZOO if m.path.is_file()]


def zoo_model(name: str) -> ZooModel:
    for model in zoo_models():
        if model.name == name:
            return model
    known = ", ".join(m.name for m in zoo_models())
    raise KeyError(f"no shipped model named {name!r}; the shipped ones are {known}")
