"""The command line: info and gradcheck."""

import pytest

from tinygrad_cnn import cli


def test_info_reports_blas_and_advice(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "blas" in out and "avx512" in out and "advice" in out


def test_gradcheck_one_op(capsys):
    assert cli.main(["gradcheck", "--op", "conv2d"]) == 0
    out = capsys.readouterr().out
    assert out.count("conv2d") >= 3 and "all passed" in out


def test_gradcheck_unknown_op_is_a_clear_error(capsys):
    assert cli.main(["gradcheck", "--op", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown op 'nope'" in err and "conv2d" in err


def test_unknown_command_exits_nonzero(capsys):
    assert cli.main(["fly"]) == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_graph_command_writes_the_picture(tmp_path, capsys):
    pytest.importorskip("graphviz")
    from tinygrad_cnn.viz import find_renderer
    target = tmp_path / ("g.svg" if find_renderer() else "g.dot")
    assert cli.main(["graph", "--model", "lenet5", "-o", str(target)]) == 0
    assert target.exists() and "wrote the forward + loss graph" in capsys.readouterr().out
    backward = tmp_path / "b.dot"
    assert cli.main(["graph", "--backward", "--max-nodes", "30", "-o", str(backward)]) == 0
    assert "conv2d_weight_grad" in backward.read_text()


def test_summary_command(capsys):
    assert cli.main(["summary", "--model", "lenet5"]) == 0
    assert "61,706" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(capsys):
    assert cli.main(["summary", "--model", "resnet"]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err


def test_faster_kernels_only_offered_on_avx512_cpus_with_slower_kernels():
    from tinygrad_cnn.config import faster_kernels_available
    assert faster_kernels_available({"avx512": True, "kernels": "Haswell"})
    assert not faster_kernels_available({"avx512": True, "kernels": "SkylakeX"})
    assert not faster_kernels_available({"avx512": False, "kernels": "Haswell"})
    assert not faster_kernels_available({"avx512": True, "kernels": None})
