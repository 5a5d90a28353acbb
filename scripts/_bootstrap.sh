# Sourced by the scripts in this folder: makes sure uv and the project's environment exist, and sets
# ROOT (the repository) and UV (the uv executable). It never changes the working directory, so paths
# given on the command line stay relative to where the user stands. A script that sets SYNC_ARGS
# before sourcing this file passes them to `uv sync` (scripts/gatekeeper: the service's
# dependencies only; by default the dev group, the tests' tools, too).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A private home for uv when it has to be installed: Debian 12+ and Ubuntu 23.04+ mark their Python
# as externally managed (PEP 668), so pip may not install into it or into ~/.local.
UV_VENV="${XDG_DATA_HOME:-$HOME/.local/share}/consent-gatekeeper/uv-venv"

_find_uv() {
  local candidate
  for candidate in "$(command -v uv 2>/dev/null || true)" "$HOME/.local/bin/uv" "$UV_VENV/bin/uv"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

_install_uv() {
  if ! command -v python3 >/dev/null 2>&1; then
    echo "uv is not installed and python3 was not found: install Python 3.11 or later (Debian: apt-get install python3 python3-venv)" >&2
    return 1
  fi
  echo "uv not found: installing it from PyPI into a private virtual environment, $UV_VENV" >&2
  if python3 -m venv --clear "$UV_VENV" >/dev/null 2>&1 \
    && "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv; then
    return 0
  fi
  rm -rf "$UV_VENV"
  echo "could not create that virtual environment (Debian: apt-get install python3-venv);" \
    "last resort: pip install --user --break-system-packages uv (into ~/.local)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv \
    || python3 -m pip install --quiet --disable-pip-version-check --user uv
}

if ! UV="$(_find_uv)"; then
  _install_uv
  UV="$(_find_uv)" || { echo "uv was installed but cannot be found; giving up" >&2; exit 1; }
  echo "using $UV ($("$UV" --version))" >&2
fi
"$UV" sync --frozen --quiet --project "$ROOT" ${SYNC_ARGS[@]+"${SYNC_ARGS[@]}"}
