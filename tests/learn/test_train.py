"""The training loop, fine-tuning, the learning-rate schedule and overlap metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_hybridseg.data.datasets import Sample
from napari_hybridseg.learn import finetune as finetune_module
from napari_hybridseg.learn.finetune import FinetuneConfig, finetune
from napari_hybridseg.learn.metrics import dice, iou
from napari_hybridseg.learn.train import (
    StepLog,
    TrainConfig,
    TrainingCancelled,
    TrainingDiverged,
    lr_at,
    train,
)
from napari_hybridseg.model.checkpoint import model_metadata
from napari_hybridseg.model.loss import IGNORE_INDEX, HybridLoss, LossConfig, LossTerms
from napari_hybridseg.model.precond import SIGMA_MIN, HybridSegModel

SMALL = dict(base_channels=8, channel_mults=(1, 2), embedding_dim=16)
CPU = torch.device("cpu")


def tiny(image_channels: int = 1, n_classes: int = 2) -> HybridSegModel:
    torch.manual_seed(0)
    return HybridSegModel(image_channels, n_classes, **SMALL).eval()


def samples(n: int = 2, size: int = 24, labelled: bool = True) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        labels = np.zeros((size, size), np.uint8)
        labels[4 + i : 14 + i, 6:18] = 1
        image = (labels * 150 + rng.integers(0, 60, (size, size))).astype(np.uint8)
        out.append(Sample(f"s{i}", image, labels if labelled else None))
    return out


def small_config(**overrides) -> TrainConfig:
    return TrainConfig(**{"steps": 3, "batch_size": 2, "crop_size": 16, "lr": 1e-3, "log_every": 1, **overrides})


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(model, before) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


# --- finetune ------------------------------------------------------------------------


def test_finetune_returns_a_new_model_and_leaves_the_input_unchanged():
    model = tiny()
    before = snapshot(model)
    meta = model_metadata(model, method="hybrid")
    tuned, new_meta, history = finetune(model, meta, samples(), small_config())
    assert tuned is not model
    assert isinstance(tuned, HybridSegModel)
    assert_same_weights(model, before)
    assert not model.training
    assert not tuned.training
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "fine-tuning did not change any weight"
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(tuned.parameters(), model.parameters()))
    assert [h.step for h in history] == [1, 2, 3]
    assert all(isinstance(h, StepLog) and math.isfinite(h.loss) for h in history)


def test_finetune_records_itself_in_the_metadata():
    model = tiny()
    meta = model_metadata(model, method="hybrid", loss=LossConfig(lambda_mask=2.0).to_dict())
    original = {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in meta.items()}
    tuned, new_meta, history = finetune(model, meta, samples(3), small_config(steps=2), FinetuneConfig(loss="hybrid"))
    assert meta == original and "finetuning" not in meta  # input metadata untouched
    (record,) = new_meta["finetuning"]
    assert record["labelled_ids"] == ["s0", "s1", "s2"]
    assert record["n_unlabelled"] == 0
    assert record["config"]["loss"] == "hybrid"
    assert record["loss"]["method"] == "hybrid" and record["loss"]["lambda_mask"] == 2.0
    assert record["train"]["steps"] == 2 and record["train"]["crop_size"] == 16
    assert record["final_loss"] == pytest.approx(history[-1].loss)
    assert new_meta["method"] == "hybrid" and new_meta["n_classes"] == 2

    _, meta3, _ = finetune(tuned, new_meta, samples(1), small_config(steps=1))
    assert [r["labelled_ids"] for r in meta3["finetuning"]] == [["s0", "s1", "s2"], ["s0"]]
    assert meta3["finetuning"][1]["loss"]["method"] == "supervised"
    assert len(new_meta["finetuning"]) == 1


def test_finetune_with_unlabelled_images_uses_the_denoising_term():
    model = tiny()
    logs = []
    _, meta, history = finetune(
        model,
        model_metadata(model, method="hybrid"),
        samples(1),
        small_config(steps=2, batch_size=4),
        FinetuneConfig(loss="mask", unlabelled_share=0.5),
        unlabelled=samples(2, labelled=False),
        on_log=logs.append,
    )
    record = meta["finetuning"][0]
    assert record["n_unlabelled"] == 2
    assert record["loss"]["method"] == "hybrid"
    assert logs == history and all(h.image_loss > 0 for h in history)


def test_with_the_mask_loss_the_labelled_crops_are_clean_and_the_unlabelled_ones_noisy(monkeypatch):
    seen = []
    real_loss = finetune_module.HybridLoss

    class RecordingLoss(real_loss):
        def __call__(self, model, images, masks=None, generator=None):
            sigma = self.sample_sigma(images.shape[0], images.device)
            seen.append((sigma, masks))
            return super().__call__(model, images, masks, generator)

    monkeypatch.setattr(finetune_module, "HybridLoss", RecordingLoss)
    model = tiny()
    finetune(model, model_metadata(model, method="hybrid"), samples(1), small_config(steps=3, batch_size=8),
             FinetuneConfig(loss="mask", unlabelled_share=0.25), unlabelled=samples(2, labelled=False))
    for sigma, masks in seen:
        labelled = (masks != IGNORE_INDEX).flatten(1).any(1)
        assert labelled.tolist() == [True] * 6 + [False] * 2
        assert (sigma[:6] == SIGMA_MIN).all() and (sigma[6:] > SIGMA_MIN).all()


def test_finetune_mask_loss_without_unlabelled_is_supervised():
    model = tiny()
    _, meta, history = finetune(model, model_metadata(model), samples(1), small_config(steps=2))
    assert meta["finetuning"][0]["loss"]["method"] == "supervised"
    assert all(h.image_loss == 0 and h.mask_loss > 0 for h in history)


def test_finetune_after_diffusion_pretraining_starts_a_new_mask_head():
    model = tiny()
    before = snapshot(model)
    tuned, _, history = finetune(model, model_metadata(model, method="diffusion"), samples(1), small_config(steps=0))
    assert history == []
    after = tuned.state_dict()
    c = model.image_channels
    assert torch.equal(after["net.head.2.weight"][:c], before["net.head.2.weight"][:c])
    assert not torch.equal(after["net.head.2.weight"][c:], before["net.head.2.weight"][c:])
    assert torch.equal(after["net.stem.weight"], before["net.stem.weight"])
    assert_same_weights(model, before)
    # a hybrid-pretrained model keeps its head
    kept, _, _ = finetune(model, model_metadata(model, method="hybrid"), samples(1), small_config(steps=0))
    assert_same_weights(kept, before)


def test_finetune_is_reproducible_with_the_same_seed():
    model = tiny()
    a, _, ha = finetune(model, model_metadata(model), samples(), small_config(seed=5))
    b, _, hb = finetune(model, model_metadata(model), samples(), small_config(seed=5))
    assert [h.loss for h in ha] == [h.loss for h in hb]
    assert_same_weights(a, snapshot(b))


def test_finetune_refuses_no_labelled_images():
    model = tiny()
    with pytest.raises(ValueError, match="at least one labelled"):
        finetune(model, model_metadata(model), [], small_config())


def test_finetune_config_refuses_unknown_loss():
    with pytest.raises(ValueError, match="fine-tuning loss"):
        FinetuneConfig(loss="diffusion")


class NaNAfter(HybridLoss):
    """The real loss, but its total becomes NaN from step ``after`` on."""

    def __init__(self, *args, after: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.after = after

    def __call__(self, *args, **kwargs):
        terms = super().__call__(*args, **kwargs)
        self.calls += 1
        if self.calls > self.after:
            return LossTerms(terms.total * float("nan"), terms.image, terms.mask)
        return terms


def test_nan_loss_raises_training_diverged_in_finetune(monkeypatch):
    monkeypatch.setattr(finetune_module, "HybridLoss", NaNAfter)
    model = tiny()
    before = snapshot(model)
    with pytest.raises(TrainingDiverged, match=r"nan at step 2"):
        finetune(model, model_metadata(model), samples(), small_config(steps=4))
    assert_same_weights(model, before)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises_training_diverged_before_the_update(bad):
    model = tiny().train()
    images = torch.randn(2, 1, 16, 16)
    masks = torch.zeros(2, 16, 16, dtype=torch.long)

    def loss_fn(model, images, masks):
        denoised, _ = model(images, 1.0)
        total = denoised.mean() * bad
        return LossTerms(total, total.detach(), total.detach())

    before = snapshot(model)
    with pytest.raises(TrainingDiverged, match="step 1"):
        train(model, loss_fn, lambda: (images, masks), small_config(), CPU)
    assert_same_weights(model, before)  # nothing was applied


def test_should_stop_raises_training_cancelled():
    model = tiny()
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingCancelled, match="step 2 of 5"):
        finetune(model, model_metadata(model), samples(), small_config(steps=5), should_stop=should_stop)
    assert len(calls) == 3


def test_should_stop_false_runs_every_step():
    model = tiny()
    images, masks = torch.randn(2, 1, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long)
    steps = []
    history = train(
        model,
        HybridLoss(LossConfig(method="hybrid")),
        lambda: (images, masks),
        small_config(steps=5, log_every=2),
        CPU,
        on_log=steps.append,
        should_stop=lambda: False,
    )
    assert [h.step for h in history] == [2, 4, 5]  # every log_every steps and the last
    assert steps == history
    config = small_config(steps=5)
    assert [h.lr for h in history] == pytest.approx([lr_at(1, config), lr_at(3, config), lr_at(4, config)])
    assert not model.training


def test_bfloat16_training_computes_the_network_in_bfloat16_and_keeps_weights_and_losses_float32(monkeypatch):
    model = tiny()
    conv_inputs = []
    model.net.stem.register_forward_hook(lambda module, args, out: conv_inputs.append(out.dtype))
    terms_seen = []
    loss = HybridLoss(LossConfig(method="hybrid"))
    images, masks = torch.randn(2, 1, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long)
    masks[:, 4:10, 4:10] = 1

    def recording_loss(*args):
        terms_seen.append(loss(*args))
        return terms_seen[-1]

    history = train(model, recording_loss, lambda: (images, masks), small_config(steps=20, precision="bfloat16"), CPU)
    assert set(conv_inputs) == {torch.bfloat16}
    assert all(t.total.dtype == torch.float32 for t in terms_seen)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history[-1].loss < history[0].loss and math.isfinite(history[-1].loss)
    denoised, logits = model(images, SIGMA_MIN)  # outside training: float32 throughout, as before
    assert denoised.dtype == logits.dtype == torch.float32


def test_train_config_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        small_config(precision="float16")


# --- learning-rate schedule ----------------------------------------------------------


def test_lr_warms_up_linearly_to_the_peak():
    config = TrainConfig(steps=200, lr=0.01, warmup_fraction=0.1)
    warm = [lr_at(s, config) for s in range(20)]
    assert warm[0] == pytest.approx(0.01 / 20)
    assert warm[-1] == pytest.approx(0.01)
    assert np.allclose(np.diff(warm), 0.01 / 20)


def test_lr_decays_by_cosine_to_five_percent():
    config = TrainConfig(steps=200, lr=0.01, warmup_fraction=0.1)
    decay = [lr_at(s, config) for s in range(20, 200)]
    assert decay[0] == pytest.approx(0.01)
    assert all(b <= a for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(0.0005, rel=0.01)
    assert min(decay) >= 0.0005 - 1e-12
    assert lr_at(110, config) == pytest.approx(0.01 * (0.05 + 0.95 * 0.5))  # half-way: cos = 0


def test_lr_without_warmup_starts_at_the_peak():
    config = TrainConfig(steps=10, lr=0.5, warmup_fraction=0.0)
    assert lr_at(0, config) == pytest.approx(0.5)
    assert lr_at(9, config) < 0.1


# --- metrics -------------------------------------------------------------------------


def test_both_empty_scores_one():
    empty = np.zeros((4, 4), np.uint8)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0


def test_disjoint_scores_zero():
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    a[0, :2] = 1
    b[3, 2:] = 1
    assert dice(a, b) == 0.0
    assert iou(a, b) == 0.0
    assert dice(a, np.zeros_like(a)) == 0.0  # one empty, one not


def test_identical_scores_one():
    a = np.zeros((5, 5), np.uint8)
    a[1:4, 1:3] = 1
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0


def test_half_overlap_values():
    pred = np.array([[1, 1, 0, 0]])
    true = np.array([[0, 1, 1, 0]])
    assert dice(pred, true) == pytest.approx(0.5)  # 2·1 / (2 + 2)
    assert iou(pred, true) == pytest.approx(1 / 3)  # 1 / 3
    pred = np.array([[1, 1, 1, 1]])
    true = np.array([[1, 1, 0, 0]])
    assert dice(pred, true) == pytest.approx(2 * 2 / 6)
    assert iou(pred, true) == pytest.approx(0.5)


def test_multi_class_scores_average_over_foreground_classes():
    true = np.array([[0, 1, 1, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 2, 0, 0]])  # class 1 perfect, class 2 half found
    assert dice(pred, true, n_classes=3) == pytest.approx((1.0 + 2 / 3) / 2)
    assert iou(pred, true, n_classes=3) == pytest.approx((1.0 + 0.5) / 2)
    # background does not count
    assert dice(np.array([[1, 0]]), np.array([[1, 1]]), n_classes=2) == pytest.approx(2 / 3)


def test_metrics_refuse_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_head_steps_train_the_output_convolution_alone_then_the_whole_network(monkeypatch):
    weights_seen = []  # the weights each step starts from
    real_loss = finetune_module.HybridLoss

    class RecordingLoss(real_loss):
        def __call__(self, model, images, masks=None, generator=None):
            weights_seen.append({k: v.clone() for k, v in model.state_dict().items()})
            return super().__call__(model, images, masks, generator)

    monkeypatch.setattr(finetune_module, "HybridLoss", RecordingLoss)
    model = tiny()
    before = snapshot(model)
    logs = []
    tuned, meta, history = finetune(model, model_metadata(model, method="diffusion"), samples(1),
                                    small_config(steps=4, log_every=1), FinetuneConfig(head_steps=2), on_log=logs.append)
    head = {"net.head.2.weight", "net.head.2.bias"}
    after_head_phase = weights_seen[2]
    assert all(torch.equal(after_head_phase[k], v) for k, v in before.items() if k not in head)
    assert not torch.equal(after_head_phase["net.head.2.weight"], weights_seen[0]["net.head.2.weight"])
    assert not torch.equal(tuned.state_dict()["net.stem.weight"], before["net.stem.weight"])
    assert [h.step for h in history] == [1, 2, 3, 4] and logs == history
    assert all(b.seconds >= a.seconds for a, b in zip(history, history[1:]))
    assert all(p.requires_grad for p in tuned.parameters())  # nothing left frozen
    assert meta["finetuning"][-1]["config"]["head_steps"] == 2
    assert_same_weights(model, before)


def test_head_steps_must_leave_steps_for_the_whole_network():
    model = tiny()
    with pytest.raises(ValueError, match="fewer than"):
        finetune(model, model_metadata(model), samples(1), small_config(steps=2), FinetuneConfig(head_steps=2))
    with pytest.raises(ValueError, match="negative"):
        FinetuneConfig(head_steps=-1)


def distance(model, state) -> float:
    return sum(float((v - state[k]).pow(2).sum()) for k, v in model.state_dict().items() if v.is_floating_point())


def test_a_pull_toward_the_start_keeps_fine_tuned_weights_nearer_the_pretrained_ones():
    model = tiny()
    before = snapshot(model)
    meta = model_metadata(model, method="hybrid")
    free, _, _ = finetune(model, meta, samples(1), small_config(steps=6))
    pulled, pulled_meta, _ = finetune(model, meta, samples(1), small_config(steps=6, start_decay=300.0))
    assert 0 < distance(pulled, before) < distance(free, before)
    assert pulled_meta["finetuning"][-1]["train"]["start_decay"] == 300.0
    # a pull of the whole way at the peak rate undoes each step: one step without warm-up lands on the start
    back, _, _ = finetune(model, meta, samples(1), small_config(steps=1, warmup_fraction=0.0, start_decay=1000.0))
    assert_same_weights(back, before)
    with pytest.raises(ValueError, match="start_decay"):
        small_config(start_decay=-1.0)
    with pytest.raises(ValueError, match="start_decay"):
        small_config(start_decay=2000.0)  # × lr 1e-3 would overshoot the start


def test_a_fine_tuned_share_below_one_returns_that_blend_of_the_fine_tuned_and_starting_weights():
    model = tiny()
    before = snapshot(model)
    meta = model_metadata(model, method="hybrid")
    full, _, _ = finetune(model, meta, samples(1), small_config(steps=4))
    half, half_meta, _ = finetune(model, meta, samples(1), small_config(steps=4), FinetuneConfig(finetuned_share=0.5))
    for key, value in half.state_dict().items():
        torch.testing.assert_close(value, (before[key] + full.state_dict()[key]) / 2, msg=key)
    assert distance(full, before) > 0
    assert half_meta["finetuning"][-1]["config"]["finetuned_share"] == 0.5
    assert_same_weights(model, before)
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="finetuned_share"):
            FinetuneConfig(finetuned_share=share)
