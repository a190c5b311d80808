"""Saving and loading trees of parameters: one .npz archive, written atomically, read back
exactly, never unpickled.

`save(params, path, meta=None)` writes any tree of dicts (string keys), lists and tuples of
Tensors, arrays, Buffers and numpy scalars, with a JSON manifest of its structure and
`meta`; `load(path)` gives it back (`load(path, model=...)` also checks it against a model
of the zoo); `read_meta(path)` reads the meta alone. A damaged or hand-made archive is a
`DatasetError` naming the file and the member. `write_atomically` is how every file of the
project is written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .models import ALIASES, check_params
from .tensor import Buffer, Tensor

__all__ = ["DatasetError", "save", "load", "read_meta", "write_atomically", "ARCHIVE_FORMAT",
           "MAX_DEPTH", "check_model_params"]


class DatasetError(RuntimeError):
    """A dataset or a saved file could not be found, read, or trusted."""


ARCHIVE_FORMAT = "tinygrad_cnn.params"
MANIFEST = "tree.json"  # the tree's structure; the arrays are members arr_0.npy, arr_1.npy...
ARCHIVE_MARK = b"tinygrad_cnn parameter archive"   # the zip comment of every saved archive
MAX_DEPTH = 100   # nesting of a saved tree; deeper manifests are refused, not recursed into


def _encode_tree(node: Any, where: str, arrays: list[np.ndarray], depth: int = 0) -> dict:
    """The JSON description of a tree of dicts (string keys), lists and tuples whose leaves
    are Tensors or arrays; the arrays are appended to `arrays`. Refuses anything else."""
    if depth > MAX_DEPTH:
        raise ValueError(f"save: {where[:60]}... is nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        for key in node:
            if not isinstance(key, str):
                raise TypeError(f"save: key {key!r} in {where} is a {type(key).__name__}; "
                                "keys must be strings")
        return {"dict": [[key, _encode_tree(value, f"{where}[{key!r}]", arrays, depth + 1)]
                         for key, value in node.items()]}
    if isinstance(node, (list, tuple)):
        kind = "list" if isinstance(node, list) else "tuple"
        return {kind: [_encode_tree(item, f"{where}[{i}]", arrays, depth + 1)
                       for i, item in enumerate(node)]}
    array = node.data if isinstance(node, Tensor) else node
    if isinstance(array, np.ndarray) and type(array) not in (np.ndarray, Buffer):
        raise TypeError(f"save: {where} is a {type(array).__name__}, which load could not "
                        "give back exactly (a masked array would lose its mask); save "
                        "np.asarray of it, and its mask as an array of its own")
    if not isinstance(array, (np.ndarray, np.generic)):
        raise TypeError(f"save: {where} is a {type(node).__name__}; leaves must be Tensors, "
                        "numpy arrays or numpy scalars (wrap a number in np.asarray)")
    if array.dtype.hasobject:
        raise TypeError(f"save: {where} is an object array, which only pickling could store")
    arrays.append(np.asarray(array))
    kind = "scalar" if isinstance(array, np.generic) else \
        "buffer" if isinstance(array, Buffer) else "array"
    return {kind: len(arrays) - 1}


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write` on a temporary file beside `path`, then rename it into place: an
    interrupted write never leaves a truncated file where a good one was. The file gets
    the mode a new file would (0666 less the umask)."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not "
                                "exist")
    # the temporary name stays short: a 255-character file name must still be writable
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.",
                                     suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def save(params: Any, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write a tree of Tensors, arrays, Buffers or numpy scalars (dicts with string keys,
    lists, tuples) to an .npz archive that `load` returns exactly (Tensors come back as
    arrays, Buffers as Buffers); returns the path written.

    ".npz" is appended to a path without it (as numpy.savez does). `meta` (JSON values) is
    stored beside the tree: `train` records the model and its options there. The file is
    written to a temporary name and renamed into place, so an interrupted save never
    leaves a truncated file where a good one was. Raises TypeError, before writing anything,
    for a tree it could not give back exactly.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays: list[np.ndarray] = []
    tree = _encode_tree(params, "params", arrays)
    try:
        manifest = json.dumps({"format": ARCHIVE_FORMAT, "version": 1, "tree": tree,
                               "meta": meta or {}})
    except TypeError as error:
        raise TypeError(f"save: meta must hold JSON values only ({error})") from None

    def write(file: BinaryIO) -> None:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            archive.comment = ARCHIVE_MARK
            archive.writestr(MANIFEST, manifest)
            for index, array in enumerate(arrays):
                with archive.open(f"arr_{index}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    write_atomically(path, write)
    return path


# what a damaged or hand-made archive can raise while it is opened or read
ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                  RuntimeError, ValueError, MemoryError, UnicodeDecodeError)


def _npy_payload(member: BinaryIO, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int, int]:
    """(shape, dtype, bytes the header promises, bytes the member holds) of an .npy member,
    read from its header alone, so a header claiming 1e14 floats allocates nothing."""
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
        else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(member)
    return shape, dtype, math.prod(shape) * dtype.itemsize, info.file_size - member.tell()


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    where = f"load: {path} member {name}"
    try:
        info = archive.getinfo(name)
        with archive.open(info) as member:
            shape, dtype, promised, held = _npy_payload(member, info)
        if dtype.hasobject:
            raise DatasetError(f"{where} holds object arrays, which would need unpickling "
                               "(arbitrary code); refusing to load it")
        if promised != held:
            raise DatasetError(f"{where} is corrupt: its header says {dtype} {shape} "
                               f"({promised} bytes) but it holds {held} bytes")
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except KeyError:
        raise DatasetError(f"{where} is named by its {MANIFEST} but missing") from None
    except ARCHIVE_ERRORS as error:
        raise DatasetError(f"{where} is corrupt ({type(error).__name__}: {error})") from None


def _manifest_error(path: Path, node: Any, why: str) -> DatasetError:
    return DatasetError(f"load: {path} has a malformed {MANIFEST}: {why} "
                        f"(node {json.dumps(node)[:60]})")


def _tree_indices(node: Any, path: Path, depth: int = 0) -> Iterator[int]:
    """The array numbers a manifest tree names, checking its structure on the way."""
    if depth > MAX_DEPTH:
        raise _manifest_error(path, "...", f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or len(node) != 1:
        raise _manifest_error(path, node, "a node must be an object with one key")
    (kind, value), = node.items()
    if kind == "dict" and isinstance(value, list) and all(
            isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            for item in value):
        for _, child in value:
            yield from _tree_indices(child, path, depth + 1)
    elif kind in ("list", "tuple") and isinstance(value, list):
        for child in value:
            yield from _tree_indices(child, path, depth + 1)
    elif kind in ("array", "scalar", "buffer") and type(value) is int and value >= 0:
        yield value
    else:
        raise _manifest_error(path, node, f"unexpected {kind!r} node")


def _decode_tree(node: dict, arrays: dict[int, np.ndarray]) -> Any:
    """The tree a manifest checked by _tree_indices describes, its leaves from `arrays`."""
    (kind, value), = node.items()
    if kind == "dict":
        return {key: _decode_tree(child, arrays) for key, child in value}
    if kind in ("list", "tuple"):
        items = [_decode_tree(child, arrays) for child in value]
        return items if kind == "list" else tuple(items)
    array = arrays[value]
    return array[()] if kind == "scalar" else array.view(Buffer) if kind == "buffer" \
        else array


def _open_archive(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as file:
        head = file.read(6)
    if head == b"\x93NUMPY":
        raise DatasetError(f"load: {path} is a single .npy array, not a parameter archive "
                           "written by save; read it with np.load(path, allow_pickle=False)")
    try:
        return zipfile.ZipFile(path)
    except ARCHIVE_ERRORS as error:
        raise DatasetError(f"load: {path} is not an .npz archive, or it is truncated "
                           f"({type(error).__name__}: {error})") from None


def _written_by_save(path: Path, names: list[str]) -> bool:
    """Whether `save` wrote this archive, told by three marks a damaged file cannot all lose
    at once: the manifest among the members, the manifest's name in the first local
    header (the file's bytes 30..38) and ARCHIVE_MARK in the archive's comment (the
    file's last bytes, read raw)."""
    if MANIFEST in names:
        return True
    with open(path, "rb") as file:
        head = file.read(30 + len(MANIFEST))
        file.seek(max(0, path.stat().st_size - 1024))
        tail = file.read()
    return head[30:] == MANIFEST.encode() or ARCHIVE_MARK in tail


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> dict:
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except RecursionError:
        raise DatasetError(f"load: {path} has a {MANIFEST} nested too deeply to read") from None
    except ARCHIVE_ERRORS as error:
        raise DatasetError(f"load: {path} member {MANIFEST} is corrupt "
                           f"({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise DatasetError(f"load: {path} has a {MANIFEST} that is not a "
                           f"{ARCHIVE_FORMAT} manifest")
    if not isinstance(manifest.get("meta", {}), dict):
        raise _manifest_error(path, manifest["meta"], "meta must be an object")
    return manifest


def _read_archive(path: Path) -> tuple[Any, dict]:
    """(the tree, the meta dict) of an archive; archives without a manifest (older saves
    and plain numpy.savez files) give a dict nested by '/' in their member names. An
    archive `save` wrote is never read that way: damaged, it raises DatasetError. Only
    the members the manifest names are read."""
    with _open_archive(path) as archive:
        names = archive.namelist()
        if MANIFEST not in names and _written_by_save(path, names):
            raise DatasetError(f"load: {path} was written by tinygrad_cnn's save but its "
                               f"{MANIFEST} cannot be found: the archive is damaged")
        if MANIFEST not in names:
            flat = {name[:-4]: _read_member(archive, name, path) for name in names
                    if name.endswith(".npy")}
            return _nest_by_slash(flat), {}
        manifest = _read_manifest(archive, path)
        tree = manifest.get("tree")
        arrays = {index: _read_member(archive, f"arr_{index}.npy", path)
                  for index in sorted(set(_tree_indices(tree, path)))}
        return _decode_tree(tree, arrays), manifest.get("meta") or {}


def _nest_by_slash(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, array in flat.items():
        node = params
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = array
    return params


def read_meta(path: str | os.PathLike) -> dict:
    """The `meta` dict that `save` stored with a tree ({} for archives without one)."""
    return _read_archive(Path(path))[1]


def load(path: str | os.PathLike, model: str | None = None, **model_options: Any) -> Any:
    """Read what `save` wrote: the same tree of dicts, lists and tuples, with numpy arrays
    for its leaves (same shapes and dtypes). Never unpickles.

    With `model` (a name from `models.MODELS`), the arrays must be that model's parameters:
    the same keys, shapes as `init_<model>(**options)` gives (options from what `train`
    saved, overridden by `model_options`) and float dtypes; every mismatch is named.
    Raises DatasetError naming the file and what is wrong with it.
    """
    path = Path(path)
    params, meta = _read_archive(path)
    if model is not None:
        model = ALIASES.get(model, model)
        check_model_params(params, model, {**_saved_options(meta, model), **model_options},
                           str(path))
    return params


def _saved_options(meta: dict, model: str) -> dict:
    if meta.get("model") not in (None, model):
        raise DatasetError(f"load: the file holds {meta['model']} parameters, not {model}")
    return dict(meta.get("init") or {})


def check_model_params(params: Any, model: str, options: dict, source: str) -> None:
    """DatasetError naming every key, shape and dtype of `params` that does not fit the
    model `model` built with `options` (see `models.check_params`)."""
    try:
        check_params(params, model, options, source)
    except ValueError as error:
        raise DatasetError(str(error)) from None
