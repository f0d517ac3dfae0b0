#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, integration and end-to-end tests (the real
# kubectl against a real `tug server`), the Wasm plugins' own tests, then the API benchmark
# in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Build outside the clone so CI runs reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tugboat-target}"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== Wasm plugins (wasm32-wasip2)"
TUG_PLUGIN_WASM_DIR="$(bash scripts/build-plugins.sh | tail -n 1)"
export TUG_PLUGIN_WASM_DIR
cargo clippy --manifest-path plugins/Cargo.toml --target wasm32-wasip2 \
  --target-dir "${CARGO_TARGET_DIR}-plugins" -- -D warnings
cargo test --manifest-path plugins/Cargo.toml --target-dir "${CARGO_TARGET_DIR}-plugins-native"
echo "== cargo test"
cargo test --workspace -- --test-threads="${TUG_TEST_THREADS:-4}"
if [[ "${TUG_SKIP_BENCH:-0}" != 1 ]]; then
  echo "== tug bench api (release)"
  cargo build --release -p tugboat --bin tug
  "$CARGO_TARGET_DIR/release/tug" bench api
  echo "== tug bench admission (release)"
  "$CARGO_TARGET_DIR/release/tug" bench admission --wasm "$TUG_PLUGIN_WASM_DIR/deny_privileged.wasm"
fi
if [[ "${TUG_SKIP_BENCH:-0}" != 1 ]]; then
  echo "== tug bench controllers (release)"
  "$CARGO_TARGET_DIR/release/tug" bench controllers
  echo "== tug bench scheduler (release)"
  "$CARGO_TARGET_DIR/release/tug" bench scheduler
  echo "== tug bench pods (release)"
  "$CARGO_TARGET_DIR/release/tug" bench pods
  echo "== tug bench pods --pod-network bridge (release, in a network namespace of its own)"
  bench_ns="tug-bench-$$"
  ip netns add "$bench_ns"
  trap 'ip netns delete "$bench_ns" 2>/dev/null || true' EXIT
  ip -n "$bench_ns" link set lo up
  nsenter --net="/run/netns/$bench_ns" "$CARGO_TARGET_DIR/release/tug" bench pods --pod-network bridge
  ip netns delete "$bench_ns"
  echo "== tug bench services (release)"
  "$CARGO_TARGET_DIR/release/tug" bench services
fi
