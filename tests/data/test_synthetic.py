"""Tests for the synthetic H&E-like sample generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from napari_hybridseg.data import synthetic
from napari_hybridseg.data.synthetic import make_sample, main, sample_seed, write_sample_set

SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def samples() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    return {seed: make_sample(seed) for seed in SEEDS}


def test_same_seed_is_identical(samples):
    image, labels = make_sample(SEEDS[1])
    ref_image, ref_labels = samples[SEEDS[1]]
    np.testing.assert_array_equal(image, ref_image)
    np.testing.assert_array_equal(labels, ref_labels)


def test_different_seeds_differ(samples):
    (img_a, lab_a), (img_b, lab_b) = samples[0], samples[1]
    assert not np.array_equal(img_a, img_b)
    assert not np.array_equal(lab_a, lab_b)


@pytest.mark.parametrize("shape", [(256, 256), (320, 256), (64, 96)])
def test_dtypes_and_shapes(shape):
    image, labels = make_sample(7, shape)
    assert image.dtype == np.uint8 and image.shape == (*shape, 3)
    assert labels.dtype == np.uint16 and labels.shape == shape


def test_too_small_shape_rejected():
    with pytest.raises(ValueError):
        make_sample(0, (16, 16))


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_are_sequential_instances(samples, seed):
    _, labels = samples[seed]
    n = int(labels.max())
    assert 8 <= n <= 40
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
    fraction = float(np.mean(labels > 0))
    assert 0.05 <= fraction <= 0.40
    for label_id, sl in enumerate(ndi.find_objects(labels), start=1):
        mask = labels[sl] == label_id
        assert mask.sum() >= 25
        assert ndi.label(mask)[1] == 1  # one connected piece per nucleus


@pytest.mark.parametrize("seed", SEEDS)
def test_nuclei_darker_and_covered_by_labels(samples, seed):
    image, labels = samples[seed]
    gray = image.astype(np.float64).mean(axis=2)
    fg = labels > 0
    fg_mean, bg_mean = gray[fg].mean(), gray[~fg].mean()
    assert fg_mean < bg_mean - 20

    # every nucleus on its own is darker than the typical background
    per_nucleus = ndi.mean(gray, labels, np.arange(1, int(labels.max()) + 1))
    assert np.all(per_nucleus < np.median(gray[~fg]))

    # the visibly dark pixels are (almost all) labelled nuclei
    dark = gray < (fg_mean + bg_mean) / 2
    near_nucleus = ndi.binary_dilation(fg, iterations=2)
    assert dark[near_nucleus].sum() / dark.sum() > 0.85
    assert dark[fg].mean() > 0.7


def test_image_looks_like_he(samples):
    image, labels = samples[0]
    bg = image[labels == 0].astype(np.float64).mean(axis=0)
    fg = image[labels > 0].astype(np.float64).mean(axis=0)
    # pinkish background: red dominates green
    assert bg[0] > bg[1] + 10
    # purple nuclei: blue is not the weakest channel, green is
    assert fg[1] < fg[0] and fg[1] < fg[2]


def test_write_sample_set_layout_and_roundtrip(tmp_path):
    shape = (64, 80)
    domain_dir = write_sample_set(tmp_path, n_pool=3, n_test=2, shape=shape, domain="synth")
    assert domain_dir == tmp_path / "synth"

    splits = json.loads((tmp_path / "splits.json").read_text())
    ids = [f"synth{i:03d}" for i in range(5)]
    assert splits == {"synth": {"pool": ids[:3], "test": ids[3:]}}

    readme = (tmp_path / "README.md").read_text()
    assert "napari_hybridseg.data.synthetic" in readme and "BSD-3-Clause" in readme

    assert sorted(p.name for p in (domain_dir / "images").iterdir()) == [f"{i}.png" for i in ids]
    assert sorted(p.name for p in (domain_dir / "labels").iterdir()) == [f"{i}.png" for i in ids]
    for i, sample_id in enumerate(ids):
        image, labels = make_sample(sample_seed(0, i), shape)
        with Image.open(domain_dir / "images" / f"{sample_id}.png") as im:
            assert im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), image)
        with Image.open(domain_dir / "labels" / f"{sample_id}.png") as im:
            read = np.asarray(im)
        assert read.dtype == np.uint16 or read.max() <= np.iinfo(np.uint16).max
        np.testing.assert_array_equal(read.astype(np.uint16), labels)

    # no temporary files left behind
    assert not list(tmp_path.rglob("*.tmp"))


def test_uint16_labels_roundtrip_above_uint8(tmp_path):
    labels = np.arange(0, 60000, 1000, dtype=np.uint16).reshape(6, 10)
    path = tmp_path / "lab.png"
    synthetic._atomic_write_png(path, labels)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), labels)


def test_write_sample_set_keeps_other_domains_and_foreign_readme(tmp_path):
    (tmp_path / "splits.json").write_text(json.dumps({"histology": {"pool": ["a"], "test": ["b"]}}))
    (tmp_path / "README.md").write_text("real data set\n")
    write_sample_set(tmp_path, n_pool=1, n_test=1, shape=(48, 48))
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert splits["histology"] == {"pool": ["a"], "test": ["b"]}
    assert splits["synthetic_histology"] == {"pool": ["synth000"], "test": ["synth001"]}
    assert (tmp_path / "README.md").read_text() == "real data set\n"


def test_main_cli(tmp_path, capsys):
    assert main([str(tmp_path), "--n-pool", "2", "--n-test", "1", "--size", "48", "48"]) == 0
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert splits["synthetic_histology"] == {"pool": ["synth000", "synth001"], "test": ["synth002"]}
    assert len(list((tmp_path / "synthetic_histology" / "images").glob("*.png"))) == 3
    assert "wrote 3 samples" in capsys.readouterr().out
