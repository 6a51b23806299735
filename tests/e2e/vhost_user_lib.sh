#!/bin/bash
# Shared by the vhost-user end-to-end scenarios (vhost_user_*_test.sh): Debian's kernel boots
# under QEMU with TCG (no KVM needed), its virtio device served by `vireo vhost-user` through a
# Unix socket, and the guest's own drivers do the I/O. Sourced, not run. emu_suite_test.sh reuses
# it (VU_NEEDS_QEMU=0, VU_SUBDIR=emu) for the same scenarios booted by `vireo run --accel emu`.
#
# Each scenario: vu_setup NAME VIREO ARTIFACTS, writes its guest script, vu_initrd SCRIPT,
# starts a back-end with vu_backend, boots with vu_boot, then checks the console (vu_want) and
# the host side. Everything lives in ARTIFACTS/vhost-user/NAME (kept after the test for
# reading). Exit codes: 0 pass, 1 fail, 77 skip (printed with the reason) when the host lacks
# QEMU and it cannot be installed.
set -euo pipefail

VU_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VU_BOOT_TIMEOUT=${VIREO_E2E_BOOT_TIMEOUT:-240}
VU_MEMORY=256M
vu_failures=()
vu_pids=()

vu_log() { echo "$VU_NAME: $*"; }
vu_fail() { vu_failures+=("$*"); echo "$VU_NAME: FAIL: $*"; }

vu_cleanup() {
  local pid
  for pid in "${vu_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${vu_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  vu_pids=()
}

# vu_setup NAME VIREO ARTIFACTS
vu_setup() {
  VU_NAME=$1
  VU_VIREO=$2
  VU_ART=$3
  # The emu suite (emu_suite_test.sh) boots in Vireo itself and sets VU_NEEDS_QEMU=0.
  if [[ "${VU_NEEDS_QEMU:-1}" == 1 ]] && ! command -v qemu-system-x86_64 >/dev/null; then
    echo "SKIP: $VU_NAME needs qemu-system-x86_64 (scripts/install-deps.sh installs qemu-system-x86)"
    exit 77
  fi
  [[ -x "$VU_VIREO" ]] || { echo "$VU_NAME: no vireo at $VU_VIREO"; exit 1; }
  "$VU_HERE/linux-guest.sh" "$VU_ART" >"$VU_ART.linux-guest.log" 2>&1 || {
    mkdir -p "$VU_ART"
    cat "$VU_ART.linux-guest.log"
    echo "$VU_NAME: building the guest artifacts failed"
    exit 1
  }
  VU_ART=$(cd "$VU_ART" && pwd)
  VU_DIR="$VU_ART/${VU_SUBDIR:-vhost-user}/$VU_NAME"
  rm -rf "$VU_DIR"
  mkdir -p "$VU_DIR"
  VU_SOCK="$VU_DIR/backend.sock"
  VU_BUSYBOX="$VU_ART/busybox"
  trap vu_cleanup EXIT
}

# vu_initrd SCRIPT [FILE...]: the base initramfs plus a cpio holding SCRIPT as /scenario.sh (and
# FILEs under /data/); prints the path.
vu_initrd() {
  local script=$1 root="$VU_DIR/initrd-root" out="$VU_DIR/initrd.cpio.gz"
  shift
  rm -rf "$root"
  mkdir -p "$root/data"
  cp "$script" "$root/scenario.sh"
  local f
  for f in "$@"; do cp "$f" "$root/data/"; done
  (cd "$root" && find . | LC_ALL=C sort | "$VU_BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -1n >"$VU_DIR/scenario.cpio.gz"
  cat "$VU_ART/initramfs.cpio.gz" "$VU_DIR/scenario.cpio.gz" >"$out"
  echo "$out"
}

# vu_backend LOG ARGS...: starts `vireo vhost-user ARGS` (or, with VU_WRAP set, under that
# command prefix, e.g. ip netns exec) and waits for its socket. Sets VU_BACKEND_PID.
vu_backend() {
  local log=$1
  shift
  rm -f "$VU_SOCK.ready"
  ${VU_WRAP:-} "$VU_VIREO" vhost-user "$@" >"$log" 2>&1 &
  VU_BACKEND_PID=$!
  vu_pids+=("$VU_BACKEND_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S "$VU_SOCK" ]] && return 0
    if ! kill -0 "$VU_BACKEND_PID" 2>/dev/null; then
      vu_fail "the back-end exited before listening: $(tail -n 3 "$log" | tr '\n' ' ')"
      return 1
    fi
    sleep 0.1
  done
  vu_fail "the back-end never created $VU_SOCK"
  return 1
}

# vu_boot CONSOLE INITRD [--reboot] QEMU_ARGS...: boots the guest under QEMU TCG with shared
# memfd RAM (vhost-user needs it) and waits for it to end; sets VU_STATUS and VU_ELAPSED.
vu_boot() {
  local console=$1 initrd=$2 reboot=-no-reboot
  shift 2
  if [[ "${1:-}" == --reboot ]]; then
    reboot=""
    shift
  fi
  local start
  start=$(date +%s)
  VU_STATUS=0
  # shellcheck disable=SC2086  # $reboot is one word or none
  timeout --kill-after=10 "$VU_BOOT_TIMEOUT" \
    qemu-system-x86_64 -accel tcg -m "$VU_MEMORY" -smp 1 -nodefaults -no-user-config \
    -object "memory-backend-memfd,id=mem,size=$VU_MEMORY,share=on" -machine memory-backend=mem \
    -kernel "$VU_ART/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet" -display none -serial "file:$console" $reboot \
    "$@" </dev/null >"$console.qemu.log" 2>&1 || VU_STATUS=$?
  VU_ELAPSED=$(($(date +%s) - start))
  echo "$VU_STATUS" >"$console.status"  # for callers that ran vu_boot in the background
  vu_log "QEMU exited with status $VU_STATUS after ${VU_ELAPSED}s"
  case "$VU_STATUS" in
    0) ;;
    124 | 137) vu_fail "QEMU timed out after ${VU_ELAPSED}s" ;;
    *) vu_fail "QEMU exit status $VU_STATUS: $(tail -n 3 "$console.qemu.log" | tr '\n' ' ')" ;;
  esac
}

# vu_want CONSOLE LINE: the console has LINE exactly (CR stripped).
vu_want() {
  tr -d '\r' <"$1" | grep -Fxq -- "$2" || vu_fail "console has no line: $2"
}
# vu_value CONSOLE KEY: the value of the first "VIREO-E2E: KEY: VALUE" line.
vu_value() {
  tr -d '\r' <"$1" | sed -n "s/^VIREO-E2E: $2: //p" | head -n 1
}
# vu_wait_line CONSOLE LINE SECONDS: waits for LINE to appear while the guest runs.
vu_wait_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [[ -f "$1" ]] && tr -d '\r' <"$1" | grep -Fxq -- "$2" && return 0
    sleep 0.1
  done
  return 1
}

# vu_finish: prints the verdict (with the logs' tails on failure) and exits.
vu_finish() {
  if [[ ${#vu_failures[@]} -eq 0 ]]; then
    echo "PASS: $VU_NAME"
    exit 0
  fi
  local f
  echo "FAIL: $VU_NAME (${#vu_failures[@]} problems); logs in $VU_DIR"
  for f in "$VU_DIR"/*.log; do
    echo "---- $(basename "$f") (last 25 lines)"
    tr -d '\r' <"$f" | tail -n 25
  done
  exit 1
}
