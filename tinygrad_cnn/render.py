"""Rendering DOT source: the Graphviz renderer there is (the system `dot`, else
`graphviz-pure` on PATH or beside the running Python), the formats `draw_graph` writes, and
the Digraph class that Jupyter shows inline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["RendererNotFound", "find_renderer", "render", "graph_format", "graph_class",
           "GRAPH_FORMATS", "INSTALL_HINT"]


class RendererNotFound(RuntimeError):
    """Neither Graphviz's `dot` nor `graphviz-pure` is on PATH."""


INSTALL_HINT = ("install a Graphviz renderer: `pip install graphviz-pure` (a self-contained "
                "dot, or `pip install -e \".[render]\"`), or the system package "
                "(`apt-get install graphviz`, `brew install graphviz`)")


def find_renderer() -> str | None:
    """The `dot` program on PATH, else `graphviz-pure` on PATH or beside the running
    Python (a notebook kernel started by full path has its venv's bin off PATH), else
    None."""
    beside_python = str(Path(sys.executable).parent)
    return shutil.which("dot") or shutil.which("graphviz-pure") or \
        shutil.which("graphviz-pure", path=beside_python)


GRAPH_FORMATS = ("svg", "png", "pdf", "dot", "gv")


def graph_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format `draw_graph` would write `path` in; ValueError for one it cannot write,
    FileNotFoundError naming a missing folder. Commands call it before doing the work."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    if fmt not in GRAPH_FORMATS:
        raise ValueError(f"draw_graph: cannot write {path}: unsupported format {fmt!r}; use "
                         f"{', '.join(GRAPH_FORMATS)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"draw_graph: cannot write {path}: the folder {path.parent} "
                                "does not exist")
    return fmt


def render(source: str, fmt: str = "svg", context: str = "render: no Graphviz renderer on "
           "PATH") -> bytes:
    """DOT source rendered to svg, png or pdf bytes by `find_renderer`'s program."""
    renderer = find_renderer()
    if renderer is None:
        raise RendererNotFound(f"{context}. To render, {INSTALL_HINT}")
    if fmt == "pdf" and Path(renderer).name == "graphviz-pure":
        raise RendererNotFound("draw_graph: graphviz-pure cannot write PDF; use .svg or .png, "
                               "or install the system Graphviz for PDF")
    done = subprocess.run([renderer, f"-T{fmt}"], input=source.encode(), check=True,
                          capture_output=True)
    return done.stdout




@cache
def graph_class() -> type:
    """`Graph`: a graphviz Digraph that Jupyter shows inline with whichever renderer there
    is, the system `dot`, else `graphviz-pure` (`find_renderer`); `RendererNotFound` says
    what to install when there is neither. graphviz is imported here, on first use, so
    that the engine imports without it."""
    import graphviz

    class Graph(graphviz.Digraph):
        def _repr_svg_(self) -> str:
            return render(self.source, "svg").decode("utf-8")

        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                              **kwargs: Any) -> dict:
            return {"image/svg+xml": self._repr_svg_()}

    return Graph
