"""Each image's signals: disagreement, generative surprise and bottleneck features from one model version."""

import numpy as np
import torch

from napari_hybridseg.data.prepare import SIGMA_MIN
from napari_hybridseg.data.synthetic import make_sample
from napari_hybridseg.learn.acquisition import DisagreementScorer
from napari_hybridseg.learn.signals import SignalScorer
from napari_hybridseg.model.checkpoint import load_checkpoint
from napari_hybridseg.resources import default_model_path


def test_the_bottleneck_is_what_the_forward_pass_goes_through():
    model, _ = load_checkpoint(default_model_path())
    x = torch.randn(1, model.image_channels, 32, 32)
    seen = []
    handle = model.net.middle.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        model(x, SIGMA_MIN)
        features = model.bottleneck(x, SIGMA_MIN)
    handle.remove()
    assert torch.equal(features, seen[0])


def test_signals_share_the_disagreement_score_and_a_strange_image_surprises_the_model():
    model, _ = load_checkpoint(default_model_path())
    nuclei = make_sample(0, (64, 64))[0]
    noise = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)  # nothing like what it learnt
    scorer = SignalScorer(model, model, "v", samples=4)
    signals = {key: scorer.score(key, image) for key, image in (("nuclei", nuclei), ("noise", noise))}
    alone = DisagreementScorer(model, "v", samples=4)
    for key, image in (("nuclei", nuclei), ("noise", noise)):
        assert signals[key].score == alone.score(key, image).score  # the same noise, the same BALD
        assert signals[key].map.shape == (64, 64)
        assert signals[key].features.shape == (2 * model.net.middle.conv2.out_channels,)
    assert signals["noise"].surprise > 1.5 * signals["nuclei"].surprise > 0
    assert set(scorer.signals(["nuclei", "noise", "unscored"])) == {"nuclei", "noise"}
