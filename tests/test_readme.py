"""The README is part of the interface: its configuration table and quick start are checked against the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click

from graph_refresh import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def table_rows() -> dict[str, tuple[str, str]]:
    """Environment variable → (flag cell, default cell) from the configuration table."""
    rows = {}
    for line in section("Configuration").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = (cells[0], cells[2])
    return rows


def expected_default(option: click.Option) -> str:
    if isinstance(option.default, bool) or option.is_flag:
        return "`1`" if option.default else "`0`"
    unset = option.default is None or option.default is getattr(click.core, "UNSET", None)
    return "—" if unset else f"`{option.default}`"


def test_configuration_table_matches_the_options() -> None:
    rows = table_rows()
    options = [p for p in cli.main.params if isinstance(p, click.Option) and p.envvar]
    assert set(rows) == {o.envvar for o in options}
    for option in options:
        flag, default = rows[str(option.envvar)]
        assert option.opts[0] in flag, option.envvar
        assert default == expected_default(option), option.envvar


def test_quick_start_is_exactly_two_commands() -> None:
    block = re.search(r"```[a-z]*\n(.*?)```", section("Quick start"), re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    assert "app.py import-graph data/sample-graph.json" in commands[0] and "--dry-run" in commands[0]
    assert "scripts/check.sh" in commands[1]


CI = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")


def quick_start() -> tuple[str, str]:
    block = re.search(r"```[a-z]*\n(.*?)```", section("Quick start"), re.S)
    assert block is not None
    demo, tests = block.group(1).strip().splitlines()
    return demo, tests


def test_ci_runs_both_readme_commands_verbatim() -> None:
    ci = CI.splitlines()
    demo, tests = quick_start()
    assert demo in ci and tests in ci and ci.index(demo) < ci.index(tests)


def test_every_file_the_readme_points_to_is_in_the_repository() -> None:
    root = Path(__file__).resolve().parent.parent
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert "docs/dgraph.md" in links and "docs/contract-2019.md" in links
    assert all((root / link).is_file() for link in links), links
    assert "../" not in README, "a clone has nothing beside it"


def test_ci_runs_the_demo_again_with_debians_python_first_on_path() -> None:
    ci = [line.strip() for line in CI.splitlines()]
    demo, tests = quick_start()
    again = [i for i, line in enumerate(ci) if line == demo][1:]
    debian = ci.index('PATH="/usr/bin:$PATH"')
    assert again and ci.index(tests) < debian < again[0]


def test_ci_sets_no_variable_a_user_would_not_have() -> None:
    assigned = re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", CI, re.M)
    assert {name for name in assigned if name.isupper()} <= {"PATH"}


def test_the_check_command_type_checks_every_package_tests_included() -> None:
    root = Path(__file__).resolve().parent.parent
    mypy = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    packages = {init.parent.name for init in root.glob("*/__init__.py")}
    assert {"graph_refresh", "tests"} <= packages
    assert mypy["strict"] is True and set(mypy["packages"]) == packages
    # A bare `mypy` reads those packages from pyproject.toml; arguments would replace them.
    assert re.search(r"^mypy \|\| exit 1$", (root / "scripts" / "check.sh").read_text(encoding="utf-8"), re.M)
