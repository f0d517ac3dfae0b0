#!/usr/bin/env bash
# Builds app.py into a WebAssembly component of the `tugboat:plugin/scheduler@0.1.0` world
# with componentize-py (CPython compiled to Wasm, from PyPI), after running the unit tests
# (test_app.py) under the host's CPython, once without and once with the generated bindings.
# The component carries the interpreter and the standard library it needs: expect tens of MB.
#
#   bash build.sh [OUT_DIR]    # writes OUT_DIR/python-bin-packing.wasm
#
# OUT_DIR defaults to "${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-<repo>/target}-plugins}/polyglot".
# componentize-py (pinned below, the same as examples/plugins/python/deny-privileged, whose
# venv and lock it shares) is installed once into a venv in a cache directory outside the
# source tree, "${TUG_POLYGLOT_CACHE:-~/.cache/tugboat-polyglot}/python-componentize-py-<version>".
# The tests run and the component is rebuilt only when app.py, test_app.py, the WIT files
# or this script change; otherwise the script returns at once. To read the generated
# `wit_world` bindings (or for an editor), run
#   "$venv/bin/componentize-py" -d ../../../../wit -w scheduler bindings bindings/
# Requires python3 >= 3.10 with venv (Debian: python3-venv).
set -euo pipefail
componentize_py_version=0.25.1

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
out="${1:-${TUG_PLUGINS_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}-plugins}/polyglot}"
cache="${TUG_POLYGLOT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tugboat-polyglot}"
wasm="$out/python-bin-packing.wasm"
venv="$cache/python-componentize-py-$componentize_py_version"

mkdir -p "$out" "$cache"
key="$(cat "$here/app.py" "$here/test_app.py" "$0" "$root"/wit/*.wit | sha256sum | cut -c1-64)"

# One build at a time per cache (tests and a developer may run this concurrently).
exec 9>"$cache/python.lock"
flock 9

if [[ -f "$wasm" && "$(cat "$wasm.key" 2>/dev/null)" == "$key" ]]; then
  echo "$wasm is up to date" >&2
  exit 0
fi

if [[ ! -f "$venv/.installed" ]]; then
  echo "installing componentize-py $componentize_py_version into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || {
    echo "build.sh: python3 -m venv failed (Debian: apt-get install python3-venv; bash scripts/setup.sh does)" >&2
    exit 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "componentize-py==$componentize_py_version" >&2
  touch "$venv/.installed"
fi

started=$SECONDS
# Everything happens in a temporary directory so that nothing (no __pycache__, no
# bindings, no output) lands in the source tree.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/test" "$work/app"

# The unit tests: the pure policy under plain CPython, then again with the generated
# bindings so that the WIT adapter (SchedulerPlugin) is tested too.
cp "$here/app.py" "$here/test_app.py" "$work/test/"
"$venv/bin/componentize-py" -d "$root/wit" -w scheduler bindings "$work/bindings" >&2
(cd "$work/test" && PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m unittest -q >&2) || {
  echo "build.sh: unit tests failed (without bindings)" >&2
  exit 1
}
(cd "$work/test" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$work/bindings" \
  "$venv/bin/python" -m unittest -q >&2) || {
  echo "build.sh: unit tests failed (with bindings)" >&2
  exit 1
}

# componentize-py writes its output next to a scratch copy of the app, and bundles the
# Python files of its directory: give it app.py alone.
cp "$here/app.py" "$work/app/"
(cd "$work/app" && "$venv/bin/componentize-py" -d "$root/wit" -w scheduler \
  componentize app -o "$work/out.wasm" >&2)
mv "$work/out.wasm" "$wasm.tmp.$$"
mv "$wasm.tmp.$$" "$wasm"
echo "$key" >"$wasm.key"
echo "built $wasm ($(stat -c %s "$wasm") bytes) in $((SECONDS - started)) s" >&2
