#!/usr/bin/env bash
# The whole test suite. Installs the non-Rust clients the integration tests drive (Python
# grpcio with reflection and health checking, PyYAML, grpcurl and kubectl) when they are missing, then runs
# every test of the workspace with cargo-nextest (installed when missing, else cargo test).
# Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Where pip puts console scripts (grpcurl), for root and for user installs.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
user_bin=$(python3 -c 'import site; print(site.getuserbase() + "/bin")')
export PATH="$scripts_dir:$user_bin:$PATH"

if ! python3 -c 'import grpc, grpc_reflection, grpc_health, yaml' 2>/dev/null \
  || ! command -v grpcurl >/dev/null || ! command -v kubectl >/dev/null; then
  echo "installing the test clients: tests/python/requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi

# cargo-nextest runs each test in its own process, in parallel. A machine with only the Rust
# toolchain gets it from crates.io once (a few minutes); without network, the suite falls back
# to cargo test (slower, and nextest-only arguments do not apply).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (cargo install --locked cargo-nextest)"
  if ! cargo install --locked --quiet cargo-nextest; then
    echo "cargo-nextest could not be installed: running the suite with cargo test" >&2
    exec cargo test --workspace "$@"
  fi
fi
exec cargo nextest run --workspace "$@"
