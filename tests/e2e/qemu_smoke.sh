#!/bin/bash
# Boots the e2e Linux guest under QEMU with TCG (no KVM needed) to prove the artifacts that
# linux-guest.sh builds are right: the same checks as the Vireo test (check_boot_log.sh),
# with a monitor known to work. Downloads ~70 MB on the first run, so CTest runs it only when
# configured with -DVIREO_E2E_QEMU_SMOKE=ON.
#
#   qemu_smoke.sh [OUTDIR]     (default: build/e2e in the source tree)
#
# Exits 0 on success, 1 on failure, 77 (skip) without qemu-system-x86_64.
# Environment: VIREO_E2E_BOOT_TIMEOUT (seconds, default 180).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../../build/e2e}
cpus=2
boot_timeout=${VIREO_E2E_BOOT_TIMEOUT:-180}

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu_smoke needs qemu-system-x86_64 (apt-get install qemu-system-x86)"
  exit 77
fi

"$here/linux-guest.sh" "$out"
out=$(cd "$out" && pwd)

console="$out/qemu-smoke.console.log"
stderr_log="$out/qemu-smoke.stderr.log"
echo "booting $out/vmlinuz ($(<"$out/kernel-release")) under QEMU TCG, $cpus CPUs"
start=$(date +%s)
status=0
timeout --kill-after=10 "$boot_timeout" \
  qemu-system-x86_64 -accel tcg -m 512 -smp "$cpus" \
  -kernel "$out/vmlinuz" -initrd "$out/initramfs.cpio.gz" \
  -append "console=ttyS0 panic=-1" -nographic -no-reboot \
  </dev/null >"$console" 2>"$stderr_log" || status=$?
elapsed=$(($(date +%s) - start))

exec "$here/check_boot_log.sh" qemu_smoke "$status" "$console" "$stderr_log" "$out" "$cpus" \
  "$elapsed"
