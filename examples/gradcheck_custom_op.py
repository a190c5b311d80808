"""Write your own differentiable op, and watch the gradient checker catch a wrong backward.

    python examples/gradcheck_custom_op.py
"""

import numpy as np

import tinygrad_cnn as tg


class Swish(tg.Function):
    """x * sigmoid(x), with a correct backward written in Tensor ops (so it is twice
    differentiable): d/dx = s + x s (1 - s)."""

    @staticmethod
    def forward(ctx, x):
        return x / (1 + np.exp(-x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.inputs
        s = x.sigmoid()
        return (g * (s + x * s * (1 - s)),)


class SwishWrong(Swish):
    """The same op with a classic mistake: the derivative of x * s taken as s alone."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.inputs
        return (g * x.sigmoid(),)


def main() -> None:
    x = np.linspace(-2, 2, 7)
    print("Swish, right backward:", tg.gradcheck(Swish.apply, [x]),
          "| second derivatives:", tg.gradgradcheck(Swish.apply, [x]))
    print("Swish, wrong backward: the checker says where")
    try:
        tg.gradcheck(SwishWrong.apply, [x])
    except tg.GradcheckError as error:
        print("  caught:", error)
    print(tg.check_gradients(SwishWrong.apply, [x]))


if __name__ == "__main__":
    main()
