"""The hybrid diffusion segmentation model: U-Net, preconditioning, loss, checkpoints."""

from .checkpoint import CheckpointError, load_checkpoint, model_metadata, save_checkpoint
from .loss import METHODS, HybridLoss, LossConfig
from .precond import SIGMA_MIN, HybridSegModel

__all__ = [
    "METHODS",
    "SIGMA_MIN",
    "CheckpointError",
    "HybridLoss",
    "HybridSegModel",
    "LossConfig",
    "load_checkpoint",
    "model_metadata",
    "save_checkpoint",
]
