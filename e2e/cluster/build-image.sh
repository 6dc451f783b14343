#!/usr/bin/env bash
# Build a from-scratch container image holding static binaries, and write it
# as an OCI archive that image-load.sh (or `ctr images import`) accepts.
#
# Usage: build-image.sh [options] <image-ref> <out.tar> <file>...
#   <image-ref>  full name the image gets, e.g. weft.local/echo:dev
#                (use imagePullPolicy: IfNotPresent or Never in pods)
#   <out.tar>    OCI archive to write (overwritten)
#   <file>...    files copied into the image; the FIRST one is the entrypoint.
#                Binaries must be static (e.g. Rust x86_64-unknown-linux-musl):
#                the image has no libc, no shell, nothing else.
# Options:
#   --dest DIR   directory in the image the files go to (default /); each file
#                keeps its base name, so the entrypoint is DIR/<basename of first>
#   --arg A      default argument (image CMD) after the entrypoint; repeatable
#   --env K=V    environment variable; repeatable
#   --port P     exposed port, e.g. 8080 or 53/udp (informational); repeatable
#   --user U     user to run as, e.g. 65532:65532 (default root)
# Uses buildah with the vfs storage driver, storage under
# ${WEFT_CACHE:-~/.cache/weft}/buildah (no daemon, no registry access).
# Example:
#   e2e/cluster/build-image.sh --arg --port=8080 weft.local/echo:dev /tmp/echo.tar target/x86_64-unknown-linux-musl/release/echo
set -euo pipefail

WEFT_CACHE="${WEFT_CACHE:-$HOME/.cache/weft}"
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

dest=/ ; args=() ; envs=() ; ports=() ; user=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dest) dest="$2"; shift 2 ;;
    --arg) args+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --port) ports+=("$2"); shift 2 ;;
    --user) user="$2"; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    -*) echo "build-image.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ $# -ge 3 ]] || usage
ref="$1" out="$2"; shift 2
command -v buildah >/dev/null || { echo "build-image.sh: buildah not found; run e2e/cluster/install-deps.sh" >&2; exit 1; }
for f in "$@"; do [[ -f "$f" ]] || { echo "build-image.sh: no such file: $f" >&2; exit 1; }; done
[[ -x "$1" ]] || { echo "build-image.sh: entrypoint $1 is not executable" >&2; exit 1; }

mkdir -p "$WEFT_CACHE/buildah"
b() { buildah --storage-driver vfs --root "$WEFT_CACHE/buildah/storage" --runroot "$WEFT_CACHE/buildah/run" "$@"; }
# buildah's storage is not safe for concurrent writers; serialise builds.
exec 8>"$WEFT_CACHE/buildah/.lock"; flock 8

ctr="$(b from --quiet scratch)"
trap 'b rm "$ctr" >/dev/null 2>&1 || true' EXIT
dest="${dest%/}"
for f in "$@"; do b copy --quiet "$ctr" "$f" "$dest/$(basename "$f")" >/dev/null; done

json_array() { # prints its arguments as a JSON array of strings
  local out="[" sep="" a
  for a in "$@"; do a="${a//\\/\\\\}"; a="${a//\"/\\\"}"; out+="$sep\"$a\""; sep=","; done
  echo "$out]"
}
cfg=(--entrypoint "$(json_array "$dest/$(basename "$1")")" --cmd "$(json_array "${args[@]}")")
for e in "${envs[@]}"; do cfg+=(--env "$e"); done
for p in "${ports[@]}"; do cfg+=(--port "$p"); done
[[ -n "$user" ]] && cfg+=(--user "$user")
b config "${cfg[@]}" "$ctr"

mkdir -p "$(dirname "$out")"
rm -f "$out"
b commit --quiet --format oci "$ctr" "oci-archive:$out:$ref" >/dev/null
echo "build-image.sh: wrote $ref to $out" >&2
