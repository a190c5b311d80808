"""Every registered op x every sample: gradcheck and gradgradcheck in float64."""

import numpy as np
import pytest

import tinygrad_cnn as tg

CASES = [(name, k, sample)
         for name, spec in tg.REGISTRY.items()
         for k, sample in enumerate(spec.samples(np.random.default_rng(0)))]


def _op(name, params):
    function = tg.REGISTRY[name].function
    return lambda *xs: function.apply(*xs, **params)


@pytest.mark.parametrize("name,k,sample", CASES,
                         ids=[f"{n}-{k}-{s.label or 'default'}" for n, k, s in CASES])
def test_first_and_second_derivatives(name, k, sample):
    f = _op(name, sample.params)
    assert tg.gradcheck(f, list(sample.args))
    assert tg.gradgradcheck(f, list(sample.args))


def test_every_op_has_samples_and_a_doc():
    for name, spec in tg.REGISTRY.items():
        assert spec.samples(np.random.default_rng(0)), name
        assert spec.doc, name
        assert spec.function.name == name
