#!/usr/bin/env bash
# Set up (first run only), install Debian's chromium for the browser tests, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
# One worker per core (GEX_TEST_WORKERS overrides; 0 = in this process); a test module stays on
# one worker, so its module-scoped fixtures (a trained model, a server) are built once.
exec .venv/bin/python -m pytest -n "${GEX_TEST_WORKERS:-auto}" --dist loadfile "$@"
