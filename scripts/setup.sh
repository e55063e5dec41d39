#!/usr/bin/env bash
# Set up a development checkout; idempotent, re-running it is cheap:
#   1. .venv with Python >= 3.11          (PYTHON=python3.12 scripts/setup.sh picks another interpreter)
#   2. pip install -e '.[test]'           (skipped while pyproject.toml is unchanged since the last run)
#   3. the Kafka jars for `lookout broker` (needs java + mvn once; cached in ~/.cache/lookout)
#
# Example:
#   scripts/setup.sh && .venv/bin/python -m pytest -q
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
STAMP=.venv/.lookout-installed

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }
took() { printf '    done in %ss\n' "$((SECONDS - $1))" >&2; }

# 1. virtualenv
t0=$SECONDS
if [ -x .venv/bin/python ] && ! .venv/bin/python -c '' 2>/dev/null; then
  step "removing broken .venv (its interpreter no longer runs)"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.11 (Debian 12: apt-get install python3 python3-venv)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is $("$PYTHON" --version 2>&1); need >= 3.11"
  step "creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv || die "'$PYTHON -m venv' failed (Debian: apt-get install python3-venv)"
  took "$t0"
fi
.venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die ".venv has Python < 3.11; remove .venv and re-run"

# 2. the project, editable, with test extras
t0=$SECONDS
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ] && [ -x .venv/bin/lookout ]; then
  step "lookout already installed in .venv (pyproject.toml unchanged)"
else
  step "pip install -e '.[test]'"
  .venv/bin/python -m pip install --disable-pip-version-check --no-input -q -e '.[test]'
  echo "$want" > "$STAMP"
  took "$t0"
fi

# the fleet engine's compiled kernel: compile once now (cached next to the module) rather than
# in the first worker or test that needs it
t0=$SECONDS
step "compiling the fleet engine's kernel (numba, cached)"
.venv/bin/python -c 'from detectors.fleet import warm_up; warm_up()'
took "$t0"

# 3. Kafka jars for the local broker (prints their directory)
t0=$SECONDS
step "Kafka jars (lookout broker fetch)"
.venv/bin/lookout broker fetch
took "$t0"
