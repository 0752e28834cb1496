"""tools/check_structure.py: import cycles and task -> command-line imports fail only when new;
sizes are reported. Its rules are checked on small packages written into a temporary directory."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "check_structure.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("check_structure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


cs = _load_script()


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write `files` ({"a/b.py": source}) as the package `atento` under tmp_path/src."""
    src = tmp_path / "src"
    for rel, text in {"__init__.py": "", **files}.items():
        path = src / "atento" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != src / "atento" and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(textwrap.dedent(text))
    return src


def test_the_package_has_no_new_cycles_or_task_imports_of_the_command_line() -> None:
    report = cs.check()
    assert not report.failed, cs.format_report(report)


def test_the_script_prints_its_report_and_exits_0() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "import cycles" in done.stdout and "functions over 60 lines" in done.stdout
    assert done.stdout.rstrip().endswith("OK (no new problems)")


@pytest.mark.parametrize(
    "b_source",
    [
        "from atento import a\n",  # module level, a submodule named in `from package import`
        "def f():\n    import atento.a\n",  # inside a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from atento.a import X\n",
        "from . import a\n",  # relative
        "from .a import X\n",
    ],
)
def test_every_kind_of_import_closes_a_cycle(tmp_path: Path, b_source: str) -> None:
    src = _package(tmp_path, {"a.py": "from atento.b import Y\nX = 1\n", "b.py": b_source})
    report = cs.check(src, known_cycle_imports=(), known_task_imports=())
    assert report.cycles == [["atento.a", "atento.b"]]
    assert report.new_cycles == [["atento.a", "atento.b"]]
    assert report.circles == [[["atento.a", "atento.b"]]]
    assert report.failed


def test_a_package_init_and_the_modules_a_tuple_names_count_as_imports(tmp_path: Path) -> None:
    src = _package(tmp_path, {
        "models/__init__.py": "from atento.models.lm import Model\n",
        "models/lm.py": "from atento.registry import register\nModel = 1\n",
        "registry.py": 'BUILTIN_MODULES = ("atento.models",)\ndef register(): ...\n',
        "plain.py": "import os\nimport atento.models.lm\n",  # imports into a cycle: not in it
    })  # fmt: skip
    report = cs.check(src, known_cycle_imports=(), known_task_imports=())
    assert report.cycles == [["atento.models", "atento.models.lm", "atento.registry"]]
    assert report.circles == [[["atento.models", "atento.models.lm", "atento.registry"]]]


def test_a_cycle_through_a_known_import_passes_and_a_stale_one_is_named(tmp_path: Path) -> None:
    src = _package(tmp_path, {"a.py": "from atento import b\n", "b.py": "from atento import a\n",
                              "c.py": "from atento import a\n"})  # fmt: skip
    known = {("atento.b", "atento.a"), ("atento.c", "atento.a")}
    report = cs.check(src, known_cycle_imports=known, known_task_imports=())
    assert report.cycles == [["atento.a", "atento.b"]] and not report.new_cycles
    assert report.stale_cycle_imports == [("atento.c", "atento.a")]  # c is in no cycle
    assert not report.failed
    assert "remove it: atento.c -> atento.a" in cs.format_report(report)


def test_a_new_cycle_among_modules_of_a_known_one_fails(tmp_path: Path) -> None:
    src = _package(tmp_path, {
        "a.py": "from atento import b\nfrom atento import c\n",
        "b.py": "from atento import a\n",
        "c.py": "def f():\n    from atento import a\n",  # the new one
    })  # fmt: skip
    report = cs.check(src, known_cycle_imports={("atento.b", "atento.a")}, known_task_imports=())
    assert report.cycles == [["atento.a", "atento.b", "atento.c"]]
    assert report.new_cycles == [["atento.a", "atento.c"]]
    assert report.failed


def test_tasks_must_not_import_the_command_line_the_api_or_the_server(tmp_path: Path) -> None:
    src = _package(tmp_path, {
        "tasks/lm.py": "def evaluate():\n    from atento.cli.common import x\n",
        "tasks/mt.py": "from atento.api import load\nfrom atento.serve import app\n",
        "tasks/ok.py": "from atento.data import x\nimport atento.command_line\n",
        "cli/common.py": "x = 1\n", "api.py": "", "serve/__init__.py": "",
        "data/__init__.py": "", "command_line.py": "",
    })  # fmt: skip
    report = cs.check(src, known_cycle_imports=(), known_task_imports=())
    found = {(e.importer, e.imported) for e in report.task_imports}
    assert found == {("atento.tasks.lm", "atento.cli.common"), ("atento.tasks.mt", "atento.api"),
                     ("atento.tasks.mt", "atento.serve")}  # fmt: skip
    assert report.failed
    known = found | {("atento.tasks.ok", "atento.cli.common")}
    report = cs.check(src, known_cycle_imports=(), known_task_imports=known)
    assert not report.failed
    assert report.stale_task_imports == [("atento.tasks.ok", "atento.cli.common")]


def test_long_files_and_functions_are_reported_without_failing(tmp_path: Path) -> None:
    def body(n: int, indent: str) -> str:
        return "".join(f"{indent}x{i} = {i}\n" for i in range(n))

    src = _package(tmp_path, {
        "long.py": "x = 1\n" * 401,
        "ok.py": "x = 1\n" * 400,
        "funcs.py": "def short():\n    pass\n\n\nclass K:\n    @staticmethod\n    def long():\n"
                    + body(60, "        "),  # lines 6-67: the decorator, def, 60 lines
        "edge.py": "def sixty():\n" + body(59, "    "),  # 60 lines: not over
    })  # fmt: skip
    report = cs.check(src, known_cycle_imports=(), known_task_imports=())
    assert report.long_files == [("atento/long.py", 401)]
    assert report.long_functions == [("atento/funcs.py", "K.long", 6, 62)]
    assert not report.failed
