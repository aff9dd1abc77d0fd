#!/usr/bin/env bash
# Create .venv with Python 3.11 and install GexScope (+ test tools with --dev). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.gexscope-installed
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "${1:-}" = "--dev" ]; then want="dev-$want"; fi
if [ ! -f "$stamp" ] || ! grep -q "$want" "$stamp"; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "${1:-}" = "--dev" ]; then
    .venv/bin/python -m pip install -q -r requirements-dev.txt
  else
    .venv/bin/python -m pip install -q -r requirements.txt
  fi
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" >> "$stamp"
fi
