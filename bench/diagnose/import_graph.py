"""How the package's modules depend on each other, as JSON: imports at module top vs inside functions, and
the imports between top-level parts (the layers of docs/architecture.md; `lint-imports` enforces them).

    python bench/diagnose/import_graph.py [--src src/playworld] [--list-inner]

Read from the source with `ast` (nothing is imported), so it runs on any checkout, e.g. an old one made
with `git worktree add`, to compare before and after a change.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `from bench import common`, run from anywhere
from bench import common  # noqa: E402


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The modules an Import/ImportFrom node names (relative imports resolved against `module`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        return [".".join(base + ([node.module] if node.module else []))]
    return [node.module or ""]


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (`playworld.eval.fidelity` -> `eval`)."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "(package)"


def graph(root: Path) -> dict:
    total, inner, edges, inner_list = 0, 0, Counter(), []
    for path in sorted(root.rglob("*.py")):
        module, tree = module_name(path, root), ast.parse(path.read_text())

        def visit(node: ast.AST, in_function: bool) -> None:
            nonlocal total, inner
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    total += 1
                    inner += in_function
                    for name in imported(child, module, path.name == "__init__.py"):
                        if in_function:
                            inner_list.append(f"{module}:{child.lineno} -> {name}")
                        if name.startswith(root.name) and part(name) != part(module):
                            edges[(part(module), part(name), "function" if in_function else "top")] += 1
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(tree, False)
    return {"imports": total, "inside_functions": inner, "inside_share": round(inner / max(1, total), 3),
            "between_parts": [{"from": a, "to": b, "where": w, "count": c} for (a, b, w), c in sorted(edges.items())],
            "inside_functions_list": inner_list}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1)])
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2] / "src" / "playworld",
                    help="the package folder to read (default: this checkout's src/playworld)")
    ap.add_argument("--list-inner", action="store_true", help="also list every import made inside a function")
    args = ap.parse_args()
    common.start(args)
    result = graph(args.src.resolve())
    if not args.list_inner:
        result.pop("inside_functions_list")
    common.report("import_graph", {"src": str(args.src), **result}, args)


if __name__ == "__main__":
    main()
