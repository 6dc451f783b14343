#!/usr/bin/env bash
# Creates (or reuses) the Python venv with gRPC's own xDS client (grpcio)
# for the third-party xDS test, under $WEFT_CACHE/venv, and prints its
# python interpreter path on stdout. Idempotent: a venv whose packages are
# already at the pinned versions is reused without touching the network.
set -euo pipefail

WEFT_CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
VENV="${WEFT_XDS_VENV:-$WEFT_CACHE/venv}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.weft-requirements"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
fi
if [ ! -f "$STAMP" ] || ! cmp -s "$REQ" "$STAMP"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
  cp "$REQ" "$STAMP"
fi
echo "$VENV/bin/python"
