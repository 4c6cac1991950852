"""Lines a person reads (graph_refresh/text.py and the commands that use it): every line fits the terminal, 100
columns off one; the start says what is configured, the summary what happened, an error what to do; values from
outside are echoed escaped and cut; counts take their noun's number."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from click.testing import Result

from graph_refresh import __version__
from graph_refresh.text import LONGEST_WORD, columns, escaped, plural, shown, tamed, wrapped

from .fakes.kube import status_body
from .helpers import EXAMPLE_TEMPLATES, INFRA, Harness, quota, run_app, unwrapped

RunCli = Callable[..., Result]
DRY_RUN = ["--dry-run", "--template-dir", str(EXAMPLE_TEMPLATES)]


def seen_lines(shown_on_a_terminal: str) -> list[str]:
    """What a terminal shows of each line: the text between line ends and carriage returns (a carriage return
    starts again at the first column), without erasures and colours."""
    return [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", part) for part in re.split(r"\r\n|\n|\r", shown_on_a_terminal)]


# --- the helpers --------------------------------------------------------------------------------------------


def test_shown_quotes_escapes_and_cuts_a_value_from_outside() -> None:
    assert shown("flask") == "'flask'"
    assert shown("a\x1b[2Jb\u202ec\u200bd") == "'a\\x1b[2Jb\\u202ec\\u200bd'"
    assert shown("x" * 5000) == "'" + "x" * 58 + "…"
    assert len(shown("x" * 5000)) == 60
    assert shown(None) == "None"


def test_tamed_escapes_what_a_terminal_acts_on_keeps_newlines_and_cuts_long_words() -> None:
    assert tamed("one\ntwo\x07\x1b]0;title\x07") == "one\ntwo\\x07\\x1b]0;title\\x07"
    message = tamed("name " + "a" * 5000 + " is not a name")
    assert message == "name " + "a" * (LONGEST_WORD - 1) + "… is not a name"
    assert escaped("plain text, ünïcödé") == "plain text, ünïcödé"


def test_wrapped_lines_fit_and_go_on_indented() -> None:
    text = "word " * 50 + "\nshort\n" + "x" * 250
    lines = wrapped(text, 60).split("\n")
    assert max(map(len, lines)) <= 60
    assert lines[1].startswith("    word")
    assert "short" in lines
    assert "".join(line.strip() for line in lines if line.strip().startswith("x")) == "x" * 250


def test_plural_takes_the_number_of_the_count() -> None:
    assert [plural(n, "entry") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
    assert plural(1, "ResourceQuota") == "1 ResourceQuota"
    assert plural(3, "ResourceQuota") == "3 ResourceQuotas"
    assert plural(1200, "Job") == "1,200 Jobs"
    assert plural(2, "day") == "2 days"


def test_columns_are_100_off_a_terminal_whatever_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert columns(io.StringIO()) == 100


# --- every line fits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "size", "width"), [({"COLUMNS": "72"}, None, 72), ({}, 88, 88)])
def test_on_a_terminal_every_line_of_a_run_fits_its_width(
    env: dict[str, str], size: int | None, width: int, sample_store: None
) -> None:
    args = [*DRY_RUN, "--eager-stop", "5", "--dgraph-timeout", "60", "--deployment-name", "thoth-stage"]
    shown = run_app(args, env, terminal=True, stdout_too=True, width=size)
    lines = seen_lines(shown)
    assert max(map(len, lines)) <= width, max(lines, key=len)
    said = unwrapped(shown)
    assert "--eager-stop=5 --dgraph-timeout=60" not in said, "in the options' order"
    # a path longer than a line is broken where it must be (and joined back with a space): compare without spaces
    assert "--dgraph-timeout=60--sqlite-path=" in re.sub(r"\s+", "", said)
    assert "Dry run without THOTH_MIDDLETIER_NAMESPACE: Jobs in flight" in said
    assert "solver: 11 examined, 5 scheduled, 6 skipped, backlog 411, stopped by eager-stop (--eager-stop)" in said
    assert "(all solvers)" in said


def test_off_a_terminal_every_line_fits_100_columns(sample_store: None) -> None:
    said = run_app([*DRY_RUN, "--eager-stop", "5"], {"COLUMNS": "300"}, terminal=False, stdout_too=True)
    assert max(map(len, said.splitlines())) <= 100
    assert max(map(len, said.splitlines())) > 90, "the width is used"


def test_help_follows_the_terminal_and_fits_100_columns_off_one() -> None:
    piped = run_app(["--help"], {"COLUMNS": "300"}, terminal=False, stdout_too=True)
    assert max(map(len, piped.splitlines())) <= 100
    assert max(map(len, piped.splitlines())) > 90, "the width is used"
    for args in (["--help"], ["ledger", "forget", "--help"]):
        narrow = seen_lines(run_app(args, {"COLUMNS": "64"}, terminal=True, stdout_too=True))
        assert max(map(len, narrow)) <= 64, max(narrow, key=len)
    sized = seen_lines(run_app(["--help"], {}, terminal=True, stdout_too=True, width=76))
    assert 70 < max(map(len, sized)) <= 76


def test_the_quiet_summary_fits(run_cli: RunCli, sample_store: None) -> None:
    result = run_cli([*DRY_RUN, "--quiet"], wrapped=True)
    assert result.exit_code == 0
    assert max(map(len, result.stderr.splitlines())) <= 100
    assert "backlog" in result.stderr


# --- what the lines say -------------------------------------------------------------------------------------


def test_the_start_line_gives_the_settings_not_at_their_defaults_with_secrets_redacted(
    run_cli: RunCli, sample_store: None
) -> None:
    args = [*DRY_RUN, "--eager-stop", "5", "--pushgateway-url", "http://graph:pw-0f9e@pushgateway:9091"]
    result = run_cli(args, env={"NAMESPACE": "thoth stage"})
    assert result.exit_code == 0, result.stderr
    (start,) = [line for line in result.stderr.splitlines() if "starting" in line]
    settings = start.partition(f"graph-refresh {__version__} starting a dry run; not at their defaults: ")[2]
    assert settings.split(" --")[0] == f"--template-dir={EXAMPLE_TEMPLATES}"
    assert settings.endswith(
        "--eager-stop=5 --pushgateway-url=http://***@pushgateway:9091 --deployment-name='thoth stage' --dry-run"
    )
    assert "pw-0f9e" not in result.stderr
    assert "{" not in start
    assert "--qps" not in start, "a setting at its default is left out"


def test_a_kind_the_run_does_not_schedule_is_off(run_cli: RunCli, sample_store: None) -> None:
    result = run_cli([*DRY_RUN, "--no-package-analyzers"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].split() == ["package-analyzer", "off"]
    assert "?" not in result.stdout
    (summary,) = [line for line in result.stderr.splitlines() if "finished in" in line]
    assert summary.endswith("; package-analyzer off")


def test_counts_take_their_nouns_number(cluster: Harness) -> None:
    cluster.graph(["flask"])
    cluster.fake.add(quota("jobs", {"count/jobs.batch": "100"}, {"count/jobs.batch": "0"}))
    result, _ = cluster.run("--no-package-analyzers")
    assert result.exit_code == 0, result.stderr
    assert "0 items with owned Jobs (0 live, 0 failed), 1 ResourceQuota\n" in result.stderr
    assert "Ledger graph-refresh-ledger written: 0 entries" in result.stderr


# --- values from outside ------------------------------------------------------------------------------------


def test_a_long_name_on_the_command_line_is_echoed_cut(cluster: Harness) -> None:
    result = cluster.cli("request", "a" * 5000 + "==1.0")
    assert result.exit_code == 2
    assert len(result.stderr.encode()) < 600, result.stderr
    assert 0 < sum(len(run) for run in re.findall(r"a{20,}", result.stderr)) < LONGEST_WORD  # cut, then wrapped
    assert "…" in result.stderr
    assert "is not a PEP 508 name" in result.stderr


@pytest.mark.parametrize(
    ("typed", "echoed"), [("a\x1b[2Jb", "a\\x1b[2Jb"), ("flask\u202e", "flask\\u202e"), ("x\x07", "x\\x07")]
)
def test_control_and_bidirectional_characters_are_echoed_escaped(typed: str, echoed: str, cluster: Harness) -> None:
    result = cluster.cli("request", f"{typed}==1.0")
    assert result.exit_code == 2
    assert f"{echoed}==1.0" in result.stderr
    assert typed not in result.stderr
    option = cluster.cli("--eager-stop", typed)
    assert option.exit_code == 2
    assert f"'{echoed}' is not a whole number" in option.stderr


def test_what_the_api_server_says_is_logged_escaped(cluster: Harness) -> None:
    cluster.graph(["flask"])
    said = "templates are forbidden here\x1b[2J\u202e (ask the admin)"
    cluster.fake.inject(method="GET", path=r"/templates$", status=403, body=status_body(403, said, "Forbidden"))
    result, report = cluster.run()
    assert result.exit_code == 1
    assert "forbidden here\\x1b[2J\\u202e (ask the admin)" in result.stderr
    assert "\x1b" not in result.stderr
    assert "\u202e" not in result.stderr
    assert f"namespace '{INFRA}'" in result.stderr
    assert "\x1b[2J\u202e" in report["error"], "the report keeps what the server said, as JSON escapes it"
