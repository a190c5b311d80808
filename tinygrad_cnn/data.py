"""Datasets and batches.

- `load_digits()`: the 8x8 handwritten digits that scikit-learn ships (no network).
- `load_mnist()` / `load_fashion_mnist()`: the IDX files, downloaded once into a cache
  directory (``$TINYGRAD_CNN_DATA`` or ``~/.cache/tinygrad_cnn``), checked against their MD5
  on every load, parsed with numpy.
- `batches(x, y, batch_size, shuffle, rng)`.
- `save`, `load`, `read_meta` and `DatasetError` are `checkpoint.py`'s, importable from
  here too.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .checkpoint import (
    ARCHIVE_FORMAT,
    MAX_DEPTH,
    DatasetError,
    check_model_params,
    load,
    read_meta,
    save,
    write_atomically,
)

__all__ = ["DatasetError", "load_digits", "load_mnist", "load_fashion_mnist", "read_idx",
           "batches", "save", "load", "read_meta", "check_model_params", "cache_dir",
           "DATASETS", "write_atomically", "ARCHIVE_FORMAT", "MAX_DEPTH"]


DATASETS = {
    "mnist": (("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/"),
              {"train": (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                         ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")),
               "test": (("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))}),
    "fashion-mnist": (("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                      {"train": (("train-images-idx3-ubyte.gz",
                                  "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                                 ("train-labels-idx1-ubyte.gz",
                                  "25c81989df183df01b3e8a0aad5dffbe")),
                       "test": (("t10k-images-idx3-ubyte.gz",
                                 "bef4ecab320f06d8554ea6380940ec79"),
                                ("t10k-labels-idx1-ubyte.gz",
                                 "bb300cfdad3c16e7a12a480ee83cd310"))}),
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def cache_dir() -> Path:
    return Path(os.environ.get("TINYGRAD_CNN_DATA") or Path.home() / ".cache" / "tinygrad_cnn")


# ----------------------------------------------------------------------------- digits
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits bundled with scikit-learn: images float32 (N, 1, 8, 8) scaled to
    [0, 1], labels int64 (N,)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DatasetError("load_digits needs scikit-learn, which ships the 8x8 digits: "
                           "pip install -e \".[examples]\" (or pip install scikit-learn)") from None
    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return images, digits.target.astype(np.int64)


# ----------------------------------------------------------------------------- IDX files
def read_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse an IDX file (magic 0 0 type ndim, big-endian sizes, then the values)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{name}: not an IDX file (bad magic number {data[:4].hex()})")
    kind, ndim = data[2], data[3]
    if kind not in IDX_DTYPES:
        raise DatasetError(f"{name}: unknown IDX value type 0x{kind:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name}: truncated header ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[kind])
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        raise DatasetError(f"{name}: {len(data)} bytes but shape {shape} of {dtype} needs "
                           f"{expected}; the file is truncated or corrupt")
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _fetch(mirrors: tuple[str, ...], filename: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        try:
            with urllib.request.urlopen(mirror + filename, timeout=30) as response, \
                    open(target.with_suffix(".part"), "wb") as out:
                shutil.copyfileobj(response, out)
            target.with_suffix(".part").replace(target)
            return
        except (urllib.error.URLError, OSError) as error:
            errors.append(f"{mirror}: {getattr(error, 'reason', error)}")
    raise DatasetError(f"could not download {filename} (offline?): " + "; ".join(errors) +
                       f". Put the file in {target.parent} yourself to use it offline.")


def _load_file(dataset: str, root: Path, filename: str, md5: str, download: bool) -> np.ndarray:
    path = root / filename
    if not path.exists():
        if not download:
            raise DatasetError(f"{dataset}: {path} is missing and download=False")
        _fetch(DATASETS[dataset][0], filename, path)
    digest = _md5(path)
    if digest != md5:
        raise DatasetError(f"{dataset}: {path} has MD5 {digest}, expected {md5}: the file is "
                           "corrupt or not the original; delete it to download it again")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{dataset}: {path} is not a valid gzip file ({error})") from None
    return read_idx(data, str(path))


def _load_idx_dataset(dataset: str, root: str | os.PathLike | None, split: str,
                      download: bool) -> tuple[np.ndarray, np.ndarray]:
    files = DATASETS[dataset][1]
    if split not in files:
        raise ValueError(f"load_{dataset.replace('-', '_')}: split must be 'train' or "
                         f"'test', got {split!r}")
    folder = Path(root) if root is not None else cache_dir() / dataset
    (images_file, images_md5), (labels_file, labels_md5) = files[split]
    images = _load_file(dataset, folder, images_file, images_md5, download)
    labels = _load_file(dataset, folder, labels_file, labels_md5, download)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{dataset}: images {images.shape} and labels {labels.shape} do "
                           "not match")
    return images, labels


def load_mnist(root: str | os.PathLike | None = None, split: str = "train",
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST: images uint8 (N, 28, 28), labels uint8 (N,); 60,000 train, 10,000 test."""
    return _load_idx_dataset("mnist", root, split, download)


def load_fashion_mnist(root: str | os.PathLike | None = None, split: str = "train",
                       download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, in the same format as MNIST."""
    return _load_idx_dataset("fashion-mnist", root, split, download)


# ----------------------------------------------------------------------------- batches
def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) mini-batches; the last one may be smaller. Shuffled with `rng` if asked."""
    if len(x) != len(y):
        raise ValueError(f"batches: x has {len(x)} examples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be positive, got {batch_size}")
    order = (rng or np.random.default_rng()).permutation(len(x)) if shuffle \
        else np.arange(len(x))
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        yield x[index], y[index]
