"""The training command: outputs, reproducibility, clear errors; models and their gradients."""

import json

import numpy as np
import pytest

import tinygrad_cnn.functional as F
from tinygrad_cnn import cli, data, models

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def train(tmp_path, name, *extra):
    out = tmp_path / name
    code = cli.main(["train", "--epochs", "2", "--max-steps", "4", "--no-progress",
                     "--out", str(out), *extra])
    return code, out


def test_train_writes_everything(tmp_path, capsys):
    code, out = train(tmp_path, "run")
    assert code == 0
    printed = capsys.readouterr().out
    assert "train loss" in printed and "test acc" in printed
    for name in ("params.npz", "metrics.json", "metrics.csv", "curves.png", "filters.png",
                 "feature_maps.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "graph.svg").exists() or (out / "graph.dot").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["model"] == "lenet5" and len(metrics["epochs"]) == 1
    params = data.load(out / "params.npz")
    assert params["conv1.weight"].shape == (6, 1, 3, 3)
    for png in ("curves.png", "filters.png", "feature_maps.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_losses(tmp_path):
    runs = [train(tmp_path, name, "--seed", "3")[1] for name in ("a", "b")]
    first, second = (json.loads((r / "metrics.json").read_text())["epochs"] for r in runs)
    assert [e["train_loss"] for e in first] == [e["train_loss"] for e in second]
    other = train(tmp_path, "c", "--seed", "4")[1]
    third = json.loads((other / "metrics.json").read_text())["epochs"]
    assert third[0]["train_loss"] != first[0]["train_loss"]


@pytest.mark.parametrize("model", ["vgg", "inception"])
def test_other_models_train(tmp_path, model):
    assert train(tmp_path, model, "--model", model, "--optimizer", "sgd")[0] == 0


@pytest.mark.parametrize("args,message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--out", "/proc/forbidden"], "cannot write to output directory /proc/forbidden"),
])
def test_train_errors_are_one_line(tmp_path, capsys, args, message):
    assert cli.main(["train", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_dataset_exits_nonzero(capsys):
    assert cli.main(["train", "--dataset", "cifar"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'cifar'" in err and err.count("\n") == 1


def test_missing_dataset_offline_is_a_clear_error(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise data.urllib.error.URLError("no network")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    monkeypatch.setenv("TINYGRAD_CNN_DATA", str(tmp_path / "cache"))
    code = cli.main(["train", "--dataset", "mnist", "--no-progress", "--out",
                     str(tmp_path / "out")])
    assert code == 2
    assert "could not download train-images-idx3-ubyte.gz (offline?)" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(models.MODELS))
def test_model_shapes_and_gradients(name):
    model, init_model = models.get_model(name)
    for size in (8, 28):
        params = init_model(np.random.default_rng(0), image_size=size)
        out = model(params, np.zeros((2, 1, size, size), np.float32))
        assert out.shape == (2, 10) and out.dtype == np.float32
    assert models.model_loss_gradcheck(name).passed


def test_gradcheck_command_with_a_model(capsys):
    assert cli.main(["gradcheck", "--op", "relu", "--model", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "conv1.weight" in out and "all passed" in out


def test_lenet_feature_maps_follow_the_convs():
    from tinygrad_cnn.train import conv_outputs
    params = models.init_lenet5(np.random.default_rng(0))
    maps = conv_outputs(models.lenet5, params, np.zeros((1, 1, 28, 28), np.float32))
    assert [m.shape for m in maps] == [(6, 28, 28), (16, 10, 10)]
    assert F.relu(maps[0]).shape == (6, 28, 28)
