"""Every example runs, quickly, and says what it promises."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


SPAWNING = {"train_ddp.py"}   # starts processes of its own: run as a command below


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")
                                        if p.name not in SPAWNING))
def test_example_runs(name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"
    assert "FAILED" not in out


def test_quickstart_gradient_check_passes(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "passed" in out and "loss" in out


def test_readme_ten_lines_run(tmp_path, monkeypatch):
    import re
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = re.search(r"## Ten lines\n\n```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["loss"].shape == () and set(namespace["grads"]) == {"w1", "b1", "w2", "b2"}
    assert (tmp_path / "graph.dot").exists()


def test_the_ddp_example_trains_on_two_processes_and_measures_here():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import re
    import subprocess
    done = subprocess.run([sys.executable, str(EXAMPLES / "train_ddp.py"), "--nproc", "2",
                           "--epochs", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = re.search(r"2 process\(es\), 3 epochs .* test accuracy ([0-9.]+) on 360 images",
                      done.stdout)
    assert final and float(final.group(1)) > 0.6, done.stdout
