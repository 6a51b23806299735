#!/bin/bash
# End-to-end test: boots Debian 12's stock kernel with a busybox initramfs in Vireo, 2 vCPUs,
# 512 MiB, and checks that /init ran on that kernel with both CPUs online, loaded its modules
# and powered the VM off (vireo exits 0). Artifacts come from linux-guest.sh (cached in
# OUTDIR); the console checks are check_boot_log.sh, the same ones qemu_smoke.sh proves the
# artifacts against.
#
#   linux_boot_test.sh [--accel emu] VIREO OUTDIR
#
# Exits 0 on success, 1 on failure, and 77 (CTest SKIP_RETURN_CODE) before downloading
# anything when the host has no hardware-assisted KVM: a software-assisted KVM (such as
# kvm_pvm) emulates guest CPL0 code, far too slowly for a Linux kernel to boot.
# With --accel emu the kernel runs on Vireo's software CPU instead (no /dev/kvm needed; minutes,
# not seconds: `make test-linux-emu`).
# Environment: VIREO_E2E_FORCE=1 runs without vmx/svm; VIREO_E2E_BOOT_TIMEOUT (seconds,
# default 180, 1200 with --accel emu) bounds the boot itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
accel=kvm
if [[ "${1:-}" == --accel ]]; then
  accel=${2:-}
  shift 2
fi
[[ $# -eq 2 && ( $accel == kvm || $accel == emu ) ]] ||
  { echo "usage: linux_boot_test.sh [--accel kvm|emu] VIREO OUTDIR" >&2; exit 2; }
vireo=$1 out=$2
cpus=2
name=e2e_linux_boot
[[ $accel == emu ]] && name=e2e_linux_boot_emu
default_timeout=180
[[ $accel == emu ]] && default_timeout=1200
boot_timeout=${VIREO_E2E_BOOT_TIMEOUT:-$default_timeout}
skip=77

if [[ $accel == kvm ]] && ! grep -Eqw 'vmx|svm' /proc/cpuinfo && [[ "${VIREO_E2E_FORCE:-0}" != 1 ]]; then
  echo "SKIP: e2e_linux_boot needs hardware-assisted KVM (no vmx/svm in /proc/cpuinfo;" \
    "this host's KVM emulates guest kernel code)"
  exit $skip
fi
if [[ $accel == kvm && ( ! -r /dev/kvm || ! -w /dev/kvm ) ]]; then
  echo "SKIP: e2e_linux_boot needs read-write access to /dev/kvm"
  exit $skip
fi

"$here/linux-guest.sh" "$out" || { echo "FAILED: could not build the guest artifacts"; exit 1; }
out=$(cd "$out" && pwd)

console="$out/vireo-boot-$accel.console.log"
stderr_log="$out/vireo-boot-$accel.stderr.log"
cmd=("$vireo" run --accel "$accel" --kernel "$out/vmlinuz" --initrd "$out/initramfs.cpio.gz"
  --cmdline "console=ttyS0 panic=-1" --cpus "$cpus" --memory 512M --no-reboot)
echo "running: timeout $boot_timeout$(printf ' %q' "${cmd[@]}")"
start=$(date +%s)
status=0
timeout --kill-after=10 "$boot_timeout" "${cmd[@]}" \
  </dev/null >"$console" 2>"$stderr_log" || status=$?
elapsed=$(($(date +%s) - start))

exec "$here/check_boot_log.sh" "$name" "$status" "$console" "$stderr_log" "$out" \
  "$cpus" "$elapsed"
