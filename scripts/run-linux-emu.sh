#!/usr/bin/env bash
# `make run-linux-emu`: boots Debian's kernel and a busybox initramfs on Vireo's software CPU
# (`vireo run --accel emu`, 2 vCPUs, 512 MiB) and gives you a shell on the serial console.
# The artifacts are those of the e2e tests (tests/e2e/linux-guest.sh, downloaded from Debian
# once into BUILD/e2e). `exit` (or Ctrl-D, or end of input) powers the VM off.
#
#   scripts/run-linux-emu.sh BUILD [extra `vireo run` options...]
set -euo pipefail
build=${1:?usage: run-linux-emu.sh BUILD [vireo run options...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
art=$(mkdir -p "$build/e2e" && cd "$build/e2e" && pwd)
echo "run-linux-emu: preparing Debian's kernel and initramfs in $art (first time: downloads)"
"$here/tests/e2e/linux-guest.sh" "$art" >"$art.linux-guest.log" 2>&1 || {
  tail -n 20 "$art.linux-guest.log"
  echo "run-linux-emu: building the guest artifacts failed (log: $art.linux-guest.log)" >&2
  exit 1
}
# The base /init runs /scenario.sh when the initramfs has one: here, an interactive shell.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
cat >"$work/root/scenario.sh" <<'GUEST'
echo "Debian $(uname -r) on Vireo's software CPU, $(nproc) vCPUs. 'exit' powers off."
setsid cttyhack sh -l
GUEST
(cd "$work/root" && find . | LC_ALL=C sort | "$art/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -1n >"$work/shell.cpio.gz"
cat "$art/initramfs.cpio.gz" "$work/shell.cpio.gz" >"$work/initrd.cpio.gz"
set -x
"$build/vireo" run --accel emu --kernel "$art/vmlinuz" --initrd "$work/initrd.cpio.gz" \
  --cmdline "console=ttyS0 panic=-1" --cpus 2 --memory 512M "$@"
