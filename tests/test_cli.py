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


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit) as info:
        cli.main(["fly"])
    assert info.value.code == 2
