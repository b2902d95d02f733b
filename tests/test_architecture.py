"""The layout docs/architecture.md promises: imports flow one way, no cycles, one command table."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from qualitas.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]


def _report() -> dict:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_imports
    finally:
        sys.path.pop(0)
    return check_imports.analyse(ROOT / "src")


def test_no_import_cycles_and_no_upward_imports():
    report = _report()
    assert report["cycles"] == []
    assert report["upward_imports"] == []
    assert report["unlayered_parts"] == []


def test_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "qualitas"
    (pkg / "io").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "io" / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "io" / "a.py").write_text("def f():\n    from qualitas.cli import b\n")  # upward, lazy
    (pkg / "cli" / "b.py").write_text("from qualitas.io import a\n")
    (pkg / "io" / "c.py").write_text("from qualitas.io.d import x\n")
    (pkg / "io" / "d.py").write_text("from qualitas.io import c\nx = 1\n")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_imports
    finally:
        sys.path.pop(0)
    report = check_imports.analyse(tmp_path)
    assert ["qualitas.io.c", "qualitas.io.d"] in report["cycles"]
    assert ["qualitas.cli.b", "qualitas.io.a"] in report["cycles"]
    assert [(r["module"], r["imports"], r["top_level"]) for r in report["upward_imports"]] == [
        ("qualitas.io.a", "qualitas.cli.b", False)
    ]


def test_checker_command_line_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_imports.py")], capture_output=True, text=True, check=True
    ).stdout
    assert "import cycles: 0" in out and "upward imports: 0" in out


def test_every_command_module_gives_its_help_parser_and_run():
    # `qualitas --help` lists every command from placeholders (no command parser is built)
    parser = build_parser(only="")
    choices = parser._subparsers._group_actions[0]  # noqa: SLF001
    helps = {a.dest: a.help for a in choices._choices_actions}  # noqa: SLF001
    assert list(helps) == list(COMMANDS)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_parser) and callable(mod.run)
        assert isinstance(mod.HELP, str) and mod.HELP and helps[name] == mod.HELP
