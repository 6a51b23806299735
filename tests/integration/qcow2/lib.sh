# shellcheck shell=bash
# Shared by the qcow2 interop tests. Each test script is run as `SCRIPT DRIVER [ARGS...]`,
# where DRIVER is the qcow2_driver binary (CMake passes it through a generator expression, so
# the sanitizer build runs its own). The reference tools come from qemu-utils.
set -euo pipefail

DRIVER=${1:?usage: $0 QCOW2_DRIVER [args]}
shift

for tool in qemu-img qemu-io python3 sha256sum; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (qemu-utils provides qemu-img and qemu-io)"
    exit 77
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vireo-qcow2-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck disable=SC2034  # used by the scripts that source this file
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Under the sanitizer build a report must fail the test, not pass as an "expected error":
# give the reports an exit status no test accepts, and also grep for them.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86:detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1:exitcode=87"

FAILURES=0
step() { echo "== $*"; }
ok() { echo "   ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# Records a failure and goes on, so one run lists every broken case.
fail_later() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}
finish() {
  if [ "$FAILURES" -ne 0 ]; then
    echo "$FAILURES check(s) failed" >&2
    exit 1
  fi
  echo "PASS"
}

# drv ARGS...: runs the driver; returns its status. stderr is kept in $WORK/drv.err and shown.
# A crash (signal) or a sanitizer report fails the test at once whatever the caller expects.
drv() {
  local rc=0
  "$DRIVER" "$@" 2>"$WORK/drv.err" || rc=$?
  cat "$WORK/drv.err" >&2
  if [ "$rc" -ge 86 ] || grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK/drv.err"; then
    fail "qcow2_driver $* crashed or tripped a sanitizer (status $rc)"
  fi
  return "$rc"
}

# qemu-img check; prints its verdict and returns its status (0 clean, 2 corrupt, 3 leaks).
qcheck() {
  local rc=0
  qemu-img check -f qcow2 "$1" >"$WORK/check.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    # The first problems and the summary; a leaky image lists thousands of clusters.
    { head -n 12 "$WORK/check.out"; echo "..."; tail -n 5 "$WORK/check.out"; } |
      sed 's/^/   qemu-img check: /' >&2
  fi
  return "$rc"
}

# qemu-img compare of a qcow2 against a raw file; 0 when the guest-visible contents are equal.
qcompare() {
  local rc=0
  qemu-img compare -f qcow2 -F raw "$1" "$2" >"$WORK/compare.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then sed 's/^/   qemu-img compare: /' "$WORK/compare.out" >&2; fi
  return "$rc"
}

# A fresh raw file of SIZE bytes (zeros) or a copy of a disk's contents, as the reference.
raw_zero() { truncate -s "$2" "$1"; }
raw_copy_of() { qemu-img convert -O raw "$1" "$2"; }

# The seed for random tests: fixed, so runs repeat, unless QCOW2_TEST_SEED overrides it.
seed_for() {
  local base=$1
  if [ -n "${QCOW2_TEST_SEED:-}" ]; then echo "$QCOW2_TEST_SEED"; else echo "$base"; fi
}
