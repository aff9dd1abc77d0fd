#!/usr/bin/env bash
# Set up (first run only) and start the dashboard on the demo data: http://localhost:8501
#
# GEX_AUTH picks the sign-in mode (README, "Run it for your lab"):
#   none (default)  one local user, no sign-in
#   password        built-in accounts: .venv/bin/gex user add NAME [--admin]
#   oidc            the lab's identity provider ([auth] in .streamlit/secrets.toml)
#   proxy           a reverse proxy's header (GEX_AUTH_HEADER); loopback only
# The server listens on 127.0.0.1 unless told otherwise (--server.address ADDR, or
# GEX_ADDRESS=ADDR); other arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mode=${GEX_AUTH:-none}
address=${GEX_ADDRESS:-${STREAMLIT_SERVER_ADDRESS:-}}
told=""
prev=""
for arg in "$@"; do
  case "$arg" in
    --server.address=*) address=${arg#*=}; told=1 ;;
  esac
  if [ "$prev" = "--server.address" ]; then address=$arg; told=1; fi
  prev=$arg
done
[ -n "$address" ] || address=127.0.0.1
# Refuse settings that would expose users' data (proxy mode off loopback, a bad GEX_AUTH).
.venv/bin/python -m gexcore.workspace.identity "$address"
flags=(--server.headless true)
[ -n "$told" ] || flags+=(--server.address "$address")
if [ "$mode" != "none" ]; then
  flags+=(--client.showErrorDetails=none)      # no tracebacks for a lab server's users
fi
case "$address" in
  127.*|localhost|::1|"[::1]") ;;
  *) if [ "$mode" = "none" ]; then
       echo "gexscope: warning: GEX_AUTH=none on $address: anyone who can reach it reads and" \
            "changes the one workspace. Use GEX_AUTH=password, oidc or proxy on a shared" \
            "server." >&2
     fi ;;
esac
exec .venv/bin/streamlit run app.py "${flags[@]}" "$@"
