"""Every damaged or hand-made parameter archive is a DatasetError naming the file and the
member; what a damaged archive gives back is either the saved tree exactly or that error."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_cnn import checkpoint, data
from tinygrad_cnn.cli import main

TREE = {"conv": {"w": np.arange(6.0).reshape(2, 3)}, "b": np.zeros(2, np.float32)}


def saved(tmp_path, tree=TREE):
    path = data.save(tree, tmp_path / "tree.npz")
    return path, bytearray(path.read_bytes())


def central_entry(raw: bytearray, name: bytes) -> int:
    """Offset of the central directory record of member `name`."""
    at = raw.find(b"PK\x01\x02")
    while raw[at + 46:at + 46 + len(name)] != name:
        at = raw.find(b"PK\x01\x02", at + 4)
    return at


@pytest.mark.parametrize("member", [b"tree.json", b"arr_0.npy"])
@pytest.mark.parametrize("damage, offset, value", [
    ("compression method", 10, b"\x63\x00"),    # NotImplementedError in zipfile
    ("encryption flag", 8, b"\x01\x00"),        # RuntimeError: password required
])
def test_a_changed_central_header_is_a_dataset_error(tmp_path, member, damage, offset, value):
    path, raw = saved(tmp_path)
    at = central_entry(raw, member)
    raw[at + offset:at + offset + 2] = value
    path.write_bytes(raw)
    with pytest.raises(data.DatasetError, match=f"{path}.*{member.decode()}"):
        data.load(path)


@pytest.mark.parametrize("member", [b"tree.json", b"arr_0.npy"])
def test_a_changed_extra_field_length_is_a_dataset_error(tmp_path, member):
    path, raw = saved(tmp_path)
    local = raw.find(b"PK\x03\x04" + bytes(26)[:0])
    while raw[local + 30:local + 30 + len(member)] != member:
        local = raw.find(b"PK\x03\x04", local + 4)
    raw[local + 28:local + 30] = (200).to_bytes(2, "little")
    path.write_bytes(raw)
    with pytest.raises(data.DatasetError, match=str(path)):
        data.load(path)


def write_archive(path, manifest, members=()):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tree.json", manifest if isinstance(manifest, str)
                         else json.dumps(manifest))
        for name, payload in members:
            archive.writestr(name, payload)
    return path


def npy_bytes(array):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def manifest(tree):
    return {"format": data.ARCHIVE_FORMAT, "version": 1, "tree": tree, "meta": {}}


@pytest.mark.parametrize("tree, expected", [
    ({"dict": {"a": {"array": 0}}}, "unexpected 'dict' node"),
    ({"list": 5}, "unexpected 'list' node"),
    ({"array": "0"}, "unexpected 'array' node"),
    ({"array": -1}, "unexpected 'array' node"),
    ({"array": 0, "list": []}, "one key"),
    ({"dict": [["a", {"array": 7}]]}, "arr_7.npy is named by its tree.json but missing"),
    ("deep", "nested"),
])
def test_a_hand_made_manifest_is_a_dataset_error(tmp_path, tree, expected):
    if tree == "deep":
        text = json.dumps(manifest(None)).replace("null", '{"list": [' * 5000 + "]}" * 5000)
    else:
        text = json.dumps(manifest(tree))
    path = write_archive(tmp_path / "made.npz", text, [("arr_0.npy", npy_bytes(np.ones(2)))])
    with pytest.raises(data.DatasetError, match=expected):
        data.load(path)


def test_an_npy_header_claiming_1e14_floats_allocates_nothing(tmp_path):
    header = npy_bytes(np.ones(2)).replace(b"(2,)", b"(100000000000000,)")
    path = write_archive(tmp_path / "huge.npz", manifest({"array": 0}), [("arr_0.npy", header)])
    with pytest.raises(data.DatasetError, match=r"arr_0.npy is corrupt.*100000000000000"):
        data.load(path)


def test_members_the_manifest_does_not_name_are_not_read(tmp_path, monkeypatch):
    unused = [(f"arr_{i}.npy", b"not an npy file") for i in range(1, 200)]
    path = write_archive(tmp_path / "extra.npz", manifest({"array": 0}),
                         [("arr_0.npy", npy_bytes(np.ones(2)))] + unused)
    read = []
    original = checkpoint._read_member
    monkeypatch.setattr(checkpoint, "_read_member",
                        lambda archive, name, where: read.append(name) or original(
                            archive, name, where))
    np.testing.assert_array_equal(data.load(path), np.ones(2))
    assert read == ["arr_0.npy"]


def test_a_255_character_file_name_can_be_saved(tmp_path):
    path = tmp_path / ("p" * 251 + ".npz")
    data.save(TREE, path)
    np.testing.assert_array_equal(data.load(path)["conv"]["w"], TREE["conv"]["w"])


def test_a_tree_nested_too_deeply_to_save_is_a_value_error(tmp_path):
    tree = np.ones(1)
    for _ in range(data.MAX_DEPTH + 2):
        tree = [tree]
    with pytest.raises(ValueError, match="nested deeper than 100 levels"):
        data.save(tree, tmp_path / "deep.npz")
    assert not list(tmp_path.iterdir())


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_byte_gives_the_tree_back_exactly_or_a_dataset_error(tmp_path_factory,
                                                                         draw):
    path, raw = saved(tmp_path_factory.mktemp("flip"))
    raw[draw.draw(st.integers(0, len(raw) - 1))] ^= draw.draw(st.integers(1, 255))
    path.write_bytes(raw)
    try:
        loaded = data.load(path)
    except data.DatasetError as error:
        assert str(path) in str(error)
        return
    assert loaded.keys() == TREE.keys()
    for got, want in [(loaded["conv"]["w"], TREE["conv"]["w"]), (loaded["b"], TREE["b"])]:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("command", [
    ["export", "--model", "lenet5", "--params", "{path}", "-o", "{dir}/m.onnx"],
    ["summary", "--model", "lenet5", "--params", "{path}"],
    ["receptive-field", "--model", "lenet5", "--params", "{path}", "-o", "{dir}/rf.png"],
])
def test_the_commands_show_a_damaged_archive_as_one_line(tmp_path, capsys, command):
    path = write_archive(tmp_path / "bad.npz", manifest({"list": 5}))
    argv = [part.format(path=path, dir=tmp_path) for part in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed tree.json" in err and str(path) in err
    assert "Traceback" not in err
