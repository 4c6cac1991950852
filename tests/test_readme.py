"""The README is part of the interface: its configuration table and quick start are checked against the code."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import click

from graph_refresh import cli

from .helpers import ROOT

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
    assert "app.py import-graph data/sample-graph.json" in commands[0]
    assert "--dry-run" in commands[0]
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
    assert demo in ci
    assert tests in ci
    assert ci.index(demo) < ci.index(tests)


def test_every_file_the_readme_points_to_is_in_the_repository() -> None:
    root = Path(__file__).resolve().parent.parent
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert "docs/dgraph.md" in links
    assert "docs/contract-2019.md" in links
    assert all((root / link).is_file() for link in links), links
    assert "../" not in README, "a clone has nothing beside it"


def test_ci_runs_the_demo_again_with_debians_python_first_on_path() -> None:
    ci = [line.strip() for line in CI.splitlines()]
    demo, tests = quick_start()
    again = [i for i, line in enumerate(ci) if line == demo][1:]
    debian = ci.index('PATH="/usr/bin:$PATH"')
    assert again
    assert ci.index(tests) < debian < again[0]


def test_ci_sets_no_variable_a_user_would_not_have() -> None:
    assigned = re.findall(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", CI, re.M)
    assert {name for name in assigned if name.isupper()} <= {"PATH"}


# --- every command in the documentation runs as written after the quick start ----------------------------
#
# The rule: a shell code block (```sh, bash, shell or console) of README.md, docs/ or bench/README.md runs
# on a machine that has done the quick start, from the repository's root. So each command in it names
#  - a file of the repository by its relative path (scripts/setup.sh, ./app.py), executable;
#  - the project's Python, .venv/bin/python3 (or .venv/bin/python), which `python3 -m venv` made: never the
#    machine's python3 or python (Debian's lacks the project's packages: `No module named 'click'`), nor
#    pipenv (it lives in .tools/, off PATH); or the project's own commands, which scripts/setup.sh installs
#    beside it (.venv/bin/graph-refresh);
#  - a POSIX tool, shell keyword or builtin (SHELL_TOOLS), a shell function the block defines, or kubectl
#    (scripts/check.sh installs it for the tests); the body of a here-document is data, not commands;
#  - oc, the OpenShift client, only in a block that says it is for a cluster: a comment line in the block
#    mentions "cluster". An operator runs those with oc logged in; nothing else needs oc.
# An inline code span that runs a Python file or module of the repository follows the same rule.

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
SHELL_BLOCK = re.compile(r"^```(sh|bash|shell|console)\n(.*?)^```", re.S | re.M)
SHELL_TOOLS = {
    *("cat", "cd", "cp", "date", "diff", "echo", "export", "grep", "kill", "ls", "mkdir", "rm", "sleep", "test"),
    *("[", "!", "{", "}", "do", "done", "if", "then", "else", "fi", "until", "while", "for", "wait", "true"),
    "eval",
}
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?.*?\n(.*?)^\1$", re.S | re.M)
FUNCTION = re.compile(r"^\s*(\w+)\(\)\s*\{", re.M)
VENV_PYTHONS = {".venv/bin/python3", ".venv/bin/python"}
VENV_COMMANDS = {".venv/bin/graph-refresh", ".venv/bin/kubectl-graph_refresh"}  # pyproject.toml's scripts
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
RUNS_OUR_PYTHON = re.compile(r"^(\S*python3?)\s+(-m\s+(tests|bench|graph_refresh)\b|\S*\.py\b)")


def shell_blocks(text: str) -> list[str]:
    return [match.group(2) for match in SHELL_BLOCK.finditer(text)]


def commands(block: str) -> list[str]:
    """Each simple command of a block: here-document bodies and continuations joined, comments dropped, split
    at && || ; | & and $(."""
    joined = re.sub(r"\\\n\s*", " ", HEREDOC.sub(lambda m: m.group(0).split("\n", 1)[0], block))
    found = []
    for line in joined.splitlines():
        line = re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)  # a quoted argument is one word, whatever it holds
        line = re.sub(r"(^|\s)#.*", "", line)  # a comment: at the start or after a space
        for part in re.split(r"&&|\|\||;|\||&|\$\(|\)", line):
            words = part.split()
            while words and ASSIGNMENT.fullmatch(words[0]):
                words.pop(0)  # VARIABLE=value before the command
            if words:
                found.append(" ".join(words))
    return found


def unrunnable(command: str, *, for_a_cluster: bool) -> str | None:
    """Why ``command`` would not run after the quick start, or None."""
    program = command.split()[0]
    if program in VENV_PYTHONS | VENV_COMMANDS or program in SHELL_TOOLS or program == "kubectl":
        return None
    if program == "oc":
        return None if for_a_cluster else "oc in a block that does not say it is for a cluster"
    if "/" in program:
        path = ROOT / program
        if program.startswith("/") or not path.is_file() or not os.access(path, os.X_OK):
            return f"{program} is not an executable file of the repository"
        return None
    return f"{program} is not there after the quick start"


def test_every_shell_command_in_the_documentation_runs_after_the_quick_start() -> None:
    problems = []
    for document in DOCUMENTS:
        blocks = shell_blocks(document.read_text(encoding="utf-8"))
        functions = {name for block in blocks for name in FUNCTION.findall(block)}  # one shell runs them in turn
        for block in blocks:
            for_a_cluster = any(line.lstrip().startswith("#") and "cluster" in line for line in block.splitlines())
            for command in commands(block):
                if command.split()[0] in functions or re.fullmatch(r"\w+\(\)?", command.split()[0]):
                    continue
                if why := unrunnable(command, for_a_cluster=for_a_cluster):
                    problems.append(f"{document.relative_to(ROOT)}: {command!r}: {why}")
    assert problems == []


def test_every_inline_command_running_our_python_uses_the_projects_python() -> None:
    problems = []
    for document in DOCUMENTS:
        for span in re.findall(r"`([^`\n]+)`", document.read_text(encoding="utf-8")):
            words = [word for word in span.split() if not ASSIGNMENT.fullmatch(word)]
            match = RUNS_OUR_PYTHON.match(" ".join(words))
            if match and match.group(1) not in VENV_PYTHONS:
                problems.append(f"{document.relative_to(ROOT)}: {span!r}")
    assert problems == []


def test_the_command_rule_catches_what_fails_after_the_quick_start() -> None:
    block = "# a comment\nFOO=1 python3 app.py --help && pipenv run python3 ./app.py | jq '.a | .b'\noc get jobs\n"
    assert commands(block) == ["python3 app.py --help", "pipenv run python3 ./app.py", "jq ''", "oc get jobs"]
    assert [unrunnable(c, for_a_cluster=False) for c in commands(block)] == [
        "python3 is not there after the quick start",
        "pipenv is not there after the quick start",
        "jq is not there after the quick start",
        "oc in a block that does not say it is for a cluster",
    ]
    assert unrunnable("oc get jobs", for_a_cluster=True) is None
    assert unrunnable("/work/main/.venv/bin/python bench/run.py", for_a_cluster=False) is not None
    assert unrunnable("scripts/setup.sh --dev", for_a_cluster=False) is None
    assert unrunnable("scripts/nothing.sh", for_a_cluster=False) is not None
    assert unrunnable(".venv/bin/graph-refresh ledger show", for_a_cluster=False) is None
    assert unrunnable("graph-refresh ledger show", for_a_cluster=False) is not None, "not on PATH"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert {f".venv/bin/{name}" for name in scripts} == VENV_COMMANDS
    assert RUNS_OUR_PYTHON.match("python3 app.py --help")
    assert RUNS_OUR_PYTHON.match("python -m tests.fakes.kube")
    assert not RUNS_OUR_PYTHON.match("python3 -m venv")


def test_the_check_command_type_checks_every_package_tests_included() -> None:
    root = Path(__file__).resolve().parent.parent
    mypy = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    packages = {init.parent.name for init in root.glob("*/__init__.py")}
    assert {"graph_refresh", "tests"} <= packages
    assert mypy["strict"] is True
    assert set(mypy["packages"]) == packages
    # A bare `mypy` reads those packages from pyproject.toml; arguments would replace them.
    assert re.search(r"^mypy \|\| exit 1$", (root / "scripts" / "check.sh").read_text(encoding="utf-8"), re.M)
