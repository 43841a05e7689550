"""What the label-efficiency benchmark runs: the pairs, the budget and its settings chosen per pair, the
fine-tuning variant, and the planned runs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from napari_hybridseg.learn.train import PRECISIONS

if TYPE_CHECKING:
    from napari_hybridseg.learn.pretrain import ModelConfig

PRETRAINED = ("hybrid", "supervised", "diffusion")
ARMS = (*PRETRAINED, "scratch", "forest")


@dataclass(frozen=True)
class Pair:
    root: Path
    source: str
    target: str
    source_split: str = "train"

    @property
    def name(self) -> str:
        return f"{self.root.name}-{self.source}-{self.target}"


@dataclass(frozen=True)
class Budget:
    pretrain_steps: dict[str, int]  # per data set folder name; "*" for any other
    finetune_steps: int = 200
    batch_size: int = 8
    crop: int = 128
    seeds: int = 5
    n_labels: tuple[int, ...] = (5, 1, 2, 10)  # run order: the headline N first
    ceiling_seeds: int = 1
    max_test_images: int | None = None
    base_channels: int = 16
    clean_fraction: float = 0.5  # share of each hybrid pretraining batch at σ_min (docs/studies/clean_share.md)
    invert_probability: float = 0.0  # share of every pretrained arm's crops with inverted intensities
    lambda_image: float = 1.0  # weight of hybrid pretraining's denoising term (the mask term's is 1)
    sigma_log_mean: float = -1.2  # mean of log σ for hybrid pretraining's noised crops (EDM's log-normal)
    # every pretrained arm's pretraining seed (weights, crops, noise): other seeds measure how much of an arm's
    # score is its one source model's luck, which the intervals over fine-tuning seeds and test images leave out
    pretrain_seed: int = 0
    # K > 0: the pretrained arms keep the share N / (N + K) of their fine-tuned weights (``Variant.finetuned_half_at``)
    finetuned_half_at: float = 0.0
    # settings chosen on a pair's validation protocol, by data set folder name (``retina``) or by pair name
    # (``dsb2018-fluorescence-histology``: a pair's own go over its data set's); a flag given on the command line
    # overrides them for every pair
    chosen: dict[str, dict[str, float]] = field(default_factory=dict)

    def overridden(self, **given: Any) -> Budget:
        """This budget with ``given`` settings for every pair, over the ones chosen per data set or pair."""
        return replace(self, **given, chosen={name: {k: v for k, v in settings.items() if k not in given}
                                              for name, settings in self.chosen.items()})

    def for_pair_name(self, pair_name: str) -> Budget:
        """This budget with the settings chosen for the pair named ``pair_name`` (``<root>-<source>-<target>``)."""
        matching = sorted((name for name in self.chosen if pair_name == name or pair_name.startswith(f"{name}-")), key=len)
        settings = {k: v for name in matching for k, v in self.chosen[name].items()}
        return replace(self, **settings, chosen={})

    def architecture(self) -> ModelConfig:
        """The network every arm trains: what ``hybridseg pretrain`` builds from :meth:`pretrain_args`."""
        from napari_hybridseg.learn.pretrain import ModelConfig

        return ModelConfig(base_channels=self.base_channels)

    def pretrain_tag(self, method: str) -> str:
        """Names the pretraining setting of ``method`` in file names and records ("" for the one setting an arm always had)."""
        if method not in PRETRAINED:
            return ""
        parts = [f"clean{self.clean_fraction:g}"] if method == "hybrid" else []
        if self.invert_probability:
            parts.append(f"invert{self.invert_probability:g}")
        if method == "hybrid" and self.lambda_image != 1.0:
            parts.append(f"lambda{self.lambda_image:g}")
        if method == "hybrid" and self.sigma_log_mean != Budget.sigma_log_mean:
            parts.append(f"logsigma{self.sigma_log_mean:g}")
        if self.pretrain_seed:
            parts.append(f"seed{self.pretrain_seed}")
        return "-".join(parts)

    def pretrain_args(self, method: str) -> list[str]:
        """The ``hybridseg pretrain`` options of that setting."""
        shared = ["--invert-probability", str(self.invert_probability)] if self.invert_probability else []
        if self.pretrain_seed:
            shared += ["--seed", str(self.pretrain_seed)]
        if method == "hybrid":
            return ["--clean-fraction", str(self.clean_fraction), "--lambda-image", str(self.lambda_image),
                    "--sigma-log-mean", str(self.sigma_log_mean), *shared]
        if method == "diffusion":
            return ["--clean-fraction", "0", *shared]
        return shared

    @property
    def shown_tags(self) -> dict[str, str]:
        """The setting reported as each pretrained arm (others show as ``<arm>@<setting>``)."""
        return {m: self.pretrain_tag(m) for m in PRETRAINED}

    def pretrain_steps_for(self, pair: Pair) -> int:
        return self.pretrain_steps.get(pair.root.name, self.pretrain_steps["*"])


# The settings chosen on each pair's validation protocol; each has its study in docs/studies/.
FULL = Budget(
    pretrain_steps={"dsb2018": 1500, "retina": 1000, "*": 1000},
    chosen={
        "retina": {"lambda_image": 0.25, "sigma_log_mean": -2.0},  # lambda.md, noise_levels.md
        "dsb2018": {"invert_probability": 0.5},  # inverted_pretraining.md
        "dsb2018-fluorescence-brightfield": {"finetune_steps": 600},  # finetune_steps.md
        "dsb2018-fluorescence-histology": {"finetune_steps": 50, "finetuned_half_at": 1.0},  # keeping_the_start.md
    },
)
QUICK = Budget(
    pretrain_steps={"*": 20}, finetune_steps=10, batch_size=2, crop=64, seeds=2, n_labels=(1, 2),
    max_test_images=2, base_channels=8,
)


@dataclass(frozen=True)
class Variant:
    """How the network arms are fine-tuned (recorded with each result as its tag): the mask loss on the
    labelled crops, with these settings."""

    finetune_steps: int | None = None  # for every network arm; None: the budget's
    lr: float | None = None  # the pretrained arms' fine-tuning learning rate; None: the product's
    scratch_lr: float | None = None  # scratch's, chosen apart (a rate that suits a start may not suit random weights)
    # K > 0: with N labelled images the pretrained arms return N / (N + K) of their fine-tuned weights and the
    # rest of their starting ones (WiSE-FT by the number of labels; K = 1: one image keeps half of the start);
    # 0: off; None: the pair's chosen K
    finetuned_half_at: float | None = None
    precision: str = "float32"  # of every network arm's fine-tuning (TrainConfig.precision)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for rate in (self.lr, self.scratch_lr):
            if rate is not None and not rate > 0:
                raise ValueError(f"the fine-tuning learning rate must be positive, got {rate}")
        if (self.finetuned_half_at or 0.0) < 0:
            raise ValueError(f"K of the fine-tuned share N / (N + K) must not be negative, got {self.finetuned_half_at}")

    def finetuned_share_for(self, n_labels: int) -> float:
        if self.finetuned_half_at and n_labels:  # with no labels nothing is fine-tuned
            return n_labels / (n_labels + self.finetuned_half_at)
        return 1.0

    @property
    def tag(self) -> str:
        return ("mask" + (f"+steps{self.finetune_steps}" if self.finetune_steps else "")
                + (f"+lr{self.lr:g}" if self.lr else "")
                + (f"+scratchlr{self.scratch_lr:g}" if self.scratch_lr else "")
                + (f"+wisek{self.finetuned_half_at:g}" if self.finetuned_half_at else "")
                + ("+bf16" if self.precision == "bfloat16" else ""))

    def on_pair(self, budget: Budget, pair_name: str) -> Variant:
        """This variant as it runs on the pair ``pair_name`` under ``budget``: its own fine-tuning steps and blend,
        else the pair's chosen ones. Steps equal to ``budget``'s own stay out of the tag, so a pair's chosen
        settings and the same settings asked for on the command line share their records."""
        chosen = budget.for_pair_name(pair_name)
        steps = self.finetune_steps or chosen.finetune_steps
        half_at = chosen.finetuned_half_at if self.finetuned_half_at is None else self.finetuned_half_at
        return replace(self, finetune_steps=None if steps == budget.finetune_steps else steps, finetuned_half_at=half_at)

    @property
    def slug(self) -> str:
        """The tag as a file-name part."""
        return self.tag.replace("+", "_")


# the pretraining settings a command line can give for every pair, as they name a report
PRETRAIN_SETTING_NAMES = {"clean_fraction": "clean", "invert_probability": "invert", "lambda_image": "lambda",
                          "sigma_log_mean": "logsigma", "pretrain_seed": "pretrainseed"}


def main_section(quick: bool, protocol: str) -> str:
    """The protocol's main report: every pair at its chosen settings."""
    return "_".join(["label_efficiency"] + (["quick"] if quick else []) + (["validation"] if protocol == "validation" else []))


def default_section(quick: bool, protocol: str, variant: Variant, base: Budget, budget: Budget,
                    pair_names: list[str]) -> str:
    """The report a run writes unless it is named: the protocol's main one where every pair runs at its chosen
    settings (given on the command line or not), else one named after the settings that leave them, so that a run
    at other settings never overwrites the report of the chosen ones."""
    parts = [main_section(quick, protocol)]
    if any(variant.on_pair(budget, name) != Variant().on_pair(budget, name) for name in pair_names):
        parts.append(variant.slug)
    for setting, short in PRETRAIN_SETTING_NAMES.items():
        if any(getattr(base.for_pair_name(name), setting) != getattr(budget.for_pair_name(name), setting)
               for name in pair_names):
            parts.append(f"{short}{getattr(budget, setting):g}")  # a flag given: the same for every pair
    return "_".join(parts)


def default_pairs(data_root: Path) -> list[Pair]:
    return [
        Pair(data_root / "retina", "drive", "chase"),
        Pair(data_root / "dsb2018", "fluorescence", "histology"),
        Pair(data_root / "dsb2018", "fluorescence", "brightfield"),
        Pair(data_root / "lungs", "paediatric", "covid"),
        Pair(data_root / "polyps", "kvasir", "clinicdb"),
    ]


def parse_pair(text: str) -> Pair:
    try:
        root, source, target = text.rsplit(":", 2)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a pair is ROOT:SOURCE:TARGET, got {text!r}") from None
    return Pair(Path(root), source, target)


def planned_runs(pairs: list[Pair], arms: list[str], budget: Budget, pool_sizes: dict[str, int]) -> Iterator[tuple]:
    """(pair, method, n_labels, seed) in the order they run: zero-shot, then each N (the headline first), then the ceiling.
    Arms are innermost so an interrupted benchmark leaves complete paired sets."""
    for pair in pairs:
        for method in arms:
            if method in ("hybrid", "supervised"):  # diffusion pretraining never trains the mask head
                yield pair, method, 0, 0
    for n in budget.n_labels:
        for seed in range(budget.seeds):
            for pair in pairs:
                if n < pool_sizes[pair.name]:
                    for method in arms:
                        yield pair, method, n, seed
    for seed in range(budget.ceiling_seeds):
        for pair in pairs:
            for method in arms:
                yield pair, method, pool_sizes[pair.name], seed  # the ceiling: every pool image
