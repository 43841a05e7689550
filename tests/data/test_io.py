"""Image and mask I/O, model-input preparation, folder datasets, subsets and crops."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_hybridseg.data.crops import CropSampler
from napari_hybridseg.data.datasets import Sample, choose_subset, load_folder_pair
from napari_hybridseg.data.io import (
    ImageReadError,
    list_images,
    read_image,
    read_mask,
    write_mask_png,
)
from napari_hybridseg.data.prepare import labels_to_classes, model_input
from napari_hybridseg.model.loss import IGNORE_INDEX


def ramp(shape, dtype=np.uint8, high=255, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, high + 1, size=shape).astype(dtype)


# --- read_image ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(20, 30), (20, 30, 3), (20, 30, 4)],
    ids=["grey", "rgb", "rgba"],
)
def test_read_png(tmp_path, shape):
    data = ramp(shape)
    path = tmp_path / "img.png"
    Image.fromarray(data).save(path)
    out = read_image(path)
    assert out.shape == shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, data)


def test_read_16_bit_png(tmp_path):
    data = ramp((17, 23), np.uint16, 65535)
    data[0, 0] = 65535
    path = tmp_path / "deep.png"
    Image.fromarray(data).save(path)
    out = read_image(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".TIF"])
def test_read_16_bit_tiff(tmp_path, suffix):
    data = ramp((16, 12), np.uint16, 4095)
    path = tmp_path / f"img{suffix}"
    tifffile.imwrite(path, data)
    out = read_image(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, data)


def test_read_float32_tiff(tmp_path):
    data = np.random.default_rng(0).normal(size=(9, 11)).astype(np.float32)
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, data)
    out = read_image(path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data)


def test_read_rgb_tiff_and_single_channel_axis(tmp_path):
    rgb = ramp((8, 9, 3))
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert read_image(tmp_path / "rgb.tif").shape == (8, 9, 3)
    tifffile.imwrite(tmp_path / "one.tif", ramp((8, 9, 1)), photometric="minisblack")
    assert read_image(tmp_path / "one.tif").shape == (8, 9)


def test_text_renamed_png_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "notes_in_disguise.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes_in_disguise.png"):
        read_image(path)


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(ramp((64, 64))).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(path)


@pytest.mark.parametrize("name", ["image.bmp", "image.npy", "image"])
def test_unsupported_suffix_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ImageReadError, match="unsupported file type") as err:
        read_image(path)
    assert name in str(err.value)


def test_3d_stack_tiff_is_refused_mentioning_slices(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, ramp((5, 64, 64)))
    with pytest.raises(ImageReadError, match="slices") as err:
        read_image(path)
    assert "stack.tif" in str(err.value) and "(5, 64, 64)" in str(err.value)


def test_two_channel_image_is_refused(tmp_path):
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, ramp((16, 16, 2)), photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match="two.tif"):
        read_image(path)


def test_list_images_skips_hidden_and_foreign_files(tmp_path):
    for name in ("b.png", "a.tif", ".hidden.png", "c.txt", "d.JPG"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.tif", "b.png", "d.JPG"]
    with pytest.raises(ImageReadError, match="not a folder"):
        list_images(tmp_path / "b.png")


# --- read_mask / write_mask_png ------------------------------------------------------


def test_read_mask_accepts_grey_and_equal_channel_rgb(tmp_path):
    labels = ramp((10, 12), high=3)
    Image.fromarray(labels).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png"), labels)
    Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    out = read_mask(tmp_path / "rgb.png")
    assert out.shape == (10, 12)
    np.testing.assert_array_equal(out, labels)


def test_read_mask_rejects_rgb_with_differing_channels(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:5, 2:5] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(ImageReadError, match="colour.png.*single-channel"):
        read_mask(tmp_path / "colour.png")


def test_read_mask_rejects_float_masks(tmp_path):
    tifffile.imwrite(tmp_path / "prob.tif", np.full((8, 8), 0.5, np.float32))
    with pytest.raises(ImageReadError, match="prob.tif.*integer"):
        read_mask(tmp_path / "prob.tif")


def test_read_mask_rejects_negative_labels(tmp_path):
    labels = np.zeros((8, 8), np.int16)
    labels[0, 0] = -3
    tifffile.imwrite(tmp_path / "neg.tif", labels)
    with pytest.raises(ImageReadError, match="negative"):
        read_mask(tmp_path / "neg.tif")


def test_read_mask_reads_palette_indices_as_labels(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    img = Image.new("P", (3, 2))
    img.putdata(labels.ravel().tolist())
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "indexed.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "indexed.png"), labels)


def test_write_mask_png_round_trip_8_bit(tmp_path):
    labels = ramp((13, 17), np.int64, 255)
    path = write_mask_png(tmp_path / "out" / "mask.png", labels)
    assert path == tmp_path / "out" / "mask.png"
    with Image.open(path) as img:
        assert img.mode == "L"
    out = read_mask(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)
    assert sorted(p.name for p in path.parent.iterdir()) == ["mask.png"]


def test_write_mask_png_round_trip_16_bit(tmp_path):
    labels = ramp((13, 17), np.int32, 300)
    labels[0, 0] = 65535
    labels[0, 1] = 256
    path = write_mask_png(tmp_path / "mask.png", labels)
    out = read_mask(path)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]


def test_write_mask_png_from_bool_and_overwrite(tmp_path):
    path = tmp_path / "m.png"
    write_mask_png(path, np.ones((4, 4), np.uint8) * 7)
    write_mask_png(path, np.eye(4, dtype=bool))
    np.testing.assert_array_equal(read_mask(path), np.eye(4, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


@pytest.mark.parametrize(
    "mask,message",
    [
        (np.zeros((4, 4, 3), np.uint8), "2-D"),
        (np.full((4, 4), 70000, np.int64), "0..65535"),
        (np.full((4, 4), -1, np.int64), "0..65535"),
    ],
)
def test_write_mask_png_refuses_unwritable_masks(tmp_path, mask, message):
    with pytest.raises(ValueError, match=message):
        write_mask_png(tmp_path / "m.png", mask)
    assert list(tmp_path.iterdir()) == []


# --- model_input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,channels",
    [((20, 24), 3), ((20, 24), 1), ((20, 24, 3), 1), ((20, 24, 3), 3), ((20, 24, 4), 3), ((20, 24, 4), 1)],
)
def test_model_input_shape_dtype_and_statistics(shape, channels):
    x = model_input(ramp(shape), channels)
    assert x.shape == (channels, 20, 24)
    assert x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    assert abs(float(x.mean())) < 1e-5
    assert float(x.std()) == pytest.approx(0.5, rel=1e-4)


def test_model_input_honours_sigma_data():
    x = model_input(ramp((16, 16)), 1, sigma_data=2.0)
    assert float(x.std()) == pytest.approx(2.0, rel=1e-4)


def test_grey_to_three_channels_replicates():
    x = model_input(ramp((10, 10)), 3)
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[0], x[2])
    np.testing.assert_allclose(x[0], model_input(ramp((10, 10)), 1)[0], rtol=1e-5, atol=1e-6)


def test_rgb_to_one_channel_is_luminance():
    rgb = ramp((12, 14, 3)).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    expected = (luma - luma.mean()) / luma.std() * 0.5
    np.testing.assert_allclose(model_input(rgb.astype(np.uint8), 1)[0], expected, atol=1e-4)


def test_rgb_keeps_channel_order():
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red only
    x = model_input(rgb, 3)
    assert x[0].min() > 0 and x[1].max() < 0 and x[2].max() < 0


def test_rgba_drops_alpha():
    rgb = ramp((8, 8, 3))
    a = np.concatenate([rgb, np.full((8, 8, 1), 255, np.uint8)], axis=2)
    b = np.concatenate([rgb, ramp((8, 8, 1), seed=5)], axis=2)
    np.testing.assert_array_equal(model_input(a, 3), model_input(b, 3))
    np.testing.assert_allclose(model_input(a, 3), model_input(rgb, 3), atol=1e-6)
    np.testing.assert_array_equal(model_input(a, 1), model_input(b, 1))


@pytest.mark.parametrize("channels", [1, 3])
def test_constant_image_gives_zeros(channels):
    x = model_input(np.full((9, 7), 42, np.uint16), channels)
    assert x.shape == (channels, 9, 7)
    assert not x.any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_give_finite_output(bad):
    image = np.random.default_rng(0).random((10, 10)).astype(np.float32)
    image[2:4, 3:5] = bad
    original = image.copy()
    x = model_input(image, 3)
    assert np.isfinite(x).all()
    assert float(x.std()) == pytest.approx(0.5, rel=1e-3)
    np.testing.assert_array_equal(image, original)  # the caller's array is untouched


def test_all_nan_image_gives_zeros():
    x = model_input(np.full((5, 5), np.nan, np.float32), 1)
    assert np.isfinite(x).all() and not x.any()


def test_model_input_is_invariant_to_scale_and_offset():
    image = ramp((12, 12)).astype(np.float32)
    np.testing.assert_allclose(model_input(image, 1), model_input(image * 100 + 7, 1), atol=1e-4)


# --- labels_to_classes ---------------------------------------------------------------


def test_labels_to_classes_binary_merges_instances():
    labels = np.array([[0, 1, 7], [300, 0, 2]], np.uint16)
    out = labels_to_classes(labels, 2)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[0, 1, 1], [1, 0, 1]])


def test_labels_to_classes_k_classes_keeps_ids():
    labels = np.array([[0, 1, 3], [2, 0, 2]], np.uint8)
    out = labels_to_classes(labels, 4)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, labels)


def test_labels_to_classes_refuses_label_beyond_k():
    with pytest.raises(ValueError, match="label 4.*4 classes"):
        labels_to_classes(np.array([[0, 4]], np.uint8), 4)


# --- folders of images and masks -----------------------------------------------------


def _write_pair_folders(root, names=("a", "b", "c"), size=(16, 20)):
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(ramp(size, seed=i)).save(images / f"{name}.png")
        mask = np.zeros(size, np.uint8)
        mask[: i + 1] = i + 1  # each mask identifies its image
        tifffile.imwrite(masks / f"{name}.tif", mask)  # other suffix: matched by stem
    return images, masks


def test_load_folder_pair_matches_masks_by_stem(tmp_path):
    images, masks = _write_pair_folders(tmp_path, names=("z", "a", "m"))
    samples = load_folder_pair(images, masks)
    assert [s.id for s in samples] == ["a", "m", "z"]
    for s, i in zip(samples, (1, 2, 0)):
        np.testing.assert_array_equal(s.image, ramp((16, 20), seed=i))
        assert s.labels.max() == i + 1 and (s.labels[: i + 1] == i + 1).all()


def test_load_folder_pair_without_masks(tmp_path):
    images, _ = _write_pair_folders(tmp_path)
    samples = load_folder_pair(images)
    assert [s.id for s in samples] == ["a", "b", "c"]
    assert all(s.labels is None for s in samples)


def test_load_folder_pair_raises_on_a_missing_mask(tmp_path):
    images, masks = _write_pair_folders(tmp_path)
    (masks / "b.tif").unlink()
    with pytest.raises(FileNotFoundError, match="b.png"):
        load_folder_pair(images, masks)


def test_load_folder_pair_raises_on_shape_mismatch(tmp_path):
    images, masks = _write_pair_folders(tmp_path)
    tifffile.imwrite(masks / "c.tif", np.zeros((20, 16), np.uint8))
    with pytest.raises(ImageReadError, match="'c'.*shape"):
        load_folder_pair(images, masks)


def test_load_folder_pair_raises_on_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no PNG"):
        load_folder_pair(tmp_path / "empty")


# --- choose_subset -------------------------------------------------------------------


IDS = [f"img{i:02d}" for i in range(30)]


def test_choose_subset_is_deterministic():
    assert choose_subset(IDS, 7, seed=3) == choose_subset(list(IDS), 7, seed=3)
    assert choose_subset(IDS, 7, seed=3) != choose_subset(IDS, 7, seed=4)


def test_choose_subset_draws_without_replacement():
    subset = choose_subset(IDS, 30, seed=1)
    assert sorted(subset) == IDS
    assert subset != IDS  # shuffled, not the first n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_choose_subset_is_nested(seed):
    small, large = choose_subset(IDS, 5, seed), choose_subset(IDS, 10, seed)
    assert len(small) == 5 and len(large) == 10 and len(set(large)) == 10
    assert large[:5] == small


def test_choose_subset_refuses_too_many():
    with pytest.raises(ValueError, match="31.*30"):
        choose_subset(IDS, 31, seed=0)


# --- CropSampler ---------------------------------------------------------------------


def test_crop_sampler_batch_shapes_with_images_smaller_than_the_crop():
    rng = np.random.default_rng(0)
    samples = [
        Sample("small", rng.integers(0, 255, (10, 7)).astype(np.uint8), (rng.random((10, 7)) > 0.5).astype(np.uint8)),
        Sample("large", rng.integers(0, 255, (50, 40, 3)).astype(np.uint8), np.zeros((50, 40), np.uint8)),
        Sample("line", rng.integers(0, 255, (1, 5)).astype(np.uint8), np.ones((1, 5), np.uint8)),
    ]
    sampler = CropSampler(samples, model_channels=3, n_classes=2, crop_size=32, seed=0)
    images, masks = sampler.batch(6)
    assert images.shape == (6, 3, 32, 32) and images.dtype.is_floating_point
    assert masks.shape == (6, 32, 32) and masks.dtype.is_floating_point is False
    assert set(masks.unique().tolist()) <= {0, 1}
    assert bool(images.isfinite().all())


def test_crop_sampler_single_channel_model():
    image = np.random.default_rng(1).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    sampler = CropSampler([Sample("rgb", image, np.zeros((40, 40), np.uint8))], 1, 2, crop_size=16)
    images, masks = sampler.batch(3)
    assert images.shape == (3, 1, 16, 16) and masks.shape == (3, 16, 16)


@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_crop_sampler_inverts_the_share_of_crops_asked_for(probability):
    """A bright square on a dark ground: inverted crops show it darker than the ground."""
    image = np.full((48, 48), 20, np.uint8)
    image[8:40, 8:40] = 220
    labels = (image > 100).astype(np.uint8)
    sampler = CropSampler([Sample("square", image, labels)], 1, 2, crop_size=24, seed=3, invert_probability=probability)
    images, masks = sampler.batch(200)
    both = [(img[0], m) for img, m in zip(images, masks) if 0 < int(m.sum()) < m.numel()]
    inverted = np.mean([float(img[m == 1].mean()) < float(img[m == 0].mean()) for img, m in both])
    assert abs(inverted - probability) < 0.12


@pytest.mark.parametrize("name", ["invert_probability", "foreground_share"])
def test_crop_sampler_refuses_a_share_outside_0_1(name):
    with pytest.raises(ValueError, match=name):
        CropSampler([Sample("s", np.zeros((8, 8), np.uint8), None)], 1, 2, crop_size=8, **{name: 1.5})


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_crop_sampler_places_the_share_of_crops_asked_for_around_foreground(share):
    """One small object in a corner of a large image: uniform crops almost never hold it, foreground crops always do."""
    labels = np.zeros((400, 400), np.uint8)
    labels[380:390, 5:15] = 1
    image = labels * 200 + 20
    sampler = CropSampler([Sample("sparse", image, labels)], 1, 2, crop_size=32, seed=5, foreground_share=share)
    _, masks = sampler.batch(300)
    holding = float(np.mean([bool((m == 1).any()) for m in masks]))
    assert share <= holding < share + 0.08


def test_crop_sampler_foreground_share_skips_images_without_foreground():
    image = np.random.default_rng(6).integers(0, 255, (30, 30)).astype(np.uint8)
    for labels in (np.zeros((30, 30), np.uint8), None):
        _, masks = CropSampler([Sample("empty", image, labels)], 1, 2, crop_size=16, foreground_share=1.0).batch(5)
        assert masks.shape == (5, 16, 16)


def test_crop_sampler_unlabelled_samples_give_ignore_masks():
    image = np.random.default_rng(2).integers(0, 255, (12, 20)).astype(np.uint8)
    sampler = CropSampler([Sample("u", image, None)], model_channels=1, n_classes=3, crop_size=16, seed=1)
    images, masks = sampler.batch(4)
    assert images.shape == (4, 1, 16, 16)
    assert (masks == IGNORE_INDEX).all()


def test_crop_sampler_keeps_image_and_mask_aligned():
    # The mask marks exactly the bright pixels; flips/rotations must move both together.
    labels = np.zeros((48, 48), np.uint8)
    labels[10:30, 5:20] = 1
    image = labels * 200 + 20
    sampler = CropSampler([Sample("a", image, labels)], model_channels=1, n_classes=2, crop_size=24, seed=3)
    images, masks = sampler.batch(8)
    for x, m in zip(images, masks):
        bright = x[0] > 0
        assert (bright == (m == 1)).all()


def test_crop_sampler_is_reproducible_with_a_seed():
    image = np.random.default_rng(4).integers(0, 255, (40, 40)).astype(np.uint8)
    labels = (image > 128).astype(np.uint8)
    a = CropSampler([Sample("a", image, labels)], 1, 2, crop_size=16, seed=7).batch(4)
    b = CropSampler([Sample("a", image, labels)], 1, 2, crop_size=16, seed=7).batch(4)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_crop_sampler_refuses_no_samples():
    with pytest.raises(ValueError, match="no images"):
        CropSampler([], 1, 2)


def test_a_10000_square_image_is_read(tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((10_000, 10_000), np.uint8))
    assert read_image(path).shape == (10_000, 10_000)


def test_a_tiff_beyond_the_pixel_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, shape=(14_000, 14_000), dtype=np.uint8)  # header only; pixels would be zero

    def never(*args, **kwargs):
        raise AssertionError("the pixels were read")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", never)
    with pytest.raises(ImageReadError, match=r"huge.tif is 14000 × 14000 pixels \(196 M\).*crop it"):
        read_image(path)


def test_a_png_claiming_a_huge_size_is_refused(tmp_path):
    import struct
    import zlib

    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", 20_000, 20_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="bomb.png is .*larger than|bomb.png is 20000 × 20000"):
        read_image(path)


def _pixel_coverage(even_coverage: bool, n_crops: int = 3000, side: int = 40, crop: int = 16) -> np.ndarray:
    """How often each pixel of a ``side``² image lies in a crop: its labels are the pixel ids, read back from the
    crops' masks."""
    ids = np.arange(side * side).reshape(side, side)
    sample = Sample("ids", np.zeros((side, side), np.uint8), ids)
    sampler = CropSampler([sample], 1, side * side, crop_size=crop, seed=0, even_coverage=even_coverage)
    _, masks = sampler.batch(n_crops)
    return np.bincount(masks.numpy().ravel(), minlength=side * side).reshape(side, side) / n_crops


def test_even_coverage_crops_reach_corners_as_often_as_the_middle():
    uniform, even = _pixel_coverage(False), _pixel_coverage(True)
    assert uniform[0, 0] < 0.01 and uniform[20, 20] > 0.25
    for corner in (even[0, 0], even[0, -1], even[-1, 0], even[-1, -1]):
        assert corner == pytest.approx(even[20, 20], rel=0.35)
    expected = (16 / (40 + 16 - 1)) ** 2  # every pixel: a crop side over the positions a crop corner is drawn from
    assert even.mean() == pytest.approx(16**2 / 40**2, rel=0.02) and even[20, 20] == pytest.approx(expected, rel=0.3)


def test_a_corrected_corner_is_trained_on_more_often_with_even_coverage():
    labels = np.zeros((40, 40), np.uint8)
    labels[:5, :5] = 1  # the user corrected a dark vignette corner
    sample = Sample("corner", np.zeros((40, 40), np.uint8), labels)

    def share_with_corner(even: bool) -> float:
        _, masks = CropSampler([sample], 1, 2, crop_size=16, seed=2, even_coverage=even).batch(1000)
        return float((masks.flatten(1).sum(1) > 0).float().mean())

    assert share_with_corner(True) > 2 * share_with_corner(False)


def test_groups_are_drawn_equally_often_whatever_their_size():
    big = [Sample(f"b{i}", np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)) for i in range(9)]
    small = [Sample("s0", np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8))]
    sampler = CropSampler(big + small, 1, 2, crop_size=16, groups=["big"] * 9 + ["small"])
    assert sampler.weights[-1] == pytest.approx(0.5)
    assert sampler.weights[:9].sum() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one group per sample"):
        CropSampler(big, 1, 2, crop_size=16, groups=["big"])
