#!/usr/bin/env bash
# Builds policy.js into a WebAssembly component of the `tugboat:plugin/admission@0.1.0`
# world with componentize-js (SpiderMonkey/StarlingMonkey, from the npm registry).
#
#   bash build.sh [OUT_DIR]    # writes OUT_DIR/js-deny-privileged.wasm
#
# OUT_DIR defaults to "${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-<repo>/target}-plugins}/polyglot".
# The npm packages (exact versions in package.json, the whole tree pinned by
# package-lock.json) are installed with `npm ci` into a cache directory outside the source
# tree, "${TUG_POLYGLOT_CACHE:-~/.cache/tugboat-polyglot}/js-<lock hash>", once. The
# component is rebuilt only when policy.js, the WIT files, the lock file or this script
# change; otherwise the script returns at once.
#
# WASI features the policy does not use are disabled (`--disable http fetch-event random
# clocks`): the component then imports only the tugboat host API and the WASI stdio
# interfaces (kept so that an uncaught exception is printed to stderr, i.e. the plugin's
# log, instead of a bare trap). Requires Node.js >= 20 and npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="${1:-${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-plugins}/polyglot}"
cache="${TUG_POLYGLOT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tugboat-polyglot}"
wasm="$out/js-deny-privileged.wasm"
disable=(http fetch-event random clocks)

command -v npm >/dev/null || {
  echo "build.sh: npm (Node.js >= 20) is required: bash scripts/setup.sh installs it" >&2
  exit 1
}
mkdir -p "$out" "$cache"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
deps="$cache/js-$(hash_of "$here/package-lock.json")"
key="$(
  {
    cat "$here/policy.js" "$here/package-lock.json" "$0" "$root"/wit/*.wit
    echo "${disable[*]}"
  } | sha256sum | cut -c1-64
)"

# One build at a time per cache (tests and a developer may run this concurrently).
exec 9>"$cache/js.lock"
flock 9

if [[ -f "$wasm" && "$(cat "$wasm.key" 2>/dev/null)" == "$key" ]]; then
  echo "$wasm is up to date" >&2
  exit 0
fi

if [[ ! -f "$deps/.installed" ]]; then
  echo "installing componentize-js into $deps (npm ci)" >&2
  rm -rf "$deps"
  mkdir -p "$deps"
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  (cd "$deps" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$deps/.installed"
fi

started=$SECONDS
tmp="$wasm.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$deps/node_modules/.bin/componentize-js" "$here/policy.js" \
  --wit "$root/wit" --world-name admission \
  --disable "${disable[@]}" \
  -o "$tmp" >&2
mv "$tmp" "$wasm"
echo "$key" >"$wasm.key"
echo "built $wasm ($(stat -c %s "$wasm") bytes) in $((SECONDS - started)) s" >&2
