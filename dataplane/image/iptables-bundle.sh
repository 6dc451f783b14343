#!/usr/bin/env bash
# Assemble the iptables bundle the weft-proxy image carries for
# `weft-proxy init` (see dataplane/src/init/iptables.rs): the image is built
# from scratch (no libc), so Debian's xtables-nft-multi goes in together with
# the shared libraries it needs, its extension modules and the dynamic
# loader, all in one directory:
#
#   <out>/ld.so            the dynamic loader (run explicitly)
#   <out>/xtables-multi    xtables-nft-multi (iptables-restore, -save, ip6tables-…)
#   <out>/lib/             its shared libraries (and the extensions' ones)
#   <out>/xtables/         extension modules (libxt_owner.so, libxt_REDIRECT.so, …)
#
# weft-proxy runs: <out>/ld.so --library-path <out>/lib <out>/xtables-multi iptables-restore …
# with XTABLES_LIBDIR=<out>/xtables.
#
# Usage: iptables-bundle.sh <out-dir>
# Needs Debian's iptables package (e2e/cluster/install-deps.sh installs it).
set -euo pipefail

out="${1:?usage: iptables-bundle.sh <out-dir>}"
multi="$(command -v xtables-nft-multi || true)"
[[ -n "$multi" ]] || multi=/usr/sbin/xtables-nft-multi
[[ -x "$multi" ]] || { echo "iptables-bundle.sh: $multi not found; apt-get install iptables (e2e/cluster/install-deps.sh)" >&2; exit 1; }
xtdir=""
for d in /usr/lib/x86_64-linux-gnu/xtables /usr/lib/xtables /usr/lib64/xtables; do
  [[ -d "$d" ]] && { xtdir="$d"; break; }
done
[[ -n "$xtdir" ]] || { echo "iptables-bundle.sh: no xtables extension directory found" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/lib" "$out/xtables"
cp -L "$multi" "$out/xtables-multi"
cp -L "$xtdir"/*.so "$out/xtables/"

# Shared libraries of the binary and of every extension, and the loader.
loader=""
for f in "$multi" "$xtdir"/*.so; do
  while read -r line; do
    # "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    path="$(awk '{ if ($2 == "=>") print $3; else print $1 }' <<<"$line")"
    [[ "$path" == /* && -e "$path" ]] || continue
    case "$(basename "$path")" in
      ld-linux*) loader="$path" ;;
      *) cp -L "$path" "$out/lib/$(basename "$path")" ;;
    esac
  done < <(ldd "$f" 2>/dev/null || true)
done
[[ -n "$loader" ]] || { echo "iptables-bundle.sh: no dynamic loader found in ldd $multi" >&2; exit 1; }
cp -L "$loader" "$out/ld.so"
chmod 0755 "$out/ld.so" "$out/xtables-multi"

# Smoke test: the bundle runs without the host's library paths.
if ! env -i "$out/ld.so" --library-path "$out/lib" "$out/xtables-multi" iptables-restore --version >/dev/null; then
  echo "iptables-bundle.sh: the bundle in $out does not run" >&2; exit 1
fi
echo "iptables-bundle.sh: wrote $out ($(du -sh "$out" | cut -f1))" >&2
