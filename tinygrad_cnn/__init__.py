"""tinygrad_cnn: a small numpy autograd framework for convolutional networks."""

from .tensor import Buffer, Tensor, as_tensor, buffer  # first: the engine is built on it

# isort: split
from .autograd import (
    Context,
    Function,
    enable_grad,
    grad_of,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .config import keep_freed_memory, show_config
from .gradcheck import (
    GradcheckError,
    GradReport,
    check_gradients,
    gradcheck,
    gradgradcheck,
    numerical_grad,
)
from .locate import LocateReport, NodeReport, locate_gradient_error
from .ops import REGISTRY, concatenate, stack, where
from .receptive import receptive_field
from .summary import summary
from .trace import AnomalyError, detect_anomaly
from .transforms import grad, hvp, jacobian, value_and_grad
from .view import Viewer, view
from .viz import draw_graph, to_dot

__all__ = [
    "Tensor", "as_tensor", "Buffer", "buffer", "Function", "Context", "no_grad", "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled", "grad", "value_and_grad", "grad_of", "jacobian", "hvp",
    "gradcheck", "gradgradcheck", "numerical_grad", "check_gradients", "GradcheckError",
    "GradReport", "REGISTRY", "concatenate", "stack", "where", "show_config", "to_dot",
    "draw_graph", "summary", "AnomalyError", "detect_anomaly",
    "locate_gradient_error", "LocateReport", "NodeReport", "receptive_field", "view", "Viewer",
]

keep_freed_memory()   # large temporaries reuse freed memory (see config.py)
