import pytest

from tests._qt.driving import sample_folder


@pytest.fixture
def image_folder(tmp_path):
    """Seven images of the bundled sample in a folder of their own."""
    return sample_folder(tmp_path / "images")
