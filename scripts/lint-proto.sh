#!/usr/bin/env bash
# Lints the protobuf contract in proto/ with buf (config: proto/buf.yaml).
# buf is installed from npm (@bufbuild/buf) into a cache directory on first use.
# Exits non-zero when buf reports findings (buf lint exits 100) or cannot run.
set -euo pipefail

BUF_VERSION="1.75.0"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/fedmesh-buf"
buf_bin="$cache_dir/node_modules/.bin/buf"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
proto_dir="$repo_root/proto"

installed_version() {
  [[ -x "$buf_bin" ]] && "$buf_bin" --version 2>/dev/null || true
}

if [[ "$(installed_version)" != "$BUF_VERSION" ]]; then
  command -v npm >/dev/null || { echo "lint-proto: npm is required to install buf" >&2; exit 1; }
  echo "lint-proto: installing @bufbuild/buf@$BUF_VERSION into $cache_dir" >&2
  mkdir -p "$cache_dir"
  [[ -f "$cache_dir/package.json" ]] || printf '{"name":"fedmesh-buf","private":true}\n' >"$cache_dir/package.json"
  npm install --prefix "$cache_dir" --no-audit --no-fund --loglevel=error "@bufbuild/buf@$BUF_VERSION" >&2
  if [[ "$(installed_version)" != "$BUF_VERSION" ]]; then
    echo "lint-proto: buf $BUF_VERSION did not install correctly (platform binary missing?)" >&2
    exit 1
  fi
fi

cd "$proto_dir"
"$buf_bin" lint "$@"
echo "lint-proto: buf lint passed" >&2
