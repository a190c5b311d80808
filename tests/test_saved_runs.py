"""Saved data is never lost or mixed: an archive written by `save` is never read as a
legacy one when damaged, what cannot be given back exactly is refused, a run folder is
written as a unit per finished epoch, and Ctrl-C keeps every finished epoch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_cnn import checkpoint, data
from tinygrad_cnn.cli import main
from tinygrad_cnn.train import CHECKPOINT, TrainingInterrupted, run


def saved_bytes(tmp_path, tree):
    path = data.save(tree, tmp_path / "tree.npz")
    return path, bytearray(path.read_bytes())


def test_a_flipped_bit_in_the_manifest_name_is_damage_not_a_legacy_archive(tmp_path):
    path, raw = saved_bytes(tmp_path, {"w": np.ones(3), "b": np.zeros(2)})
    at = raw.rfind(b"tree.json")     # its name in the central directory
    raw[at] ^= 1
    path.write_bytes(raw)
    with pytest.raises(data.DatasetError, match="damaged"):
        data.load(path)


def test_zeroed_sizes_in_the_end_record_are_damage(tmp_path):
    path, raw = saved_bytes(tmp_path, {"w": np.ones(3)})
    end = raw.rfind(b"PK\x05\x06")
    raw[end + 8:end + 16] = bytes(8)   # entry counts and the central directory's size
    path.write_bytes(raw)
    with pytest.raises(data.DatasetError):
        data.load(path)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_bit_flipped_in_names_or_the_end_record_never_reads_as_another_tree(tmp_path_factory,
                                                                             draw):
    tmp_path = tmp_path_factory.mktemp("flip")
    tree = {"conv": {"w": np.arange(6.0).reshape(2, 3)}, "b": np.zeros(2, np.float32)}
    path, raw = saved_bytes(tmp_path, tree)
    end = raw.rfind(b"PK\x05\x06")
    names = [i for i in range(len(raw) - 9) if raw[i:i + 9] == b"tree.json"]
    regions = [range(n, n + 9) for n in names] + [range(end + 8, end + 20)]
    region = draw.draw(st.sampled_from(regions))
    raw[draw.draw(st.sampled_from(list(region)))] ^= 1 << draw.draw(st.integers(0, 7))
    path.write_bytes(raw)
    try:
        loaded = data.load(path)
    except data.DatasetError:
        return
    assert loaded.keys() == tree.keys()   # read back: the same tree, exactly
    np.testing.assert_array_equal(loaded["conv"]["w"], tree["conv"]["w"])


def test_a_masked_array_is_refused(tmp_path):
    masked = np.ma.masked_array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match="MaskedArray.*mask"):
        data.save({"m": masked}, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def _losses(history):
    return [r["train_loss"] for r in history]


def test_an_interrupt_between_writes_resumes_from_one_consistent_epoch(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    _, whole = run(epochs=3, out=str(tmp_path / "whole"), progress=False, output="quiet")
    save = checkpoint.save
    writes = []

    def interrupted_save(tree, path, meta=None):
        writes.append(path.name)
        if path.name == "optimizer.npz" and len(writes) > 4:   # epoch 2: after its params
            raise KeyboardInterrupt
        return save(tree, path, meta)

    monkeypatch.setattr(checkpoint, "save", interrupted_save)
    with pytest.raises(TrainingInterrupted) as stop:
        run(epochs=3, out=str(tmp_path / "split"), progress=False, output="quiet")
    monkeypatch.setattr(checkpoint, "save", save)
    assert stop.value.saved == 2   # epoch 2's checkpoint was written before the interrupt
    _, resumed = run(epochs=3, resume=str(tmp_path / "split"), progress=False, output="quiet")
    assert _losses(resumed) == _losses(whole)


def test_resume_refuses_files_of_different_epochs(tmp_path):
    pytest.importorskip("sklearn")
    run(epochs=1, out=str(tmp_path / "one"), progress=False, output="quiet")
    run(epochs=2, out=str(tmp_path / "two"), progress=False, output="quiet")
    folder = tmp_path / "two"
    (folder / CHECKPOINT).unlink()     # a folder of the three files only
    (folder / "params.npz").write_bytes((tmp_path / "one" / "params.npz").read_bytes())
    with pytest.raises(ValueError, match="different epochs.*params.npz 1"):
        run(resume=str(folder), progress=False, output="quiet")


def test_ctrl_c_keeps_finished_epochs_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    from tinygrad_cnn import optim
    step = optim.Adam.step
    calls = []

    def step_then_interrupt(self, grads):
        calls.append(1)
        if len(calls) == 30:   # in epoch 2 (23 batches of 64 per epoch)
            raise KeyboardInterrupt
        return step(self, grads)

    monkeypatch.setattr(optim.Adam, "step", step_then_interrupt)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--out", str(out), "--no-progress"]) == 130
    message = capsys.readouterr().err.strip().splitlines()
    assert message[-1] == (f"interrupted: 1 finished epoch(s) are saved in {out}; continue "
                           f"with: tinygrad-cnn train --resume {out}")
    assert data.read_meta(out / CHECKPOINT)["epoch"] == 1
    monkeypatch.setattr(optim.Adam, "step", step)
    _, resumed = run(epochs=2, resume=str(out), progress=False, output="quiet")
    assert [r["epoch"] for r in resumed] == [1, 2]


def test_an_error_before_the_first_epoch_leaves_no_folder(tmp_path):
    with pytest.raises(data.DatasetError):   # the data fails to load after the folder is made
        run(dataset="mnist-t10k", data_root=str(tmp_path / "missing"), epochs=1,
            out=str(tmp_path / "run"), progress=False, output="quiet")
    assert not (tmp_path / "run").exists()
