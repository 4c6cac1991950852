#!/usr/bin/env bash
# Sets up the project's own Python environment, .venv, from Pipfile.lock, with the python3 first on PATH;
# `--dev` adds the dev packages (ruff, mypy, pytest, ...). pipenv itself goes into a tool environment of the
# project, .tools/pipenv, never into the user's Python (Debian's own python3 refuses that: PEP 668).
#
# Run it as often as you like: with nothing changed it returns at once. A .venv made by another Python (or
# broken) is rebuilt; a .venv synced from another Pipfile.lock, or without the dev packages when --dev is
# asked for, is synced again. What pip and pipenv print goes to .tools/setup.log, shown only on failure.
# Where `python3 -m venv` is missing (Debian/Ubuntu without python3-venv) it installs the package when it
# runs as root and apt-get exists, and otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PIPENV_REQUIREMENTS=scripts/pipenv-requirements.txt # the pipenv release, shared with the Dockerfile
readonly VENV=.venv TOOLS=.tools
readonly PIPENV_VENV="$TOOLS/pipenv" LOG="$TOOLS/setup.log"
readonly STAMP="$VENV/.graph-refresh-setup" # what the last complete sync was: Python, lock hash, dev or not
# Prints the Python behind an interpreter (resolved through venvs, symlinks and pyenv shims) and its version.
readonly IDENTITY='import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), "%d.%d.%d" % sys.version_info[:3])'

dev=0
case "$*" in
  "") ;;
  --dev) dev=1 ;;
  *)
    echo "usage: scripts/setup.sh [--dev]" >&2
    exit 2
    ;;
esac

say() { echo "setup: $*" >&2; }
die() {
  say "$*"
  exit 1
}
# Runs a command with its output in the log (begun afresh by the run's first command); on failure shows the
# end of the log and stops.
log_begun=0
quietly() {
  if [ "$log_begun" -eq 0 ]; then
    mkdir -p "$TOOLS"
    : >"$LOG"
    log_begun=1
  fi
  if ! "$@" >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    die "failed: $* (whole output in $LOG)"
  fi
}

required=$(sed -n 's/^python_version *= *"\(.*\)"/\1/p' Pipfile)
command -v python3 >/dev/null || die "no python3 on PATH: install Python $required"
python=$(python3 -c "$IDENTITY") || die "python3 on PATH ($(command -v python3)) does not run"
version=${python##* }
case "$version." in
  "$required".*) ;;
  *) die "python3 on PATH is Python $version (${python% *}); this project needs Python $required (Pipfile): put one first on PATH" ;;
esac

# True when $1 is a venv whose python (the one its scripts start with) runs and was made by the same Python
# as python3 on PATH.
made_by_python3() {
  [ -f "$1/pyvenv.cfg" ] && [ "$("$1/bin/python" -c "$IDENTITY" 2>/dev/null)" = "$python" ]
}

make_venv() {
  rm -rf "$1"
  if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    local package="python${version%.*}-venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      say "python3 -m venv is missing: installing $package with apt-get"
      DEBIAN_FRONTEND=noninteractive quietly apt-get update -qq
      DEBIAN_FRONTEND=noninteractive quietly apt-get install -y -qq --no-install-recommends "$package"
    else
      die "python3 -m venv is missing (${python% *}): install it (Debian/Ubuntu: sudo apt-get install $package)"
    fi
  fi
  quietly python3 -m venv "$1"
}

if [ ! -x "$PIPENV_VENV/bin/pipenv" ] || ! made_by_python3 "$PIPENV_VENV" ||
  ! cmp -s "$PIPENV_REQUIREMENTS" "$PIPENV_VENV/.requirements"; then
  say "installing $(grep -v '^#' "$PIPENV_REQUIREMENTS") into $PIPENV_VENV"
  make_venv "$PIPENV_VENV"
  quietly "$PIPENV_VENV/bin/python" -m pip install --quiet --requirement "$PIPENV_REQUIREMENTS"
  cp "$PIPENV_REQUIREMENTS" "$PIPENV_VENV/.requirements"
fi

if ! made_by_python3 "$VENV"; then
  say "creating $VENV with Python $version (${python% *})"
  make_venv "$VENV"
fi

lock=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open("Pipfile.lock", "rb").read()).hexdigest())')
made_by="" synced_lock="" synced_dev=0
if [ -f "$STAMP" ]; then
  { read -r made_by && read -r synced_lock && read -r synced_dev; } <"$STAMP" || made_by=""
fi
# The project itself, editable, so that .venv/bin has its commands: graph-refresh and the kubectl/oc plugin
# kubectl-graph_refresh (pyproject.toml). Its dependencies are the locked ones, setuptools among them: nothing
# is fetched.
install_project() {
  quietly "$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation --editable .
}
commands_installed() {
  [ -x "$VENV/bin/graph-refresh" ] && [ -x "$VENV/bin/kubectl-graph_refresh" ]
}

if [ "$made_by" = "$python" ] && [ "$synced_lock" = "$lock" ] && [ "$synced_dev" -ge "$dev" ]; then
  if ! commands_installed; then
    say "installing the commands graph-refresh and kubectl-graph_refresh into $VENV/bin"
    install_project
  fi
  say "$VENV is up to date (Python $version$([ "$synced_dev" -eq 1 ] && echo ", dev packages"))"
  exit 0
fi

sync=(sync) what="the locked packages"
if [ "$dev" -eq 1 ]; then
  sync=(sync --dev) what="the locked packages and the dev packages"
fi
say "installing $what into $VENV (pipenv sync; log: $LOG)"
rm -f "$STAMP"
# pipenv must use this project's .venv even inside another activated virtualenv, and keep its notices to itself.
PIPENV_VENV_IN_PROJECT=1 PIPENV_IGNORE_VIRTUALENVS=1 PIPENV_PIPFILE="$PWD/Pipfile" PIPENV_VERBOSITY=-1 \
  PIPENV_NOSPIN=1 PIPENV_YES=1 quietly "$PIPENV_VENV/bin/pipenv" "${sync[@]}"
install_project
printf '%s\n%s\n%s\n' "$python" "$lock" "$dev" >"$STAMP"
say "$VENV is ready"
