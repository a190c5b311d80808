"""Sliding windows over (N, C, H, W) arrays: the one window geometry (`Window`), padding,
strided window views, their adjoint (col2im by kernel offset), and the input split by
stride phase. numpy only, no autograd: the conv and pooling primitives are built on these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

Pair = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """The geometry of a sliding window over (H, W): `kernel`, `stride` and `dilation` are
    (h, w) pairs, `padding` is (top, bottom, left, right); with `ceil_mode` the last
    window may start past the end of the input, inside the right/bottom padding it reaches
    (PyTorch's pooling rule). conv2d, unfold/fold, the pools, receptive fields, ONNX pads
    and the viewer all read this one object."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: bool = False

    def out_size(self, h: int, w: int) -> Pair:
        """Windows per axis: floor((size + before + after - d*(k-1) - 1) / s) + 1 (ceil with
        ceil_mode, where a last window starting past the input and its leading padding is
        dropped)."""
        return self._out(h, 0), self._out(w, 1)

    def _out(self, size: int, axis: int) -> int:
        k, s, d = self.kernel[axis], self.stride[axis], self.dilation[axis]
        before, after = self.padding[2 * axis:2 * axis + 2]
        span = size + before + after - d * (k - 1) - 1
        out = (-(-span // s) if self.ceil_mode else span // s) + 1
        if self.ceil_mode and out >= 1 and (out - 1) * s >= size + before:
            out -= 1
        return out

    def covered(self, out_h: int, out_w: int) -> Pair:
        """The rows and columns of the padded input that out_h x out_w windows cover:
        (out - 1)*s + d*(k - 1) + 1 per axis."""
        return tuple((out - 1) * s + d * (k - 1) + 1 for out, s, d, k in
                     zip((out_h, out_w), self.stride, self.dilation, self.kernel))

    def reach(self, h: int, w: int) -> tuple[int, int, int, int]:
        """The padding the kernels apply: `padding`, its bottom and right grown to what the
        last window reaches (ceil_mode's extra rows and columns)."""
        top, bottom, left, right = self.padding
        cover_h, cover_w = self.covered(*self.out_size(h, w))
        return (top, max(bottom, cover_h - h - top), left, max(right, cover_w - w - left))

    def check_fits(self, op: str, h: int, w: int) -> Pair:
        """The output size, or ValueError showing the size formula with the numbers."""
        outs = self.out_size(h, w)
        for axis, size, out in zip((0, 1), (h, w), outs):
            if out >= 1:
                continue
            k, s, d = self.kernel[axis], self.stride[axis], self.dilation[axis]
            before, after = self.padding[2 * axis:2 * axis + 2]
            pad_text = f"2*{before}" if before == after else f"{before}+{after}"
            padded = f"{h + sum(self.padding[:2])}x{w + sum(self.padding[2:])}"
            dilated = f" (dilation {self.dilation[0]}x{self.dilation[1]})" \
                if self.dilation != (1, 1) else ""
            rounding = "ceil" if self.ceil_mode else "floor"
            raise ValueError(f"{op}: output {('height', 'width')[axis]} would be {rounding}(("
                             f"{size} + {pad_text} - {d}*({k}-1) - 1)/{s}) + 1 = {out}; the "
                             f"{self.kernel[0]}x{self.kernel[1]} kernel{dilated} does not "
                             f"fit the padded {padded} input")
        return outs

    def __str__(self) -> str:
        """`3x3 /2 pad=1`, the way graphs and tables show it."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        text = f"{kh}x{kw} /{sh if sh == sw else f'{sh}x{sw}'}"
        if any(self.padding):
            pad = self.padding
            text += f" pad={pad[0] if len(set(pad)) == 1 else pad}"
        if self.dilation != (1, 1):
            dh, dw = self.dilation
            text += f" dilation={dh if dh == dw else f'{dh}x{dw}'}"
        return text + (" ceil" if self.ceil_mode else "")


def pad_spatial(x: np.ndarray, padding: tuple[int, int, int, int],
                value: float = 0.0) -> np.ndarray:
    """(N, C, H, W) padded by (top, bottom, left, right); x itself when there is none."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    out = np.full(x.shape[:2] + (x.shape[2] + top + bottom, x.shape[3] + left + right),
                  value, dtype=x.dtype)
    out[:, :, top:top + x.shape[2], left:left + x.shape[3]] = x
    return out


def window_view(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Read-only view (N, C, KH, KW, OH, OW): element [.., i, j, oh, ow] is
    xp[.., oh*sh + i*dh, ow*sw + j*dw]."""
    sn, sc, sh, sw = xp.strides
    shape = xp.shape[:2] + kernel + out_hw
    strides = (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1])
    return as_strided(xp, shape, strides, writeable=False)


def offset_view(xp: np.ndarray, i: int, j: int, stride: tuple[int, int],
                dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Writable view (N, C, OH, OW) of the elements at kernel offset (i, j) of every window:
    xp[.., oh*sh + i*dh, ow*sw + j*dw]."""
    top, left = i * dilation[0], j * dilation[1]
    return xp[:, :, top:top + stride[0] * (out_hw[0] - 1) + 1:stride[0],
              left:left + stride[1] * (out_hw[1] - 1) + 1:stride[1]]


class StridePhases:
    """An input, padded by (top, bottom, left, right), split by stride phase: phase (a, b)
    holds rows a, a+sh, ... and columns b, b+sw, ... of the padded input.

    The phases are planes of one shape (N, C, HQ, WQ), laid one after the other in a single
    flat buffer with some slack at the end. The elements at kernel offset (i, j) of every
    window, xp[.., oh*sh + i*dh, ow*sw + j*dw], are then the entries [.., oh, ow] of one
    contiguous (N, C, HQ, WQ) window of that buffer, shifted by (i*dh//sh)*WQ + j*dw//sw: a
    "wide" view whose entries past OH rows or OW columns are garbage to crop (or to weight by
    zero when adding into it). numpy runs on such flat, contiguous views several times
    faster than on rows of OW elements. The padded input itself is never built.
    """

    def __init__(self, shape: tuple[int, ...], padding: tuple[int, int, int, int],
                 stride: tuple[int, int], fill: float, dtype: np.dtype) -> None:
        n, c, h, w = shape
        self.hw, self.padding, self.stride = (h, w), padding, stride
        padded_h, padded_w = h + padding[0] + padding[1], w + padding[2] + padding[3]
        self.plane_shape = (n, c, -(-padded_h // stride[0]), -(-padded_w // stride[1]))
        self.plane_size = math.prod(self.plane_shape)
        slack = self.plane_shape[2] * self.plane_shape[3]  # any shift is less than a plane
        keys = [(a, b) for a in range(stride[0]) for b in range(stride[1])]
        self.buffer = np.full(len(keys) * self.plane_size + slack, fill, dtype=dtype)
        self.index = {key: k for k, key in enumerate(keys)}
        self.planes = {key: self._flat(k * self.plane_size) for key, k in self.index.items()}

    def _flat(self, start: int) -> np.ndarray:
        return self.buffer[start:start + self.plane_size].reshape(self.plane_shape)

    @classmethod
    def of(cls, x: np.ndarray, padding: tuple[int, int, int, int], stride: tuple[int, int],
           fill: float = 0.0) -> StridePhases:
        phases = cls(x.shape, padding, stride, fill, x.dtype)
        for key, (plane_part, x_part) in phases._parts().items():
            phases.planes[key][plane_part] = x[x_part]
        return phases

    def _parts(self) -> dict:
        """Per phase: the slice of its plane and the slice of the unpadded input it holds."""
        (sh, sw), (h, w) = self.stride, self.hw
        top, left = self.padding[0], self.padding[2]
        parts = {}
        for a, b in self.planes:
            row, col = (a - top) % sh, (b - left) % sw  # first input row/col in this phase
            rows, cols = len(range(row, h, sh)), len(range(col, w, sw))
            first_row, first_col = (row + top - a) // sh, (col + left - b) // sw
            parts[a, b] = ((..., slice(first_row, first_row + rows),
                            slice(first_col, first_col + cols)),
                           (..., slice(row, h, sh), slice(col, w, sw)))
        return parts

    def wide_view(self, i: int, j: int, dilation: tuple[int, int]) -> np.ndarray:
        """Contiguous (N, C, HQ, WQ) view whose [.., oh, ow] is the padded input at kernel
        offset (i, j) of window (oh, ow), for oh < OH and ow < OW."""
        (sh, sw), top, left = self.stride, i * dilation[0], j * dilation[1]
        start = self.index[top % sh, left % sw] * self.plane_size
        return self._flat(start + (top // sh) * self.plane_shape[3] + left // sw)

    def widen(self, values: np.ndarray, fill: float = 0) -> np.ndarray:
        """(N, C, OH, OW) values placed in a (N, C, HQ, WQ) array of `fill`."""
        wide = np.full(self.plane_shape, fill, dtype=values.dtype)
        wide[:, :, :values.shape[2], :values.shape[3]] = values
        return wide

    def unpadded(self, out: np.ndarray | None = None) -> np.ndarray:
        """The planes interleaved back into the unpadded (N, C, H, W) array (into `out`,
        any view of that shape, when given)."""
        if out is None:
            out = np.empty(self.plane_shape[:2] + self.hw, dtype=self.buffer.dtype)
        for key, (plane_part, x_part) in self._parts().items():
            out[x_part] = self.planes[key][plane_part]
        return out


def col2im_add(xp: np.ndarray, cols: np.ndarray, stride: tuple[int, int],
               dilation: tuple[int, int]) -> None:
    """Adjoint of window_view: xp[.., oh*sh + i*dh, ow*sw + j*dw] += cols[.., i, j, oh, ow].

    One strided slice addition per kernel offset (KH*KW of them).
    """
    _, _, kh, kw, oh, ow = cols.shape
    for i in range(kh):
        for j in range(kw):
            view = offset_view(xp, i, j, stride, dilation, (oh, ow))
            view += cols[:, :, i, j]
