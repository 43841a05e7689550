"""The hybrid loss: noise-level sampling, active terms, mask losses, overfitting."""

from __future__ import annotations

import math

import pytest
import torch

from napari_hybridseg.model.loss import (
    FOREGROUND_INDEX,
    IGNORE_INDEX,
    METHODS,
    HybridLoss,
    LossConfig,
    cross_entropy,
    mask_loss,
    soft_dice_loss,
)
from napari_hybridseg.model.precond import SIGMA_MIN, HybridSegModel

SMALL = dict(base_channels=8, channel_mults=(1, 2), embedding_dim=16)


def tiny(image_channels: int = 1, n_classes: int = 2) -> HybridSegModel:
    torch.manual_seed(0)
    return HybridSegModel(image_channels, n_classes, **SMALL)


def toy_batch(batch: int = 4, size: int = 16, channels: int = 1, seed: int = 0):
    """Bright squares on a dark background; the mask is the square."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch, size, size, dtype=torch.long)
    for i in range(batch):
        y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
        masks[i, y : y + size // 2, x : x + size // 2] = 1
    images = (masks.float() - 0.5)[:, None].expand(batch, channels, size, size).contiguous()
    images = images + 0.05 * torch.randn(images.shape, generator=g)
    return images, masks


def confident_logits(classes: torch.Tensor, n_classes: int, scale: float = 30.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(classes, n_classes).permute(0, 3, 1, 2).float() * scale


# --- configuration -------------------------------------------------------------------


def test_loss_config_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'denoise'"):
        LossConfig(method="denoise")


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_loss_config_rejects_clean_fraction_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match="clean_fraction"):
        LossConfig(clean_fraction=fraction)


def test_loss_config_accepts_every_method_and_serialises():
    for method in METHODS:
        assert LossConfig(method=method).to_dict()["method"] == method
    assert set(METHODS) == {"hybrid", "supervised", "diffusion"}


# --- noise levels --------------------------------------------------------------------


def test_supervised_sigmas_are_all_sigma_min():
    loss = HybridLoss(LossConfig(method="supervised"))
    sigma = loss.sample_sigma(16, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert sigma.shape == (16,)
    torch.testing.assert_close(sigma, torch.full((16,), SIGMA_MIN))


@pytest.mark.parametrize("batch,fraction", [(8, 0.25), (10, 0.25), (7, 0.5), (5, 0.0), (6, 1.0)])
def test_hybrid_puts_round_fraction_of_batch_at_sigma_min(batch, fraction):
    loss = HybridLoss(LossConfig(method="hybrid", clean_fraction=fraction))
    g = torch.Generator().manual_seed(1)
    expected = int(round(fraction * batch))
    for _ in range(5):
        sigma = loss.sample_sigma(batch, torch.device("cpu"), g)
        assert sigma.shape == (batch,)
        n_clean = int((sigma == SIGMA_MIN).sum())
        assert n_clean == expected
        assert (sigma[expected:] != SIGMA_MIN).all()
        assert (sigma > 0).all()


def test_hybrid_noisy_sigmas_are_log_normal_with_configured_mean_and_std():
    cfg = LossConfig(method="hybrid", p_mean=-1.2, p_std=1.2, clean_fraction=0.25)
    loss = HybridLoss(cfg)
    g = torch.Generator().manual_seed(2)
    draws = torch.cat([loss.sample_sigma(64, torch.device("cpu"), g)[16:] for _ in range(200)])
    log_sigma = draws.log()
    assert draws.numel() == 48 * 200
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.05)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.05)


def test_log_normal_parameters_are_honoured():
    loss = HybridLoss(LossConfig(method="diffusion", p_mean=0.5, p_std=0.3))
    draws = loss.sample_sigma(8000, torch.device("cpu"), torch.Generator().manual_seed(3)).log()
    assert draws.mean().item() == pytest.approx(0.5, abs=0.02)
    assert draws.std().item() == pytest.approx(0.3, abs=0.02)


def test_diffusion_has_no_clean_samples_by_default():
    config = LossConfig(method="diffusion")
    assert config.clean_fraction == 0.0
    loss = HybridLoss(config)
    g = torch.Generator().manual_seed(4)
    sigma = torch.cat([loss.sample_sigma(32, torch.device("cpu"), g) for _ in range(20)])
    assert not (sigma == SIGMA_MIN).any()
    assert sigma.std() > 0


def test_diffusion_puts_its_clean_fraction_at_sigma_min():
    loss = HybridLoss(LossConfig(method="diffusion", clean_fraction=0.5))
    sigma = loss.sample_sigma(8, torch.device("cpu"), torch.Generator().manual_seed(4))
    assert int((sigma == SIGMA_MIN).sum()) == 4
    assert (sigma[4:] != SIGMA_MIN).all()


def test_each_method_records_its_default_clean_fraction():
    assert LossConfig(method="hybrid").to_dict()["clean_fraction"] == 0.25
    assert LossConfig(method="supervised").to_dict()["clean_fraction"] == 0.25
    assert LossConfig(method="diffusion").to_dict()["clean_fraction"] == 0.0


def test_sigma_sampling_is_reproducible_with_a_generator():
    loss = HybridLoss(LossConfig(method="hybrid"))
    a = loss.sample_sigma(12, torch.device("cpu"), torch.Generator().manual_seed(9))
    b = loss.sample_sigma(12, torch.device("cpu"), torch.Generator().manual_seed(9))
    c = loss.sample_sigma(12, torch.device("cpu"), torch.Generator().manual_seed(10))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


# --- active terms --------------------------------------------------------------------


def _terms(method: str, masks: bool = True):
    model = tiny()
    images, labels = toy_batch()
    loss = HybridLoss(LossConfig(method=method))
    return loss(model, images, labels if masks else None, generator=torch.Generator().manual_seed(0))


def test_supervised_has_no_image_term():
    terms = _terms("supervised")
    assert terms.image.item() == 0.0
    assert terms.mask.item() > 0
    assert terms.total.item() == pytest.approx(terms.mask.item(), rel=1e-6)
    assert terms.total.requires_grad


def test_diffusion_has_no_mask_term():
    terms = _terms("diffusion")
    assert terms.mask.item() == 0.0
    assert terms.image.item() > 0
    assert terms.total.item() == pytest.approx(terms.image.item(), rel=1e-6)
    assert terms.total.requires_grad


def test_hybrid_has_both_terms():
    terms = _terms("hybrid")
    assert terms.image.item() > 0
    assert terms.mask.item() > 0
    assert terms.total.item() == pytest.approx(terms.image.item() + terms.mask.item(), rel=1e-5)


def test_hybrid_without_masks_is_denoising_only():
    terms = _terms("hybrid", masks=False)
    assert terms.mask.item() == 0.0
    assert terms.image.item() > 0


def test_lambdas_weight_the_terms():
    model = tiny()
    images, labels = toy_batch()
    cfg = dict(method="hybrid")
    base = HybridLoss(LossConfig(**cfg))(model, images, labels, torch.Generator().manual_seed(0))
    weighted = HybridLoss(LossConfig(lambda_image=0.5, lambda_mask=3.0, **cfg))(
        model, images, labels, torch.Generator().manual_seed(0)
    )
    expected = 0.5 * base.image.item() + 3.0 * base.mask.item()
    assert weighted.total.item() == pytest.approx(expected, rel=1e-5)
    off = HybridLoss(LossConfig(lambda_image=0.0, **cfg))(model, images, labels, torch.Generator().manual_seed(0))
    assert off.image.item() == 0.0


def test_terms_are_detached_and_total_is_differentiable():
    terms = _terms("hybrid")
    assert not terms.image.requires_grad and not terms.mask.requires_grad
    terms.total.backward()  # must not raise


# --- mask losses ---------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 4])
def test_soft_dice_is_near_zero_for_a_confident_perfect_prediction(n_classes):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, n_classes, (2, 16, 16), generator=g)
    assert soft_dice_loss(confident_logits(target, n_classes), target).item() < 1e-3


@pytest.mark.parametrize("n_classes", [2, 4])
def test_soft_dice_is_near_one_for_a_confident_wrong_prediction(n_classes):
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, n_classes, (2, 16, 16), generator=g)
    wrong = (target + 1) % n_classes
    assert soft_dice_loss(confident_logits(wrong, n_classes), target).item() > 0.99


def test_soft_dice_of_uniform_prediction_is_in_between():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :, :4] = 1
    value = soft_dice_loss(torch.zeros(1, 2, 8, 8), target).item()
    assert 0.3 < value < 0.7  # probabilities 0.5 everywhere: Dice ≈ 0.5


def test_mask_loss_is_small_for_perfect_and_large_for_wrong():
    target = toy_batch()[1]
    good = mask_loss(confident_logits(target, 2), target).item()
    bad = mask_loss(confident_logits(1 - target, 2), target).item()
    assert good < 1e-3
    assert bad > 10


def test_ignored_pixels_do_not_affect_mask_loss():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 12, 12), generator=g)
    target[:, :, :5] = IGNORE_INDEX
    logits = torch.randn(2, 3, 12, 12, generator=g)
    changed = logits.clone()
    changed[:, :, :, :5] = torch.randn(2, 3, 12, 5, generator=g) * 50
    torch.testing.assert_close(mask_loss(changed, target), mask_loss(logits, target))
    torch.testing.assert_close(soft_dice_loss(changed, target), soft_dice_loss(logits, target))
    # while changing a labelled pixel does change it
    changed[:, :, :, 8] += 5 * torch.randn(2, 3, 12, generator=g)
    assert not torch.allclose(mask_loss(changed, target), mask_loss(logits, target))


def test_ignored_pixels_get_no_gradient():
    target = torch.ones(1, 6, 6, dtype=torch.long)
    target[:, :3] = IGNORE_INDEX
    logits = torch.randn(1, 2, 6, 6, requires_grad=True)
    mask_loss(logits, target).backward()
    assert logits.grad[:, :, :3].abs().max().item() == 0.0
    assert logits.grad[:, :, 3:].abs().max().item() > 0.0


def test_all_ignored_batch_gives_zero_with_a_gradient():
    target = torch.full((2, 8, 8), IGNORE_INDEX, dtype=torch.long)
    logits = torch.randn(2, 2, 8, 8, requires_grad=True)
    value = mask_loss(logits, target)
    assert value.item() == 0.0
    assert value.requires_grad
    value.backward()
    assert logits.grad is not None and logits.grad.abs().max().item() == 0.0


def test_hybrid_loss_with_all_ignored_masks_has_no_mask_term():
    model = tiny()
    images, _ = toy_batch()
    masks = torch.full((4, 16, 16), IGNORE_INDEX, dtype=torch.long)
    terms = HybridLoss(LossConfig(method="hybrid"))(model, images, masks, torch.Generator().manual_seed(0))
    assert terms.mask.item() == 0.0
    assert math.isfinite(terms.total.item()) and terms.image.item() > 0


# --- learning ------------------------------------------------------------------------


def test_tiny_model_overfits_one_batch_with_the_hybrid_loss():
    torch.manual_seed(0)
    model = HybridSegModel(1, 2, **SMALL)
    images, masks = toy_batch(batch=4, size=32, seed=1)
    loss = HybridLoss(LossConfig(method="hybrid", clean_fraction=0.5))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def evaluate():
        with torch.no_grad():
            return loss(model, images, masks, torch.Generator().manual_seed(0))

    first = evaluate()
    for step in range(30):
        terms = loss(model, images, masks, torch.Generator().manual_seed(step % 3))
        optimiser.zero_grad()
        terms.total.backward()
        optimiser.step()
    last = evaluate()
    assert math.isfinite(last.total.item())
    assert last.total.item() < 0.6 * first.total.item()
    assert last.mask.item() < 0.6 * first.mask.item()


def test_foreground_pixels_score_the_summed_foreground_probability():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, -1.0]]).T.reshape(1, 3, 2, 1)  # two pixels, three classes
    target = torch.tensor([[[FOREGROUND_INDEX], [0]]])
    probs = logits.softmax(1)[0, :, :, 0]
    expected = -(torch.log(probs[1, 0] + probs[2, 0]) + torch.log(probs[0, 1])) / 2
    assert cross_entropy(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_foreground_pixels_are_left_out_of_the_soft_dice_and_cost_nothing_when_either_class_fits():
    classes = torch.tensor([[[0, 1, 2, 1]]])
    logits = confident_logits(classes, 3)
    target = torch.tensor([[[0, FOREGROUND_INDEX, FOREGROUND_INDEX, IGNORE_INDEX]]])
    assert mask_loss(logits, target).item() < 1e-3
    wrong = confident_logits(torch.tensor([[[0, 0, 0, 0]]]), 3)
    assert cross_entropy(wrong, target).item() > 10
