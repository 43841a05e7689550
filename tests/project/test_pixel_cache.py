"""Decoded image files are shared while unchanged, decoded again when the file changes, and bounded in memory."""

import os

import numpy as np
import pytest

from napari_hybridseg.project._pixel_cache import PixelCache


class CountingDecoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return np.load(path)


def write(path, value, shape=(8, 8)):
    np.save(path, np.full(shape, value, dtype=np.uint8))
    return path


def test_an_unchanged_file_is_decoded_once_and_shared_read_only(tmp_path):
    path, decode, cache = write(tmp_path / "a.npy", 3), CountingDecoder(), PixelCache()
    first = cache.read(path, decode)
    second = cache.read(path, decode)
    assert decode.calls == 1 and second is first
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0] = 9


def test_a_changed_file_is_decoded_again_and_its_old_pixels_dropped(tmp_path):
    path, decode, cache = write(tmp_path / "a.npy", 3), CountingDecoder(), PixelCache()
    cache.read(path, decode)
    write(path, 7, shape=(9, 9))
    os.utime(path, ns=(1, 1))  # a different modification time even on a coarse clock
    image = cache.read(path, decode)
    assert decode.calls == 2 and image[0, 0] == 7
    assert len(cache) == 1


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["absent", "a folder"])
def test_anything_but_a_file_is_not_found(tmp_path, make):
    path = tmp_path / "x.npy"
    make(path)
    with pytest.raises(FileNotFoundError):
        PixelCache().read(path, CountingDecoder())


def test_the_least_recently_read_go_first_when_over_the_item_or_byte_bound(tmp_path):
    paths = [write(tmp_path / f"{i}.npy", i) for i in range(4)]
    decode, cache = CountingDecoder(), PixelCache(max_items=2)
    for path in (paths[0], paths[1], paths[0], paths[2]):  # reading 0 again keeps it over 1
        cache.read(path, decode)
    assert decode.calls == 3
    cache.read(paths[0], decode)
    assert decode.calls == 3
    cache.read(paths[1], decode)
    assert decode.calls == 4

    decode, cache = CountingDecoder(), PixelCache(max_bytes=2 * 64)  # two 8×8 uint8 images
    for path in paths[:3]:
        cache.read(path, decode)
    assert len(cache) == 2
    cache.read(paths[0], decode)
    assert decode.calls == 4


def test_an_image_over_the_byte_bound_is_returned_but_not_kept(tmp_path):
    path, decode, cache = write(tmp_path / "big.npy", 1, shape=(32, 32)), CountingDecoder(), PixelCache(max_bytes=100)
    assert cache.read(path, decode).shape == (32, 32)
    assert len(cache) == 0
