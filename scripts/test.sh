#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, integration and end-to-end tests (the real
# kubectl against a real `tug server`), then the API benchmark in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Build outside the clone so CI runs reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tugboat-target}"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads="${TUG_TEST_THREADS:-4}"
if [[ "${TUG_SKIP_BENCH:-0}" != 1 ]]; then
  echo "== tug bench api (release)"
  cargo build --release -p tugboat --bin tug
  "$CARGO_TARGET_DIR/release/tug" bench api
fi
