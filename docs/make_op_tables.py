"""Write the op tables of docs/ops.md and docs/export.md from the registry.

    python docs/make_op_tables.py          # rewrite the generated sections in place
    python docs/make_op_tables.py --check  # exit 1 if a committed table is stale

Each table sits between `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`;
tests/test_registry_facts.py fails when the committed docs differ from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tinygrad_cnn.ops import REGISTRY

DOCS = Path(__file__).resolve().parent


def _first_line(function: object) -> str:
    return ((getattr(function, "__doc__", None) or "").strip().splitlines() or [""])[0]


def _field(spec: object) -> str:
    field = spec.field
    return f"depends: {_first_line(field)}" if callable(field) else field


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def ops_table() -> str:
    rows = ["| op | kind | computes | MACs | receptive field | ONNX | PyTorch |",
            "|---|---|---|---|---|---|---|"]
    for name, spec in REGISTRY.items():
        macs = _first_line(spec.macs) or "counted" if callable(spec.macs) else str(spec.macs)
        onnx = "yes" if spec.exports else "no"
        torch = "yes" if callable(spec.torch) else "no"
        rows.append(f"| `{name}` | {spec.kind} | {_cell(spec.doc)} | {_cell(macs)} | "
                    f"{_cell(_field(spec))} | {onnx} | {torch} |")
    return "\n".join(rows)


def export_table() -> str:
    rows = ["| op | ONNX lowering |", "|---|---|"]
    for name, spec in REGISTRY.items():
        text = (_first_line(spec.onnx) or "yes") if spec.exports else f"none: {spec.onnx}"
        rows.append(f"| `{name}` | {_cell(text)} |")
    return "\n".join(rows)


TABLES = {"ops.md": ("registered ops", ops_table), "export.md": ("onnx lowerings", export_table)}


def rendered(path: Path, name: str, table: str) -> str:
    """The file's text with the section `name` replaced by `table`."""
    text = path.read_text()
    begin, end = f"<!-- BEGIN generated: {name} -->", f"<!-- END generated: {name} -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: no {begin} ... {end} section to fill")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def main(argv: list[str]) -> int:
    stale = []
    for filename, (name, make) in TABLES.items():
        path = DOCS / filename
        text = rendered(path, name, make())
        if text != path.read_text():
            stale.append(filename)
            if "--check" not in argv:
                path.write_text(text)
    if stale and "--check" in argv:
        print(f"stale: {', '.join(stale)}; run python docs/make_op_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
