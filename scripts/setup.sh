#!/usr/bin/env bash
# Install what building and testing Tugboat needs on a fresh Debian machine of this kind.
# Idempotent: each step is skipped when its tool is already there.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
# The JavaScript and Python example policies (scripts/build-polyglot-plugins.sh) need Node.js
# with npm and python3 with venv; their build scripts install the rest per project.
command -v npm >/dev/null || need_apt+=(nodejs npm)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

if ! command -v kubectl >/dev/null; then
  # kubectl comes with these machines; elsewhere, Debian's package is the fallback.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq kubectl || apt-get install -y -qq kubernetes-client || {
    echo "setup: kubectl is required for the end-to-end tests and could not be installed" >&2
    exit 1
  }
fi

if [[ ! -x /usr/bin/docker-registry ]]; then
  # The OCI registry (CNCF distribution) that the plugin push/pull tests run on loopback.
  # The package's own service is not needed: the tests start their own registry processes.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker-registry
fi

# The container runtime (issue 6): runc runs the OCI bundles (Debian's crun refuses hybrid
# cgroup hosts; runc works on v1, hybrid and v2); busybox-static is what the tests build
# their container image from.
need_rt=()
command -v runc >/dev/null || need_rt+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need_rt+=(busybox-static)
# Networking (issue 7): nft programs the Service proxy's rules (the nftables crate drives it
# with JSON); Debian's CNI plugins (bridge, host-local, portmap) back the CNI adapter tests.
command -v nft >/dev/null || need_rt+=(nftables)
[[ -x /usr/lib/cni/bridge ]] || need_rt+=(containernetworking-plugins)
if ((${#need_rt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_rt[@]}"
fi

if command -v rustup >/dev/null; then
  # rust-toolchain.toml lists the target, but rustup does not add a listed target to a
  # toolchain that is already installed.
  rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
