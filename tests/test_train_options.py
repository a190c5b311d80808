"""The training command refuses options no run could use, and options that contradict the
run it resumes, with one line naming the option or the file; its JSON is strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tinygrad_cnn import cli
from tinygrad_cnn.train import CHECKPOINT, run

pytest.importorskip("sklearn")


def train(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["train", "--no-progress", *args])
    return code, out.getvalue(), err.getvalue()


def assert_one_line(err: str, *parts: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "0", "expected an integer >= 1, got '0'"),
    ("--epochs", "-2", "expected an integer >= 1"),
    ("--batch-size", "0", "expected an integer >= 1"),
    ("--lr", "inf", "expected a finite number >= 0, got 'inf'"),
    ("--lr", "nan", "expected a finite number >= 0, got 'nan'"),
    ("--lr", "-0.1", "expected a finite number >= 0"),
    ("--seed", "-1", "expected an integer >= 0, got '-1'"),
    ("--model", "resnet", "unknown model 'resnet'"),
])
def test_options_no_run_could_use_are_refused_by_name(tmp_path, monkeypatch, option, value,
                                                      expected):
    monkeypatch.chdir(tmp_path)
    code, _, err = train(option, value)
    assert code == 2
    assert_one_line(err, f"argument {option}", expected)
    assert not list(tmp_path.iterdir())      # no run folder, not even runs/


@pytest.mark.parametrize("options, expected", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"lr": math.nan}, "lr must be a finite number >= 0, got nan"),
    ({"lr": math.inf}, "lr must be a finite number >= 0, got inf"),
    ({"seed": -3}, "seed must be an integer >= 0, got -3"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
])
def test_run_refuses_the_same_values_by_parameter_name(tmp_path, monkeypatch, options,
                                                       expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=expected):
        run(progress=False, output="quiet", **options)
    assert not list(tmp_path.iterdir())


def strict_json(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_json_output_and_metrics_are_strict_json_when_the_loss_is_nan(tmp_path):
    code, out, _ = train("--epochs", "1", "--lr", "1e30", "--optimizer", "sgd", "--json",
                         "--max-steps", "3", "--out", str(tmp_path / "run"))
    assert code == 0
    records = [strict_json(line) for line in out.splitlines()]
    assert records[0]["train_loss"] is None and records[-1]["done"]
    metrics = strict_json((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"][0]["test_loss"] is None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    run(epochs=1, out=str(out), progress=False, output="quiet", max_steps=2)
    return out


def copy_of(run_dir: Path, tmp_path: Path, drop=(), metrics=None) -> Path:
    import shutil
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    for name in drop:
        (target / name).unlink()
    if metrics is not None:
        (target / "metrics.json").write_text(metrics)
    return target


@pytest.mark.parametrize("drop, metrics, expected", [
    ((CHECKPOINT, "params.npz"), None, "params.npz is missing"),
    ((CHECKPOINT,), '{"epochs": []}', "metrics.json holds no training settings"),
    ((CHECKPOINT,), "[]", "metrics.json holds no list of epochs"),
    ((CHECKPOINT,), "{", "metrics.json is not valid JSON"),
])
def test_resuming_an_incomplete_folder_names_the_file(finished_run, tmp_path, drop, metrics,
                                                      expected):
    folder = copy_of(finished_run, tmp_path, drop, metrics)
    code, _, err = train("--resume", str(folder))
    assert code == 2
    assert_one_line(err, expected)


def test_resuming_a_file_says_it_is_not_a_folder(finished_run):
    code, _, err = train("--resume", str(finished_run / "params.npz"))
    assert code == 2
    assert_one_line(err, "params.npz: not a folder")


@pytest.mark.parametrize("option, value", [
    ("--model", "vgg"), ("--lr", "0.5"), ("--batch-size", "7"), ("--optimizer", "sgd"),
    ("--seed", "5"), ("--dataset", "mnist-t10k")])
def test_resume_refuses_options_that_contradict_the_run(finished_run, tmp_path, option,
                                                        value):
    folder = copy_of(finished_run, tmp_path)
    before = (folder / CHECKPOINT).read_bytes()
    code, _, err = train("--resume", str(folder), "--epochs", "2", option, value)
    assert code == 2
    assert_one_line(err, "contradict the run being resumed", f"={value!r}".replace(
        "'0.5'", "0.5").replace("'7'", "7").replace("'5'", "5"))
    assert (folder / CHECKPOINT).read_bytes() == before


def test_resume_accepts_options_equal_to_the_run(finished_run, tmp_path):
    folder = copy_of(finished_run, tmp_path)
    code, _, err = train("--resume", str(folder), "--epochs", "2", "--model", "lenet",
                         "--lr", "0.002", "--batch-size", "64", "--max-steps", "2", "--quiet")
    assert code == 0, err
    assert len(strict_json((folder / "metrics.json").read_text())["epochs"]) == 2


def test_an_error_after_the_checks_leaves_no_default_run_folder(tmp_path, monkeypatch):
    from tinygrad_cnn import data
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DatasetError):
        run(dataset="mnist-t10k", data_root=str(tmp_path / "missing"), epochs=1,
            progress=False, output="quiet")
    assert not (tmp_path / "runs").exists()
