"""Every differentiable primitive, registered in `REGISTRY` with its gradcheck samples."""

from . import conv, local_conv, norm, pool  # noqa: F401  (registers these modules' ops)
from .elementwise import (
    Abs,
    Add,
    Cast,
    Clip,
    Div,
    Exp,
    Identity,
    Log,
    Maximum,
    Mul,
    Neg,
    Pow,
    ReLU,
    Sigmoid,
    Softplus,
    Sqrt,
    Sub,
    Tanh,
    Where,
    clip,
    constant,
    where,
)
from .indexing import Concatenate, GetItem, IndexAdd, Pad, concatenate, getitem, pad, stack
from .linalg import MatMul
from .reduce import Max, Min, Sum, mean, reduce_max, reduce_min, reduce_sum
from .registry import REGISTRY, OpSpec, Sample, defop
from .shape import (
    BroadcastTo,
    Reshape,
    SumTo,
    Transpose,
    broadcast_to,
    flatten,
    reshape,
    sum_to,
    transpose,
)

__all__ = [
    "REGISTRY", "OpSpec", "Sample", "defop", "constant",
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "Tanh", "Sigmoid", "ReLU",
    "Softplus", "Abs", "Maximum", "Clip", "Cast", "Identity", "Where", "where", "Sum", "Max",
    "Min", "Reshape", "Transpose",
    "BroadcastTo", "SumTo", "GetItem", "IndexAdd", "Pad", "Concatenate", "MatMul",
    "clip", "mean", "reduce_sum", "reduce_max", "reduce_min", "reshape", "transpose",
    "flatten", "broadcast_to", "sum_to", "getitem", "pad", "concatenate", "stack",
]
