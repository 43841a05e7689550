import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from napari_hybridseg.learn.acquisition import (
    DisagreementScorer,
    ImageScore,
    auto_batch_size,
    bald,
    image_score,
    mask_samples,
    pairwise_dice_disagreement,
    softmax_entropy,
)
from napari_hybridseg.model.precond import SIGMA_MIN, HybridSegModel


def tiny_model(image_channels: int = 3) -> HybridSegModel:
    torch.manual_seed(0)
    return HybridSegModel(image_channels, 2, base_channels=8, channel_mults=(1, 2)).eval()


class FakeModel(nn.Module):
    """Mimics HybridSegModel: the foreground logit is a gain times the (noisy) first channel."""

    def __init__(self, image_channels: int = 3, gain: float = 4.0):
        super().__init__()
        self.image_channels, self.n_classes, self.sigma_data = image_channels, 2, 0.5
        self.unet_config = SimpleNamespace(downsample_factor=4)
        self.gain = gain
        self.calls = 0

    def forward(self, x_noisy, sigma):
        self.calls += 1
        fg = self.gain * x_noisy[:, :1]
        return x_noisy * 0.5, torch.cat([-fg, fg], 1)


def count_calls(model: nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def two_class(p_fg) -> torch.Tensor:
    """(S,) or (S, H, W) foreground probabilities → (S, 2, H, W) probabilities."""
    p = torch.as_tensor(p_fg, dtype=torch.float64)
    while p.ndim < 3:
        p = p[..., None]
    return torch.stack([1 - p, p], 1)


# -- sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["noise", "sdedit"])
def test_mask_samples_shapes_and_normalisation(mode):
    model = tiny_model()
    x = torch.randn(3, 13, 22, generator=gen(1)) * 0.5  # not a multiple of the downsample factor
    probs = mask_samples(model, x, (0.2, 0.5), 3, gen(), mode=mode, n_steps=2, batch_size=4)
    assert probs.shape == (6, 2, 13, 22)
    assert probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(6, 13, 22), atol=1e-5)
    assert (probs >= 0).all()


@pytest.mark.parametrize("mode", ["noise", "sdedit"])
def test_mask_samples_deterministic_with_seed(mode):
    model = tiny_model()
    x = torch.randn(3, 16, 16, generator=gen(1)) * 0.5
    kwargs = dict(mode=mode, n_steps=2, churn=1.0)
    a = mask_samples(model, x, (0.3,), 4, gen(7), **kwargs)
    b = mask_samples(model, x, (0.3,), 4, gen(7), **kwargs)
    c = mask_samples(model, x, (0.3,), 4, gen(8), **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the samples are stochastic


def test_mask_samples_do_not_depend_on_chunking():
    model = tiny_model()
    x = torch.randn(3, 16, 16, generator=gen(1)) * 0.5
    one = mask_samples(model, x, (0.2, 0.5), 3, gen(3), batch_size=6)
    chunked = mask_samples(model, x, (0.2, 0.5), 3, gen(3), batch_size=4)
    assert torch.allclose(one, chunked, atol=1e-5)


def test_mask_samples_batches_forward_passes():
    model = FakeModel()
    x = torch.zeros(3, 8, 8)
    mask_samples(model, x, (0.2, 0.4), 4, gen(), batch_size=8)
    assert model.calls == 1  # all 8 samples in one pass
    model.calls = 0
    mask_samples(model, x, (0.2, 0.4), 4, gen(), batch_size=3)
    assert model.calls == 3
    model.calls = 0
    mask_samples(model, x, (0.2, 0.4), 4, gen(), mode="sdedit", n_steps=3)
    assert model.calls == 3 + 1  # n_steps denoiser steps, then the mask at SIGMA_MIN


def test_sdedit_euler_steps_follow_the_denoiser_to_sigma_min():
    class ZeroDenoiser(FakeModel):
        def forward(self, x_noisy, sigma):
            self.inputs.append((x_noisy.clone(), sigma.clone()))
            return torch.zeros_like(x_noisy), super().forward(x_noisy, sigma)[1]

    model = ZeroDenoiser()
    model.inputs = []
    mask_samples(model, torch.zeros(3, 8, 8), (0.5,), 2, gen(), mode="sdedit", n_steps=4)
    (x_start, s_start), (x_end, s_end) = model.inputs[0], model.inputs[-1]
    assert torch.allclose(s_start, torch.full((2,), 0.5))
    assert torch.allclose(s_end, torch.full((2,), SIGMA_MIN))
    assert [float(s[0]) for _, s in model.inputs] == sorted((float(s[0]) for _, s in model.inputs), reverse=True)
    # probability-flow Euler steps towards D = 0 shrink x by σ_next/σ each, so by SIGMA_MIN/σ* in all
    assert torch.allclose(x_end, x_start * SIGMA_MIN / 0.5, atol=1e-6)


def test_higher_sigma_gives_more_disagreement_with_noise_sensitive_model():
    model = FakeModel()
    x = torch.zeros(3, 16, 16)
    spread = {s: float(bald(mask_samples(model, x, (s,), 8, gen())).mean()) for s in (0.05, 0.3, 1.0)}
    assert spread[0.05] < spread[0.3] < spread[1.0]


# -- disagreement ------------------------------------------------------------------------
def test_bald_zero_when_samples_agree_and_positive_when_they_differ():
    same = two_class([0.3, 0.3, 0.3])
    assert float(bald(same).abs().max()) < 1e-12
    assert float(bald(two_class([0.1, 0.9]))) > 0


def test_bald_hand_computed_one_pixel():
    def h(p):
        return -sum(q * math.log(q) for q in p if q > 0)

    # fully confident but opposite: H(0.5, 0.5) − 0 = ln 2
    assert float(bald(two_class([0.0, 1.0]))) == pytest.approx(math.log(2))
    # p = 0.9 and 0.5: H(0.7) − (H(0.9) + H(0.5)) / 2
    expected = h([0.3, 0.7]) - (h([0.1, 0.9]) + h([0.5, 0.5])) / 2
    assert float(bald(two_class([0.9, 0.5]))) == pytest.approx(expected, rel=1e-9)


def test_pairwise_dice_identical_and_disjoint():
    a = np.zeros((6, 6), bool)
    a[:3] = True
    identical = two_class(np.stack([a, a, a]).astype(float))
    score, pixel_map = pairwise_dice_disagreement(identical)
    assert score == 0.0 and float(pixel_map.max()) == 0.0

    disjoint = two_class(np.stack([a, ~a]).astype(float))
    score, pixel_map = pairwise_dice_disagreement(disjoint)
    assert score == pytest.approx(1.0)
    assert torch.allclose(pixel_map, torch.full((6, 6), 0.5, dtype=pixel_map.dtype))


def test_pairwise_dice_majority_map_and_partial_overlap():
    a = np.zeros((1, 4), bool)
    a[0, :2] = True
    b = np.zeros((1, 4), bool)
    b[0, 1:3] = True
    score, pixel_map = pairwise_dice_disagreement(two_class(np.stack([a, a, b]).astype(float)))
    # pairs (a, a): Dice 1; (a, b) twice: Dice 2·1/4 = 0.5 → mean of 1 − Dice = (0 + 0.5 + 0.5) / 3
    assert score == pytest.approx(1 / 3)
    np.testing.assert_allclose(pixel_map.numpy(), [[1 / 3, 0, 1 / 3, 0]])
    # both empty counts as full agreement
    assert pairwise_dice_disagreement(two_class(np.zeros((2, 3, 3))))[0] == 0.0


def test_softmax_entropy_max_at_half():
    p = torch.linspace(0, 1, 11, dtype=torch.float64)
    ent = softmax_entropy(torch.stack([1 - p, p])[:, None, :])[0]
    assert int(ent.argmax()) == 5
    assert float(ent[5]) == pytest.approx(math.log(2))
    assert float(ent[0]) == 0.0 and float(ent[-1]) == 0.0
    assert softmax_entropy(torch.stack([1 - p, p])[None, :, None, :]).shape == (1, 11)


def test_image_score_mean_and_foreground():
    pixel_map = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    probs = two_class(np.array([[[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]]))
    assert image_score(pixel_map) == pytest.approx(0.25)
    assert image_score(pixel_map, probs, "foreground") == pytest.approx(1.0)
    assert image_score(torch.zeros(2, 2), two_class(np.zeros((2, 2, 2))), "foreground") == 0.0


# -- scorer ------------------------------------------------------------------------------
def rgb_image(seed: int, shape=(20, 27)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


def test_scorer_score_shape_and_cache_hit_skips_model():
    model = tiny_model()
    calls = count_calls(model)
    scorer = DisagreementScorer(model, "v1", samples=4, sigmas=(0.3, 0.6))
    image = rgb_image(0)
    first = scorer.score("a", image)
    assert isinstance(first, ImageScore)
    assert first.map.shape == (20, 27) and first.map.dtype == np.float32
    assert first.score >= 0 and np.isfinite(first.map).all()
    assert first.score == pytest.approx(float(first.map.mean()), rel=1e-5)
    n = calls[0]
    assert n == 1
    again = scorer.score("a", image.copy())
    assert calls[0] == n and again is first
    # a changed file is rescored; a new model version too
    scorer.score("a", rgb_image(1))
    assert calls[0] == n + 1
    scorer.invalidate(model, "v2")
    scorer.score("a", image)
    assert calls[0] == n + 2


def test_scorer_scores_do_not_depend_on_order():
    images = {k: rgb_image(i) for i, k in enumerate("abc")}
    one = DisagreementScorer(tiny_model(), samples=4)
    two = DisagreementScorer(tiny_model(), samples=4)
    forward = {k: one.score(k, im).score for k, im in images.items()}
    backward = {k: two.score(k, im).score for k, im in reversed(list(images.items()))}
    assert forward == backward


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", [(17, 23), (9, 31, 3), (12, 12, 4)])
def test_scorer_grey_rgb_and_odd_sizes(channels, shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    result = DisagreementScorer(tiny_model(channels), samples=2, sigmas=(0.4,)).score("k", image)
    assert result.map.shape == shape[:2]
    assert np.isfinite(result.score)


@pytest.mark.parametrize("metric", ["dice", "entropy"])
@pytest.mark.parametrize("reduce", ["mean", "foreground"])
def test_scorer_other_metrics(metric, reduce):
    model = tiny_model()
    calls = count_calls(model)
    result = DisagreementScorer(model, samples=4, metric=metric, reduce=reduce).score("k", rgb_image(3))
    assert result.map.shape == (20, 27)
    assert 0 <= result.score <= 1
    assert calls[0] == 1


def test_scorer_sdedit_mode():
    model = tiny_model()
    calls = count_calls(model)
    result = DisagreementScorer(model, samples=4, mode="sdedit", n_steps=2, churn=0.5).score("k", rgb_image(4))
    assert result.map.shape == (20, 27) and np.isfinite(result.score)
    assert calls[0] == 3


def test_auto_batch_size():
    cpu, gpu = torch.device("cpu"), torch.device("meta")
    assert torch.get_num_threads() == 1  # conftest
    assert auto_batch_size(8, (256, 256), cpu) == 1
    assert auto_batch_size(8, (128, 128), cpu) == 2
    assert auto_batch_size(8, (16, 16), cpu) == 8
    assert auto_batch_size(8, (256, 256), gpu) == 8
    torch.set_num_threads(2)
    assert auto_batch_size(8, (256, 256), cpu) == 8  # conftest restores the thread count


def test_scorer_max_pixels_scores_one_reproducible_crop():
    model = tiny_model()
    scorer = DisagreementScorer(model, samples=2, sigmas=(0.4,), max_pixels=100)
    image = rgb_image(5, shape=(30, 40))
    result = scorer.score("k", image)
    assert result.map.shape == (30, 40)
    nonzero = np.argwhere(result.map != 0)
    height, width = np.ptp(nonzero, axis=0) + 1
    assert height * width <= 100
    assert result.score == pytest.approx(float(result.map[result.map != 0].mean()), rel=1e-3)
    again = DisagreementScorer(model, samples=2, sigmas=(0.4,), max_pixels=100).score("other", image)
    np.testing.assert_array_equal(again.map, result.map)


def test_scorer_rejects_uneven_samples():
    with pytest.raises(ValueError):
        DisagreementScorer(tiny_model(), samples=5, sigmas=(0.2, 0.4))


def test_score_many_honours_should_stop_and_ranking():
    model = FakeModel()
    scorer = DisagreementScorer(model, "v1", samples=4)
    read = []

    def items():
        for i in range(5):
            read.append(i)
            # more contrast in channel 0 → FakeModel more confident → less disagreement
            image = np.zeros((8, 8, 3), np.float32)
            image[::2, :, 0] = 1.0
            image[..., 1] = np.random.default_rng(i).random((8, 8)) * (1 + 10 * i)
            yield f"img{i}", image

    done = []
    for key, result in scorer.score_many(items(), should_stop=lambda: len(done) >= 2):
        done.append(key)
    assert done == ["img0", "img1"]
    assert read == [0, 1, 2]  # the third was read but not scored
    assert model.calls == 2

    all_done = [key for key, _ in scorer.score_many(items())]
    assert all_done == [f"img{i}" for i in range(5)]
    assert model.calls == 5  # the first two came from the cache
    ranking = scorer.ranking([f"img{i}" for i in range(6)])
    assert [k for k, _ in ranking] == [k for k, _ in sorted(ranking, key=lambda kv: -kv[1])]
    assert len(ranking) == 5  # img5 was never scored
    assert scorer.ranking() == ranking
    scorer.invalidate(model_version="v2")
    assert scorer.ranking() == []
