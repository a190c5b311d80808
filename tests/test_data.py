"""Datasets on real files: IDX parsing, checksums on every load, corrupt and missing files."""

import gzip
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import Tensor, data

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                                 reason="the shared MNIST test files are not beside the repo")


@needs_mnist
def test_real_mnist_test_split():
    images, labels = data.load_mnist(MNIST, "test", download=False)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]
    assert images.max() == 255 and images[0, :5].sum() == 0


def copy_mnist(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, tmp_path / name)
    return tmp_path


@needs_mnist
def test_corrupted_file_fails_the_checksum_on_every_load(tmp_path):
    folder = copy_mnist(tmp_path)
    data.load_mnist(folder, "test", download=False)  # fine first
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DatasetError, match="has MD5 .* expected ec29112dd5"):
        data.load_mnist(folder, "test", download=False)


@needs_mnist
def test_truncated_file_is_refused(tmp_path):
    folder = copy_mnist(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(data.DatasetError, match="MD5"):
        data.load_mnist(folder, "test", download=False)


def test_idx_parser_checks_sizes():
    header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    np.testing.assert_array_equal(data.read_idx(header + bytes(range(6))),
                                  np.arange(6, dtype=np.uint8).reshape(2, 3))
    with pytest.raises(data.DatasetError, match="truncated or corrupt"):
        data.read_idx(header + bytes(5))
    with pytest.raises(data.DatasetError, match="not an IDX file"):
        data.read_idx(b"\x1f\x8b\x08\x00")
    big_endian = bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + \
        (1).to_bytes(4, "big") + (258).to_bytes(4, "big")
    assert data.read_idx(big_endian).tolist() == [1, 258]


def test_missing_file_offline_gives_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(data.DatasetError, match="could not download t10k-images.*offline"):
        data.load_mnist(tmp_path, "test")
    with pytest.raises(data.DatasetError, match="missing and download=False"):
        data.load_mnist(tmp_path, "test", download=False)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_fashion_mnist(tmp_path, "valid")


@needs_mnist
def test_download_goes_to_the_cache_once(tmp_path, monkeypatch):
    served = []

    class Response:
        def __init__(self, name):
            self.file = open(MNIST / name, "rb")

        def read(self, *args):
            return self.file.read(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def fake_urlopen(url, timeout):
        served.append(url)
        return Response(url.rsplit("/", 1)[1])

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(tmp_path))
    images, _ = data.load_mnist(split="test")
    assert len(images) == 10000 and len(served) == 2
    data.load_mnist(split="test")
    assert len(served) == 2  # cached
    assert (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_batches():
    x, y = np.arange(10), np.arange(10) * 2
    got = list(data.batches(x, y, 4, shuffle=False))
    assert [len(b[0]) for b in got] == [4, 4, 2]
    shuffled = list(data.batches(x, y, 3, True, np.random.default_rng(0)))
    assert sorted(np.concatenate([b[0] for b in shuffled]).tolist()) == list(range(10))
    assert all((b[1] == 2 * b[0]).all() for b in shuffled)
    with pytest.raises(ValueError, match="x has 10 examples but y has 3"):
        next(data.batches(x, y[:3], 2))


def test_save_and_load_keep_nesting_and_dtypes(tmp_path):
    params = {"conv": {"weight": Tensor(np.ones((2, 1, 3, 3), np.float32)),
                       "bias": np.zeros(2)}, "step": np.array(3)}
    data.save(params, tmp_path / "p.npz")
    loaded = data.load(tmp_path / "p.npz")
    assert set(loaded) == {"conv", "step"} and set(loaded["conv"]) == {"weight", "bias"}
    assert loaded["conv"]["weight"].dtype == np.float32
    assert loaded["conv"]["bias"].dtype == np.float64 and loaded["step"] == 3


def test_load_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "evil.npz", payload=np.array([{"run": "code"}], dtype=object))
    with pytest.raises(data.DatasetError, match="refusing to load"):
        data.load(tmp_path / "evil.npz")


def test_digits_are_embedded():
    pytest.importorskip("sklearn")
    images, labels = data.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.max() <= 1 and labels.max() == 9


def test_a_valid_but_different_file_is_refused(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01" +
                                                    (1).to_bytes(4, "big") + b"\x01"))
    with pytest.raises(data.DatasetError, match="MD5 .* expected 9fb629c418"):
        data.load_mnist(tmp_path, "test", download=False)
