#!/usr/bin/env bash
# Builds the Wasm plugins (the cargo workspace in plugins/: test plugins and the example
# policies in examples/plugins/rust) as wasm32-wasip2 components. Fast when up to date.
#
# The .wasm files land in "$TUG_PLUGINS_TARGET_DIR/wasm32-wasip2/release/"; that directory
# is printed as the last line of stdout. TUG_PLUGINS_TARGET_DIR defaults to
# "${CARGO_TARGET_DIR:-<repo>/target}-plugins": a target directory of its own, so that this
# script can run while another cargo command (e.g. `cargo test`) holds the main one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-plugins}"

if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  (cd "$root" && rustup target add wasm32-wasip2 >&2)
fi

cd "$root/plugins"
cargo build --target wasm32-wasip2 --release --target-dir "$target" -j "${TUG_BUILD_JOBS:-2}" >&2
echo "$target/wasm32-wasip2/release"
