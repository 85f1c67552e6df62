#!/usr/bin/env bash
# The two set-up commands of the README. Both create (or reuse) .venv and install vlp into it.
#   ./dev.sh quickstart   run experiments/quickstart.yaml end to end on this machine
#   ./dev.sh test         run the whole test suite
# Anything after the command is passed on (to `vlp run` or to pytest).
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
STAMP="$VENV/.vlp-installed"
# Never put the repository root on sys.path implicitly (`platform/` would shadow the standard library).
export PYTHONSAFEPATH=1

# The dependency set is requirements.lock (every package pinned with its hashes), the same set the image is built
# from (Containerfile); vlp itself goes in editable on top, without touching the pins. After changing
# pyproject.toml, regenerate the lock with the command written at its top.
ensure_venv() {
  local want
  want="$(cat pyproject.toml requirements.lock "$0" | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  fi
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "installing the locked dependencies and vlp into $VENV (first time: a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    # Tests check our results with CLIP_benchmark's own code; its declared dependencies add captioning metrics
    # (pycocoevalcap, ~100 MB) that those tests never import.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps clip-benchmark==1.6.2
    echo "$want" > "$STAMP"
  fi
}

# The UI tests drive Debian's Chromium (Playwright has no browser download here); CI runs as root.
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the UI tests" >&2
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  fi
}

command="${1:-}"
shift || true
case "$command" in
  quickstart)
    ensure_venv
    exec "$VENV/bin/vlp" run experiments/quickstart.yaml "$@"
    ;;
  test)
    ensure_venv
    ensure_browser
    export VLP_REQUIRE_BROWSER=1  # the UI tests fail rather than skip when the browser is missing
    exec "$VENV/bin/pytest" -q -p no:cacheprovider tests "$@"
    ;;
  *)
    echo "usage: ./dev.sh quickstart|test [args...]" >&2
    exit 2
    ;;
esac
