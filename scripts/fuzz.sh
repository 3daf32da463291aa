#!/usr/bin/env bash
# Fuzzes every decoder and validator that takes outside input (the targets of fuzz/, listed in
# docs/fuzzing.md): builds them, then runs each for a fixed number of inputs.
#
#   scripts/fuzz.sh [RUNS]    RUNS inputs per target (default 200000: all targets in about a
#                             minute on 2 cores, after the build); scripts/fuzz.sh 1000000
#                             for a long session
#
# Installs cargo-fuzz when it is missing. The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it
# take the nightly-only flags cargo-fuzz passes to rustc. Inputs that find new coverage are
# kept in fuzz/corpus/<target>/ (git-ignored) and reused next time, next to the seeds of
# fuzz/seeds/<target>/. Exits non-zero when a target panics or hangs: the input is saved in
# fuzz/artifacts/<target>/ and the end of libFuzzer's report is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

runs="${1:-200000}"
if ! [[ "$runs" =~ ^[0-9]+$ ]] || [ "$runs" -eq 0 ]; then
  echo "usage: scripts/fuzz.sh [RUNS]  (a positive number of inputs per target)" >&2
  exit 2
fi
echo "== fuzz: every target of fuzz/, $runs inputs each (docs/fuzzing.md)"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

export RUSTC_BOOTSTRAP=1
# The same flags for `cargo fuzz build` and for `cargo fuzz run` by hand, so that one reuses the
# other's build. No sanitizer: the workspace forbids unsafe code, and what the targets look for
# is panics (overflow checks and debug assertions are on); AddressSanitizer would halve the
# runs on 2 cores.
flags=(--sanitizer none)
triple=$(rustc -vV | sed -n 's/^host: //p')
# An input that takes longer than this (seconds) is reported as a hang.
timeout=30

mapfile -t targets < <(cargo fuzz list)
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: cargo fuzz list found no target in fuzz/" >&2
  exit 1
fi
echo "fuzz: building ${#targets[@]} targets"
start=$SECONDS
cargo fuzz build "${flags[@]}" --target "$triple"
echo "fuzz: built in $((SECONDS - start)) s"

# The binaries are run directly rather than through `cargo fuzz run`, which would rebuild
# whatever changed in the work tree in the meantime: every target runs the build above.
bin_dir="$root/fuzz/target/$triple/release"
logs="$root/fuzz/target/logs"
mkdir -p "$logs"
failed=()
start=$SECONDS
for target in "${targets[@]}"; do
  corpus="$root/fuzz/corpus/$target"
  artifacts="$root/fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  if [ -d "$root/fuzz/seeds/$target" ]; then seeds=("$root/fuzz/seeds/$target"); fi
  began=$SECONDS
  if "$bin_dir/$target" -artifact_prefix="$artifacts/" -runs="$runs" -timeout="$timeout" \
    "$corpus" "${seeds[@]}" >"$logs/$target.log" 2>&1; then
    done_line=$(grep -E '^Done [0-9]+ runs' "$logs/$target.log" | tail -n 1 || true)
    printf 'fuzz: %-22s ok   %4d s  %s\n' "$target" "$((SECONDS - began))" "$done_line"
  else
    printf 'fuzz: %-22s FAILED after %d s; end of %s:\n' "$target" "$((SECONDS - began))" \
      "fuzz/target/logs/$target.log"
    tail -n 40 "$logs/$target.log"
    failed+=("$target")
  fi
done
echo "fuzz: ran ${#targets[@]} targets, $runs inputs each, in $((SECONDS - start)) s"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; their inputs are in fuzz/artifacts/" >&2
  echo "fuzz: replay one with: RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} <target> fuzz/artifacts/<target>/<file>" >&2
  exit 1
fi
