"""Structure check of the `atento` package: import cycles, layering, file and function sizes.

    python tools/check_structure.py            # the report; exit status 1 on a new problem

Every module of src/atento is parsed with `ast` (nothing is imported) and every import counts:
at module level, inside functions and under `if TYPE_CHECKING:`. `from atento.x import y`
where `y` is a submodule counts as importing `atento.x.y`; a package `__init__` counts like any
module. Modules imported by name count too: a module that lists module names in a
`BUILTIN_MODULES` or `COMMAND_MODULES` tuple (the subcommands, `atento.cli.commands`, that
`atento.cli.main` imports) counts as importing them.

It reports
  (a) import cycles: strongly connected components of more than one module;
  (b) imports of `atento.cli`, `atento.api` or `atento.serve` inside `atento.tasks`;
  (c) files over 400 lines and functions over 60 lines (for information only).
(a) and (b) fail (exit status 1, and tests/test_structure.py) when they are not among the
known exceptions below; a cycle that shrank or disappeared passes, and the report says which
exceptions can go. The lists are meant to shrink to empty.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "atento"
SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
REGISTRY_TUPLES = ("BUILTIN_MODULES", "COMMAND_MODULES")
# modules a task must not import: the command line, the Python API and the HTTP server sit
# above the tasks
TASKS = "atento.tasks"
ABOVE_TASKS = ("atento.cli", "atento.api", "atento.serve")

# Known imports that close import cycles: (importer, imported). The check drops these edges
# from the import graph and fails when a cycle remains, i.e. on a cycle that goes through none
# of them. Remove an entry once its import is gone or no longer closes a cycle (the report says
# which can go).
KNOWN_CYCLE_IMPORTS: set[tuple[str, str]] = set()

# Known imports from atento.tasks into the layers above: (importer, imported).
KNOWN_TASK_IMPORTS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    """`importer` imports `imported` at `line`; `how` is module, function, type-checking or
    by name (a BUILTIN_MODULES / COMMAND_MODULES tuple)."""

    importer: str
    imported: str
    line: int
    how: str


@dataclass
class Report:
    cycles: list[list[str]] = field(default_factory=list)  # strongly connected, > 1 module
    circles: list[list[list[str]]] = field(default_factory=list)  # per cycle: shortest loops
    task_imports: list[Edge] = field(default_factory=list)
    long_files: list[tuple[str, int]] = field(default_factory=list)
    long_functions: list[tuple[str, str, int, int]] = field(default_factory=list)
    new_cycles: list[list[str]] = field(default_factory=list)  # without the known imports
    new_task_imports: list[Edge] = field(default_factory=list)
    stale_cycle_imports: list[tuple[str, str]] = field(default_factory=list)
    stale_task_imports: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.new_cycles or self.new_task_imports)


def module_files(src: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package under `src`."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: Iterable[str]) -> str | None:
    """The longest known module that `name` is or lies in (`a.b.C` -> `a.b`), or None."""
    known = set(modules)
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module `from <node.module>` names, resolving relative imports."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[tuple[ast.AST, str]]:
    """Every Import / ImportFrom node in `tree` with where it sits (module, function or
    type-checking)."""

    def walk(node: ast.AST, how: str) -> Iterable[tuple[ast.AST, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, how
            inner = how
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = "function"
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                inner = "type-checking"
            yield from walk(child, inner)

    yield from walk(tree, "module")


def _named_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """The module names (and lines) in a BUILTIN_MODULES / COMMAND_MODULES tuple."""
    out = []
    for node in ast.walk(tree):
        value = None
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value = node.value if set(names) & set(REGISTRY_TUPLES) else None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value if node.target.id in REGISTRY_TUPLES else None
        if isinstance(value, (ast.Tuple, ast.List)):
            out += [
                (e.value, e.lineno)
                for e in value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
    return out


def import_edges(modules: dict[str, Path], trees: dict[str, ast.AST], package: str) -> list[Edge]:
    """Every import between modules of the package (see the module doc for what counts)."""
    edges = []
    for module, tree in trees.items():
        is_package = modules[module].name == "__init__.py"
        for node, how in _imports(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _base(module, is_package, node)
                # `from atento.x import y`: the submodule atento.x.y when there is one
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for name in targets:
                target = _resolve(name, modules)
                if target is not None and target != module:
                    edges.append(Edge(module, target, node.lineno, how))
        for name, line in _named_modules(tree):
            target = _resolve(name, modules)
            if target is not None:
                edges.append(Edge(module, target, line, "by name"))
    return list(dict.fromkeys(edges))  # one edge per import line and target


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components of the import graph, each sorted."""
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]  # iterative DFS: no recursion limit
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def long_functions(tree: ast.AST, limit: int) -> list[tuple[str, int, int]]:
    """(qualified name, first line, lines) of every function longer than `limit` lines."""
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    n = child.end_lineno - first + 1
                    if n > limit:
                        out.append((name, first, n))
                walk(child, f"{name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def shortest_circles(component: list[str], edges: Iterable[Edge]) -> list[list[str]]:
    """The shortest import loop through each module of `component` (one strongly connected
    component), without repeats: [a, b, c] reads a -> b -> c -> a."""
    members = set(component)
    graph: dict[str, set[str]] = {n: set() for n in component}
    for e in edges:
        if e.importer in members and e.imported in members:
            graph[e.importer].add(e.imported)
    out: list[list[str]] = []
    for start in component:
        parent: dict[str, str] = {}
        queue, found = [start], None
        while queue and found is None:
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found = node
                    break
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        path = [found]
        while path[-1] != start:
            path.append(parent[path[-1]])
        path.reverse()
        first = path.index(min(path))
        path = path[first:] + path[:first]
        if path not in out:
            out.append(path)
    return out


def check(
    src: Path = SRC,
    package: str = PACKAGE,
    known_cycle_imports: Iterable[tuple[str, str]] = KNOWN_CYCLE_IMPORTS,
    known_task_imports: Iterable[tuple[str, str]] = KNOWN_TASK_IMPORTS,
) -> Report:
    """Parse the package under `src` and compare what it finds with the known exceptions."""
    modules = module_files(src, package)
    trees, report = {}, Report()
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        trees[module] = tree = ast.parse(text, filename=str(path))
        rel = path.relative_to(src).as_posix()
        if len(text.splitlines()) > MAX_FILE_LINES:
            report.long_files.append((rel, len(text.splitlines())))
        report.long_functions += [(rel, *f) for f in long_functions(tree, MAX_FUNCTION_LINES)]
    edges = import_edges(modules, trees, package)
    report.cycles = [c for c in strongly_connected(modules, edges) if len(c) > 1]
    report.circles = [shortest_circles(c, edges) for c in report.cycles]
    known = set(known_cycle_imports)
    rest = [e for e in edges if (e.importer, e.imported) not in known]
    report.new_cycles = [c for c in strongly_connected(modules, rest) if len(c) > 1]
    cyclic = {m: i for i, c in enumerate(report.cycles) for m in c}
    closing = {
        (e.importer, e.imported)
        for e in edges
        if e.importer in cyclic and cyclic[e.importer] == cyclic.get(e.imported)
    }
    report.stale_cycle_imports = sorted(known - closing)
    tasks = f"{package}.tasks"
    above = tuple(p.replace(PACKAGE, package, 1) for p in ABOVE_TASKS)
    known_task_imports = set(known_task_imports)
    for e in edges:
        in_tasks = e.importer == tasks or e.importer.startswith(tasks + ".")
        if in_tasks and any(e.imported == a or e.imported.startswith(a + ".") for a in above):
            report.task_imports.append(e)
            if (e.importer, e.imported) not in known_task_imports:
                report.new_task_imports.append(e)
    seen = {(e.importer, e.imported) for e in report.task_imports}
    report.stale_task_imports = sorted(known_task_imports - seen)
    return report


def _short(module: str) -> str:
    return module.partition(".")[2] or module


def format_report(report: Report) -> str:
    lines = [f"import cycles (strongly connected components): {len(report.cycles)}"]
    for component, circles in zip(report.cycles, report.circles, strict=True):
        lines.append(f"  {len(component)} modules: {', '.join(map(_short, component))}")
        lines.append("    shortest loop through each:")
        lines += [f"      {' -> '.join(map(_short, [*c, c[0]]))}" for c in circles]
    for component in report.new_cycles:
        lines.append(f"  NEW (through no known import): {', '.join(map(_short, component))}")
    for importer, imported in report.stale_cycle_imports:
        lines.append(f"  known import closes no cycle now, remove it: {importer} -> {imported}")
    lines.append(f"imports of {', '.join(ABOVE_TASKS)} in {TASKS}: {len(report.task_imports)}")
    for e in report.task_imports:
        new = " NEW" if e in report.new_task_imports else ""
        lines.append(f"  {e.importer}:{e.line} -> {e.imported} ({e.how}){new}")
    for importer, imported in report.stale_task_imports:
        lines.append(f"  known import no longer there, remove it: {importer} -> {imported}")
    lines.append(f"files over {MAX_FILE_LINES} lines: {len(report.long_files)}")
    lines += [f"  {path}: {n}" for path, n in report.long_files]
    lines.append(f"functions over {MAX_FUNCTION_LINES} lines: {len(report.long_functions)}")
    lines += [f"  {path}:{line} {name}: {n}" for path, name, line, n in report.long_functions]
    verdict = "FAILED: new cycles or task imports" if report.failed else "OK (no new problems)"
    return "\n".join([*lines, verdict])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=SRC, help="the directory holding atento/")
    args = parser.parse_args(argv)
    report = check(args.src)
    print(format_report(report))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
