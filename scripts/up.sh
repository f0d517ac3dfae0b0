#!/usr/bin/env bash
# Build Tugboat and start a single-node cluster on the embedded store.
# The kubeconfig is written to $TUG_DATA_DIR/kubeconfig (default /var/lib/tugboat).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tugboat-target}"
cargo build --release -p tugboat --bin tug
data="${TUG_DATA_DIR:-/var/lib/tugboat}"
echo "Starting tug server; then: kubectl --kubeconfig $data/kubeconfig get ns"
# This machine is the cluster's node (real containers, runc) unless TUG_NODE_AGENT=0.
node_agent=()
[[ "${TUG_NODE_AGENT:-1}" == 1 ]] && node_agent=(--node-agent)
exec "$CARGO_TARGET_DIR/release/tug" server --data-dir "$data" --listen "${TUG_LISTEN:-127.0.0.1:6443}" \
  --simulated-nodes "${TUG_SIMULATED_NODES:-0}" "${node_agent[@]}"
