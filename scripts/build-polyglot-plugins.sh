#!/usr/bin/env bash
# Builds the example policies written in other languages than Rust (the "any Wasm
# language" proof): the admission policies examples/plugins/js/deny-privileged
# (componentize-js) and examples/plugins/python/deny-privileged (componentize-py), and the
# scheduler policy examples/plugins/python/bin-packing (componentize-py; its build runs its
# unit tests first). Their tools are installed on first use into ~/.cache/tugboat-polyglot
# (TUG_POLYGLOT_CACHE); fast when up to date.
#
# The .wasm files (js-deny-privileged.wasm, python-deny-privileged.wasm,
# python-bin-packing.wasm) land in
# "${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-<repo>/target}-plugins}/polyglot" (or the
# directory given as $1); that directory is printed as the last line of stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-plugins}/polyglot}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

bash "$root/examples/plugins/js/deny-privileged/build.sh" "$out" >&2
bash "$root/examples/plugins/python/deny-privileged/build.sh" "$out" >&2
bash "$root/examples/plugins/python/bin-packing/build.sh" "$out" >&2
echo "$out"
