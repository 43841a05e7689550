"""EDM preconditioning and the output layout of HybridSegModel."""

from __future__ import annotations

import math

import pytest
import torch

from napari_hybridseg.model.precond import SIGMA_MIN, HybridSegModel

SMALL = dict(base_channels=8, channel_mults=(1, 2), embedding_dim=16)


def tiny(image_channels: int = 1, n_classes: int = 2, **kw) -> HybridSegModel:
    torch.manual_seed(0)
    return HybridSegModel(image_channels, n_classes, **{**SMALL, **kw}).eval()


def edm(sigma: float, sigma_data: float = 0.5) -> dict[str, float]:
    """Karras et al. 2022, Table 1, written out independently of the package."""
    return {
        "c_skip": sigma_data**2 / (sigma**2 + sigma_data**2),
        "c_out": sigma * sigma_data / math.sqrt(sigma**2 + sigma_data**2),
        "c_in": 1 / math.sqrt(sigma**2 + sigma_data**2),
        "c_noise": 0.25 * math.log(sigma),
    }


@pytest.mark.parametrize("sigma", [SIGMA_MIN, 0.1, 0.5, 1.0, 7.3, 80.0])
def test_preconditioning_matches_edm(sigma):
    model = tiny()
    c = model.preconditioning(torch.tensor([sigma], dtype=torch.float64))
    ref = edm(sigma)
    for name in ("c_skip", "c_out", "c_in"):
        assert c[name].shape == (1, 1, 1, 1), name
        assert c[name].item() == pytest.approx(ref[name], rel=1e-9), name
    assert c["c_noise"].shape == (1,)
    assert c["c_noise"].item() == pytest.approx(ref["c_noise"], rel=1e-9)


def test_preconditioning_uses_the_models_sigma_data():
    model = tiny(sigma_data=1.0)
    c = model.preconditioning(torch.tensor([1.0], dtype=torch.float64))
    assert c["c_skip"].item() == pytest.approx(0.5)
    assert c["c_out"].item() == pytest.approx(1 / math.sqrt(2))


def test_preconditioning_is_per_sample():
    model = tiny()
    sigmas = torch.tensor([0.01, 1.0, 10.0], dtype=torch.float64)
    c = model.preconditioning(sigmas)
    assert c["c_skip"].shape == (3, 1, 1, 1)
    for i, s in enumerate(sigmas.tolist()):
        assert c["c_skip"][i].item() == pytest.approx(edm(s)["c_skip"])
        assert c["c_noise"][i].item() == pytest.approx(edm(s)["c_noise"])


def test_at_sigma_min_the_denoised_output_is_nearly_the_input():
    ref = edm(SIGMA_MIN)
    assert ref["c_skip"] == pytest.approx(1.0, abs=1e-4)
    assert ref["c_out"] == pytest.approx(SIGMA_MIN, rel=1e-3)
    model = tiny(image_channels=3)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 16, 16) * 0.5
    with torch.no_grad():
        denoised, _ = model(x, SIGMA_MIN)
    # |D - x| <= (1 - c_skip)|x| + c_out |F|: a few thousandths for an O(1) raw output.
    assert (denoised - x).abs().max().item() < 0.02
    with torch.no_grad():
        far, _ = model(x, 5.0)
    assert (far - x).abs().max().item() > 0.1  # at high noise the output is not the input


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_output_shapes(channels, n_classes):
    model = tiny(channels, n_classes)
    x = torch.randn(2, channels, 16, 24)
    with torch.no_grad():
        denoised, logits = model(x, 0.3)
    assert denoised.shape == (2, channels, 16, 24)
    assert logits.shape == (2, n_classes, 16, 24)
    assert model.net.head[-1].out_channels == channels + n_classes
    assert torch.isfinite(denoised).all() and torch.isfinite(logits).all()


def test_sigma_as_float_equals_sigma_as_per_sample_tensor():
    model = tiny(3, 2)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        d_float, l_float = model(x, 0.7)
        d_tensor, l_tensor = model(x, torch.full((3,), 0.7))
        d_scalar, _ = model(x, torch.tensor(0.7))
    torch.testing.assert_close(d_float, d_tensor)
    torch.testing.assert_close(l_float, l_tensor)
    torch.testing.assert_close(d_float, d_scalar)


def test_per_sample_sigma_conditions_each_sample_separately():
    model = tiny(1, 2)
    x = torch.randn(1, 1, 16, 16).expand(2, 1, 16, 16).contiguous()
    with torch.no_grad():
        d, logits = model(x, torch.tensor([0.05, 3.0]))
        d0, l0 = model(x[:1], 0.05)
        d1, l1 = model(x[1:], 3.0)
    torch.testing.assert_close(d[:1], d0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d[1:], d1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits[1:], l1, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # same image, different σ


def test_gradients_reach_the_network():
    model = tiny(1, 2).train()
    x = torch.randn(2, 1, 16, 16)
    denoised, logits = model(x, torch.tensor([0.1, 1.0]))
    (denoised.square().mean() + logits.square().mean()).backward()
    assert model.net.stem.weight.grad is not None
    assert model.net.stem.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("channels,n_classes", [(1, 2), (3, 4)])
def test_reset_mask_head_changes_only_the_mask_rows(channels, n_classes):
    model = tiny(channels, n_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv = model.net.head[-1]
    torch.manual_seed(123)
    model.reset_mask_head()
    after = model.state_dict()
    for key, value in before.items():
        if key in ("net.head.2.weight", "net.head.2.bias"):
            continue
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, msg=key)
    assert conv is model.net.head[-1]  # modified in place, same module
    w0, w1 = before["net.head.2.weight"], conv.weight.detach()
    b0, b1 = before["net.head.2.bias"], conv.bias.detach()
    assert w1.shape == w0.shape and b1.shape == b0.shape
    torch.testing.assert_close(w1[:channels], w0[:channels], rtol=0, atol=0)
    torch.testing.assert_close(b1[:channels], b0[:channels], rtol=0, atol=0)
    assert (w1[channels:] != w0[channels:]).all(dim=(1, 2, 3)).all()  # every mask row is new
    assert (b1[channels:] != b0[channels:]).all()


@pytest.mark.parametrize("architecture", [{}, {"patch_size": 2}, {"patch_size": 2, "full_res_channels": 4}])
def test_reset_mask_head_changes_logits_but_not_denoised_image(architecture):
    model = tiny(3, 2, **architecture)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        d0, l0 = model(x, 0.5)
        model.reset_mask_head()
        d1, l1 = model(x, 0.5)
    torch.testing.assert_close(d1, d0, rtol=0, atol=0)
    assert not torch.allclose(l1, l0)


@pytest.mark.parametrize("full_res_channels", [0, 4])
def test_a_patch_size_of_two_runs_the_network_at_half_resolution_and_answers_at_full(full_res_channels):
    model = tiny(3, 2, patch_size=2, full_res_channels=full_res_channels)
    assert model.unet_config.downsample_factor == 4  # 2 (patch) × 2 (one pooling)
    seen = []
    model.net.down[0][0].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    denoised, logits = model(torch.randn(2, 3, 24, 40), 0.3)
    assert denoised.shape == (2, 3, 24, 40) and logits.shape == (2, 2, 24, 40)
    assert seen == [(2, 8, 12, 20)]
    # each output pixel has its own logits: neighbours within a 2×2 patch differ
    assert not torch.allclose(logits[..., 0::2, 0::2], logits[..., 1::2, 1::2])
