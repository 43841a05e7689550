"""Random training crops with flips and right-angle rotations, optionally intensity-inverted."""

from __future__ import annotations

import numpy as np
import torch

from ..model.loss import FOREGROUND_INDEX, IGNORE_INDEX
from ..model.outputs import DEFAULT_BOUNDARY_WIDTH, SEMANTIC
from .datasets import Sample
from .prepare import expand_channels, prepare_image
from .targets import labels_to_target


class CropSampler:
    """Draws batches of random crops from a list of samples held in memory.

    Images are normalised once (float16 to save memory); crops are taken at
    random positions, images smaller than the crop are reflect-padded.
    Samples without labels yield masks of IGNORE_INDEX. Label images become the targets of the model's
    ``output`` (see :mod:`.targets`): for an instances model, background / interior / boundary, computed on
    the whole image before cropping (a crop's edge is no boundary).

    ``invert_probability``: the share of crops whose intensities are inverted
    (the normalised image negated), so that a model pretrained on bright
    objects on a dark ground (fluorescence) also sees dark objects on a bright
    one (stained histology, brightfield).

    ``even_coverage``: crop corners drawn so that every pixel, borders and
    corners included, lies in a crop equally often. Uniform corners put a
    corner pixel of a 192² image in about one 96² crop of 9,400, so a
    correction of a dark vignette corner is hardly ever trained on.

    ``groups``: one group label per sample (its source data set); each group
    is drawn equally often, whatever its number of images.

    ``foreground_share``: the share of crops placed so that they contain a
    foreground pixel drawn at random (as nnU-Net oversamples foreground).
    Where objects cover a few percent of a large image (brightfield nuclei:
    1–3%), uniform crops are mostly background.
    """

    def __init__(
        self,
        samples: list[Sample],
        model_channels: int,
        n_classes: int,
        crop_size: int = 128,
        sigma_data: float = 0.5,
        seed: int = 0,
        invert_probability: float = 0.0,
        foreground_share: float = 0.0,
        even_coverage: bool = False,
        groups: list[str] | None = None,
        output: str = SEMANTIC,
        boundary_width: int = DEFAULT_BOUNDARY_WIDTH,
    ):
        for name, share in (("invert_probability", invert_probability), ("foreground_share", foreground_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if not samples:
            raise ValueError("no images to train on")
        self.model_channels = model_channels
        self.crop_size = crop_size
        self.invert_probability = invert_probability
        self.foreground_share = foreground_share
        self.even_coverage = even_coverage
        self.rng = np.random.default_rng(seed)
        self.images = []
        self.masks = []
        for s in samples:
            image = prepare_image(s.image, model_channels, sigma_data).astype(np.float16)
            if s.labels is None:
                mask = np.full(image.shape[1:], IGNORE_INDEX, dtype=np.int8 if n_classes < 127 else np.int16)
            else:
                mask = labels_to_target(s.labels, n_classes, output, boundary_width)
                mask = mask.astype(np.int8 if n_classes < 127 else np.int16)
            image, mask = self._pad(image, mask)
            self.images.append(image)
            self.masks.append(mask)
        # Flat indices of labelled foreground pixels, per image; only kept when crops are drawn around them.
        self.foreground = [np.flatnonzero((m > 0) | (m == FOREGROUND_INDEX)).astype(np.int32) if foreground_share
                           else None for m in self.masks]
        # Large images are drawn more often, so that every pixel is seen about equally.
        areas = np.array([m.size for m in self.masks], dtype=np.float64)
        self.weights = areas / areas.sum()
        if groups is not None:
            if len(groups) != len(samples):
                raise ValueError("give one group per sample")
            labels = np.asarray(groups)
            for group in np.unique(labels):
                members = labels == group
                self.weights[members] = areas[members] / areas[members].sum()
            self.weights /= self.weights.sum()

    def _pad(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape
        ph, pw = max(0, self.crop_size - h), max(0, self.crop_size - w)
        if ph or pw:
            pad = ((0, ph), (0, pw))
            mode = "reflect" if min(h, w) > 1 else "edge"
            image = np.pad(image, ((0, 0), *pad), mode=mode)
            mask = np.pad(mask, pad, mode=mode)
        return image, mask

    def crop(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.images[index], self.masks[index]
        h, w = mask.shape
        c = self.crop_size
        foreground = self.foreground[index]
        if self.foreground_share and foreground.size and self.rng.random() < self.foreground_share:
            fy, fx = divmod(int(foreground[self.rng.integers(foreground.size)]), w)
            y = self.rng.integers(max(0, fy - c + 1), min(h - c, fy) + 1)
            x = self.rng.integers(max(0, fx - c + 1), min(w - c, fx) + 1)
        elif self.even_coverage:
            y, x = (int(np.clip(self.rng.integers(1 - c, side), 0, side - c)) for side in (h, w))
        else:
            y, x = self.rng.integers(0, h - c + 1), self.rng.integers(0, w - c + 1)
        img = image[:, y : y + c, x : x + c].astype(np.float32)
        msk = mask[y : y + c, x : x + c].astype(np.int64)
        k = int(self.rng.integers(4))
        img, msk = np.rot90(img, k, axes=(1, 2)), np.rot90(msk, k)
        if self.rng.random() < 0.5:
            img, msk = img[:, :, ::-1], msk[:, ::-1]
        if self.invert_probability and self.rng.random() < self.invert_probability:
            img = -img  # images are zero-mean after normalisation: negating inverts them
        return expand_channels(img, self.model_channels), msk

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.rng.choice(len(self.images), size=batch_size, p=self.weights)
        pairs = [self.crop(int(i)) for i in idx]
        images = torch.from_numpy(np.stack([p[0] for p in pairs]).copy())
        masks = torch.from_numpy(np.stack([p[1] for p in pairs]).copy())
        return images, masks
