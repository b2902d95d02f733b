"""Read qualitas' imports and report what docs/architecture.md promises about them.

``python tools/check_imports.py`` (from the repository root) prints, for ``src/qualitas``:

- import cycles between modules (strongly connected components of the module graph; every
  ``import``/``from ... import`` counts, also those inside functions, except under
  ``if TYPE_CHECKING:``);
- upward imports: a module of a lower layer importing one of a higher layer, with the layers
  ``ground -> io/functional -> metrics/models/losses/data -> evaluation -> training/export
  -> runtime/importance -> serve -> cli -> app`` (``LAYERS`` below);
- modules over ``--max-lines`` lines (default 500) whose docstring does not give a reason
  (a line containing ``Why this file is long:``);
- functions over ``--max-function-lines`` lines (default 80), for information.

``--json`` prints the same as JSON; ``--strict`` exits 1 when there is any cycle, upward
import or unexplained long module. Only the standard library is used (``ast``), so the
script runs before qualitas is installed.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

# Layer of each top-level part of the package (higher may import lower, never the reverse).
LAYERS: dict[str, int] = {
    "errors": 0,
    "registry": 0,
    "files": 0,
    "version": 0,
    "io": 1,
    "functional": 1,
    "metrics": 2,
    "models": 2,
    "losses": 2,
    "data": 2,
    "evaluation": 3,
    "training": 4,
    "export": 4,
    "runtime": 5,
    "importance": 5,
    "serve": 6,
    "cli": 7,
    "": 8,  # the package root (``qualitas/__init__.py``: the public load_model)
    "__main__": 8,
    "demo": 8,
}
LONG_REASON = "Why this file is long:"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str:
    """``qualitas.data.manifest`` -> ``data``; ``qualitas`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        if hasattr(sub, "lineno"):
                            lines.add(sub.lineno)
    return lines


def imports_of(tree: ast.Module, module: str, is_pkg: bool, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at_top_level)`` for each qualitas import of one module."""
    skip = _type_checking_lines(tree)
    top = {id(n) for n in tree.body}
    found: list[tuple[str, int, bool]] = []

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else True:
            continue
        at_top = id(node) in top
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "qualitas" and (target := resolve(alias.name)):
                    found.append((target, node.lineno, at_top))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module if is_pkg else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            if base.split(".")[0] != "qualitas":
                continue
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}")
                if target:
                    found.append((target, node.lineno, at_top))
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components of more than one module, or self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1 or node in graph.get(node, ()):
                    out.append(sorted(comp))
    return sorted(out)


def long_functions(tree: ast.Module, limit: int) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.name, length))
    return found


def analyse(src: Path, max_lines: int = 500, max_function_lines: int = 80) -> dict:
    files = {module_name(p, src): p for p in sorted((src / "qualitas").rglob("*.py"))}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    upward = []
    long_modules = []
    long_funcs = []
    for module, path in files.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for target, line, at_top in imports_of(tree, module, path.name == "__init__.py", known):
            if target == module:
                continue
            graph[module].add(target)
            here, there = LAYERS.get(part_of(module)), LAYERS.get(part_of(target))
            if here is not None and there is not None and there > here:
                upward.append({"module": module, "line": line, "imports": target, "top_level": at_top})
        n_lines = text.count("\n") + 1
        if n_lines > max_lines and LONG_REASON not in (ast.get_docstring(tree) or ""):
            long_modules.append({"module": module, "lines": n_lines})
        for name, length in long_functions(tree, max_function_lines):
            long_funcs.append({"module": module, "function": name, "lines": length})
    unlayered = sorted({part_of(m) for m in files} - set(LAYERS))
    return {
        "modules": len(files),
        "cycles": strongly_connected(graph),
        "upward_imports": upward,
        "long_modules": sorted(long_modules, key=lambda r: -r["lines"]),
        "long_functions": sorted(long_funcs, key=lambda r: -r["lines"]),
        "unlayered_parts": unlayered,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--max-lines", type=int, default=500)
    parser.add_argument("--max-function-lines", type=int, default=80)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on any finding")
    args = parser.parse_args(argv)
    report = analyse(Path(args.src), args.max_lines, args.max_function_lines)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"modules: {report['modules']}")
        print(f"import cycles: {len(report['cycles'])}")
        for comp in report["cycles"]:
            print("  " + " <-> ".join(comp))
        print(f"upward imports: {len(report['upward_imports'])}")
        for row in report["upward_imports"]:
            where = "" if row["top_level"] else " (inside a function)"
            print(f"  {row['module']}:{row['line']} -> {row['imports']}{where}")
        print(f"modules over {args.max_lines} lines without a reason: {len(report['long_modules'])}")
        for row in report["long_modules"]:
            print(f"  {row['module']}: {row['lines']}")
        print(f"functions over {args.max_function_lines} lines: {len(report['long_functions'])}")
        for row in report["long_functions"]:
            print(f"  {row['module']}.{row['function']}: {row['lines']}")
        if report["unlayered_parts"]:
            print("parts without a layer: " + ", ".join(report["unlayered_parts"]))
    failed = report["cycles"] or report["upward_imports"] or report["long_modules"]
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
